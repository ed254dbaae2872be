"""The study's protocol: selection on validation seeds, then every arm on fresh test seeds, then the probe.

1. **Selection** (seeds ``SELECTION_SEED0 + i``, validation accuracy only): vanilla at the four latent
   step sizes (the best is *vanilla (tuned)*), the AGMM variants (the best is *AGMM (selected)*), and
   vanilla with SGD latent weights at each of ``SGD_LRS`` (the best rate is used for ``vanilla-sgd`` and
   ``agmm-sgd``).
2. **Test** (seeds ``0 .. test_seeds-1``): every arm at its chosen setting; the headline arms (vanilla,
   the default AGMM, and the tuned/selected pair) on ``headline_seeds`` seeds.
3. **Probe** on the weights of the vanilla test run with seed 0 (``probe.probe``).

Everything lands in ``study.json`` (one record per run, the choices, the probe), which ``report`` turns
into tables, verdicts and figures.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.study.arms import AGMM_VARIANTS, BUDGETS, FRONTIER_SCALES, SELECTION_SEED0, SGD_LRS, Budget, \
    arm_overrides, frontier_arm, sgd_arm
from neuro_agmm.study.runner import load_split, run_tasks

STUDY_BN_BATCHES = 8  # batch-norm recalibration batches the recorded study (docs/results.md) ran with

PROBE_MECHANISMS: dict[str, dict[str, Any]] = {
    "vanilla": {"method": "vanilla"},
    "vanilla@x0.5": {"method": "vanilla", "binary_lr_scale": 0.5},
    **{k: {"method": "agmm", **v} for k, v in AGMM_VARIANTS.items()},
}


def base_config(dataset: str, budget: Budget, data_root: str, **overrides: Any) -> dict[str, Any]:
    """The ``TrainConfig`` fields every arm of ``dataset`` shares."""
    from neuro_agmm.training.loop import TrainConfig

    cfg = asdict(TrainConfig(dataset=dataset, data_root=data_root, arch="mlp", epochs=budget.epochs_for(dataset),
                             batch_size=64, lr=1e-3, time_steps=4, threads=1, progress=False,
                             bn_recalibrate=STUDY_BN_BATCHES))
    cfg.update(overrides)
    return cfg


def make_task(base: dict, arm: str, seed: int, phase: str, runs: Path, sgd_lr: float | None = None) -> dict:
    cfg = {**base, **arm_overrides(arm, sgd_lr), "seed": seed,
           "out": str(runs / base["dataset"] / arm / f"s{seed}")}
    return {"dataset": base["dataset"], "arm": arm, "seed": seed, "phase": phase, "cfg": cfg}


def selection_arms() -> list[str]:
    return [frontier_arm(s) for s in FRONTIER_SCALES] + list(AGMM_VARIANTS) + [sgd_arm(lr) for lr in SGD_LRS]


def best(records: list[dict], arms: list[str], key: str = "val_acc") -> str:
    """The arm with the highest mean ``key`` (ties: the first listed)."""
    means = {a: float(np.mean([r[key] for r in records if r["arm"] == a])) for a in arms}
    return max(arms, key=lambda a: (means[a], -arms.index(a)))


def choose(records: list[dict]) -> dict[str, Any]:
    """The choices the selection phase makes, from validation accuracy only."""
    sgd = best(records, [sgd_arm(lr) for lr in SGD_LRS])
    return {"vanilla_tuned": best(records, [frontier_arm(s) for s in FRONTIER_SCALES]),
            "agmm_selected": best(records, list(AGMM_VARIANTS)),
            "sgd_arm": sgd, "sgd_lr": SGD_LRS[[sgd_arm(lr) for lr in SGD_LRS].index(sgd)]}


def test_tasks(base: dict, choices: dict, budget: Budget, runs: Path) -> list[dict]:
    arms = [frontier_arm(s) for s in FRONTIER_SCALES] + list(AGMM_VARIANTS) + [choices["sgd_arm"], "agmm-sgd", "fp"]
    headline = list(dict.fromkeys(["vanilla", "agmm", choices["vanilla_tuned"], choices["agmm_selected"]]))
    tasks = []
    for seed in range(max(budget.test_seeds, budget.headline_seeds)):
        for arm in arms:
            if seed < budget.test_seeds or arm in headline:
                tasks.append(make_task(base, arm, seed, "test", runs, choices["sgd_lr"]))
    return tasks


def run_study(datasets: list[str], budget_name: "str | Budget", out: Path, workers: int = 2, data_root: str = "datasets",
              log=sys.stderr, **overrides: Any) -> dict:
    """Run the whole protocol for ``datasets``; writes and returns ``out/study.json``'s content."""
    from neuro_agmm.study.probe import probe
    from neuro_agmm.training.checkpoint import load_checkpoint
    from neuro_agmm.training.loop import TrainConfig

    budget = budget_name if isinstance(budget_name, Budget) else BUDGETS[budget_name]
    runs = out / "runs"
    bases = {d: base_config(d, budget, data_root, **overrides) for d in datasets}
    sel_tasks = [make_task(bases[d], arm, SELECTION_SEED0 + i, "selection", runs)
                 for i in range(budget.selection_seeds) for d in datasets for arm in selection_arms()]
    print(f"study ({budget.name}): selection, {len(sel_tasks)} runs on {workers} workers", file=log, flush=True)
    sel = run_tasks(sel_tasks, workers, log)
    result: dict[str, Any] = {"budget": asdict(budget), "datasets": {}}
    tasks = []
    for d in datasets:
        recs = [r for r in sel if r["dataset"] == d]
        choices = choose(recs)
        print(f"{d}: chosen on validation: {choices}", file=log, flush=True)
        result["datasets"][d] = {"config": bases[d], "choices": choices, "selection": recs}
        tasks += test_tasks(bases[d], choices, budget, runs)
    print(f"study ({budget.name}): test, {len(tasks)} runs", file=log, flush=True)
    test = run_tasks(tasks, workers, log)
    for d in datasets:
        entry = result["datasets"][d]
        entry["test"] = [r for r in test if r["dataset"] == d]
        ref = next(r for r in entry["test"] if r["arm"] == "vanilla" and r["seed"] == 0)
        base = TrainConfig(**{**bases[d], "seed": 0})
        split = load_split(d, base.data_root, base.time_steps, base.encoding)
        entry["split_sizes"] = {"train": int(len(split.train_y)), "val": int(len(split.val_y)),
                                "test": int(len(split.test_y))}
        entry["probe"] = probe(load_checkpoint(Path(ref["run_dir"])), split, base, PROBE_MECHANISMS,
                               n_batches=budget.probe_batches)
        print(f"{d}: probe done on {ref['run_dir']}", file=log, flush=True)
    text = json.dumps(result, indent=1, sort_keys=True, default=float)
    atomic_write(out / "study.json", lambda p: p.write_text(text + "\n"))
    return result
