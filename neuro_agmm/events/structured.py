"""Structured event arrays in and out of tonic's convention, and ``.npy`` files that hold one.

Why: tonic (the field's dataset library) hands events around as NumPy structured arrays with
fields ``x, y, t, p`` in any order and of varying dtypes: ``p`` as ``bool`` (DVSGesture, DSEC,
DVS-Lips), ``int`` (N-Caltech101, ASL-DVS), ``t`` as ``int64`` µs (some readers float). Our
readers return ``EVENT_DTYPE`` (x, y int16; t int64 µs; p int8, 1 = ON). This module converts
both ways without losing or silently wrapping anything:

* ``as_events`` accepts any structured array with those four fields (extra fields are ignored);
  ``x``, ``y`` must be whole numbers in ``[0, 32767]``, ``t`` finite whole µs in ``[0, 2**62]``,
  ``p`` bool or whole numbers in ``{0, 1}``; every check runs before any narrowing cast, and a
  failure names the field and the first bad index. Events come back sorted by time;
* ``to_tonic`` gives tonic's ``dtype([("x", int16), ("y", int16), ("t", int64), ("p", bool)])``
  (``polarity="int"`` for an int8 ``p``): tonic's transforms (``ToFrame``, ``Denoise``, ...) read it;
* ``.npy`` files holding such an array (``np.save(f, events)``, what tonic users write) are read
  by ``read_structured_npy``. The file states no sensor: pass ``sensor_size`` (``infer
  --sensor-size W,H,P``); without it the sensor is taken as ``(max x + 1, max y + 1, 2)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events, sort_by_time

FIELDS = ("x", "y", "t", "p")
TONIC_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", bool)])
_COORD_MAX = int(np.iinfo(np.int16).max)


def _whole(path, name: str, col: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``col`` as int64 after checking it holds whole numbers in ``[lo, hi]`` (names the first bad index)."""
    if col.dtype == bool:
        return col.astype(np.int64)
    if col.dtype.kind not in "iuf":
        raise EventFileError(path, f"field {name!r} has dtype {col.dtype}; expected integers, floats or bool")
    bad = (col < lo) | (col > hi)  # numpy compares every int and float kind with a float exactly enough here
    if col.dtype.kind == "f":
        bad |= ~np.isfinite(col) | (col != np.round(col))
    if bad.any():
        i = int(np.argmax(bad))
        raise EventFileError(path, f"field {name!r}: event {i} has {col[i]!r}, outside whole numbers in "
                                   f"[{lo:.0f}, {hi:.0f}]")
    return col.astype(np.int64)


def as_events(arr: np.ndarray, path: str | os.PathLike = "<events>") -> np.ndarray:
    """Any structured x, y, t, p array (tonic's, ours) → ``EVENT_DTYPE``, range-checked, sorted by time."""
    names = tuple(arr.dtype.fields or ())  # names and titles (the aedat package titles its 'on' field 'p')
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise EventFileError(path, f"structured events need fields x, y, t, p; missing {missing} (has {list(names)})")
    arr = arr.reshape(-1)
    out = np.empty(len(arr), EVENT_DTYPE)
    out["x"] = _whole(path, "x", arr["x"], 0, _COORD_MAX)
    out["y"] = _whole(path, "y", arr["y"], 0, _COORD_MAX)
    out["t"] = _whole(path, "t", arr["t"], 0, 2.0 ** 62)
    out["p"] = _whole(path, "p", arr["p"], 0, 1)
    return sort_by_time(out)


def to_tonic(events: np.ndarray, polarity: str = "bool") -> np.ndarray:
    """``EVENT_DTYPE`` events → tonic's structured dtype (``p`` bool, or int8 with ``polarity="int"``)."""
    if polarity not in ("bool", "int"):
        raise ValueError(f"polarity must be 'bool' or 'int', got {polarity!r}")
    dtype = TONIC_DTYPE if polarity == "bool" else np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64),
                                                              ("p", np.int8)])
    out = np.empty(len(events), dtype)
    for f in FIELDS:
        out[f] = events[f] if f != "p" or polarity == "int" else events[f] != 0
    return out


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """A ``.npy`` array read through a memory map first, so a header that declares more data than the file
    holds fails before anything is allocated; every failure is an ``EventFileError`` naming the file."""
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        return np.array(mapped)
    except Exception as e:  # noqa: BLE001 - NumPy raises ValueError, OSError, EOFError, tokenize errors, ...
        raise EventFileError(path, f"not a readable .npy array ({type(e).__name__}: {e})") from e


def read_structured_npy(path: str | os.PathLike, sensor_size: Optional[SensorSize] = None,
                        stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read a ``.npy`` holding a structured x, y, t, p array (see the module docstring for the sensor)."""
    path = Path(path)
    arr = load_npy(path)
    if arr.dtype.names is None:
        raise EventFileError(path, f"expected a structured array with fields x, y, t, p; got dtype {arr.dtype}")
    ev = as_events(arr, path)
    if sensor_size is None:
        sensor_size = SensorSize(int(ev["x"].max()) + 1 if len(ev) else 1, int(ev["y"].max()) + 1 if len(ev) else 1, 2)
    sensor_size = SensorSize(*sensor_size)
    check_events(ev, sensor_size, path)
    if stats is not None:
        stats.n_events += len(ev)
    return ev, sensor_size


def is_structured_npy(path: str | os.PathLike) -> bool:
    """Whether a ``.npy`` file's header declares a structured dtype (reads the header only)."""
    try:
        dtype = np.load(path, mmap_mode="r", allow_pickle=False).dtype  # maps, reads only the header
    except Exception as e:  # noqa: BLE001 - as in load_npy
        raise EventFileError(path, f"not a readable .npy file ({type(e).__name__}: {e})", offset=0) from e
    return dtype.names is not None


def write_structured_npy(path: str | os.PathLike, events: np.ndarray, polarity: str = "bool") -> Path:
    """Write ``events`` as a tonic-style structured ``.npy`` (atomic)."""
    arr = to_tonic(events, polarity)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    return atomic_write(path, write)
