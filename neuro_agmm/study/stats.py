"""Paired statistics over seeds and the verdict rule of the study.

Why paired: every arm trains on the same seeds (same initial weights, same data order), so the
per-seed difference removes most of the seed-to-seed spread. Two tests are reported: the paired
t-test (assumes roughly normal differences) and the Wilcoxon signed-rank test (does not; with n
seeds it cannot go below ``2 / 2^n``, i.e. 0.0625 for 5 seeds and 0.002 for 10).

Verdict for a claim "A is lower (or higher) than B": *reproduced* when the mean difference has the
claimed sign and both p-values are below ``ALPHA``; *refuted* when it has the opposite sign and both
are below ``ALPHA``; otherwise *not reproduced* (no significant difference either way).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05


@dataclass
class Paired:
    """``a − b`` over ``n`` paired seeds."""

    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean of a − b
    diff_sd: float
    p_t: float  # paired t-test, two-sided
    p_wilcoxon: float  # Wilcoxon signed-rank, two-sided (zero differences dropped)
    a_lower: int  # seeds where a < b
    a_higher: int
    ties: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Paired comparison of per-seed values ``a`` and ``b`` (same seed order). NaN pairs are dropped."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired: {x.shape} vs {y.shape} values")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    d = x - y
    n = int(d.size)
    if n == 0:
        nan = float("nan")
        return Paired(0, nan, nan, nan, nan, nan, nan, 0, 0, 0)
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    if n < 2:
        p_t = float("nan")
    elif sd == 0.0:
        p_t = 1.0 if d.mean() == 0 else 0.0
    else:
        with warnings.catch_warnings():  # near-identical differences: scipy warns, the p-value is still right
            warnings.simplefilter("ignore", RuntimeWarning)
            p_t = float(stats.ttest_rel(x, y).pvalue)
    nz = d[d != 0]
    p_w = float(stats.wilcoxon(nz).pvalue) if nz.size else 1.0
    return Paired(n=n, mean_a=float(x.mean()), mean_b=float(y.mean()), diff=float(d.mean()), diff_sd=sd, p_t=p_t,
                  p_wilcoxon=p_w, a_lower=int((d < 0).sum()), a_higher=int((d > 0).sum()), ties=int((d == 0).sum()))


def verdict(p: Paired, claim: str, alpha: float = ALPHA) -> str:
    """``"reproduced" | "refuted" | "not reproduced"`` for the claim that a is ``claim`` ("lower"/"higher") than b."""
    if claim not in ("lower", "higher"):
        raise ValueError(f"claim must be 'lower' or 'higher', got {claim!r}")
    if p.n == 0 or not math.isfinite(p.diff):
        return "not reproduced"
    significant = p.p_t < alpha and p.p_wilcoxon < alpha
    if not significant or p.diff == 0:
        return "not reproduced"
    claimed = (p.diff < 0) if claim == "lower" else (p.diff > 0)
    return "reproduced" if claimed else "refuted"


def one_sample(d: Sequence[float]) -> Paired:
    """``d`` against 0 (e.g. per-seed margins above a frontier)."""
    d = np.asarray(d, dtype=np.float64)
    return paired(d, np.zeros_like(d))
