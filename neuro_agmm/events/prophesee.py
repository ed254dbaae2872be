"""Prophesee event files: ``.dat`` (EventCD 2D, as in N-CARS and Gen1) and ``.raw`` EVT 2.0 / EVT 3.0.

Why: these are the other half of the event-camera world (Prophesee/ATIS sensors; the N-CARS, Gen1
and 1Mpx datasets). Layouts follow Prophesee's published format descriptions and OpenEB's decoders:

* **header**: ASCII lines that start with ``%`` (``% end`` closes it in newer files; older ones and
  expelliarmus simply stop). Sensor size from ``% geometry WxH``, ``% format EVT3;height=H;width=W``
  or ``% Width W`` / ``% Height H``; otherwise pass ``sensor_size`` (else ``max + 1``).
* **.dat**: after the header one byte event type and one byte event size (must be 8); then records
  ``uint32 t_us, uint32 w`` with ``x = w & 0x3FFF``, ``y = (w >> 14) & 0x3FFF``, ``p = (w >> 28) & 0xF``
  (0 or 1). A timestamp that drops by more than 2**31 is a 32-bit wrap and is unwrapped.
* **EVT 2.0**: little-endian 32-bit words, type = ``w >> 28``: ``0`` CD_OFF / ``1`` CD_ON
  (``t_lsb = w >> 22 & 0x3F``, ``x = w >> 11 & 0x7FF``, ``y = w & 0x7FF``), ``8`` EV_TIME_HIGH
  (``t >> 6`` in bits 27..0), ``A`` EXT_TRIGGER, ``E`` OTHERS, ``F`` CONTINUED. A TIME_HIGH that drops by
  more than half its range is a loop of the 34-bit time base (+2**34).
* **EVT 3.0**: little-endian 16-bit words, type = ``w >> 12``: ``0`` EVT_ADDR_Y (y in bits 10..0),
  ``2`` EVT_ADDR_X (p bit 11, x bits 10..0: one event), ``3`` VECT_BASE_X (p, x base), ``4`` VECT_12 /
  ``5`` VECT_8 (a validity mask: events at base + k; the base advances by 12 / 8), ``6`` EVT_TIME_LOW
  and ``8`` EVT_TIME_HIGH (bits 11..0 and 23..12 of the time), ``A`` EXT_TRIGGER, ``7``/``F`` CONTINUED,
  ``E`` OTHERS. A TIME_HIGH that drops by at least ``(4095 - 10) << 12`` µs is a loop of the 24-bit time
  base (+2**24; OpenEB's rule).
  **Convention for writers that omit TIME_HIGH**: the spec sends TIME_HIGH whenever bits 23..12
  change, so a TIME_LOW smaller than the previous one with no TIME_HIGH in between means the writer
  skipped it (expelliarmus 1.1.12 writes only TIME_LOW after the first word); we then advance one
  4096-µs period and count it in ``ReadStats.repaired["evt3_time_low_wrap"]``.

Every event is kept; triggers and other non-CD words are counted in ``ReadStats.skipped`` (``ext_trigger``,
``others``, ``continued``); an unknown word type or a truncated word raises ``EventFileError`` with the
byte offset. Events come back sorted by time (stable).

Left out: EVT 2.1 and EVT 4.0, the ``.npy`` bounding boxes of Gen1/1Mpx, and trigger values.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events, make_events,
                                     read_file_bytes, sort_by_time)

EVT2_CD_OFF, EVT2_CD_ON, EVT2_TIME_HIGH, EVT2_EXT_TRIGGER, EVT2_OTHERS, EVT2_CONTINUED = 0x0, 0x1, 0x8, 0xA, 0xE, 0xF
EVT3_ADDR_Y, EVT3_ADDR_X, EVT3_VECT_BASE_X, EVT3_VECT_12, EVT3_VECT_8 = 0x0, 0x2, 0x3, 0x4, 0x5
EVT3_TIME_LOW, EVT3_CONTINUED_4, EVT3_TIME_HIGH, EVT3_EXT_TRIGGER, EVT3_OTHERS, EVT3_CONTINUED_12 = (
    0x6, 0x7, 0x8, 0xA, 0xE, 0xF)
EVT3_LOOP = 1 << 24
EVT3_LOOP_THRESHOLD = (4095 - 10) << 12


# ---------------------------------------------------------------------------------------------- header
def split_header(data: bytes, path: str | os.PathLike = "<bytes>") -> tuple[list[str], int]:
    """The ``%`` header lines (without ``%``) and the byte offset where the binary body starts."""
    lines, i = [], 0
    while data[i:i + 1] == b"%":
        j = data.find(b"\n", i)
        if j < 0:
            raise EventFileError(path, "header line without an end of line", offset=i)
        line = data[i + 1:j].decode("latin-1").strip()
        i = j + 1
        if line == "end":
            break
        lines.append(line)
    return lines, i


def header_sensor(lines: list[str]) -> Optional[tuple[int, int]]:
    """(W, H) stated by the header, if any."""
    text = "\n".join(lines)
    m = re.search(r"geometry\s+(\d+)\s*x\s*(\d+)", text)
    if m:
        return int(m.group(1)), int(m.group(2))
    w = re.search(r"width\s*[=\s]\s*(\d+)", text, re.I)
    h = re.search(r"height\s*[=\s]\s*(\d+)", text, re.I)
    return (int(w.group(1)), int(h.group(1))) if w and h else None


def header_format(lines: list[str]) -> Optional[str]:
    """``"evt2"``/``"evt3"`` from ``% evt 2.0`` / ``% format EVT3;...`` lines, else None."""
    for line in lines:
        low = line.lower().replace(" ", "")
        if low.startswith("evt2") or low.startswith("format") and "evt2" in low:
            return "evt2"
        if low.startswith("evt3") or low.startswith("format") and "evt3" in low:
            return "evt3"
    return None


def _sensor(lines, ev: np.ndarray, sensor_size: Optional[SensorSize]) -> SensorSize:
    if sensor_size is not None:
        return SensorSize(*sensor_size)
    wh = header_sensor(lines)
    if wh is not None:
        return SensorSize(wh[0], wh[1], 2)
    return SensorSize(int(ev["x"].max()) + 1 if len(ev) else 1, int(ev["y"].max()) + 1 if len(ev) else 1, 2)


def _finish(path, lines, ev, sensor_size, stats) -> tuple[np.ndarray, SensorSize]:
    ev = sort_by_time(ev, stats)
    sensor = _sensor(lines, ev, sensor_size)
    check_events(ev, sensor, path)
    if stats is not None:
        stats.n_events += len(ev)
    return ev, sensor


def _forward_fill(mask: np.ndarray, values: np.ndarray, initial: int = 0) -> np.ndarray:
    """At each position, the value of the last position where ``mask`` held (``initial`` before any)."""
    idx = np.where(mask, np.arange(len(mask)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, values[np.maximum(idx, 0)], initial)
    return out


def _unwrap(values: np.ndarray, period: int, drop: int) -> np.ndarray:
    """``values`` (int64) plus ``period`` times the number of drops of at least ``drop`` so far."""
    if len(values) < 2:
        return values
    loops = np.concatenate([[0], np.cumsum(np.diff(values) <= -drop)])
    return values + loops * period


def _bad_type(path, types: np.ndarray, known: tuple[int, ...], body: int, word: int) -> None:
    bad = ~np.isin(types, known)
    if bad.any():
        i = int(np.argmax(bad))
        raise EventFileError(path, f"unknown event type 0x{int(types[i]):X} in word {i}", offset=body + i * word)


# ---------------------------------------------------------------------------------------------- .dat
def read_prophesee_dat(path: str | os.PathLike, sensor_size: Optional[SensorSize] = None,
                       stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read a Prophesee ``.dat`` (EventCD 2D) file; see the module docstring."""
    data = read_file_bytes(path)
    if not data.startswith(b"%"):
        raise EventFileError(path, f"does not start with a '%' header line (found {data[:16]!r})", offset=0)
    lines, body = split_header(data, path)
    if len(data) < body + 2:
        raise EventFileError(path, "no event type / event size bytes after the header", offset=body)
    ev_type, ev_size = data[body], data[body + 1]
    if ev_size != 8:
        raise EventFileError(path, f"event size {ev_size} (type {ev_type}); only 8-byte CD events are supported",
                             offset=body + 1)
    start = body + 2
    n_bytes = len(data) - start
    if n_bytes % 8:
        raise EventFileError(path, f"{n_bytes} event bytes is not a multiple of 8 (incomplete last record)",
                             offset=start + (n_bytes // 8) * 8)
    rec = np.frombuffer(data, "<u4", offset=start).reshape(-1, 2).astype(np.int64)
    t = _unwrap(rec[:, 0], 1 << 32, 1 << 31)
    w = rec[:, 1]
    p = (w >> 28) & 0xF
    if np.any(p > 1):
        i = int(np.argmax(p > 1))
        raise EventFileError(path, f"event {i} has polarity {int(p[i])} (expected 0 or 1)", offset=start + 8 * i + 4)
    ev = make_events(w & 0x3FFF, (w >> 14) & 0x3FFF, t, p)
    return _finish(path, lines, ev, sensor_size, stats)


def write_prophesee_dat(path: str | os.PathLike, events: np.ndarray, sensor_size: SensorSize) -> Path:
    """Write ``events`` as a ``.dat`` EventCD file (header with Width/Height; atomic)."""
    _check_writable(events, sensor_size, 1 << 14, 1 << 32)
    w = (events["x"].astype(np.uint32) | (events["y"].astype(np.uint32) << 14) |
         (events["p"].astype(np.uint32) << 28))
    rec = np.stack([events["t"].astype(np.uint32), w], axis=1).astype("<u4")
    head = (f"% Data file containing CD events\n% Version 2\n% Width {sensor_size[0]}\n% Height {sensor_size[1]}\n"
            "% end\n").encode() + bytes([0, 8])
    return _write(path, head + rec.tobytes())


# ---------------------------------------------------------------------------------------------- EVT 2.0
def decode_evt2(body: bytes, path="<bytes>", offset: int = 0, stats: Optional[ReadStats] = None) -> np.ndarray:
    """Decode EVT 2.0 words into events (unsorted)."""
    if len(body) % 4:
        raise EventFileError(path, f"EVT 2.0 body of {len(body)} bytes is not a whole number of 32-bit words",
                             offset=offset + len(body) // 4 * 4)
    w = np.frombuffer(body, "<u4").astype(np.int64)
    types = w >> 28
    _bad_type(path, types, (EVT2_CD_OFF, EVT2_CD_ON, EVT2_TIME_HIGH, EVT2_EXT_TRIGGER, EVT2_OTHERS, EVT2_CONTINUED),
              offset, 4)
    is_th = types == EVT2_TIME_HIGH
    th = w[is_th] & 0xFFFFFFF
    th = _unwrap(th, 1 << 28, 1 << 27)
    high = np.zeros(len(w), np.int64)
    if th.size:
        full = np.zeros(len(w), np.int64)
        full[is_th] = th
        high = _forward_fill(is_th, full)
    cd = types <= EVT2_CD_ON
    if stats is not None:
        stats.skip("ext_trigger", int(np.sum(types == EVT2_EXT_TRIGGER)))
        stats.skip("others", int(np.sum(types == EVT2_OTHERS)))
        stats.skip("continued", int(np.sum(types == EVT2_CONTINUED)))
    wc = w[cd]
    return make_events((wc >> 11) & 0x7FF, wc & 0x7FF, (high[cd] << 6) | ((wc >> 22) & 0x3F), types[cd])


def encode_evt2(events: np.ndarray) -> bytes:
    """EVT 2.0 words for time-sorted events: a TIME_HIGH whenever ``t >> 6`` changes, one CD word per event."""
    t = events["t"].astype(np.int64)
    high = (t >> 6) & 0xFFFFFFF
    new_high = np.ones(len(t), bool)
    new_high[1:] = high[1:] != high[:-1]
    cd = ((EVT2_CD_OFF + (events["p"].astype(np.int64) != 0)) << 28) | ((t & 0x3F) << 22) | \
        (events["x"].astype(np.int64) << 11) | events["y"].astype(np.int64)
    words = np.empty(len(t) + int(new_high.sum()), np.int64)
    pos = np.arange(len(t)) + np.cumsum(new_high)  # each event's slot, after the TIME_HIGHs before it
    words[pos] = cd
    words[pos[new_high] - 1] = (EVT2_TIME_HIGH << 28) | high[new_high]
    return words.astype("<u4").tobytes()


# ---------------------------------------------------------------------------------------------- EVT 3.0
def decode_evt3(body: bytes, path="<bytes>", offset: int = 0, stats: Optional[ReadStats] = None) -> np.ndarray:
    """Decode EVT 3.0 words into events (unsorted); see the module docstring for the time rules."""
    if len(body) % 2:
        raise EventFileError(path, "EVT 3.0 body has an odd number of bytes (truncated 16-bit word)",
                             offset=offset + len(body) - 1)
    w = np.frombuffer(body, "<u2").astype(np.int64)
    types = w >> 12
    _bad_type(path, types, (EVT3_ADDR_Y, EVT3_ADDR_X, EVT3_VECT_BASE_X, EVT3_VECT_12, EVT3_VECT_8, EVT3_TIME_LOW,
                            EVT3_CONTINUED_4, EVT3_TIME_HIGH, EVT3_EXT_TRIGGER, EVT3_OTHERS, EVT3_CONTINUED_12),
              offset, 2)
    n = len(w)
    val12 = w & 0xFFF
    is_th, is_tl = types == EVT3_TIME_HIGH, types == EVT3_TIME_LOW
    # time high, with 24-bit loops detected on the sequence of TIME_HIGH words
    th_seq = _unwrap(val12[is_th] << 12, EVT3_LOOP, EVT3_LOOP_THRESHOLD)
    full = np.zeros(n, np.int64)
    full[is_th] = th_seq
    high = _forward_fill(is_th, full)
    low = _forward_fill(is_tl, val12)
    # a TIME_LOW below the previous TIME_LOW with no TIME_HIGH in between: one skipped TIME_HIGH
    tl_pos = np.flatnonzero(is_tl)
    wraps = np.zeros(n, np.int64)
    if tl_pos.size > 1:
        th_count = np.cumsum(is_th)
        dropped = (val12[tl_pos[1:]] < val12[tl_pos[:-1]]) & (th_count[tl_pos[1:]] == th_count[tl_pos[:-1]])
        wraps[tl_pos[1:][dropped]] = 1
    cum_wraps = np.cumsum(wraps)
    wraps_since_high = cum_wraps - _forward_fill(is_th, cum_wraps)
    t = high + low + (wraps_since_high << 12)
    y = _forward_fill(types == EVT3_ADDR_Y, w & 0x7FF)
    # single events
    single = types == EVT3_ADDR_X
    # vector events: base x and polarity from the last VECT_BASE_X, advanced by earlier vectors since it
    is_base = types == EVT3_VECT_BASE_X
    is_vec = (types == EVT3_VECT_12) | (types == EVT3_VECT_8)
    width = np.where(types == EVT3_VECT_12, 12, np.where(types == EVT3_VECT_8, 8, 0))
    cum_width = np.cumsum(width) - width  # widths of the vector words before this one
    base = _forward_fill(is_base, w & 0x7FF) + cum_width - _forward_fill(is_base, cum_width)
    base_p = _forward_fill(is_base, (w >> 11) & 1)
    vec_pos = np.flatnonzero(is_vec)
    mask = np.where(types[vec_pos] == EVT3_VECT_12, val12[vec_pos], w[vec_pos] & 0xFF)
    bits = (mask[:, None] >> np.arange(12)[None, :]) & 1
    vi, k = np.nonzero(bits)
    vpos = vec_pos[vi]
    # merge single and vector events in word order (k orders events within one vector word)
    pos = np.concatenate([np.flatnonzero(single), vpos])
    sub = np.concatenate([np.zeros(int(single.sum()), np.int64), k])
    order = np.lexsort((sub, pos))
    x = np.concatenate([w[single] & 0x7FF, base[vpos] + k])[order]
    p = np.concatenate([(w[single] >> 11) & 1, base_p[vpos]])[order]
    if stats is not None:
        stats.skip("ext_trigger", int(np.sum(types == EVT3_EXT_TRIGGER)))
        stats.skip("others", int(np.sum(types == EVT3_OTHERS)))
        stats.skip("continued", int(np.sum((types == EVT3_CONTINUED_4) | (types == EVT3_CONTINUED_12))))
        stats.repair("evt3_time_low_wrap", int(wraps.sum()))
    pos = pos[order]
    return make_events(x, y[pos], t[pos], p)


def encode_evt3(events: np.ndarray) -> bytes:
    """EVT 3.0 words for time-sorted events, as a camera writes them: a TIME_HIGH for every 4096-µs
    period from the first event to the last (so 24-bit loops are visible), TIME_LOW whenever the time
    changes, ADDR_Y whenever y changes, one ADDR_X per event."""
    words: list[int] = []
    period = last_t = last_y = None
    for x, y, t, p in zip(events["x"].tolist(), events["y"].tolist(), events["t"].tolist(), events["p"].tolist()):
        if period is None:
            period = (t >> 12) - 1
        while period < t >> 12:
            period += 1
            words.append((EVT3_TIME_HIGH << 12) | (period & 0xFFF))
            last_t = None
        if t != last_t:
            words.append((EVT3_TIME_LOW << 12) | (t & 0xFFF))
            last_t = t
        if y != last_y:
            words.append((EVT3_ADDR_Y << 12) | y)
            last_y = y
        words.append((EVT3_ADDR_X << 12) | ((p != 0) << 11) | x)
    return np.asarray(words, "<u2").tobytes()


# ---------------------------------------------------------------------------------------------- .raw
def read_prophesee_raw(path: str | os.PathLike, sensor_size: Optional[SensorSize] = None,
                       stats: Optional[ReadStats] = None, encoding: Optional[str] = None) -> tuple[np.ndarray, SensorSize]:
    """Read a ``.raw`` file; EVT 2.0 or 3.0 from its header (``% evt 3.0``, ``% format EVT3;...``) or ``encoding``."""
    data = read_file_bytes(path)
    if not data.startswith(b"%"):
        raise EventFileError(path, f"does not start with a '%' header line (found {data[:16]!r})", offset=0)
    lines, body = split_header(data, path)
    fmt = encoding or header_format(lines)
    if fmt not in ("evt2", "evt3"):
        raise EventFileError(path, "the header names no EVT 2.0 / 3.0 encoding (expected '% evt 3.0' or "
                                   "'% format EVT3;...'); pass encoding='evt2' or 'evt3'", offset=0)
    decode = decode_evt2 if fmt == "evt2" else decode_evt3
    ev = decode(data[body:], path, body, stats)
    return _finish(path, lines, ev, sensor_size, stats)


def write_prophesee_raw(path: str | os.PathLike, events: np.ndarray, sensor_size: SensorSize,
                        encoding: str = "evt3") -> Path:
    """Write ``events`` as a ``.raw`` EVT 2.0 / 3.0 file with an OpenEB-style header (atomic)."""
    if encoding not in ("evt2", "evt3"):
        raise ValueError(f"encoding must be 'evt2' or 'evt3', got {encoding!r}")
    _check_writable(events, sensor_size, 1 << 11, 1 << 34)
    events = sort_by_time(events)
    version = "2.0" if encoding == "evt2" else "3.0"
    head = (f"% evt {version}\n% format {encoding.upper()};height={sensor_size[1]};width={sensor_size[0]}\n"
            f"% geometry {sensor_size[0]}x{sensor_size[1]}\n% end\n").encode()
    return _write(path, head + (encode_evt2(events) if encoding == "evt2" else encode_evt3(events)))


def _check_writable(events: np.ndarray, sensor_size: SensorSize, coord_limit: int, t_limit: int) -> None:
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    check_events(events, SensorSize(*sensor_size))
    if sensor_size[0] > coord_limit or sensor_size[1] > coord_limit:
        raise ValueError(f"sensor {tuple(sensor_size)} exceeds the format's {coord_limit} addresses")
    if events.size and (events["t"].min() < 0 or events["t"].max() >= t_limit):
        raise ValueError(f"timestamps must lie in [0, {t_limit}) µs for this format")


def _write(path, payload: bytes) -> Path:
    def write(tmp: Path) -> None:
        Path(tmp).write_bytes(payload)
    return atomic_write(path, write)
