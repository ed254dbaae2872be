import struct

import lz4.frame
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_agmm.events import read_events
from neuro_agmm.events.aedat4 import MAGIC, _events_fb, _header_fb, _info_xml, read_aedat4, write_aedat4
from neuro_agmm.events.types import EventFileError, ReadStats, SensorSize, make_events

from ev_helpers import random_events

DAVIS = SensorSize(346, 260, 2)


@pytest.mark.parametrize("compression", [0, 1, 2])
def test_roundtrip_with_foreign_stream(tmp_path, compression):
    ev = random_events(np.random.default_rng(compression), 1000, 346, 260)
    stats = ReadStats()
    write_aedat4(tmp_path / "r.aedat4", ev, DAVIS, compression=compression, packet_size=300, foreign_packets=2)
    back, sensor = read_aedat4(tmp_path / "r.aedat4", stats=stats)
    assert sensor == DAVIS
    np.testing.assert_array_equal(back, ev)
    assert stats.skipped == {"stream_1_packets": 2} and stats.n_events == 1000


def test_hand_built_event_struct(tmp_path):
    # one event t=7, x=3, y=4, on: check the 16-byte element layout {int64 t, int16 x, int16 y, bool on, pad}
    fb = _events_fb(make_events([3], [4], [7], [1]))
    assert fb[4:8] == b"\x10\0\0\0" and fb[8:12] == b"EVTS"
    assert fb[-16:] == struct.pack("<qhh?3x", 7, 3, 4, True)
    header = _header_fb(0, -1, _info_xml(DAVIS, 0, 0))
    p = tmp_path / "h.aedat4"
    p.write_bytes(MAGIC + header + struct.pack("<ii", 0, len(fb)) + fb)
    ev, _ = read_aedat4(p)
    assert ev.tolist() == [(3, 4, 7, 1)]


def test_truncated_and_corrupt(tmp_path):
    p = tmp_path / "t.aedat4"
    write_aedat4(p, random_events(np.random.default_rng(0), 100, 346, 260), DAVIS, compression=1)
    data = p.read_bytes()
    p.write_bytes(data[:-10])
    with pytest.raises(EventFileError, match="truncated packet"):
        read_aedat4(p)
    body = len(MAGIC) + 4 + struct.unpack_from("<i", data, len(MAGIC))[0]
    bad = bytearray(data)
    bad[body + 8:body + 20] = b"\xff" * 12  # garble the LZ4 frame
    p.write_bytes(bytes(bad))
    with pytest.raises(EventFileError, match=f"at byte {body}: cannot decompress"):
        read_aedat4(p)
    p.write_bytes(b"#!AER-DAT4.0\r\n" + struct.pack("<i", 1000))
    with pytest.raises(EventFileError, match="header length 1000"):
        read_aedat4(p)


def test_zstd_is_reported(tmp_path):
    fb = _events_fb(make_events([1], [1], [1], [1]))
    p = tmp_path / "z.aedat4"
    p.write_bytes(MAGIC + _header_fb(3, -1, _info_xml(DAVIS, 0, 0)) + struct.pack("<ii", 0, len(fb)) + fb)
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(EventFileError, match="zstandard"):
            read_aedat4(p)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 500), st.integers(0, 2**31))
def test_roundtrip_property(tmp_path_factory, n, seed):
    ev = random_events(np.random.default_rng(seed), n, 128, 128, t_max=2**40)
    p = tmp_path_factory.mktemp("a4") / "r.aedat4"
    write_aedat4(p, ev, SensorSize(128, 128, 2), packet_size=97)
    back, sensor = read_events(p)
    np.testing.assert_array_equal(back, ev)
    assert lz4.frame is not None


@pytest.mark.parametrize("compression", [0, 1, 2])
def test_aedat_package_decodes_the_same_events(tmp_path, compression):
    """The ``aedat`` package (Rust, iniVation's flatbuffers schema) as the judge of the files we read and write."""
    aedat = pytest.importorskip("aedat", reason="aedat is in requirements/lock.txt")
    from neuro_agmm.events.structured import as_events

    ev = random_events(np.random.default_rng(compression), 9000, 346, 260)
    path = write_aedat4(tmp_path / "r.aedat4", ev, SensorSize(346, 260, 2), compression=compression, packet_size=2500)
    decoder = aedat.Decoder(str(path))
    assert decoder.id_to_stream() == {0: {"type": "events", "width": 346, "height": 260}}
    theirs = np.concatenate([pk["events"] for pk in decoder if "events" in pk])
    ours, sensor = read_aedat4(path)
    assert sensor == SensorSize(346, 260, 2)
    assert np.array_equal(as_events(theirs), ours) and np.array_equal(ours, ev)
