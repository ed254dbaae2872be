"""``python -m neuro_agmm.convert GRAPH.nir --out model.h5``: bring a network trained elsewhere into our artifact.

A NIR graph (written by Norse, snnTorch or ``python -m neuro_agmm.map --to nir``) becomes a
``ModelArtifact`` by the rules of ``neuro_agmm.deploy.nir_import``; the artifact then maps onto
our cores with ``python -m neuro_agmm.map --to lava`` like one trained here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from neuro_agmm import cli


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("convert", "Convert a NIR graph (Norse, snnTorch, ...) into a neuro_agmm model artifact.",
                   ["python -m neuro_agmm.convert model.nir --out model.h5",
                    "python -m neuro_agmm.convert snntorch_net.nir --dt 1e-4 --time-steps 25 --input-max 1 "
                    "--dataset nmnist --out model.h5"])
    p.add_argument("graph", metavar="GRAPH", help="NIR file (HDF5) with a chain of Affine/Conv2d and LIF/IF nodes")
    p.add_argument("--out", required=True, help="artifact (.h5) to write")
    p.add_argument("--dt", type=float, default=None, help="time step in seconds (default: the graph's metadata 'dt')")
    p.add_argument("--time-steps", type=int, default=None, help="steps per sample (default: metadata 'time_steps')")
    p.add_argument("--input-max", type=int, default=None, help="largest integer input level (default: metadata or 1)")
    p.add_argument("--readout-leak", type=float, default=None,
                   help="leak of a readout given as a synapse alone (default: metadata 'readout_leak' or 1)")
    p.add_argument("--dataset", default=None, help="dataset the network expects (recorded for map/infer)")
    return p


def _job(args: argparse.Namespace) -> int:
    from neuro_agmm.artifact import write_artifact
    from neuro_agmm.deploy.nir_import import from_nir

    if not Path(args.graph).is_file():
        raise cli.UserError(f"no such NIR file: {args.graph}")
    art = from_nir(args.graph, time_steps=args.time_steps, dt=args.dt, input_max=args.input_max,
                   readout_leak=args.readout_leak)
    if args.dataset:
        art.provenance["dataset"] = args.dataset
    dest = write_artifact(art, args.out)
    worst = art.provenance["nir_import"]["max_weight_rounding"]
    for l in art.layers:
        print(f"{l.name}: {l.kind} {tuple(l.in_shape)} -> {tuple(l.out_shape)} {l.precision} leak {l.leak:.6g} "
              f"{'spiking' if l.spiking else 'readout'}")
    print(f"wrote {dest} ({len(art.layers)} layers, T = {art.time_steps}; largest weight rounding "
          f"{100 * worst:.3g} % of a row's peak)")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
