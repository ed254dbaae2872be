"""``python -m neuro_agmm.plots RUN_DIR [RUN_DIR ...] --out FIG.png``: training curves on shared axes.

A thin CLI over ``neuro_agmm.training.curves`` (reads each run's ``metrics.json``; no torch needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from neuro_agmm import cli


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("plots", "Plot training curves (loss, accuracy, flip ratio, gradient mean and variance, firing "
                            "rate) of run directories, grouped by method, mean ± std over runs of a group.",
                   ["python -m neuro_agmm.plots runs/agmm_vs_vanilla/* --out curves.png",
                    "python -m neuro_agmm.plots runs/a runs/b --label-by dir --title 'lr sweep' --out lr.png"])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by neuro_agmm.train")
    p.add_argument("--out", required=True, metavar="FIG.png")
    p.add_argument("--title", default="")
    p.add_argument("--label-by", choices=("method", "dir"), default="method",
                   help="group runs by config.json's method (default) or by directory name")
    return p


def _job(args: argparse.Namespace) -> int:
    from neuro_agmm.training.curves import load_run, plot_runs

    runs = [load_run(d, label=Path(d).name if args.label_by == "dir" else None) for d in args.runs]
    path = plot_runs(runs, args.out, args.title)
    print(f"wrote {path} ({len(runs)} runs in {len({r.label for r in runs})} groups)")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv, extra_user_errors=(json.JSONDecodeError,))


if __name__ == "__main__":
    sys.exit(main())
