"""Training batches: in process (the default, byte-identical to every recorded run) or from a torch
``DataLoader`` with worker processes and pinned memory, with optional augmentation.

Why: file-backed datasets (CIFAR, event recordings binned to frames) are large enough that building
batches in the training process stalls a GPU. The loader serves *the same batches in the same order*
(the trainer's seeded permutation, cut into batches) — workers change where a batch is built, never
which samples it holds — so results do not depend on ``--loader-workers``.

Augmentation (``--augment crop-flip``, for image-shaped inputs ``(C, H, W)``: CIFAR frames and event
frames alike): each sample is zero-padded by ``pad = max(1, H // 8)`` pixels (4 for 32×32), randomly
cropped back to ``H × W`` and flipped left-right with probability ½, the same crop and flip at every
time step. The randomness comes from ``numpy.random.default_rng([seed, epoch, batch, AUG_STREAM])``,
so an augmented run is as reproducible as a plain one, with or without workers.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

AUGMENTS = ("none", "crop-flip")
AUG_STREAM = 0xA6


def to_float(x_int: np.ndarray, scale: float) -> torch.Tensor:
    """Integer samples (B, T, ...) -> float ``(T, B, ...)`` times ``scale``."""
    x = torch.from_numpy(np.array(x_int, dtype=np.float32, order="C")) * scale  # a writable copy (memmaps are not)
    return x.transpose(0, 1)


def crop_flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random pad-and-crop plus horizontal flip of integer samples ``(B, T, C, H, W)`` (see module docstring)."""
    if x.ndim != 5:
        raise ValueError(f"crop-flip augmentation needs image-shaped samples (B, T, C, H, W), got {x.shape}")
    b, _, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, b)
    dx = rng.integers(0, 2 * pad + 1, b)
    flip = rng.random(b) < 0.5
    out = np.empty_like(x)
    for i in range(b):
        crop = padded[i, :, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[..., ::-1] if flip[i] else crop
    return out


def seeded_batches(pool: np.ndarray | int, key: list[int], n_batches: int, batch_size: int) -> list[np.ndarray]:
    """Index arrays of the first ``n_batches`` batches of ``pool`` (indices, or ``range(pool)``) shuffled by
    ``numpy.random.default_rng(key)``: a fixed sample of training batches outside the epoch's own order."""
    order = np.random.default_rng(key).permutation(pool)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)]


class EpochBatches(torch.utils.data.Dataset):
    """Batch ``i`` of one epoch: ``(x (T, B, ...), y (B,))`` for the indices ``order[i*bs:(i+1)*bs]``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int, steps: int, scale: float,
                 augment: str = "none", seed: int = 0, epoch: int = 0) -> None:
        if augment not in AUGMENTS:
            raise ValueError(f"augment={augment!r} is not one of {', '.join(AUGMENTS)}")
        self.x, self.y, self.order, self.bs, self.steps = x, y, order, batch_size, steps
        self.scale, self.augment, self.seed, self.epoch = scale, augment, seed, epoch

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.order[i * self.bs:(i + 1) * self.bs]
        xb = self.x[idx]
        if self.augment == "crop-flip":
            xb = crop_flip(xb, np.random.default_rng([self.seed, self.epoch, i, AUG_STREAM]))
        return to_float(xb, self.scale), torch.as_tensor(self.y[idx])


def iterate(batches: EpochBatches, start: int = 0, workers: int = 0, pin_memory: bool = False
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches ``start .. len-1`` in order; built here (``workers == 0``) or by ``workers`` loader processes."""
    if workers <= 0:
        for i in range(start, len(batches)):
            yield batches[i]
        return
    part = torch.utils.data.Subset(batches, range(start, len(batches)))
    loader = torch.utils.data.DataLoader(part, batch_size=None, shuffle=False, num_workers=workers,
                                         pin_memory=pin_memory, prefetch_factor=2)
    yield from loader
