"""Vanilla's step-size frontier and where a variant lies relative to it, seed by seed.

Why: halving only the latent weights' learning rate already cuts sign flips by ~40 % at equal
accuracy, so "fewer flips" alone says nothing about a method. The frontier is vanilla trained with
the latent weights' learning rate ×0.25, ×0.5, ×1, ×2 (same seeds); a variant *reduces flips* only
if it lies **above** it: at its own flip rate it has a higher accuracy than vanilla interpolated to
that flip rate (and, for firing rate, a lower rate).

Interpolation is linear in log(flips) between the frontier points of the same seed; outside the
frontier's flip range the nearest end point is used (flat), which for a variant with fewer flips
than vanilla ×0.25 asks it to match that point's accuracy. The per-seed margins are then tested
against 0 (``stats.one_sample``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def interpolate(frontier: Sequence[tuple[float, float]], flips: float) -> float:
    """The frontier's value at ``flips``: ``frontier`` is ``[(flips, value), ...]`` of one seed."""
    pts = sorted((float(f), float(v)) for f, v in frontier if f > 0 and math.isfinite(f) and math.isfinite(v))
    if not pts or not (flips > 0 and math.isfinite(flips)):
        return float("nan")
    xs = np.log([p[0] for p in pts])
    ys = np.asarray([p[1] for p in pts])
    return float(np.interp(math.log(flips), xs, ys))  # np.interp holds the end values outside the range


def margins(frontier_by_seed: dict[int, list[tuple[float, float]]], point_by_seed: dict[int, tuple[float, float]],
            higher_is_better: bool = True) -> dict[int, float]:
    """Per seed: the variant's value minus the frontier's at the variant's flips (sign so that > 0 is better)."""
    out = {}
    for seed, (flips, value) in point_by_seed.items():
        if seed not in frontier_by_seed:
            continue
        ref = interpolate(frontier_by_seed[seed], flips)
        if math.isfinite(ref):
            out[seed] = (value - ref) if higher_is_better else (ref - value)
    return out
