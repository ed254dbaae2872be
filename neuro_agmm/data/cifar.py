"""CIFAR-10 / CIFAR-100 from the original python pickle batches, as a ``DatasetSplit``.

Layout expected under the data root (``../shared/FORMATS.md``)::

    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch     (CIFAR-10)
    cifar-100-python/train, test                                     (CIFAR-100)

Each file is a pickled dict: ``data`` uint8 (N, 3072) = 1024 R, 1024 G, 1024 B, each 32x32
row-major; labels under ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). Files pickled
by Python 2 have ``bytes`` keys when loaded with ``encoding="bytes"``, ``str`` keys with
``"latin1"``; both are normalised to ``str``. Images become integer levels 0..255
(``input_scale = 1/255``) with ``direct`` encoding (the same frame at every step, a read-only
broadcast view). Left out: the binary (``.bin``) version, augmentation, normalisation by
channel means (a first int8/float layer with bias absorbs it). No torch here.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from neuro_agmm.data.digits import encode_levels
from neuro_agmm.data.split import DatasetSplit

LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}


class CifarFormatError(ValueError):
    """A CIFAR file is missing or is not a CIFAR python pickle batch."""


def _expected(name: str) -> str:
    folder, train, test, _, _ = LAYOUTS[name]
    return f"{folder}/{{{', '.join(train + test)}}}"


# What a CIFAR batch pickle may refer to: NumPy's array reconstruction (the 'data' array) and, in protocol-2
# pickles written by Python 3, ``_codecs.encode`` (how they spell a bytes object); nothing else. The
# containers (dict, list, str, bytes, int) need no globals at all.
ALLOWED_GLOBALS = {("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                   ("numpy._core.multiarray", "scalar")}


class _CifarUnpickler(pickle._Unpickler):
    """Unpickles only the documented CIFAR containers: a pickle that names any other global (a class or
    function it would call) is refused before anything is called. Built on the pure-Python unpickler,
    whose memo is a dict: the C one sizes its memo array by the largest index a ``LONG_BINPUT`` names, so
    one corrupt index (e.g. 941,472,508) allocates gigabytes and stalls the reader."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise CifarFormatError(f"the pickle refers to {module}.{name}, which a CIFAR batch never does "
                                   f"(refused: unpickling it could run code)")
        return super().find_class(module, name)


def read_batch(path: str | Path, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Read one pickle batch: ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``, with a restricted unpickler."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except CifarFormatError as e:
        raise CifarFormatError(f"{path}: {e}") from None
    except Exception as e:  # truncated / not a pickle
        raise CifarFormatError(f"{path}: not a CIFAR python pickle batch ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict):
        raise CifarFormatError(f"{path}: expected a pickled dict, found {type(raw).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}
    for key in ("data", label_key):
        if key not in d:
            raise CifarFormatError(f"{path}: missing key {key!r} (keys: {sorted(d)})")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise CifarFormatError(f"{path}: 'data' must be uint8 (N, 3072), found {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise CifarFormatError(f"{path}: {label_key!r} has {labels.shape[0] if labels.ndim else 0} entries "
                               f"for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32), labels


def _find_folder(root: Path, folder: str) -> Path:
    """``root`` itself when it is the batch folder, else ``root / folder``."""
    return root if root.name == folder else root / folder


def load_cifar_split(name: str = "cifar10", root: str | Path = "datasets", time_steps: int = 4,
                     encoding: str = "direct", seed: int = 0) -> DatasetSplit:
    """CIFAR-10/100 under ``root`` (or ``root`` is the batch folder itself); see module docstring."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown CIFAR variant {name!r}; choose cifar10 or cifar100")
    if encoding != "direct":
        raise ValueError(f"{name}: only 'direct' encoding is supported, got {encoding!r}")
    folder, train_files, test_files, label_key, n_classes = LAYOUTS[name]
    base = _find_folder(Path(root), folder)
    parts = {}
    for part, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for fn in files:
            p = base / fn
            if not p.is_file():
                raise CifarFormatError(f"{name}: missing {p}; expected the python-pickle layout "
                                       f"{_expected(name)} under {root}")
            x, y = read_batch(p, label_key)
            xs.append(x)
            ys.append(y)
        parts[part] = (np.concatenate(xs), np.concatenate(ys))
    if parts["train"][1].max(initial=0) >= n_classes or parts["test"][1].max(initial=0) >= n_classes:
        raise CifarFormatError(f"{name}: labels outside [0, {n_classes})")
    rng = np.random.default_rng(seed)
    tr, scale, vmax = encode_levels(parts["train"][0], time_steps, encoding, 255, rng)
    te, _, _ = encode_levels(parts["test"][0], time_steps, encoding, 255, rng)
    split = DatasetSplit(name=name, train_x=tr, train_y=parts["train"][1], test_x=te, test_y=parts["test"][1],
                         input_shape=(3, 32, 32), n_classes=n_classes, input_scale=scale, input_max=vmax,
                         encoding=encoding, meta={"root": str(base)})
    return split
