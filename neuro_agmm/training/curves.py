"""Training curves of several runs on shared axes: ``python -m neuro_agmm.plots RUN_DIR [RUN_DIR ...] --out FIG.png``.

Why: AGMM's claims (fewer sign flips, smaller gradient mean/variance, faster convergence,
lower firing rates) are judged by comparing curves of AGMM, vanilla and full-precision runs
side by side. Runs are grouped by their method (``config.json``'s ``method``, or the run
directory's name) and every group is drawn as the mean over its runs with a ±1 std band,
one panel per measure: training loss, test accuracy, flip ratio per update, mean |gradient|,
gradient variance, firing rate. A panel whose metric no run has (e.g. flips of an fp run)
simply lacks that curve.

Reads the per-epoch ``metrics.json`` (or ``metrics.csv``) that ``neuro_agmm.train`` writes.
Uses matplotlib's Agg backend (no display needed). Leaves out: per-layer panels, per-step data.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

PANELS: tuple[tuple[str, str, bool], ...] = (
    ("train_loss", "training loss", False),
    ("test_acc", "test accuracy", False),
    ("flip/mean", "sign-flip ratio per update", True),
    ("grad_absmean/mean", "mean |latent-weight gradient|", True),
    ("grad_var/mean", "latent-weight gradient variance", True),
    ("rate/mean", "firing rate (train)", False),
)


@dataclass
class Run:
    """One run: its directory, group label and per-epoch metrics."""

    path: Path
    label: str
    metrics: list[dict]


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(run_dir: str | Path) -> list[dict]:
    """Per-epoch metric dicts of a run directory (``metrics.json``, else ``metrics.csv``)."""
    d = Path(run_dir)
    if (d / "metrics.json").is_file():
        data = json.loads((d / "metrics.json").read_text())
        if isinstance(data, dict):  # {"epochs": [...]} tolerated
            data = data.get("epochs", [])
        return [{k: _num(v) for k, v in m.items()} for m in data]
    if (d / "metrics.csv").is_file():
        with open(d / "metrics.csv", newline="") as f:
            return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
    raise FileNotFoundError(f"{d}: no metrics.json or metrics.csv (not a neuro_agmm.train run directory?)")


def load_run(run_dir: str | Path, label: Optional[str] = None) -> Run:
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: no such run directory")
    if label is None:
        label = d.name
        cfg = d / "config.json"
        if cfg.is_file():
            try:
                label = str(json.loads(cfg.read_text()).get("method", label))
            except json.JSONDecodeError:
                pass
    return Run(d, label, read_metrics(d))


def mean_std_curves(runs: Sequence[Run], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(epochs, mean, std)`` of ``key`` over ``runs`` (epochs where at least one run has a finite value)."""
    n = max((len(r.metrics) for r in runs), default=0)
    vals = np.full((len(runs), n), np.nan)
    for i, r in enumerate(runs):
        for j, m in enumerate(r.metrics):
            vals[i, j] = _num(m.get(key))
    ok = np.isfinite(vals).any(axis=0)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            mean, std = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
    ep = np.arange(1, n + 1)
    return ep[ok], mean[ok], std[ok]


def plot_runs(runs: Sequence[Run], out: str | Path, title: str = "") -> Path:
    """Draw the panels for ``runs`` grouped by label; write a PNG atomically. Returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuro_agmm.artifact import atomic_write

    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.label, []).append(r)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    colors = {"fp": "tab:gray", "vanilla": "tab:blue", "agmm": "tab:red"}
    for ax, (key, name, logy) in zip(axes.ravel(), PANELS):
        drawn = False
        lows = []
        for i, (label, rs) in enumerate(groups.items()):
            ep, mu, sd = mean_std_curves(rs, key)
            if not len(ep):
                continue
            if len(mu) > 3:
                lows.append(float(np.nanmin(mu[2:] - sd[2:])))
            c = colors.get(label, f"C{i + 3}")
            ax.plot(ep, mu, color=c, label=f"{label} (n={len(rs)})")
            ax.fill_between(ep, mu - sd, mu + sd, color=c, alpha=0.2, linewidth=0)
            drawn = True
        if key == "test_acc" and lows:  # zoom past the first epochs, where the methods differ little
            ax.set_ylim(max(0.0, min(lows) - 0.02), None)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        if logy and drawn:
            ax.set_yscale("log")
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no '{key}' in these runs", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(out, write)
    plt.close(fig)
    return out
