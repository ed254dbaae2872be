"""``python -m neuro_agmm.study``: the AGMM study in one command (see ``neuro_agmm.study``)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Optional

from neuro_agmm import cli
from neuro_agmm.artifact import atomic_write
from neuro_agmm.study.arms import BUDGETS

DATASETS = ("digits", "mnist5k", "digits-dvs")


def build_parser() -> argparse.ArgumentParser:
    from neuro_agmm.data import DATASETS as ALL

    p = cli.parser("study", "The AGMM study: validation-driven selection, every arm on fresh test seeds with paired "
                            "t-test and Wilcoxon p-values, vanilla's step-size frontier, per-weight gradient "
                            "statistics, the identical-weights probe, and a verdict per claim. Writes study.json, "
                            "study.md and the figures into --out.",
                   ["python -m neuro_agmm.study --budget quick --out runs/study-quick",
                    "python -m neuro_agmm.study --budget full --out runs/study --doc docs/results.md",
                    "python -m neuro_agmm.study --report-only --out runs/study --doc docs/results.md"])
    p.add_argument("--budget", choices=sorted(BUDGETS), default="quick",
                   help="quick: ~10 min on 2 CPU cores (1 selection seed, 3 test seeds); full: ~45 min (2 selection, "
                        "10 test seeds) (default quick)")
    p.add_argument("--datasets", nargs="+", choices=ALL, default=list(DATASETS), metavar="NAME",
                   help=f"datasets (default: {' '.join(DATASETS)})")
    p.add_argument("--out", default="runs/study", help="folder for runs, study.json, study.md, figures")
    p.add_argument("--workers", type=int, default=2, help="parallel training processes (one torch thread each)")
    cli.add_data_root(p)
    p.add_argument("--doc", default=None, help="also write the report (and its figures beside it) to this file")
    p.add_argument("--report-only", action="store_true", help="re-render the report from OUT/study.json")
    p.add_argument("--notes", metavar="FILE.md", help="markdown placed after the report's header (a reading of it)")
    return p


def job(a: argparse.Namespace) -> int:
    from neuro_agmm.study.protocol import run_study
    from neuro_agmm.study.report import render

    out = Path(a.out)
    command = "python -m neuro_agmm.study " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    if a.report_only:
        path = out / "study.json"
        if not path.exists():
            raise cli.UserError(f"{path}: no study here (run without --report-only first)")
        study = json.loads(path.read_text())
    else:
        if a.workers < 1:
            raise cli.UserError("--workers must be >= 1")
        study = run_study(list(a.datasets), a.budget, out, workers=a.workers, data_root=a.data_root)
    notes = Path(a.notes).read_text() if a.notes else None
    targets = [(out / "study.md", out)]
    if a.doc:
        doc = Path(a.doc)
        targets.append((doc, doc.parent))
    for path, fig_dir in targets:
        prefix = "" if path.parent == out else "study_"
        text, verdicts = render(study, fig_dir, command, fig_prefix=prefix, notes=notes)
        atomic_write(path, lambda p, t=text: p.write_text(t))
        print(f"wrote {path}", file=sys.stderr)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
