"""AEDAT 4.0 (iniVation DV) event files, read and written by a small reader of our own.

Why our own: the ``aedat`` package is a compiled wheel the deployment may lack; the
subset below needs only ``struct``, NumPy and ``lz4``.

Layout: ``#!AER-DAT4.0\\r\\n``; ``int32`` header length; an ``IOHE`` flatbuffer
``IOHeader {compression: int32 enum (0 none, 1 LZ4, 2 LZ4 high, 3 ZSTD, 4 ZSTD high);
dataTablePosition: int64 (-1 = none); infoNode: string (XML)}``. Then packets:
``int32 streamId, int32 size`` and ``size`` bytes holding one (compressed) size-prefixed
flatbuffer. Packets of an ``EVTS`` stream hold ``EventPacket {elements: [Event]}``
with 16-byte structs ``{int64 t µs, int16 x, int16 y, bool on, 3 pad}``.

Supported subset (flatbuffers decoded by hand): the IOHeader table, the XML info node
(streams whose ``typeIdentifier`` is ``EVTS`` and their ``sizeX``/``sizeY``), event
packets, compression none/LZ4/LZ4-high (LZ4 frame format); ZSTD only if the
``zstandard`` package happens to be installed. Packets of other streams (frames, IMU,
triggers) are skipped and counted (``ReadStats.skipped["stream_<id>_packets"]``).
Reading stops at the data table (``dataTablePosition``) or the end of the file; the
table itself is not needed. Orientation and polarity as stored (origin top-left,
``on = 1``). With several event streams, pass ``stream_id``.

Left out: writing compressed ZSTD, the data table, frames/IMU/trigger payloads.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import lz4.frame
import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events, make_events,
                                     read_file_bytes, sort_by_time)

MAGIC = b"#!AER-DAT4.0\r\n"
COMPRESSION = {0: "none", 1: "lz4", 2: "lz4_high", 3: "zstd", 4: "zstd_high"}
EVENT_STRUCT = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")])


class _FB:
    """Minimal flatbuffer table access on a bytes object (little-endian)."""

    def __init__(self, buf: bytes, ident: bytes, path, offset: int):
        self.path, self.offset = path, offset
        if len(buf) >= 12 and buf[8:12] == ident:  # size-prefixed
            buf = buf[4:]
        if len(buf) < 8 or buf[4:8] != ident:
            raise EventFileError(path, f"flatbuffer without identifier {ident!r}", offset=offset)
        self.buf = buf
        self.root = self.u32(0)

    def _unpack(self, fmt: str, pos: int):
        """``struct.unpack_from`` that never reads outside the buffer (every read of a field goes through it)."""
        if pos < 0 or pos + struct.calcsize(fmt) > len(self.buf):
            raise EventFileError(self.path, f"flatbuffer read at {pos} outside its {len(self.buf)} bytes (corrupt)",
                                 offset=self.offset)
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def u32(self, pos: int) -> int:
        return self._unpack("<I", pos)

    def field(self, table: int, index: int) -> Optional[int]:
        """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
        vt = table - self._unpack("<i", table)
        vt_size = self._unpack("<H", vt)
        entry = 4 + 2 * index
        if entry + 2 > vt_size:
            return None
        off = self._unpack("<H", vt + entry)
        return table + off if off else None

    def scalar(self, table: int, index: int, fmt: str, default):
        pos = self.field(table, index)
        return default if pos is None else self._unpack(fmt, pos)

    def indirect(self, table: int, index: int) -> Optional[int]:
        pos = self.field(table, index)
        return None if pos is None else pos + self.u32(pos)


def _decompress(data: bytes, compression: int, path, offset: int, limit: int) -> bytes:
    """One packet's payload, never expanded past ``limit`` bytes (a decompression bomb is an error)."""
    if compression == 0:
        return data
    try:
        if compression in (1, 2):
            dec = lz4.frame.LZ4FrameDecompressor()
            out = dec.decompress(data, max_length=limit)
            if not dec.eof:
                raise EventFileError(path, f"packet expands past the {limit}-byte read limit "
                                           f"(NEURO_AGMM_MAX_READ_BYTES)" if not dec.needs_input
                                     else "truncated LZ4 frame", offset=offset)
            return out
        if compression in (3, 4):
            try:
                import zstandard
            except ImportError:
                raise EventFileError(path, "ZSTD-compressed AEDAT4 needs the 'zstandard' package "
                                           "(not installed); re-export with LZ4 or no compression") from None
            out = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            if len(out) > limit:
                raise EventFileError(path, f"packet expands past the {limit}-byte read limit", offset=offset)
            return out
    except EventFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any codec failure is a corrupt packet
        raise EventFileError(path, f"cannot decompress packet ({COMPRESSION[compression]}): {e}", offset=offset) from e
    raise EventFileError(path, f"unknown compression {compression}", offset=offset)


def _event_streams(xml: str, path) -> dict[int, SensorSize]:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise EventFileError(path, f"info node is not valid XML ({e})") from e
    streams = {}
    for node in root.iter("node"):
        attrs = {a.get("key"): a.text for a in node.findall("attr")}
        if attrs.get("typeIdentifier") == "EVTS":
            sizes = {a.get("key"): a.text for a in node.iter("attr")}
            try:
                streams[int(node.get("name"))] = SensorSize(int(sizes["sizeX"]), int(sizes["sizeY"]), 2)
            except (KeyError, TypeError, ValueError):
                raise EventFileError(path, f"EVTS stream {node.get('name')!r} lacks integer sizeX/sizeY") from None
    return streams


def read_aedat4(path: str | os.PathLike, stream_id: Optional[int] = None,
                stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read the polarity events of one EVTS stream of an AEDAT 4.0 file, sorted by time."""
    path = Path(path)
    data = read_file_bytes(path, MAGIC)
    pos = len(MAGIC)
    if pos + 4 > len(data):
        raise EventFileError(path, "truncated before the header length", offset=pos)
    hlen = struct.unpack_from("<i", data, pos)[0]
    if hlen <= 0 or pos + 4 + hlen > len(data):
        raise EventFileError(path, f"header length {hlen} does not fit the file", offset=pos)
    fb = _FB(data[pos + 4:pos + 4 + hlen], b"IOHE", path, pos + 4)
    compression = fb.scalar(fb.root, 0, "<i", 0)
    table_pos = fb.scalar(fb.root, 1, "<q", -1)
    spos = fb.indirect(fb.root, 2)
    if spos is None:
        raise EventFileError(path, "IOHeader has no info node", offset=pos + 4)
    xml = fb.buf[spos + 4:spos + 4 + fb.u32(spos)].decode("utf-8", "replace")
    if compression not in COMPRESSION:
        raise EventFileError(path, f"unknown compression {compression}", offset=pos + 4)
    streams = _event_streams(xml, path)
    if not streams:
        raise EventFileError(path, "no event (EVTS) stream in the info node")
    if stream_id is None:
        if len(streams) > 1:
            raise EventFileError(path, f"several event streams {sorted(streams)}; pass stream_id")
        stream_id = next(iter(streams))
    if stream_id not in streams:
        raise EventFileError(path, f"no event stream {stream_id} (have {sorted(streams)})")
    sensor = streams[stream_id]
    pos = pos + 4 + hlen
    if 0 <= table_pos < pos:
        raise EventFileError(path, f"data table position {table_pos} lies inside the header (packets start at "
                                   f"{pos})", offset=len(MAGIC) + 4)
    end = table_pos if 0 <= table_pos <= len(data) else len(data)
    from neuro_agmm.artifact.h5 import MAX_READ_BYTES
    budget = MAX_READ_BYTES  # decompressed bytes left for the whole file
    local = ReadStats()
    chunks = []
    while pos < end:
        if pos + 8 > end:
            raise EventFileError(path, f"truncated packet header ({end - pos} of 8 bytes)", offset=pos)
        sid, size = struct.unpack_from("<ii", data, pos)
        if size < 0 or pos + 8 + size > end:
            raise EventFileError(path, f"truncated packet: {size} bytes promised, {end - pos - 8} left", offset=pos)
        if sid != stream_id:
            local.skip(f"stream_{sid}_packets", 1)
        else:
            payload = _decompress(data[pos + 8:pos + 8 + size], compression, path, pos, budget)
            budget -= len(payload)
            pkt = _FB(payload, b"EVTS", path, pos)
            vec = pkt.indirect(pkt.root, 0)
            if vec is not None:
                n = pkt.u32(vec)
                if vec + 4 + 16 * n > len(pkt.buf):
                    raise EventFileError(path, f"event vector of {n} elements overruns its packet", offset=pos)
                chunks.append(np.frombuffer(pkt.buf, EVENT_STRUCT, count=n, offset=vec + 4))
        pos += 8 + size
    raw = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_STRUCT)
    ev = sort_by_time(make_events(raw["x"], raw["y"], raw["t"], raw["on"] != 0), local)
    check_events(ev, sensor, path)
    local.n_events = len(ev)
    if stats is not None:
        stats.merge(local)
    return ev, sensor


# ----------------------------------------------------------------------------- writer (tests, samples)

def _header_fb(compression: int, table_pos: int, xml: str) -> bytes:
    s = xml.encode()
    vt = struct.pack("<HHHHH", 10, 20, 4, 8, 16) + b"\0\0"  # 12 bytes at 8..20
    buf = bytearray(struct.pack("<I", 24) + b"IOHE" + vt + b"\0" * 4)  # table at 24
    buf += struct.pack("<iiqI", 24 - 8, compression, table_pos, 44 - 40)  # soffset, fields; string at 44
    buf += struct.pack("<I", len(s)) + s + b"\0"
    buf += b"\0" * (-len(buf) % 4)
    return struct.pack("<I", len(buf)) + bytes(buf)


def _events_fb(events: np.ndarray) -> bytes:
    body = np.zeros(len(events), EVENT_STRUCT)
    body["t"], body["x"], body["y"], body["on"] = events["t"], events["x"], events["y"], events["p"] != 0
    buf = struct.pack("<I", 16) + b"EVTS" + struct.pack("<HHH", 6, 8, 4) + b"\0\0"  # vtable at 8
    buf += struct.pack("<iI", 16 - 8, 28 - 20) + b"\0" * 4  # table at 16, field at 20 -> vector at 28
    buf += struct.pack("<I", len(events)) + body.tobytes()
    return struct.pack("<I", len(buf)) + buf


def _info_xml(sensor: SensorSize, stream_id: int, compression: int) -> str:
    return (f'<dv version="2.0"><node name="outInfo" path="/outInfo/"><node name="{stream_id}" '
            f'path="/outInfo/{stream_id}/"><attr key="compression" type="string">{COMPRESSION[compression].upper()}'
            '</attr><attr key="typeIdentifier" type="string">EVTS</attr><node name="info" path="/outInfo/0/info/">'
            f'<attr key="sizeX" type="int">{sensor.W}</attr><attr key="sizeY" type="int">{sensor.H}</attr>'
            '</node></node></node></dv>')


def write_aedat4(path: str | os.PathLike, events: np.ndarray, sensor_size: SensorSize, compression: int = 1,
                 packet_size: int = 4096, stream_id: int = 0, foreign_packets: int = 0) -> Path:
    """Write ``events`` as AEDAT 4.0 (compression 0 none or 1/2 LZ4; atomic).

    ``foreign_packets``: that many packets of another stream (id ``stream_id + 1``) are
    interleaved, to test that readers skip them.
    """
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    if compression not in (0, 1, 2):
        raise ValueError("the writer supports compression 0 (none), 1 and 2 (LZ4)")
    out = [MAGIC, _header_fb(compression, -1, _info_xml(SensorSize(*sensor_size), stream_id, compression))]

    def packet(sid: int, payload: bytes) -> bytes:
        if compression:
            payload = lz4.frame.compress(payload, compression_level=9 if compression == 2 else 0)
        return struct.pack("<ii", sid, len(payload)) + payload

    for k in range(foreign_packets):
        out.append(packet(stream_id + 1, b"\0" * 24))
    for s in range(0, max(len(events), 1), packet_size):
        out.append(packet(stream_id, _events_fb(events[s:s + packet_size])))
    data = b"".join(out)
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
