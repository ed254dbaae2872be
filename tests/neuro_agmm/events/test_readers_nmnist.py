import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_agmm.events import read_events
from neuro_agmm.events.nmnist import (NMNIST_SENSOR, OVERFLOW_INCREMENT, decode_atis, encode_atis, read_nmnist,
                                      write_nmnist)
from neuro_agmm.events.types import EventFileError, ReadStats, make_events

from ev_helpers import random_events


def test_bit_layout_by_hand(tmp_path):
    # x=5, y=7, ON, t = 0x12345 ; x=33, y=0, OFF, t = 0x7FFFFF (max 23 bits)
    raw = bytes([5, 7, 0x80 | 0x01, 0x23, 0x45, 33, 0, 0x7F, 0xFF, 0xFF])
    (tmp_path / "a.bin").write_bytes(raw)
    ev, sensor = read_nmnist(tmp_path / "a.bin")
    assert sensor == NMNIST_SENSOR
    assert ev["x"].tolist() == [5, 33] and ev["y"].tolist() == [7, 0]
    assert ev["p"].tolist() == [1, 0] and ev["t"].tolist() == [0x12345, 0x7FFFFF]


def test_overflow_marker_convention():
    # event, marker (y == 240), event: the second event's timestamp gets +2**13, the marker is dropped
    raw = np.array([1, 1, 0, 0, 10, 0, 240, 0, 0, 0, 2, 2, 0x80, 0, 5], np.uint8)
    stats = ReadStats()
    ev = decode_atis(raw, stats=stats)
    assert ev["t"].tolist() == [10, OVERFLOW_INCREMENT + 5]
    assert stats.skipped == {"overflow_marker": 1} and stats.n_events == 2
    with pytest.raises(EventFileError, match="byte 5"):  # taken literally, row 240 is outside the sensor
        decode_atis(raw, overflow_markers=False)


def test_length_not_multiple_of_5(tmp_path):
    p = tmp_path / "bad.bin"
    p.write_bytes(bytes(12))
    with pytest.raises(EventFileError, match=r"bad\.bin at byte 10: length 12 is not a multiple of 5"):
        read_nmnist(p)


def test_mislabelled_sensor(tmp_path):
    p = tmp_path / "big.bin"
    write_nmnist(p, make_events([1, 100], [2, 3], [0, 1], [0, 1]))
    with pytest.raises(EventFileError, match="byte 5.*outside sensor"):
        read_nmnist(p)
    ev, sensor = read_nmnist(p, sensor_size=None)  # N-Caltech: infer the size
    assert sensor == (101, 4, 2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 300), st.integers(0, 2**31), st.integers(0, 2**20))
def test_roundtrip_property(n, seed, t_max_extra):
    rng = np.random.default_rng(seed)
    ev = random_events(rng, n, 34, 34, t_max=(1 << 23) + t_max_extra)  # some need overflow markers
    back = decode_atis(np.frombuffer(encode_atis(ev), np.uint8))
    np.testing.assert_array_equal(back, ev)


def test_file_roundtrip_and_dispatch(tmp_path):
    ev = random_events(np.random.default_rng(1), 500, 34, 34, t_max=300_000)
    write_nmnist(tmp_path / "x.bin", ev)
    back, sensor = read_events(tmp_path / "x.bin")
    np.testing.assert_array_equal(back, ev)
