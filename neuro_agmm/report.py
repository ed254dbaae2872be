"""``python -m neuro_agmm.report ARTIFACT --out DIR``: energy per inference, memory footprint, firing rates.

A thin CLI over ``neuro_agmm.deploy.energy_report.energy_report``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from neuro_agmm import cli


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("report", "Energy per inference of a trained artifact (per layer and per operation kind, "
                             "Loihi and 45 nm figures side by side), memory footprint and firing rates.",
                   ["python -m neuro_agmm.report runs/demo/digits-agmm/model.h5 --out runs/demo/energy",
                    "python -m neuro_agmm.report model.h5 --inputs x.npz --samples 50 --hops 2 --out out/"])
    cli.add_artifact(p)
    p.add_argument("--inputs", help="npz with x (N, T, *input_shape) integer levels and optional y (N,)")
    p.add_argument("--samples", type=int, default=100, help="samples (from --inputs or the dataset; default 100)")
    cli.add_data_root(p)
    p.add_argument("--hops", type=float, default=0.0, help="mean Loihi tile hops per spike (default 0)")
    p.add_argument("--out", required=True, help="output folder for energy.md, energy.json and PNGs")
    return p


def _job(args: argparse.Namespace) -> int:
    from neuro_agmm.artifact import read_artifact
    from neuro_agmm.data.inputs import load_inputs
    from neuro_agmm.deploy.energy import EnergyAssumptions
    from neuro_agmm.deploy.energy_report import energy_report

    x = y = None
    if args.inputs:
        x, y = load_inputs(read_artifact(args.artifact), args.samples, inputs_file=args.inputs)
    rep = energy_report(args.artifact, x, y, out_dir=args.out, samples=args.samples, data_root=args.data_root,
                        assumptions=EnergyAssumptions(loihi_hops_per_spike=args.hops))
    print(rep.energy.table())
    for k, p in rep.files.items():
        print(f"wrote {k}: {p}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
