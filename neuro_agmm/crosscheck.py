"""``python -m neuro_agmm.crosscheck ARTIFACT``: the same integer network on several backends, spike for spike.

A thin CLI over ``neuro_agmm.deploy.crosscheck.crosscheck``; backends are picked by name from
``hw_models.backends.registry``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from neuro_agmm import cli


def build_parser() -> argparse.ArgumentParser:
    from hw_models.backends import registry

    p = cli.parser("crosscheck", "Run one integer network on several backends and compare spikes, voltages, "
                                 "predictions and SynOp counts with the reference; writes a JSON report.",
                   ["python -m neuro_agmm.crosscheck runs/demo/digits-agmm/model.h5 --samples 20",
                    "python -m neuro_agmm.crosscheck model.h5 --backends emulator,brian2 --inputs x.npz"])
    cli.add_artifact(p)
    p.add_argument("--inputs", help="npz with x (N, T, *input_shape) integer levels (default: the artifact's dataset)")
    p.add_argument("--samples", type=int, default=10, help="samples to check (default 10)")
    cli.add_data_root(p)
    p.add_argument("--backends", default="emulator,brian2,lava",
                   help=f"comma list of {','.join(registry.names())} (default emulator,brian2,lava)")
    p.add_argument("--target", choices=("numpy", "cython"), default="numpy", help="Brian2 codegen target")
    p.add_argument("--lava-samples", type=int, default=2, help="samples Lava checks (one Lava run each; default 2)")
    p.add_argument("--timeout", type=float, default=None, help="watchdog seconds per Lava run")
    p.add_argument("--out", default=None, help="JSON report path (default: ARTIFACT.crosscheck.json)")
    cli.add_progress(p)
    return p


def _job(args: argparse.Namespace) -> int:
    from hw_models.backends.lava.runner import LavaRunError
    from neuro_agmm.artifact import read_artifact
    from neuro_agmm.data.inputs import load_inputs
    from neuro_agmm.deploy.crosscheck import crosscheck

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    art = read_artifact(args.artifact)
    x, _ = load_inputs(art, args.samples, inputs_file=args.inputs, data_root=args.data_root)
    if x is None:
        raise cli.UserError("no inputs: pass --inputs FILE.npz or --samples N > 0")
    try:
        res = crosscheck(args.artifact, x, backends=backends, brian2_target=args.target,
                         lava_samples=args.lava_samples, lava_timeout=args.timeout)
    except LavaRunError as e:  # Lava failed or hung (watchdog): one line, exit 1
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1
    dest = Path(args.out) if args.out else Path(args.artifact).with_suffix(".crosscheck.json")
    res.write_json(dest)
    print(res.summary())
    print(f"wrote {dest}")
    return 0 if res.total_mismatches == 0 else 1


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
