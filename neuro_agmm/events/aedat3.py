"""AEDAT 3.1 (libcaer/cAER) files: DVS128 Gesture recordings, and their label CSVs.

Layout: ``#`` header lines ending ``#!END-HEADER\\r\\n`` (first ``#!AER-DAT3.1``); then
little-endian packets, each a 28-byte header ``int16 eventType, int16 eventSource,
int32 eventSize, int32 eventTSOffset, int32 eventTSOverflow, int32 eventCapacity,
int32 eventNumber, int32 eventValid`` followed by ``eventCapacity * eventSize`` bytes.
Polarity events (type 1, size 8): ``uint32 data`` (bit0 valid, bit1 polarity 1 = ON,
bits2..16 y, bits17..31 x) and ``int32 timestamp``; the full timestamp is
``ts | (eventTSOverflow << 31)`` µs.

Conventions: x, y as libcaer stores them (origin top-left; no flips). Non-polarity
packets (special, frame, IMU, ...) are skipped and counted per type
(``ReadStats.skipped["packet_type_<n>"]`` counts their events), as are polarity events
with the valid bit cleared (``"invalid"``). Truncated packets and impossible headers
raise ``EventFileError`` with the byte offset of the packet.

DVS Gesture labels (Amir et al. 2017): ``userXX_<lighting>_labels.csv`` with header
``class,startTime_usec,endTime_usec``; class 1..11 -> label 0..10; a sample is the
events with ``start <= t < end``. Users 1-23 train, 24-29 test.

Left out: AEDAT 3.0 (no overflow field), frames, IMU and the other event types' payloads.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events, make_events,
                                     read_file_bytes, sort_by_time)

DVS_GESTURE_SENSOR = SensorSize(128, 128, 2)
MAGIC = b"#!AER-DAT3.1"
END_HEADER = b"#!END-HEADER\r\n"
PACKET_HEADER = struct.Struct("<hhiiiiii")
POLARITY_EVENT = 1
GESTURE_CLASSES = ("hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
                   "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
                   "arm_roll", "air_drums", "air_guitar", "other_gestures")
TRAIN_USERS = range(1, 24)
TEST_USERS = range(24, 30)


def read_aedat3(path: str | os.PathLike, sensor_size: SensorSize = DVS_GESTURE_SENSOR,
                stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read the polarity events of an AEDAT 3.1 file, sorted by time."""
    path = Path(path)
    data = read_file_bytes(path, MAGIC)
    end = data.find(END_HEADER)
    if end < 0:
        raise EventFileError(path, "no '#!END-HEADER' line (truncated header)", offset=0)
    pos = end + len(END_HEADER)
    chunks_d, chunks_t = [], []
    local = ReadStats()
    while pos < len(data):
        if pos + PACKET_HEADER.size > len(data):
            raise EventFileError(path, f"truncated packet header ({len(data) - pos} of 28 bytes)", offset=pos)
        etype, _src, esize, _tsoff, overflow, capacity, number, _valid = PACKET_HEADER.unpack_from(data, pos)
        if esize <= 0 or capacity < 0 or number < 0 or number > capacity:
            raise EventFileError(path, f"impossible packet header (type {etype}, size {esize}, capacity "
                                       f"{capacity}, number {number})", offset=pos)
        body = pos + PACKET_HEADER.size
        n_bytes = capacity * esize
        if body + n_bytes > len(data):
            raise EventFileError(path, f"truncated packet: header promises {n_bytes} bytes, "
                                       f"{len(data) - body} left", offset=pos)
        if etype != POLARITY_EVENT:
            local.skip(f"packet_type_{etype}", number)
        else:
            if esize != 8:
                raise EventFileError(path, f"polarity packet with event size {esize} (expected 8)", offset=pos)
            ev = np.frombuffer(data, "<u4", count=2 * number, offset=body).reshape(-1, 2)
            chunks_d.append(ev[:, 0])
            chunks_t.append(ev[:, 1].astype(np.int32).astype(np.int64) | (np.int64(overflow) << 31))
        pos = body + n_bytes
    d = np.concatenate(chunks_d).astype(np.int64) if chunks_d else np.zeros(0, np.int64)
    t = np.concatenate(chunks_t) if chunks_t else np.zeros(0, np.int64)
    valid = (d & 1) == 1
    local.skip("invalid", int((~valid).sum()))
    d, t = d[valid], t[valid]
    ev = sort_by_time(make_events((d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, t, (d >> 1) & 1), local)
    check_events(ev, SensorSize(*sensor_size), path)
    local.n_events = len(ev)
    if stats is not None:
        stats.merge(local)
    return ev, SensorSize(*sensor_size)


def write_aedat3(path: str | os.PathLike, events: np.ndarray, packet_size: int = 4096,
                 extra_packets: tuple[tuple[int, int], ...] = ()) -> Path:
    """Write ``events`` as AEDAT 3.1 polarity packets (atomic).

    ``extra_packets``: ``(event_type, n_events)`` pairs of zero-filled non-polarity
    packets (event size 16) written first, to test that readers skip them.
    """
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    out = [MAGIC + b"\r\n", b"#Format: RAW\r\n", b"#Source 1: DVS128\r\n", END_HEADER]
    for etype, n in extra_packets:
        out.append(PACKET_HEADER.pack(etype, 1, 16, 12, 0, n, n, n) + bytes(16 * n))
    t = events["t"].astype(np.int64)
    if t.size and t.min() < 0:
        raise ValueError("timestamps must be non-negative")
    for s in range(0, len(events), packet_size):
        e, ts = events[s:s + packet_size], t[s:s + packet_size]
        overflow = ts >> 31
        for ov in np.unique(overflow):  # one packet per overflow epoch
            m = overflow == ov
            body = np.empty((int(m.sum()), 2), "<u4")
            body[:, 0] = ((e["x"][m].astype(np.int64) << 17) | (e["y"][m].astype(np.int64) << 2)
                          | (e["p"][m].astype(np.int64) << 1) | 1)
            body[:, 1] = ts[m] & 0x7FFFFFFF
            n = len(body)
            out.append(PACKET_HEADER.pack(POLARITY_EVENT, 1, 8, 4, int(ov), n, n, n) + body.tobytes())
    data = b"".join(out)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


@dataclass(frozen=True)
class GestureSegment:
    label: int  # 0..10
    start_us: int
    end_us: int  # exclusive


_USER_RE = re.compile(r"user(\d+)_(.+?)(?:_labels)?\.(?:aedat|csv)$")


def parse_gesture_name(path: str | os.PathLike) -> tuple[int, str]:
    """``(user, lighting)`` from ``userXX_<lighting>.aedat`` or ``..._labels.csv``."""
    m = _USER_RE.search(Path(path).name)
    if not m:
        raise EventFileError(path, "name is not 'userXX_<lighting>.aedat' / 'userXX_<lighting>_labels.csv'")
    return int(m.group(1)), m.group(2)


def read_gesture_labels(path: str | os.PathLike) -> list[GestureSegment]:
    """Read a DVS Gesture label CSV; class 1..11 becomes label 0..10."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise EventFileError(path, f"cannot read ({e})") from e
    if not lines or [c.strip() for c in lines[0].split(",")] != ["class", "startTime_usec", "endTime_usec"]:
        raise EventFileError(path, "header is not 'class,startTime_usec,endTime_usec'", offset=0)
    segs = []
    offset = len(lines[0]) + 1
    for line in lines[1:]:
        if line.strip():
            try:
                c, s, e = (int(v) for v in line.split(","))
            except ValueError:
                raise EventFileError(path, f"bad label row {line!r}", offset=offset) from None
            if not 1 <= c <= 11 or e <= s:
                raise EventFileError(path, f"bad label row {line!r} (class 1..11, start < end)", offset=offset)
            segs.append(GestureSegment(c - 1, s, e))
        offset += len(line) + 1
    return segs


def write_gesture_labels(path: str | os.PathLike, segments: list[GestureSegment]) -> Path:
    text = "class,startTime_usec,endTime_usec\n" + "".join(f"{s.label + 1},{s.start_us},{s.end_us}\n"
                                                              for s in segments)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def cut_segments(events: np.ndarray, segments: list[GestureSegment]) -> list[tuple[np.ndarray, int]]:
    """The events of each labelled segment (``start <= t < end``), with its label."""
    t = events["t"]
    out = []
    for s in segments:
        lo, hi = np.searchsorted(t, s.start_us, "left"), np.searchsorted(t, s.end_us, "left")
        out.append((events[lo:hi], s.label))
    return out
