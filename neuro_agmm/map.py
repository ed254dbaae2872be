"""``python -m neuro_agmm.map --to lava|brian2|nir|netx ARTIFACT``: carry a trained artifact to hardware.

A thin CLI over ``neuro_agmm.deploy.mapping.map_to_lava`` (quantize, place, bit-accurate Lava run,
``/hardware`` written into the artifact), ``neuro_agmm.deploy.crosscheck.crosscheck`` (Brian2),
``neuro_agmm.deploy.nir.export_nir`` and ``hw_models.mapping.netx.export_netx``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from neuro_agmm import cli

TARGETS = ("lava", "nir", "netx", "brian2")


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("map", "Quantize a trained artifact onto Loihi-style cores and run it bit-accurately in Lava "
                          "(or cross-check it in Brian2, or export NIR / netx).",
                   ["python -m neuro_agmm.map --to lava runs/demo/digits-agmm/model.h5 --samples 100",
                    "python -m neuro_agmm.map --to brian2 runs/demo/digits-agmm/model.h5 --samples 10",
                    "python -m neuro_agmm.map --to nir runs/demo/digits-agmm/model.h5 --out model.nir",
                    "python -m neuro_agmm.map --to netx runs/demo/digits-agmm/model.h5 --out model.netx.h5"])
    cli.add_artifact(p)
    p.add_argument("--to", choices=TARGETS, default="lava", help="target (default: lava)")
    p.add_argument("--samples", type=int, default=None,
                   help="test samples to run (default: 100 for lava, 10 for brian2; 0 = none)")
    p.add_argument("--target", choices=("numpy", "cython"), default="numpy",
                   help="Brian2 code generation target for --to brian2 (default: numpy)")
    p.add_argument("--inputs", help="npz with x (N, T, *input_shape) integer levels and optional y (N,)")
    cli.add_data_root(p)
    p.add_argument("--timeout", type=float, default=None, help="watchdog seconds per Lava run (default: by size)")
    p.add_argument("--core", choices=("loihi1", "loihi2"), default="loihi1", help="core/chip profile")
    p.add_argument("--chips", type=int, default=None, help="chips available (default: the profile's, 1)")
    p.add_argument("--chunk", type=int, default=100, help="samples per Lava run (default 100)")
    p.add_argument("--out", default=None, help="output folder / file (default: beside the artifact)")
    p.add_argument("--no-write", action="store_true", help="do not write the /hardware group into the artifact")
    cli.add_progress(p)
    return p


def _brian2(args: argparse.Namespace) -> int:
    from neuro_agmm.artifact import read_artifact
    from neuro_agmm.data.inputs import load_inputs
    from neuro_agmm.deploy.crosscheck import crosscheck

    art = read_artifact(args.artifact)
    x, _ = load_inputs(art, int(args.samples), inputs_file=args.inputs, data_root=args.data_root)
    if x is None:
        raise cli.UserError("no inputs: pass --inputs FILE.npz or --samples N > 0")
    res = crosscheck(args.artifact, x, backends=("emulator", "brian2"), brian2_target=args.target)
    dest = Path(args.out) if args.out else Path(args.artifact).with_suffix(".brian2_check.json")
    if dest.suffix != ".json":
        dest = dest / "brian2_check.json"
    res.write_json(dest)
    print(res.summary())
    print(f"wrote {dest}")
    return 0 if res.total_mismatches == 0 else 1


def _netx(args: argparse.Namespace) -> int:
    """Quantize for lava-dl's netx rules, write, verify against them, report the float agreement."""
    from hw_models.mapping.netx import export_netx
    from hw_models.mapping.netx_quantizer import quantize_for_netx
    from neuro_agmm.artifact import read_artifact
    from neuro_agmm.data.inputs import InputsError, load_inputs
    from neuro_agmm.deploy.fidelity import fill_agreement

    art = read_artifact(args.artifact)
    net, report = quantize_for_netx(art)
    dest = Path(args.out) if args.out else Path(args.artifact).with_suffix(".netx.h5")
    ex = export_netx(net, dest)  # raises NetxRuleError (exit 2) unless lava-dl loads exactly this network
    explicit = args.samples is not None or args.inputs is not None
    try:
        x, y = load_inputs(art, 100 if args.samples is None else int(args.samples), inputs_file=args.inputs,
                           data_root=args.data_root)
    except InputsError as e:
        if explicit:
            raise
        x, y = None, None
        print(f"note: float-vs-integer agreement not measured ({e}); pass --inputs FILE.npz")
    if x is not None:
        fill_agreement(report, art, net, x, y)
    print(report.summary())
    print(f"wrote netx HDF5 {dest} ({ex.n_layers} layers, one threshold per layer, checked against lava-dl "
          f"0.6.0's reading rules: it loads exactly this integer network)")
    if ex.input_message_bits:
        print(f"load it with lava.lib.dl.netx.hdf5.Network('{dest}', input_message_bits={ex.input_message_bits}) "
              f"(the input is graded, up to {net.input_max}); the default 0 would binarise it")
    return 0


def _job(args: argparse.Namespace) -> int:
    from hw_models.backends.lava.runner import LavaRunError
    from neuro_agmm.artifact import read_artifact

    if args.to == "netx":
        return _netx(args)
    if args.samples is None:
        args.samples = 10 if args.to == "brian2" else 100
    try:
        if args.to == "brian2":
            return _brian2(args)
        if args.to == "nir":
            from neuro_agmm.deploy.nir import export_nir

            art = read_artifact(args.artifact)
            dest = Path(args.out) if args.out else Path(args.artifact).with_suffix(".nir")
            export_nir(art, dest)
            print(f"wrote NIR graph {dest} ({len(art.layers)} layers)")
            return 0
        from neuro_agmm.deploy.mapping import map_to_lava

        result = map_to_lava(args.artifact, args.samples, inputs_file=args.inputs, chip=args.core,
                             max_chips=args.chips, timeout=args.timeout, chunk=args.chunk, out_dir=args.out,
                             write_hardware=not args.no_write, data_root=args.data_root,
                             progress=cli.progress_wanted(args.progress))
        print(result.summary())
        return 0
    except LavaRunError as e:  # the run failed or hung: reported in one line, but it is not the user's mistake
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
