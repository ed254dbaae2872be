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
from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events, make_events,
                                     sort_by_time)

FIELDS = ("x", "y", "t", "p")


def _from_columns(cols: dict, path) -> np.ndarray:
    n = {k: len(v) for k, v in cols.items()}
    if len(set(n.values())) != 1:
        raise EventFileError(path, f"columns have different lengths {n}")
    for k in ("x", "y", "t", "p"):
        c = np.asarray(cols[k])
        if c.size and not np.issubdtype(c.dtype, np.integer) and not np.issubdtype(c.dtype, np.bool_) \
                and np.any(c != np.round(c)):
            raise EventFileError(path, f"column {k!r} holds non-integer values")
    p = np.asarray(cols["p"]).astype(np.int64)
    if p.size and p.min() < 0:
        if not np.all(np.isin(p, (-1, 1))):
            raise EventFileError(path, "polarity with negative values must be -1/+1")
        p = (p > 0).astype(np.int64)
    return make_events(np.asarray(cols["x"]), np.asarray(cols["y"]), np.asarray(cols["t"]).astype(np.int64), p)


def _columns(container, path) -> dict:
    src = container
    if "events" in container:
        obj = container["events"]
        if isinstance(obj, h5py.Group):
            src = obj
        else:
            arr = obj[()] if isinstance(obj, h5py.Dataset) else np.asarray(obj)
            if not arr.dtype.names:
                raise EventFileError(path, "'events' is not a structured array with fields x, y, t, p")
            missing = [k for k in FIELDS if k not in arr.dtype.names]
            if missing:
                raise EventFileError(path, f"structured 'events' lacks fields {missing}")
            return {k: arr[k] for k in FIELDS}
    missing = [k for k in FIELDS if k not in src]
    if missing:
        raise EventFileError(path, f"missing arrays {missing} (need x, y, t, p or a structured 'events')")
    return {k: np.asarray(src[k][()] if isinstance(src, (h5py.File, h5py.Group)) else src[k]) for k in FIELDS}


def read_event_file(path: str | os.PathLike, sensor_size: Optional[SensorSize] = None,
                    stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read a ``.npz`` or ``.h5/.hdf5`` event file; events sorted by time."""
    path = Path(path)
    stored = None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                cols = _columns(z, path)
                if "sensor_size" in z:
                    stored = z["sensor_size"]
        elif path.suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                cols = _columns(f, path)
                if "sensor_size" in f.attrs:
                    stored = f.attrs["sensor_size"]
                elif "sensor_size" in f:
                    stored = f["sensor_size"][()]
        else:
            raise EventFileError(path, "unknown extension (expected .npz, .h5 or .hdf5)")
    except (OSError, ValueError, KeyError) as e:
        if isinstance(e, EventFileError):
            raise
        raise EventFileError(path, f"cannot read ({e})") from e
    ev = sort_by_time(_from_columns(cols, path))
    if sensor_size is None and stored is not None:
        sensor_size = SensorSize(*(int(v) for v in np.asarray(stored).reshape(-1)[:3]))
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
