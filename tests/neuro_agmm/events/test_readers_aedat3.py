import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_agmm.events import read_events
from neuro_agmm.events.aedat3 import (PACKET_HEADER, GestureSegment, cut_segments, parse_gesture_name,
                                      read_aedat3, read_gesture_labels, write_aedat3, write_gesture_labels)
from neuro_agmm.events.types import EventFileError, ReadStats, make_events

from ev_helpers import random_events

HEAD = b"#!AER-DAT3.1\r\n#!END-HEADER\r\n"


def test_bit_layout_and_overflow(tmp_path):
    data = (5 << 17) | (9 << 2) | (1 << 1) | 1  # x=5, y=9, ON, valid
    invalid = (1 << 17) | 0
    body = np.array([[data, 123], [invalid, 124]], "<u4").tobytes()
    p = tmp_path / "g.aedat"
    p.write_bytes(HEAD + PACKET_HEADER.pack(1, 1, 8, 4, 2, 2, 2, 1) + body)
    stats = ReadStats()
    ev, sensor = read_aedat3(p, stats=stats)
    assert sensor == (128, 128, 2)
    assert ev.tolist() == [(5, 9, 123 + (2 << 31), 1)]
    assert stats.skipped == {"invalid": 1}


def test_skips_non_polarity_packets(tmp_path):
    ev = random_events(np.random.default_rng(0), 300, 128, 128)
    stats = ReadStats()
    write_aedat3(tmp_path / "g.aedat", ev, packet_size=64, extra_packets=((0, 3), (2, 5)))
    back, _ = read_aedat3(tmp_path / "g.aedat", stats=stats)
    np.testing.assert_array_equal(back, ev)
    assert stats.skipped == {"packet_type_0": 3, "packet_type_2": 5} and stats.n_events == 300


def test_truncated_packet_names_offset(tmp_path):
    p = tmp_path / "t.aedat"
    write_aedat3(p, random_events(np.random.default_rng(0), 10, 128, 128))
    data = p.read_bytes()
    p.write_bytes(data[:-4])
    first_packet = data.index(b"#!END-HEADER\r\n") + 14
    with pytest.raises(EventFileError, match=f"at byte {first_packet}: truncated packet"):
        read_aedat3(p)


def test_sensor_mismatch(tmp_path):
    p = tmp_path / "t.aedat"
    write_aedat3(p, make_events([200], [1], [0], [1]))
    with pytest.raises(EventFileError, match="outside sensor"):
        read_aedat3(p)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 300), st.integers(0, 2**31))
def test_roundtrip_property(tmp_path_factory, n, seed):
    ev = random_events(np.random.default_rng(seed), n, 128, 128, t_max=2**33)  # crosses overflow epochs
    p = tmp_path_factory.mktemp("a3") / "r.aedat"
    write_aedat3(p, ev, packet_size=50)
    np.testing.assert_array_equal(read_events(p)[0], ev)


def test_gesture_labels(tmp_path):
    segs = [GestureSegment(0, 100, 200), GestureSegment(10, 200, 300)]
    p = tmp_path / "user07_fluorescent_led_labels.csv"
    write_gesture_labels(p, segs)
    assert p.read_text().splitlines()[1] == "1,100,200"  # class 1..11 on disk
    assert read_gesture_labels(p) == segs
    assert parse_gesture_name(p) == (7, "fluorescent_led")
    assert parse_gesture_name("user24_lab.aedat") == (24, "lab")
    ev = make_events([0] * 5, [0] * 5, [99, 100, 199, 200, 300], [1] * 5)
    cut = cut_segments(ev, segs)
    assert [c[0]["t"].tolist() for c in cut] == [[100, 199], [200]]  # start <= t < end
    assert [c[1] for c in cut] == [0, 10]
    bad = tmp_path / "user01_x_labels.csv"
    bad.write_text("class,startTime_usec,endTime_usec\n12,0,5\n")
    with pytest.raises(EventFileError, match="byte 34"):
        read_gesture_labels(bad)
