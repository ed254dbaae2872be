"""The main job: the whole pipeline on the embedded default data, in one command.

1. train an AGMM binary SNN (MLP) on scikit-learn's digits and write ``model.h5``;
2. quantize and place it on Loihi-style cores and run it bit-accurately in Lava;
3. cross-check emulator, Brian2 and Lava spike for spike, and report energy per inference;
4. train the same kind of network on the embedded DVS event dataset (digits-dvs) and run
   event-driven streaming inference on its test recordings.

Everything lands in ``--out`` (default ``runs/demo``) and ``summary.md`` there collects
the numbers. ``scripts/demo.sh`` sets up the environment and runs this.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional

from neuro_agmm import cli
from neuro_agmm.artifact import atomic_write, read_artifact


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def run_demo(out: Path, epochs: int = 40, lava_samples: int = 360, crosscheck_samples: int = 20,
             energy_samples: int = 360, dvs_epochs: int = 15, progress: bool = True) -> dict:
    """Run the four stages; return a dict of the headline numbers (also written to ``summary.json``)."""
    from neuro_agmm.deploy.crosscheck import crosscheck
    from neuro_agmm.streaming.run import infer
    from neuro_agmm.data.inputs import load_inputs
    from neuro_agmm.deploy.mapping import map_to_lava
    from neuro_agmm.deploy.energy_report import energy_report
    from neuro_agmm.training.loop import TrainConfig, train

    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    summary: dict = {}

    _section("1/4 train an AGMM binary SNN on digits (Norse LIF, ±1 hidden weights, 8-bit first/last)")
    cfg = TrainConfig(dataset="digits", arch="mlp", method="agmm", epochs=epochs, time_steps=4,
                      seed=0, out=str(out / "digits-agmm"), progress=progress)
    res = train(cfg)
    fin = res.final
    summary["digits_test_acc"] = fin.get("test_acc")
    summary["artifact"] = str(res.artifact_path)
    print(f"test accuracy {100 * fin.get('test_acc', float('nan')):.2f}% after {epochs} epochs; "
          f"artifact {res.artifact_path}")
    summary["weight_storage"] = res.summary["weight_storage"]

    _section(f"2/4 map to Loihi-style cores and run bit-accurately in Lava ({lava_samples} test samples)")
    mres = map_to_lava(res.artifact_path, n_samples=lava_samples, out_dir=out / "map", progress=progress)
    print(mres.summary())
    summary["lava"] = {k: getattr(mres, k) for k in ("float_accuracy", "integer_accuracy", "lava_accuracy",
                                                     "lava_mismatches", "n_cores", "n_chips", "time_per_step_ms")}

    _section(f"3/4 cross-check emulator / Brian2 / Lava spike for spike ({crosscheck_samples} samples) and energy")
    x, y = load_inputs(read_artifact(res.artifact_path), energy_samples, None, "datasets")
    cc = crosscheck(res.artifact_path, x[:crosscheck_samples])
    print(cc.summary())
    cc.write_json(out / "crosscheck.json")
    rep = energy_report(res.artifact_path, x, y, out_dir=out / "energy")
    print(rep.markdown())
    summary["crosscheck_mismatches"] = cc.total_mismatches
    summary["energy_pj_per_inference"] = {s.name: s.total_pj for s in rep.energy.scenarios}

    _section("4/4 event-driven inference on the embedded DVS dataset (digits-dvs)")
    dcfg = TrainConfig(dataset="digits-dvs", arch="mlp", method="agmm", epochs=dvs_epochs, time_steps=8,
                       seed=0, out=str(out / "digits-dvs-agmm"), progress=progress)
    dres = train(dcfg)
    print(f"digits-dvs test accuracy (float, dense frames) {100 * dres.final.get('test_acc', float('nan')):.2f}%")
    ires = infer(dres.artifact_path, dataset="digits-dvs", split="test", backend="emulator", progress=progress)
    print(ires.summary())
    ires.write_json(out / "infer-digits-dvs.json")
    summary["digits_dvs_test_acc"] = dres.final.get("test_acc")
    summary["streaming"] = ires.stats()

    summary["seconds"] = round(time.time() - t_start, 1)
    atomic_write(out / "summary.json",
                 lambda p: p.write_text(json.dumps(summary, indent=2, default=_jsonable)))
    _section(f"done in {summary['seconds']} s; numbers in {out / 'summary.json'}")
    return summary


def _jsonable(o):
    try:
        return o.item()
    except AttributeError:
        return str(o)


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser("demo", __doc__.split("\n\n")[0].strip(),
                   ["python -m neuro_agmm.demo", "python -m neuro_agmm.demo --out /tmp/demo --epochs 5 --lava-samples 20"])
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs on digits (default: 40)")
    p.add_argument("--dvs-epochs", type=int, default=15, help="training epochs on digits-dvs (default: 15)")
    p.add_argument("--lava-samples", type=int, default=360,
                   help="test samples run in Lava (default: 360, the whole digits test split)")
    p.add_argument("--crosscheck-samples", type=int, default=20,
                   help="samples compared spike for spike across backends (default: 20)")
    cli.add_progress(p)
    return p


def _job(args: argparse.Namespace) -> int:
    run_demo(Path(args.out), epochs=args.epochs, lava_samples=args.lava_samples,
             crosscheck_samples=args.crosscheck_samples, dvs_epochs=args.dvs_epochs,
             progress=cli.progress_wanted(args.progress))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    return cli.run(_job, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
