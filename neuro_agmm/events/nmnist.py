"""N-MNIST / N-Caltech101 ``.bin`` files (ATIS, 40-bit events): reader and writer.

Layout (Orchard et al. 2015): 5 bytes per event, byte0 = x, byte1 = y, byte2 bit7 =
polarity (1 = ON), byte2 bits6..0 / byte3 / byte4 = timestamp bits 22..16 / 15..8 / 7..0
(µs, 23 bits).

Overflow-marker convention (ours, pinned in tests): a row with ``y == 240`` is not an
event but a timestamp-overflow marker — every later timestamp gets ``+2**13`` µs and
the row is removed (tonic's ``read_mnist_file`` and Orchard's MATLAB reader do the
same; no N-MNIST/N-Caltech sensor has a row 240). Markers are counted in
``ReadStats.skipped["overflow_marker"]``; pass ``overflow_markers=False`` to treat such
rows as events (they then fail the sensor-size check).

A file whose length is not a multiple of 5 is corrupt (``EventFileError`` with the
offset of the incomplete last record). Events outside the sensor raise too (the byte
offset of the first one is named). Orientation: x, y as stored (origin top-left).

Left out: the N-Caltech101 annotation files (bounding boxes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, make_events,
                                     read_file_bytes, sort_by_time)

NMNIST_SENSOR = SensorSize(34, 34, 2)
NCALTECH_SENSOR = SensorSize(240, 180, 2)
OVERFLOW_Y = 240
OVERFLOW_INCREMENT = 1 << 13
TS_BITS = 23


def decode_atis(raw: np.ndarray, path: str | os.PathLike = "<bytes>", sensor_size: Optional[SensorSize] = NMNIST_SENSOR,
                overflow_markers: bool = True, stats: Optional[ReadStats] = None) -> np.ndarray:
    """Decode a uint8 buffer of 40-bit ATIS records into ``EVENT_DTYPE`` events."""
    raw = np.asarray(raw, np.uint8)
    if raw.size % 5:
        n_full = raw.size // 5
        raise EventFileError(path, f"length {raw.size} is not a multiple of 5 (incomplete record of "
                                   f"{raw.size % 5} bytes after {n_full} events)", offset=n_full * 5)
    rec = raw.reshape(-1, 5).astype(np.int64)
    x, y = rec[:, 0], rec[:, 1]
    p = rec[:, 2] >> 7
    t = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    keep = np.ones(len(rec), bool)
    if overflow_markers:
        marker = y == OVERFLOW_Y
        if marker.any():
            t = t + OVERFLOW_INCREMENT * np.cumsum(marker)  # a marker shifts itself and every later row
            keep = ~marker
            if stats is not None:
                stats.skip("overflow_marker", int(marker.sum()))
    ev = make_events(x[keep], y[keep], t[keep], p[keep])
    if sensor_size is not None:
        w, h, _ = sensor_size
        bad = (ev["x"] >= w) | (ev["y"] >= h)
        if bad.any():
            i = int(np.flatnonzero(keep)[np.argmax(bad)])
            raise EventFileError(path, f"event x={int(x[i])}, y={int(y[i])} outside sensor {tuple(sensor_size)} "
                                       "(wrong dataset or corrupt file)", offset=5 * i)
    ev = sort_by_time(ev, stats)  # every reader returns time-sorted events (a corrupt file may not be)
    if stats is not None:
        stats.n_events += len(ev)
    return ev


def read_nmnist(path: str | os.PathLike, sensor_size: Optional[SensorSize] = NMNIST_SENSOR,
                overflow_markers: bool = True, stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read one ``.bin`` file. ``sensor_size=None`` infers ``(max x + 1, max y + 1, 2)`` (N-Caltech101)."""
    path = Path(path)
    raw = np.frombuffer(read_file_bytes(path), np.uint8)
    ev = decode_atis(raw, path, sensor_size, overflow_markers, stats)
    if sensor_size is None:
        sensor_size = SensorSize(int(ev["x"].max()) + 1 if ev.size else 0, int(ev["y"].max()) + 1 if ev.size else 0, 2)
    return ev, SensorSize(*sensor_size)


def encode_atis(events: np.ndarray) -> bytes:
    """40-bit records for time-sorted ``events``; timestamps >= 2**23 get overflow markers inserted."""
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    t = events["t"].astype(np.int64)
    if t.size and (t.min() < 0 or np.any(np.diff(t) < 0)):
        raise ValueError("ATIS encoding needs non-negative, time-sorted timestamps")
    x, y, p = events["x"].astype(np.int64), events["y"].astype(np.int64), events["p"].astype(np.int64)
    if t.size and (x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255 or np.any(y == OVERFLOW_Y)
                   or p.min() < 0 or p.max() > 1):
        raise ValueError("x, y must fit a byte (y != 240) and p in {0, 1}")
    ts_max = (1 << TS_BITS) - 1
    need = np.maximum(0, -(-(t - ts_max) // OVERFLOW_INCREMENT))  # markers needed before each event
    k = np.maximum.accumulate(need) if need.size else need
    rel = t - k * OVERFLOW_INCREMENT
    n_mark = int(k[-1]) if k.size else 0
    rows = np.zeros((len(t) + n_mark, 5), np.uint8)
    # place markers: before event i insert k[i] - k[i-1] markers
    inc = np.diff(np.concatenate([[0], k]))
    ev_pos = np.arange(len(t)) + np.cumsum(inc)
    is_ev = np.zeros(len(rows), bool)
    is_ev[ev_pos] = True
    rows[~is_ev, 1] = OVERFLOW_Y
    rows[ev_pos, 0], rows[ev_pos, 1] = x, y
    rows[ev_pos, 2] = (p << 7) | ((rel >> 16) & 0x7F)
    rows[ev_pos, 3], rows[ev_pos, 4] = (rel >> 8) & 0xFF, rel & 0xFF
    return rows.tobytes()


def write_nmnist(path: str | os.PathLike, events: np.ndarray) -> Path:
    """Write ``events`` as an N-MNIST ``.bin`` file (atomic)."""
    data = encode_atis(events)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
