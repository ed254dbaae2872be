import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_agmm.events import read_events
from neuro_agmm.events.aedat2 import decode_dvs128, read_aedat2, write_aedat2
from neuro_agmm.events.types import EventFileError, ReadStats

from ev_helpers import random_events


def _file(tmp_path, pairs, header=b"#!AER-DAT2.0\r\n# test\r\n"):
    p = tmp_path / "r.aedat"
    p.write_bytes(header + b"".join(struct.pack(">II", a, t) for a, t in pairs))
    return p


def test_orientation_and_polarity_pinned(tmp_path):
    # raw address: y_raw=3, x_raw=5, bit0=1  -> jAER: OFF; image orientation x=127-5, y=127-3
    addr = (3 << 8) | (5 << 1) | 1
    p = _file(tmp_path, [(addr, 100), ((3 << 8) | (5 << 1), 200)])
    ev, sensor = read_aedat2(p)
    assert sensor == (128, 128, 2)
    assert ev["x"].tolist() == [122, 122] and ev["y"].tolist() == [124, 124]
    assert ev["p"].tolist() == [0, 1] and ev["t"].tolist() == [100, 200]
    raw, _ = read_aedat2(p, orientation="raw")
    assert raw["x"].tolist() == [5, 5] and raw["y"].tolist() == [3, 3] and raw["p"].tolist() == [0, 1]


def test_external_events_counted_not_silent(tmp_path):
    p = _file(tmp_path, [(0x8000, 5), (2, 6)])
    stats = ReadStats()
    ev, _ = read_aedat2(p, stats=stats)
    assert len(ev) == 1 and stats.skipped == {"external": 1}


def test_errors_name_offset(tmp_path):
    p = _file(tmp_path, [(2, 1)])
    p.write_bytes(p.read_bytes() + b"\0\0\0")
    with pytest.raises(EventFileError, match="at byte 30: body of 11 bytes"):  # header 22 bytes + 8
        read_aedat2(p)
    q = _file(tmp_path, [(2, 1), (1 << 20, 2)])
    with pytest.raises(EventFileError, match="at byte 30: address 0x00100000"):
        read_aedat2(q)
    r = tmp_path / "x.aedat"
    r.write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(EventFileError, match="AER-DAT2.0"):
        read_aedat2(r)


def test_timestamp_wrap(tmp_path):
    p = _file(tmp_path, [(2, 2**32 - 10), (2, 5)])
    ev, _ = read_aedat2(p)
    assert ev["t"].tolist() == [2**32 - 10, 2**32 + 5]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 200), st.integers(0, 2**31), st.sampled_from(["image", "raw"]))
def test_roundtrip_property(tmp_path_factory, n, seed, orientation):
    ev = random_events(np.random.default_rng(seed), n, 128, 128)
    p = tmp_path_factory.mktemp("a2") / "r.aedat"
    write_aedat2(p, ev, orientation=orientation)
    back, _ = read_aedat2(p, orientation=orientation)
    np.testing.assert_array_equal(back, ev)
    x, y, pol = decode_dvs128(np.arange(0x8000), "image")
    assert x.min() == 0 and x.max() == 127 and y.max() == 127 and set(pol.tolist()) == {0, 1}


def test_dispatch(tmp_path):
    ev = random_events(np.random.default_rng(0), 50, 128, 128)
    write_aedat2(tmp_path / "c.aedat", ev)
    np.testing.assert_array_equal(read_events(tmp_path / "c.aedat")[0], ev)
