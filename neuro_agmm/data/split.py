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
