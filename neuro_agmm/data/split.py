"""``DatasetSplit``: the plain-array form every dataset is handed to training and evaluation in.

Inputs are integer graded spikes per time step (see ``neuro_agmm.artifact``), so the
same arrays feed the float model (times ``input_scale``) and the integer hardware
network (as they are). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class DatasetSplit:
    """Train/test arrays. ``*_x``: (N, T, *input_shape) non-negative integers; ``*_y``: (N,) int64 labels."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int
    input_scale: float  # float units per integer input level
    input_max: int  # largest integer input level that can occur
    encoding: str  # "direct", "rate", "events"
    meta: dict = field(default_factory=dict)
    val_x: Optional[np.ndarray] = None  # a validation split, where the dataset defines one (mnist5k)
    val_y: Optional[np.ndarray] = None

    @property
    def time_steps(self) -> int:
        return int(self.train_x.shape[1])

    def check(self) -> None:
        """Raise ``ValueError`` if shapes, dtypes or value ranges break the contract above."""
        parts = [("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)]
        if self.val_x is not None:
            parts.append(("val", self.val_x, self.val_y))
        for part, x, y in parts:
            if x.ndim != 2 + len(self.input_shape) or tuple(x.shape[2:]) != tuple(self.input_shape):
                raise ValueError(f"{self.name}/{part}: x shape {x.shape} != (N, T, *{self.input_shape})")
            if not np.issubdtype(x.dtype, np.integer):
                raise ValueError(f"{self.name}/{part}: x must be integers, got {x.dtype}")
            if x.size and (x.min() < 0 or x.max() > self.input_max):
                raise ValueError(f"{self.name}/{part}: x outside [0, {self.input_max}]")
            if y.shape != (x.shape[0],):
                raise ValueError(f"{self.name}/{part}: y shape {y.shape} != ({x.shape[0]},)")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"{self.name}/{part}: labels outside [0, {self.n_classes})")


def stratified_pick(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``per_class`` random samples of every class in ``y`` (fewer where a class has fewer)."""
    picks = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picks)) if picks else np.zeros(0, dtype=np.int64)


def with_validation(split: DatasetSplit, fraction: float = 0.15, seed: int = 12345) -> DatasetSplit:
    """``split`` with a fixed, stratified validation part carved out of its training part (if it has none).

    Why: every choice (variant, learning rate) is made on validation data, never on the test set; the
    test part stays as it is, so test numbers remain comparable with runs that had no validation split.
    """
    if split.val_x is not None:
        return split
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    per_class = max(1, int(round(fraction * len(split.train_y) / max(1, len(np.unique(split.train_y))))))
    val = stratified_pick(split.train_y, per_class, np.random.default_rng(seed))
    train = np.setdiff1d(np.arange(len(split.train_y)), val)
    meta = dict(split.meta, validation={"from": "train", "seed": seed, "per_class": per_class,
                                        "sizes": {"train": int(train.size), "val": int(val.size)}})
    out = DatasetSplit(name=split.name, train_x=split.train_x[train], train_y=split.train_y[train],
                       test_x=split.test_x, test_y=split.test_y, input_shape=split.input_shape,
                       n_classes=split.n_classes, input_scale=split.input_scale, input_max=split.input_max,
                       encoding=split.encoding, meta=meta, val_x=split.train_x[val], val_y=split.train_y[val])
    out.check()
    return out
