"""Plain HDF5 / NPZ event files: arrays ``x, y, t, p`` (or one structured ``events``).

Why: the simplest hand-off for converted recordings (e.g. Prophesee exports, tonic
caches, our own samples). Layout read:

* NPZ: keys ``x, y, t, p`` (equal length) or ``events`` (a structured array with those
  fields); optional ``sensor_size`` = ``[W, H, P]``.
* HDF5: datasets ``x, y, t, p`` at the root or in group ``events``, or one structured
  dataset ``events``; optional attribute or dataset ``sensor_size``.

``t`` is in µs. ``p`` may be 0/1 or -1/+1 (-1 -> 0). If no sensor size is stored, pass
one; otherwise it is inferred as ``(max x + 1, max y + 1, 2)`` (stated in the result).

Left out: compressed chunked Prophesee HDF5 (ECF codec) and EVT2/EVT3 raw files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events

FIELDS = ("x", "y", "t", "p")


def _from_columns(cols: dict, path) -> np.ndarray:
    """Columns -> ``EVENT_DTYPE`` through ``structured.as_events`` (every value range-checked before narrowing)."""
    from neuro_agmm.events.structured import as_events

    cols = {k: np.asarray(v).reshape(-1) if np.ndim(v) <= 1 else np.asarray(v) for k, v in cols.items()}
    for k, c in cols.items():
        if c.ndim != 1:
            raise EventFileError(path, f"column {k!r} has shape {c.shape}; expected one value per event")
    n = {k: len(v) for k, v in cols.items()}
    if len(set(n.values())) != 1:
        raise EventFileError(path, f"columns have different lengths {n}")
    p = cols["p"]
    if p.dtype.kind in "iuf" and p.size and p.min() < 0:  # the -1/+1 convention
        if not np.all(np.isin(p, (-1, 1))):
            raise EventFileError(path, "polarity with negative values must be -1/+1")
        p = (p > 0).astype(np.int8)
    arr = np.empty(len(p), [(k, cols[k].dtype if k != "p" else p.dtype) for k in FIELDS])
    for k in FIELDS:
        arr[k] = cols[k] if k != "p" else p
    return as_events(arr, path)


def _checked(container, key: str, path) -> np.ndarray:
    """One stored array, its declared size checked against the file before it is read."""
    from neuro_agmm.artifact.h5 import check_size

    obj = container[key]
    if isinstance(obj, h5py.Dataset):
        check_size(obj, str(path), lambda msg: EventFileError(path, msg))
        return obj[()]
    if isinstance(obj, h5py.Group):
        raise EventFileError(path, f"{key!r} is a group, expected an array")
    return np.asarray(obj)


def _columns(container, path) -> dict:
    src = container
    if "events" in container:
        obj = container["events"]
        if isinstance(obj, h5py.Group):
            src = obj
        else:
            arr = _checked(container, "events", path)
            if not arr.dtype.names:
                raise EventFileError(path, "'events' is not a structured array with fields x, y, t, p")
            missing = [k for k in FIELDS if k not in arr.dtype.names]
            if missing:
                raise EventFileError(path, f"structured 'events' lacks fields {missing}")
            return {k: arr[k] for k in FIELDS}
    missing = [k for k in FIELDS if k not in src]
    if missing:
        raise EventFileError(path, f"missing arrays {missing} (need x, y, t, p or a structured 'events')")
    return {k: _checked(src, k, path) for k in FIELDS}


class _BoundedNpz:
    """``np.load(npz)`` whose members are checked before reading: the shape a member's header declares must fit
    in that member's uncompressed size (NumPy allocates the declared size first), and the read limit."""

    def __init__(self, z, path):
        self.z, self.path = z, path

    def __contains__(self, key) -> bool:
        return key in self.z

    def __getitem__(self, key):
        from neuro_agmm.artifact.h5 import MAX_READ_BYTES

        info = self.z.zip.getinfo(f"{key}.npy")
        with self.z.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                               else np.lib.format.read_array_header_2_0(f))
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if declared > info.file_size or declared > MAX_READ_BYTES:
            raise EventFileError(self.path, f"member {key!r} declares {declared} bytes, but holds "
                                            f"{info.file_size} (read limit {MAX_READ_BYTES})")
        return self.z[key]


def _read_h5(path: Path) -> None:
    """The HDF5 reads of ``read_event_file`` (for the libhdf5 guard)."""
    with h5py.File(path, "r") as f:
        _columns(f, path)
        if "sensor_size" in f:
            _checked(f, "sensor_size", path)
        dict(f.attrs)


def read_event_file(path: str | os.PathLike, sensor_size: Optional[SensorSize] = None,
                    stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read a ``.npz`` or ``.h5/.hdf5`` event file; events sorted by time."""
    path = Path(path)
    stored = None
    if path.suffix in (".h5", ".hdf5"):
        from neuro_agmm.artifact.guard import preflight

        preflight(path, lambda p: _read_h5(p), lambda msg: EventFileError(path, msg.split(": ", 1)[-1]))
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                bz = _BoundedNpz(z, path)
                cols = _columns(bz, path)
                if "sensor_size" in z:
                    stored = bz["sensor_size"]
        elif path.suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                cols = _columns(f, path)
                if "sensor_size" in f.attrs:
                    stored = f.attrs["sensor_size"]
                elif "sensor_size" in f:
                    stored = _checked(f, "sensor_size", path)
        else:
            raise EventFileError(path, "unknown extension (expected .npz, .h5 or .hdf5)")
    except EventFileError:
        raise
    except Exception as e:  # noqa: BLE001 - zip, zlib, NumPy header and h5py errors on a damaged file
        raise EventFileError(path, f"cannot read ({type(e).__name__}: {e})") from e
    ev = _from_columns(cols, path)  # range-checked and sorted
    if sensor_size is None and stored is not None:
        vals = np.asarray(stored).reshape(-1)
        if vals.size != 3 or vals.dtype.kind not in "iuf" or not np.all((vals >= 1) & (vals <= 1 << 15)) \
                or np.any(vals != np.round(vals)):
            raise EventFileError(path, f"stored sensor_size {vals.tolist()[:6]} is not three whole numbers in "
                                       f"[1, 32768] (W, H, P)")
        sensor_size = SensorSize(*(int(v) for v in vals))
    if sensor_size is None:
        sensor_size = SensorSize(int(ev["x"].max()) + 1 if ev.size else 0, int(ev["y"].max()) + 1 if ev.size else 0, 2)
    sensor_size = SensorSize(*sensor_size)
    check_events(ev, sensor_size, path)
    if stats is not None:
        stats.n_events += len(ev)
    return ev, sensor_size


def write_event_file(path: str | os.PathLike, events: np.ndarray, sensor_size: SensorSize) -> Path:
    """Write ``events`` as ``.npz`` or ``.h5`` (by extension) with columns x, y, t, p and ``sensor_size``."""
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    path = Path(path)

    def write(tmp: Path) -> None:
        if path.suffix == ".npz":
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **{k: events[k] for k in FIELDS}, sensor_size=np.asarray(sensor_size))
        elif path.suffix in (".h5", ".hdf5"):
            with h5py.File(tmp, "w") as f:
                for k in FIELDS:
                    f.create_dataset(k, data=events[k], compression="gzip" if len(events) > 1000 else None)
                f.attrs["sensor_size"] = np.asarray(sensor_size)
        else:
            raise ValueError(f"{path}: extension must be .npz, .h5 or .hdf5")
    return atomic_write(path, write)
