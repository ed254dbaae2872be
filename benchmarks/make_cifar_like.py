"""Write a synthetic dataset in the CIFAR-10 python-pickle format, at the real size (issue 13).

Why: CIFAR cannot be downloaded here, but throughput, memory and the data pipeline must be measured on
files of the real size and format: ``data_batch_1..5`` (10,000 images each) and ``test_batch``, each a
pickled dict with ``b"data"`` uint8 (N, 3072) (1024 R, 1024 G, 1024 B, row-major 32×32), ``b"labels"``,
``b"batch_label"`` and ``b"filenames"``, protocol 2 with bytes keys as the originals load under Python 3.
Images are class-dependent colour gradients plus noise, so a network can learn them (accuracy above
chance shows the pipeline works), not natural images.

Usage::

    .venv/bin/python benchmarks/make_cifar_like.py --root /tmp/cifar            # 50,000 + 10,000 images
    .venv/bin/python benchmarks/make_cifar_like.py --root /tmp/c --n-train 2000 --n-test 500
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neuro_agmm.artifact import atomic_write  # noqa: E402

FOLDER = "cifar-10-batches-py"


def images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 (n, 3072), labels (n,))``: per class a colour and a gradient direction, plus noise."""
    labels = rng.integers(0, 10, n)
    yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
    colours = np.random.default_rng(1234).uniform(40, 215, (10, 3))
    angles = np.linspace(0, np.pi, 10, endpoint=False)
    out = np.empty((n, 3, 32, 32), np.float32)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        ramp = np.cos(angles[c]) * xx + np.sin(angles[c]) * yy
        base = colours[c][:, None, None] + 60 * (ramp - 0.5)
        out[idx] = base[None] + rng.normal(0, 35, (idx.size, 3, 32, 32))
    return np.clip(out, 0, 255).astype(np.uint8).reshape(n, 3072), labels.astype(np.int64)


def write_batch(path: Path, name: str, data: np.ndarray, labels: np.ndarray) -> None:
    d = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels], b"data": data,
         b"filenames": [f"synthetic_{i:05d}.png".encode() for i in range(len(labels))]}
    atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(d, protocol=2)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="data root; files go to ROOT/cifar-10-batches-py/")
    ap.add_argument("--n-train", type=int, default=50_000)
    ap.add_argument("--n-test", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.n_train < 5 or a.n_test < 1:
        ap.error("need at least 5 training images (5 batches) and 1 test image")
    out = Path(a.root) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    per = np.array_split(np.arange(a.n_train), 5)
    for i, part in enumerate(per, 1):
        data, labels = images(part.size, rng)
        write_batch(out / f"data_batch_{i}", f"training batch {i} of 5", data, labels)
    data, labels = images(a.n_test, rng)
    write_batch(out / "test_batch", "testing batch 1 of 1", data, labels)
    print(f"wrote {a.n_train} + {a.n_test} images to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
