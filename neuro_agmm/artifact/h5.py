"""HDF5 access with schema errors: required attributes and datasets, format/version checks, safe opening.

Shared by the artifact reader and the ``/hardware`` section reader so both name the missing field the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from neuro_agmm.artifact.schema import ArtifactError

# The most any one dataset may expand to when read (bytes); NEURO_AGMM_MAX_READ_BYTES overrides it.
MAX_READ_BYTES = int(os.environ.get("NEURO_AGMM_MAX_READ_BYTES", 2 << 30))
MAX_EXPANSION = 1000  # a compressed dataset may expand at most this much (plus 1 MiB) when read
# What h5py and NumPy raise on a corrupt file (damaged object headers, B-trees, filters, dtypes): turned
# into the reader's documented error, naming the file, by ``corrupt``.
CORRUPTION_ERRORS = (KeyError, RuntimeError, OSError, TypeError, ValueError, IndexError, OverflowError,
                     AttributeError, UnicodeDecodeError)


def corrupt(path, e: BaseException, error=ArtifactError) -> Exception:
    """``error`` naming ``path`` for a corruption error ``e`` raised inside h5py/NumPy (documented errors pass)."""
    if isinstance(e, (ArtifactError, error)):
        return e
    return error(f"{path}: corrupt or unreadable HDF5 content ({type(e).__name__}: {e})")


def check_size(ds: h5py.Dataset, where: str, error=ArtifactError) -> None:
    """Refuse, before reading, a dataset that declares more bytes than the file can hold (uncompressed,
    contiguous storage) or than ``MAX_READ_BYTES``."""
    nbytes = int(ds.size) * int(ds.dtype.itemsize)
    file_bytes = os.path.getsize(ds.file.filename)
    if ds.chunks is None and ds.compression is None and nbytes > file_bytes:
        raise error(f"{where}: dataset {ds.name} declares {nbytes} bytes, more than the whole file ({file_bytes})")
    if ds.chunks is not None:  # chunked: what is stored bounds what reading may produce
        stored = int(ds.id.get_storage_size())
        limit = stored if ds.compression is None and not ds.fletcher32 and not ds.shuffle else \
            MAX_EXPANSION * stored + (1 << 20)
        if nbytes > limit:
            raise error(f"{where}: dataset {ds.name} declares {nbytes} bytes but stores {stored} "
                        f"({'unwritten chunks' if ds.compression is None else 'over the expansion bound'})")
    if nbytes > MAX_READ_BYTES:
        raise error(f"{where}: dataset {ds.name} would expand to {nbytes} bytes, over the {MAX_READ_BYTES}-byte "
                    f"read limit (NEURO_AGMM_MAX_READ_BYTES)")


def require_attr(group: h5py.Group, key: str, where: str):
    if key not in group.attrs:
        raise ArtifactError(f"{where}: missing attribute {key!r}")
    return group.attrs[key]


def require_dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group or not isinstance(group[key], h5py.Dataset):
        raise ArtifactError(f"{where}: missing dataset {key!r}")
    check_size(group[key], where)
    return group[key][()]


def check_format(group: h5py.Group, name: str, version: int | tuple[int, ...], where: str) -> int:
    """Check a group's ``format``/``format_version`` attributes; ``ArtifactError`` naming what differs.

    ``version`` is the one version or the tuple of versions this reader accepts; returns the file's.
    """
    fmt = require_attr(group, "format", where)
    if fmt != name:
        raise ArtifactError(f"{where}: format is {fmt!r}, expected {name!r}")
    ver = int(require_attr(group, "format_version", where))
    accepted = (version,) if isinstance(version, int) else tuple(version)
    if ver not in accepted:
        raise ArtifactError(f"{where}: format_version {ver} is not supported (this reader: "
                            f"{', '.join(map(str, accepted))})")
    return ver


def open_h5(path: Path, what: str = "artifact file") -> h5py.File:
    """Open ``path`` read-only; ``ArtifactError`` if it is missing or not HDF5 (e.g. truncated)."""
    if not path.exists():
        raise ArtifactError(f"{path}: no such {what}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ArtifactError(f"{path}: not a readable HDF5 file ({e})") from e
