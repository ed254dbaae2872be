"""The event array every reader returns and every transform takes: x, y, t (µs), p.

Why: one plain representation (tonic's convention) so readers know nothing about
binning or training, and transforms know nothing about file formats.

* ``EVENT_DTYPE``: a NumPy structured dtype ``x:int16, y:int16, t:int64 (µs), p:int8``
  with ``p = 1`` for ON (brightness increase) and ``p = 0`` for OFF.
* ``SensorSize``: ``(W, H, P)`` — width, height, number of polarities (tonic's order).
* ``EventFileError``: a corrupt, truncated or mislabelled file; always names the file
  and, where it applies, the byte offset of the problem.
* ``ReadStats``: what a reader skipped and why (nothing is dropped silently).

Left out: any notion of labels or datasets (``neuro_agmm.data.event_datasets``) and any
file format (one module per format).
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "i1")])


class SensorSize(NamedTuple):
    """Sensor geometry in tonic's order: width (x range), height (y range), polarities."""

    W: int
    H: int
    P: int = 2


class EventFileError(ValueError):
    """An event file is corrupt, truncated or does not hold what its name/layout says."""

    def __init__(self, path: str | os.PathLike, message: str, offset: Optional[int] = None):
        self.path = str(path)
        self.offset = offset
        where = f"{self.path}" + (f" at byte {offset}" if offset is not None else "")
        super().__init__(f"{where}: {message}")


def read_file_bytes(path: str | os.PathLike, magic: Optional[bytes] = None) -> bytes:
    """The whole file as bytes; ``EventFileError`` if unreadable or (with ``magic``) of another format."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise EventFileError(path, f"cannot read ({e})") from e
    if magic is not None and not data.startswith(magic):
        raise EventFileError(path, f"does not start with {magic.decode()!r} (found {data[:16]!r})", offset=0)
    return data


@dataclass
class ReadStats:
    """Filled by a reader when passed in: events kept; per reason, rows skipped and values repaired
    (e.g. a timestamp rebuilt under a documented convention)."""

    n_events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + int(n)

    def repair(self, reason: str, n: int) -> None:
        if n:
            self.repaired[reason] = self.repaired.get(reason, 0) + int(n)

    def merge(self, other: "ReadStats") -> None:
        self.n_events += other.n_events
        for k, v in other.skipped.items():
            self.skip(k, v)
        for k, v in other.repaired.items():
            self.repair(k, v)

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))


def make_events(x, y, t, p) -> np.ndarray:
    """Build an ``EVENT_DTYPE`` array from four equally long sequences."""
    x, y, t, p = (np.asarray(a) for a in (x, y, t, p))
    n = len(t)
    if not (len(x) == len(y) == len(p) == n):
        raise ValueError(f"x, y, t, p lengths differ: {len(x)}, {len(y)}, {n}, {len(p)}")
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev


def empty_events() -> np.ndarray:
    return np.empty(0, EVENT_DTYPE)


def check_events(events: np.ndarray, sensor_size: SensorSize, path: str | os.PathLike = "<events>") -> None:
    """Raise ``EventFileError`` if any event lies outside ``sensor_size`` or has a negative timestamp (names the
    first one by index).

    Takes ``EVENT_DTYPE`` or any structured array with integer or bool fields x, y, p (tonic's arrays,
    ``p`` as bool included); values are compared as int64, never narrowed first.
    """
    names = events.dtype.names or ()
    if not all(f in names and events.dtype[f].kind in "iub" for f in ("x", "y", "p")):
        raise ValueError(f"{path}: events must be a structured array with integer or bool fields x, y, p "
                         f"(e.g. {EVENT_DTYPE}), got {events.dtype}")
    if "t" in names and events.size and np.min(events["t"]) < 0:
        i = int(np.argmax(events["t"] < 0))
        raise EventFileError(path, f"event {i} has a negative timestamp ({int(events['t'][i])} µs)")
    w, h, pol = sensor_size
    x, y, p = (events[f].astype(np.int64) for f in ("x", "y", "p"))
    bad = (x < 0) | (x >= w) | (y < 0) | (y >= h) | (p < 0) | (p >= max(pol, 2 if pol == 1 else pol))
    if bad.any():
        i = int(np.argmax(bad))
        raise EventFileError(path, f"event {i} (x={x[i]}, y={y[i]}, p={p[i]}) lies outside sensor "
                                   f"{tuple(sensor_size)} (W, H, P)")


def sort_by_time(events: np.ndarray, stats: Optional["ReadStats"] = None) -> np.ndarray:
    """Events ordered by ``t`` (stable, so same-time events keep file order); with ``stats``, the events that
    came earlier in time than the one before them are counted in ``repaired["out_of_order"]``."""
    if events.size < 2:
        return events
    back = events["t"][1:] < events["t"][:-1]
    if not back.any():
        return events
    if stats is not None:
        stats.repair("out_of_order", int(back.sum()))
    return events[np.argsort(events["t"], kind="stable")]
