"""Prophesee .dat / EVT 2.0 / EVT 3.0: files written word by word from the published layouts, our writers,
and expelliarmus 1.1.12 (an independent C decoder and encoder) as the judge in both directions."""

import numpy as np
import pytest

from ev_helpers import random_events
from neuro_agmm.events import EventFileError, ReadStats, SensorSize, make_events, read_events
from neuro_agmm.events.prophesee import (EVT3_LOOP, read_prophesee_dat, read_prophesee_raw, write_prophesee_dat,
                                         write_prophesee_raw)

expelliarmus = pytest.importorskip("expelliarmus", reason="expelliarmus is in requirements/lock.txt")

SENSOR = SensorSize(304, 240, 2)  # Gen1 / ATIS


def w3(kind, value):
    return (kind << 12) | value


def w2(kind, value):
    return (kind << 28) | value


def cd2(p, t_lsb, x, y):
    return w2(p, (t_lsb << 22) | (x << 11) | y)


def ours(ev):
    return [tuple(int(v) for v in e) for e in ev[["t", "x", "y", "p"]].tolist()]


def wizard_read(path, encoding):
    arr = expelliarmus.Wizard(encoding=encoding).read(str(path))
    return [(int(t), int(x), int(y), int(p)) for t, x, y, p in zip(arr["t"], arr["x"], arr["y"], arr["p"])]


def wizard_write(path, ev, encoding):
    arr = np.zeros(len(ev), np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.uint8)]))
    for f in ("t", "x", "y", "p"):
        arr[f] = ev[f]
    expelliarmus.Wizard(encoding=encoding).save(str(path), arr)


def test_dat_written_byte_by_byte(tmp_path):
    head = b"% Date 2017-01-01\n% Version 2\n% Width 120\n% Height 100\n" + bytes([0, 8])
    recs = np.array([[5, 3 | (7 << 14) | (1 << 28)], [9, 119 | (99 << 14)], [9, 0 | (1 << 14) | (1 << 28)]], "<u4")
    (tmp_path / "a.dat").write_bytes(head + recs.tobytes())
    ev, sensor = read_events(tmp_path / "a.dat")
    assert sensor == SensorSize(120, 100, 2)
    assert ours(ev) == [(5, 3, 7, 1), (9, 119, 99, 0), (9, 0, 1, 1)]
    assert ours(ev) == wizard_read(tmp_path / "a.dat", "dat")


def test_evt2_written_word_by_word(tmp_path):
    words = [w2(8, 0), cd2(1, 5, 10, 20), w2(0xA, (3 << 22) | (1 << 8) | 1), cd2(0, 63, 303, 239),
             w2(8, 2), cd2(1, 1, 0, 0), w2(0xE, 7), w2(0xF, 1)]
    body = np.array(words, "<u4").tobytes()
    (tmp_path / "a.raw").write_bytes(b"% evt 2.0\n% geometry 304x240\n% end\n" + body)
    stats = ReadStats()
    ev, sensor = read_prophesee_raw(tmp_path / "a.raw", stats=stats)
    assert sensor == SENSOR
    assert ours(ev) == [(5, 10, 20, 1), (63, 303, 239, 0), ((2 << 6) | 1, 0, 0, 1)]
    assert stats.skipped == {"ext_trigger": 1, "others": 1, "continued": 1} and stats.n_events == 3
    assert ours(ev) == wizard_read(tmp_path / "a.raw", "evt2")


def test_evt3_written_word_by_word_with_vectors_and_time_high_steps(tmp_path):
    words = [w3(8, 0), w3(6, 10), w3(0, 7), w3(2, (1 << 11) | 1),            # t=10: (1, 7, ON)
             w3(6, 4095), w3(0, 8), w3(2, 2),                                 # t=4095: (2, 8, OFF)
             w3(8, 1), w3(6, 1), w3(0, 9),                                    # t=4097 (spec: TIME_HIGH first)
             w3(3, (1 << 11) | 100), w3(4, 0b100000000101), w3(5, 0b10000001),  # x 100, 102, 111; 112, 119
             w3(0xA, 0x101), w3(0xE, 5), w3(7, 3), w3(0xF, 4)]
    body = np.array(words, "<u2").tobytes()
    (tmp_path / "a.raw").write_bytes(b"% format EVT3;height=240;width=304\n% end\n" + body)
    stats = ReadStats()
    ev, sensor = read_prophesee_raw(tmp_path / "a.raw", stats=stats)
    assert sensor == SENSOR
    assert ours(ev) == [(10, 1, 7, 1), (4095, 2, 8, 0)] + [(4097, x, 9, 1) for x in (100, 102, 111, 112, 119)]
    assert stats.skipped == {"ext_trigger": 1, "others": 1, "continued": 2} and not stats.repaired
    # expelliarmus agrees on x, y, p and on t before the TIME_HIGH step; after it, it adds one more period
    # (it treats every TIME_LOW that decreases as a wrap, even right after a TIME_HIGH)
    # (expelliarmus 1.1.12 rejects EVT3 EXT_TRIGGER words, 0xA, so it reads the file without that word)
    (tmp_path / "b.raw").write_bytes(b"% evt 3.0\n% end\n" + np.array([x for x in words if x >> 12 != 0xA],
                                                                       "<u2").tobytes())
    theirs = wizard_read(tmp_path / "b.raw", "evt3")
    assert [e[1:] for e in theirs] == [e[1:] for e in ours(ev)]
    assert [e[0] for e in theirs] == [10, 4095] + [4097 + 4096] * 5


def test_evt3_time_high_loop_and_our_writer(tmp_path):
    ev = random_events(np.random.default_rng(0), 400, 304, 240, t_max=60_000)
    ev["t"][200:] += EVT3_LOOP + 12_345  # cross the 24-bit time base once
    for enc in ("evt2", "evt3"):
        path = write_prophesee_raw(tmp_path / f"{enc}.raw", ev, SENSOR, encoding=enc)
        back, sensor = read_events(path)
        assert np.array_equal(back, ev) and sensor == SENSOR, enc


@pytest.mark.parametrize("encoding", ["dat", "evt2", "evt3"])
def test_expelliarmus_reads_our_files_and_we_read_its_files(tmp_path, encoding):
    rng = np.random.default_rng(1)
    ev = random_events(rng, 3000, 304, 240, t_max=2_000_000)
    ext = "dat" if encoding == "dat" else "raw"
    # our writer -> expelliarmus
    ours_path = tmp_path / f"ours.{ext}"
    if encoding == "dat":
        write_prophesee_dat(ours_path, ev, SENSOR)
    else:
        write_prophesee_raw(ours_path, ev, SENSOR, encoding=encoding)
    theirs = wizard_read(ours_path, encoding)
    if encoding == "evt3":  # expelliarmus's documented extra period after each TIME_HIGH whose TIME_LOW drops
        t = ev["t"].astype(np.int64)
        steps = np.concatenate([[0], ((t[1:] >> 12) != (t[:-1] >> 12)) & ((t[1:] & 0xFFF) < (t[:-1] & 0xFFF))])
        assert [e[1:] for e in theirs] == [e[1:] for e in ours(ev)]
        assert [e[0] for e in theirs] == (t + 4096 * np.cumsum(steps)).tolist() and steps.sum() > 100
    else:
        assert theirs == ours(ev)
    # expelliarmus's writer -> our reader (its EVT3 writer sends TIME_HIGH once: gaps must stay < 4096 µs)
    if encoding == "evt3":
        ev = ev[:400].copy()
        ev["t"] = np.cumsum(rng.integers(0, 4000, len(ev)))
    their_path = tmp_path / f"theirs.{ext}"
    wizard_write(their_path, ev, encoding)
    stats = ReadStats()
    back, _ = read_events(their_path, stats=stats, sensor_size=SENSOR)
    assert ours(back) == ours(ev)
    if encoding == "evt3":
        assert stats.repaired["evt3_time_low_wrap"] >= 1  # counted, not silent


def test_corrupt_files_name_the_offset(tmp_path):
    body = np.array([w2(8, 0), cd2(1, 5, 10, 20)], "<u4").tobytes()
    head = b"% evt 2.0\n% end\n"
    (tmp_path / "trunc.raw").write_bytes(head + body[:-1])
    with pytest.raises(EventFileError, match=f"at byte {len(head) + 4}"):
        read_events(tmp_path / "trunc.raw")
    (tmp_path / "type.raw").write_bytes(head + np.array([w2(8, 0), w2(3, 0)], "<u4").tobytes())
    with pytest.raises(EventFileError, match=f"at byte {len(head) + 4}.*unknown event type 0x3"):
        read_events(tmp_path / "type.raw")
    (tmp_path / "odd.raw").write_bytes(b"% evt 3.0\n% end\n" + b"\x00\x80\x01")
    with pytest.raises(EventFileError, match="odd number of bytes"):
        read_events(tmp_path / "odd.raw")
    (tmp_path / "nofmt.raw").write_bytes(b"% camera\n% end\n" + body)
    with pytest.raises(EventFileError, match="names no EVT"):
        read_events(tmp_path / "nofmt.raw")
    (tmp_path / "size.dat").write_bytes(b"% Version 2\n" + bytes([0, 16]) + bytes(16))
    with pytest.raises(EventFileError, match="event size 16"):
        read_events(tmp_path / "size.dat")
    (tmp_path / "pol.dat").write_bytes(b"% Version 2\n" + bytes([0, 8]) + np.array([1, 3 << 28], "<u4").tobytes())
    with pytest.raises(EventFileError, match="polarity 3"):
        read_prophesee_dat(tmp_path / "pol.dat")
    (tmp_path / "x.dat").write_bytes(b"no header")
    with pytest.raises(EventFileError, match="at byte 0"):
        read_events(tmp_path / "x.dat")
    with pytest.raises(EventFileError, match="outside sensor"):
        read_prophesee_dat(_small_dat(tmp_path), sensor_size=SensorSize(2, 2, 2))


def _small_dat(tmp_path):
    return write_prophesee_dat(tmp_path / "small.dat", make_events([5], [5], [1], [1]), SensorSize(10, 10, 2))
