"""tonic's DVS Gesture .npy layout and plain HDF5/NPZ event files."""

import h5py
import numpy as np
import pytest

from neuro_agmm.events import read_events
from neuro_agmm.events.h5npz import read_event_file, write_event_file
from neuro_agmm.events.tonic_npy import label_of, read_tonic_gesture_npy, write_tonic_gesture_npy
from neuro_agmm.events.types import EventFileError, SensorSize

from ev_helpers import random_events


def test_tonic_npy_roundtrip_and_units(tmp_path):
    ev = random_events(np.random.default_rng(0), 200, 128, 128)
    p = tmp_path / "user01_led" / "3.npy"
    write_tonic_gesture_npy(p, ev)
    raw = np.load(p)
    np.testing.assert_allclose(raw[:, 3], ev["t"] / 1000.0)  # column 3 is milliseconds
    np.testing.assert_array_equal(raw[:, 2], ev["p"])  # column order x, y, p, t
    back, sensor = read_tonic_gesture_npy(p)
    np.testing.assert_array_equal(back, ev)
    assert sensor == (128, 128, 2) and label_of(p) == 3
    np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
    with pytest.raises(EventFileError, match=r"\(N, 4\)"):
        read_events(tmp_path / "bad.npy")
    with pytest.raises(EventFileError, match="label"):
        label_of(tmp_path / "bad.npy")


@pytest.mark.parametrize("name", ["e.npz", "e.h5"])
def test_h5npz_roundtrip(tmp_path, name):
    ev = random_events(np.random.default_rng(1), 2000, 640, 480)
    write_event_file(tmp_path / name, ev, SensorSize(640, 480, 2))
    back, sensor = read_events(tmp_path / name)
    np.testing.assert_array_equal(back, ev)
    assert sensor == (640, 480, 2)


def test_h5_group_structured_and_signed_polarity(tmp_path):
    ev = random_events(np.random.default_rng(2), 50, 20, 10)
    with h5py.File(tmp_path / "g.h5", "w") as f:
        g = f.create_group("events")
        for k in "xyt":
            g[k] = ev[k]
        g["p"] = ev["p"] * 2 - 1
    back, sensor = read_event_file(tmp_path / "g.h5")
    np.testing.assert_array_equal(back, ev)
    assert sensor == (int(ev["x"].max()) + 1, int(ev["y"].max()) + 1, 2)  # inferred
    np.savez(tmp_path / "s.npz", events=ev)
    np.testing.assert_array_equal(read_event_file(tmp_path / "s.npz", SensorSize(20, 10, 2))[0], ev)
    np.savez(tmp_path / "m.npz", x=ev["x"], y=ev["y"], t=ev["t"])
    with pytest.raises(EventFileError, match=r"missing arrays \['p'\]"):
        read_event_file(tmp_path / "m.npz")
    with pytest.raises(EventFileError, match="outside sensor"):
        read_event_file(tmp_path / "s.npz", SensorSize(5, 5, 2))
