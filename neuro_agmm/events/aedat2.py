"""AEDAT 2.0 (jAER) files from a DVS128: CIFAR10-DVS originals and DVS128 recordings.

Layout: ASCII header lines starting with ``#`` (first ``#!AER-DAT2.0``), each ending in
CRLF; then big-endian ``(uint32 address, uint32 timestamp µs)`` pairs. DVS128 address:
bit0 polarity, bits1..7 x, bits8..14 y, bit15 external (trigger) event.

Conventions (ours, pinned in tests; libraries disagree):

* Polarity follows jAER, the program that wrote these files (``DVS128.Extractor``:
  ``type = 1 - (addr & 1)``, type 1 = ON): ``p = 1 - bit0``, so ``p = 1`` is ON.
  (FORMATS.md states "bit0 = 1 is ON"; jAER and SpikingJelly both invert it.)
* Orientation ``"image"`` (default): ``x = 127 - x_raw`` (jAER mirrors x) and
  ``y = 127 - y_raw`` (jAER's y points up; we flip it so row 0 is the top row, as in
  every image array). ``orientation="raw"`` returns the address bits unchanged.
* External events (bit15) are not camera events: skipped and counted
  (``ReadStats.skipped["external"]``). Address bits above 15 must be zero, else the file
  is not a DVS128 recording (``EventFileError`` with the byte offset).
* Timestamps wrap at 2**32 µs (~71 min); a backwards jump of more than 2**31 is taken
  as a wrap and unwrapped. Other backwards jumps are kept as recorded (then sorted).

Left out: DAVIS240/346 AEDAT 2.0 address layouts (APS frames, IMU).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, make_events,
                                     read_file_bytes, sort_by_time)

DVS128_SENSOR = SensorSize(128, 128, 2)
MAGIC = b"#!AER-DAT2.0"
Orientation = Literal["image", "raw"]


def split_header(data: bytes, path: str | os.PathLike, magic: bytes) -> int:
    """Byte offset where the body starts after ``#`` header lines; checks the magic first line."""
    if not data.startswith(magic):
        raise EventFileError(path, f"does not start with {magic.decode()!r} (found {data[:16]!r})", offset=0)
    pos = 0
    while pos < len(data) and data[pos:pos + 1] == b"#":
        end = data.find(b"\n", pos)
        if end < 0:
            raise EventFileError(path, "header line without end-of-line (truncated header)", offset=pos)
        pos = end + 1
    return pos


def decode_dvs128(addr: np.ndarray, orientation: Orientation = "image") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, p)`` from DVS128 addresses under the convention in the module docstring."""
    addr = addr.astype(np.int64)
    x_raw = (addr & 0xFE) >> 1
    y_raw = (addr & 0x7F00) >> 8
    p = 1 - (addr & 1)
    if orientation == "image":
        return 127 - x_raw, 127 - y_raw, p
    if orientation == "raw":
        return x_raw, y_raw, p
    raise ValueError(f"orientation must be 'image' or 'raw', got {orientation!r}")


def encode_dvs128(x, y, p, orientation: Orientation = "image") -> np.ndarray:
    x, y, p = (np.asarray(a, np.int64) for a in (x, y, p))
    if orientation == "image":
        x, y = 127 - x, 127 - y
    return ((y << 8) | (x << 1) | (1 - p)).astype(np.uint32)


def read_aedat2(path: str | os.PathLike, orientation: Orientation = "image",
                stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read a DVS128 AEDAT 2.0 file; events sorted by time."""
    path = Path(path)
    data = read_file_bytes(path)
    body = split_header(data, path, MAGIC)
    n_bytes = len(data) - body
    if n_bytes % 8:
        raise EventFileError(path, f"body of {n_bytes} bytes is not a whole number of 8-byte (address, "
                                   f"timestamp) pairs (truncated)", offset=body + (n_bytes // 8) * 8)
    pairs = np.frombuffer(data, ">u4", offset=body).reshape(-1, 2)
    addr, ts = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    high = addr >> 16
    if high.any():
        i = int(np.argmax(high != 0))
        raise EventFileError(path, f"address 0x{int(addr[i]):08x} has bits above 15 set: not a DVS128 "
                                   "recording", offset=body + 8 * i)
    ext = (addr & 0x8000) != 0
    if stats is not None:
        stats.skip("external", int(ext.sum()))
    wraps = np.cumsum(np.concatenate([[0], np.diff(ts) < -(1 << 31)]))
    ts = ts + (wraps << 32)
    addr, ts = addr[~ext], ts[~ext]
    x, y, p = decode_dvs128(addr, orientation)
    ev = sort_by_time(make_events(x, y, ts, p), stats)
    if stats is not None:
        stats.n_events += len(ev)
    return ev, DVS128_SENSOR


def write_aedat2(path: str | os.PathLike, events: np.ndarray, orientation: Orientation = "image",
                 header_lines: tuple[str, ...] = ("# This is a raw AE data file created by neuro_agmm",)) -> Path:
    """Write ``events`` (DVS128 geometry) as an AEDAT 2.0 file (atomic)."""
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    if events.size and (events["t"].min() < 0 or events["t"].max() >= 1 << 32):
        raise ValueError("AEDAT 2.0 timestamps must fit uint32")
    head = b"".join(line.encode() + b"\r\n" for line in ("#!AER-DAT2.0",) + tuple(header_lines))
    pairs = np.empty((len(events), 2), ">u4")
    pairs[:, 0] = encode_dvs128(events["x"], events["y"], events["p"], orientation)
    pairs[:, 1] = events["t"]
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(head + pairs.tobytes()))
