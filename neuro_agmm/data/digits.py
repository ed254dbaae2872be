"""The scikit-learn 8x8 ``digits`` set as a ``DatasetSplit``: the one real dataset available offline.

1797 images of 8x8 pixels with integer levels 0..16 (10 classes). The train/test split is
fixed (stratified, 1437/360, ``SPLIT_SEED``) so every run and every backend sees the same test
set; the run seed only drives the spike encoding. Encodings, per time step:

* ``direct``: the pixel levels themselves (graded spikes 0..16, ``input_scale = 1/16``), the
  same at every step (a read-only broadcast view, no copies);
* ``rate``: 0/1 Bernoulli spikes with probability ``level / 16``, drawn with the seed
  (``input_scale = 1``).

Input shape is ``(1, 8, 8)`` (C, H, W) so both dense and conv models take it. No torch here.
"""

from __future__ import annotations

import numpy as np

from neuro_agmm.data.split import DatasetSplit

SPLIT_SEED = 0
N_TEST = 360
LEVELS = 16
ENCODINGS = ("direct", "rate")


def encode_levels(levels: np.ndarray, time_steps: int, encoding: str, max_level: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, float, int]:
    """Encode integer images ``(N, *shape)`` in ``[0, max_level]`` into ``(N, T, *shape)`` graded spikes.

    Returns ``(x, input_scale, input_max)``; ``direct`` returns a read-only broadcast view.
    """
    if time_steps < 1:
        raise ValueError(f"time_steps must be >= 1, got {time_steps}")
    levels = np.asarray(levels)
    shape = (levels.shape[0], time_steps) + levels.shape[1:]
    if encoding == "direct":
        return np.broadcast_to(levels[:, None], shape), 1.0 / max_level, int(max_level)
    if encoding == "rate":
        p = levels.astype(np.float32)[:, None] / max_level
        return (rng.random(shape, dtype=np.float32) < p).astype(np.uint8), 1.0, 1
    raise ValueError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")


def load_digits_split(time_steps: int = 4, encoding: str = "direct", seed: int = 0) -> DatasetSplit:
    """The fixed 1437/360 digits split, encoded over ``time_steps`` steps (see module docstring)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = d.images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), levels 0..16
    y = d.target.astype(np.int64)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=N_TEST, stratify=y, random_state=SPLIT_SEED)
    rng = np.random.default_rng(seed)
    tr, scale, vmax = encode_levels(images[idx_tr], time_steps, encoding, LEVELS, rng)
    te, _, _ = encode_levels(images[idx_te], time_steps, encoding, LEVELS, rng)
    split = DatasetSplit(name="digits", train_x=tr, train_y=y[idx_tr], test_x=te, test_y=y[idx_te],
                         input_shape=(1, 8, 8), n_classes=10, input_scale=scale, input_max=vmax, encoding=encoding,
                         meta={"split_seed": SPLIT_SEED, "encoding_seed": seed,
                               "source": "sklearn.datasets.load_digits"})
    split.check()
    return split
