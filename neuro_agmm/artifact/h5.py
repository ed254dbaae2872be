"""HDF5 access with schema errors: required attributes and datasets, format/version checks, safe opening.

Shared by the artifact reader and the ``/hardware`` section reader so both name the missing field the same way.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from neuro_agmm.artifact.schema import ArtifactError


def require_attr(group: h5py.Group, key: str, where: str):
    if key not in group.attrs:
        raise ArtifactError(f"{where}: missing attribute {key!r}")
    return group.attrs[key]


def require_dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group or not isinstance(group[key], h5py.Dataset):
        raise ArtifactError(f"{where}: missing dataset {key!r}")
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
