"""``python -m neuro_agmm.export RUN_DIR OUT.h5``: a training checkpoint -> the model artifact.

A thin CLI over ``neuro_agmm.training.export.export_checkpoint``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from neuro_agmm import cli


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("export", "Export a training checkpoint to a model artifact (HDF5, packed sign bits).",
                   ["python -m neuro_agmm.export runs/digits-mlp-agmm-s0 model.h5",
                    "python -m neuro_agmm.export runs/digits-mlp-agmm-s0/checkpoint.pt model.h5"])
    p.add_argument("checkpoint", help="run directory or checkpoint.pt written by neuro_agmm.train")
    p.add_argument("out", help="output artifact path (.h5)")
    return p


def _job(args: argparse.Namespace) -> int:
    from neuro_agmm.training.export import export_checkpoint, weight_storage

    art = export_checkpoint(args.checkpoint, args.out)
    ws = weight_storage(art)
    print(f"wrote {args.out}: {len(art.layers)} layers, weights {ws['weight_bytes']} B "
          f"({ws['ratio']:.4f} of float32; binary layers {ws['binary_ratio']:.4f})")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
