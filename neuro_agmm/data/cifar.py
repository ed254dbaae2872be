"""CIFAR-10 / CIFAR-100 from the original python pickle batches, as a ``DatasetSplit``.

Layout expected under the data root (``../shared/FORMATS.md``)::

    cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch     (CIFAR-10)
    cifar-100-python/train, test                                     (CIFAR-100)

Each file is a pickled dict: ``data`` uint8 (N, 3072) = 1024 R, 1024 G, 1024 B, each 32x32
row-major; labels under ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100). Files pickled
by Python 2 have ``bytes`` keys when loaded with ``encoding="bytes"``, ``str`` keys with
``"latin1"``; both are normalised to ``str``. Images become integer levels 0..255
(``input_scale = 1/255``) with ``direct`` encoding (the same frame at every step, a read-only
broadcast view). The decoded images are cached once beside the batches and memory-mapped
(``load_cifar_split(use_cache=True)``). Left out: the binary (``.bin``) version, augmentation, normalisation by
channel means (a first int8/float layer with bias absorbs it). No torch here.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from neuro_agmm.data.cache import file_stamps, read_cache_dir, write_cache_dir
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


CACHE_VERSION = 1  # bump when what the cache holds changes
CACHE_ARRAYS = ("train_x", "train_y", "test_x", "test_y")


def cache_path(base: Path, name: str) -> Path:
    """Where the decoded images of ``name`` are cached: beside its batches."""
    return base / "cache" / f"{name}_v{CACHE_VERSION}"


def _read_parts(name: str, base: Path) -> dict:
    """``{"train": (images, labels), "test": ...}`` from the pickle batches (checked, labels in range)."""
    folder, train_files, test_files, label_key, n_classes = LAYOUTS[name]
    parts = {}
    for part, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for fn in files:
            x, y = read_batch(base / fn, label_key)
            xs.append(x)
            ys.append(y)
        parts[part] = (np.concatenate(xs), np.concatenate(ys))
    if parts["train"][1].max(initial=0) >= n_classes or parts["test"][1].max(initial=0) >= n_classes:
        raise CifarFormatError(f"{name}: labels outside [0, {n_classes})")
    return parts


def _write_parts(parts: dict, stamps: list, into: Path) -> dict:
    for part, (x, y) in parts.items():
        np.save(into / f"{part}_x.npy", x)
        np.save(into / f"{part}_y.npy", y)
    return {"sources": stamps, "version": CACHE_VERSION}


def load_cifar_split(name: str = "cifar10", root: str | Path = "datasets", time_steps: int = 4,
                     encoding: str = "direct", seed: int = 0, use_cache: bool = True) -> DatasetSplit:
    """CIFAR-10/100 under ``root`` (or ``root`` is the batch folder itself); see module docstring.

    With ``use_cache`` the decoded images are cached once as ``.npy`` files in ``<batch folder>/cache/`` (atomic;
    rebuilt when a batch file's size or modification time changes; skipped on a read-only root) and opened
    memory-mapped: CIFAR-10's 50,000 training images (150 MiB) then stay on disk, and a run reads the batches
    it draws. ``meta["cache"]`` names the cache used (None: read from the pickles)."""
    if name not in LAYOUTS:
        raise ValueError(f"unknown CIFAR variant {name!r}; choose cifar10 or cifar100")
    if encoding != "direct":
        raise ValueError(f"{name}: only 'direct' encoding is supported, got {encoding!r}")
    folder, train_files, test_files, label_key, n_classes = LAYOUTS[name]
    base = _find_folder(Path(root), folder)
    sources = [base / fn for fn in train_files + test_files]
    for p in sources:
        if not p.is_file():
            raise CifarFormatError(f"{name}: missing {p}; expected the python-pickle layout "
                                   f"{_expected(name)} under {root}")
    stamps = file_stamps(sources)
    cache = cache_path(base, name) if use_cache else None
    parts = None
    if cache is not None and not _fresh(cache, stamps):
        parts = _read_parts(name, base)
        try:
            write_cache_dir(cache, lambda tmp: _write_parts(parts, stamps, tmp))
        except OSError:
            cache = None  # a read-only data root: fine, just not cached
    if cache is not None and _fresh(cache, stamps):
        arrays, _ = read_cache_dir(cache, CACHE_ARRAYS, lambda k: k.endswith("_x"))
        parts = {part: (arrays[f"{part}_x"], arrays[f"{part}_y"]) for part in ("train", "test")}
    else:
        cache = None
        parts = parts if parts is not None else _read_parts(name, base)
    rng = np.random.default_rng(seed)
    tr, scale, vmax = encode_levels(parts["train"][0], time_steps, encoding, 255, rng)
    te, _, _ = encode_levels(parts["test"][0], time_steps, encoding, 255, rng)
    split = DatasetSplit(name=name, train_x=tr, train_y=parts["train"][1], test_x=te, test_y=parts["test"][1],
                         input_shape=(3, 32, 32), n_classes=n_classes, input_scale=scale, input_max=vmax,
                         encoding=encoding, meta={"root": str(base), "cache": None if cache is None else str(cache)})
    return split


def _fresh(cache: Path, stamps: list) -> bool:
    """Whether ``cache`` is complete and was built from exactly these source files."""
    try:
        info = json.loads((cache / "info.json").read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == CACHE_VERSION and info.get("sources") == stamps and \
        all((cache / f"{k}.npy").is_file() for k in CACHE_ARRAYS)
