"""Train arms × seeds in parallel worker processes; one record of measurements per run.

Why workers: the study is a few hundred small CPU runs; one thread per run and one run per core is
the fastest way through them on a small machine, and runs stay deterministic (one torch thread,
seeded data order). A finished run directory (its ``summary.json`` holding the same config) is
reused, so an interrupted study continues where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

VALIDATION_FRACTION = 0.15  # carved out of the training part where a dataset has no validation split


@functools.lru_cache(maxsize=4)
def load_split(dataset: str, data_root: str, time_steps: int, encoding: str) -> Any:
    """The dataset with a validation split (``data.split.with_validation``), loaded once per worker."""
    from neuro_agmm.data import load_dataset
    from neuro_agmm.data.split import with_validation

    return with_validation(load_dataset(dataset, root=data_root, time_steps=time_steps, encoding=encoding, seed=0),
                           VALIDATION_FRACTION)


def _nanmean(values: Iterable[float]) -> float:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def record(metrics: list[dict], summary: dict) -> dict[str, Any]:
    """The study's measurements of one finished run (see ``neuro_agmm.training.instrumentation``)."""
    last = metrics[-1]

    def curve(key: str) -> list[float]:
        return [float(m.get(key, float("nan"))) for m in metrics]

    rates = [v for k, v in last.items() if k.startswith("test_rate/")]
    rec: dict[str, Any] = {
        "test_acc": float(last["test_acc"]), "val_acc": float(last.get("val_acc", float("nan"))),
        "deployed_acc": summary.get("artifact_test_acc"), "val_curve": curve("val_acc"),
        "flip_curve": curve("flip/mean"), "flip_epoch_curve": curve("flip_epoch/mean"),
        "test_rate": float(np.mean(rates)) if rates else float("nan"),
        "synops": float(sum(syn)) if (syn := [v for k, v in last.items() if k.startswith("synops/")]) else float("nan"),
        "samples_per_s": float(np.median(curve("samples_per_s"))), "seconds": float(sum(curve("seconds"))),
        "forward_gate": summary.get("forward_gate"),
        "layers": {k: float(v) for k, v in last.items() if k.split("/")[0] in
                   ("flip", "flip_epoch", "gtoward", "gvar", "gsnr", "pw0", "dw", "rate", "synops")},
    }
    for key in ("flip", "gtoward", "gmean_abs", "gvar", "gsnr", "pw0", "dw", "flip_pred"):
        rec[key if key != "flip" else "flips"] = _nanmean(curve(f"{key}/mean"))
    rec["curves"] = {k: curve(f"{k}/mean") for k in ("flip_epoch", "pw0", "dw", "gtoward", "gvar", "gsnr", "rate")}
    rec["val_auc"] = _nanmean(rec["val_curve"])
    rec["train_auc"] = _nanmean(curve("train_acc"))  # training mode (batch statistics): no running-stat lag
    return rec


def _same_config(run_dir: Path, cfg: dict) -> bool:
    try:
        done = json.loads((run_dir / "summary.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    return json.dumps(done, sort_keys=True, default=str) == json.dumps(cfg, sort_keys=True, default=str)


def train_task(task: dict) -> dict:
    """Worker entry: train ``task["cfg"]`` (a ``TrainConfig`` dict) unless its run directory is already done."""
    from neuro_agmm.training.curves import read_metrics
    from neuro_agmm.training.loop import TrainConfig, train

    cfg = TrainConfig(**task["cfg"])
    run_dir = cfg.run_dir()
    cfg_dict = asdict(cfg)
    t0 = time.perf_counter()
    reused = _same_config(run_dir, cfg_dict)
    if not reused:
        if run_dir.exists():  # a run interrupted before its summary: start it again
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        split = load_split(cfg.dataset, cfg.data_root, cfg.time_steps, cfg.encoding)
        with open(run_dir / "train.log", "w") as log, contextlib.redirect_stderr(log):
            train(cfg, split=split)
    metrics = read_metrics(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    return {**{k: task[k] for k in ("dataset", "arm", "seed", "phase")}, "run_dir": str(run_dir), "reused": reused,
            "wall_s": time.perf_counter() - t0, **record(metrics, summary)}


def run_tasks(tasks: list[dict], workers: int, log=sys.stderr) -> list[dict]:
    """Run ``tasks`` (dicts with dataset, arm, seed, phase, cfg) on ``workers`` processes; records in task order."""
    if not tasks:
        return []
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results: list[Optional[dict]] = [None] * len(tasks)
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
        futures = {pool.submit(train_task, t): i for i, t in enumerate(tasks)}
        for n, fut in enumerate(as_completed(futures), 1):
            i = futures[fut]
            r = fut.result()
            results[i] = r
            took = "reused" if r["reused"] else f"{r['wall_s']:.0f}s"
            print(f"[{n}/{len(tasks)} {time.perf_counter() - t0:6.0f}s] {r['dataset']:<10} {r['phase']:<9} "
                  f"{r['arm']:<18} seed {r['seed']:<4} test {r['test_acc']:.4f} val {r['val_acc']:.4f} "
                  f"flips/update {r['flips']:.2e} rate {r['test_rate']:.3f} ({took})", file=log, flush=True)
    return [r for r in results if r is not None]
