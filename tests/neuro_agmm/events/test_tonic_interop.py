"""tonic interop, judged by tonic 1.7.0 itself: its structured arrays (bool or int polarity) are ours and
back, its ``ToFrame`` agrees with our binning where the conventions meet, and ``infer`` streams a
tonic-style ``.npy`` with an explicit sensor size."""

import numpy as np
import pytest

from ev_helpers import random_events
from neuro_agmm.events import EventFileError, SensorSize, check_events, read_events
from neuro_agmm.events.binning import bin_by_time
from neuro_agmm.events.structured import TONIC_DTYPE, as_events, read_structured_npy, to_tonic, write_structured_npy

tonic = pytest.importorskip("tonic", reason="tonic is installed by scripts/setup_env.sh (--no-deps)")
import tonic.transforms  # noqa: E402

SENSOR = SensorSize(34, 34, 2)
# tonic's own dataset dtypes: DVSGesture (bool p, field order x, y, p, t) and N-Caltech101 (int64 everywhere)
GESTURE_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])
CALTECH_DTYPE = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])


@pytest.mark.parametrize("dtype", [GESTURE_DTYPE, CALTECH_DTYPE, TONIC_DTYPE])
def test_tonic_arrays_are_our_events_and_back(dtype):
    ev = random_events(np.random.default_rng(0), 500, 34, 34)
    theirs = np.empty(len(ev), dtype)
    for f in ("x", "y", "t", "p"):
        theirs[f] = ev[f]
    check_events(theirs, SENSOR)  # bool polarity accepted as is
    ours = as_events(theirs)
    assert np.array_equal(ours, ev)
    back = to_tonic(ours)
    assert back.dtype == TONIC_DTYPE and np.array_equal(back["p"], ev["p"] == 1)
    assert np.array_equal(as_events(back), ev)
    assert to_tonic(ours, polarity="int")["p"].dtype == np.int8


def test_tonic_transforms_take_our_events():
    ev = random_events(np.random.default_rng(1), 2000, 34, 34, t_max=100_000)
    frames = tonic.transforms.ToFrame(sensor_size=tuple(SENSOR), n_time_bins=5)(to_tonic(ev))
    assert frames.shape == (5, 2, 34, 34)
    denoised = tonic.transforms.Denoise(filter_time=10_000)(to_tonic(ev))
    assert 0 < len(as_events(denoised)) <= len(ev)


def test_binning_equals_tonic_to_frame_on_shared_edges():
    """Ours over [t0, t0 + T·w) with T bins = tonic's ToFrame(time_window=w, start_time=t0, end_time=t0 + T·w)."""
    rng = np.random.default_rng(2)
    w, t_bins, t0 = 7_000, 6, 1_234
    ev = random_events(rng, 3000, 34, 34, t_max=t_bins * w)
    ev = ev[(ev["t"] >= t0) & (ev["t"] < t0 + t_bins * w)]
    ev = np.concatenate([ev[:1], ev])  # a duplicate timestamp and events on bin edges
    ev["t"][:5] = t0 + np.array([0, 0, w, 2 * w, 3 * w])
    ev = ev[np.argsort(ev["t"], kind="stable")]
    ours = bin_by_time(ev, SENSOR, t_bins, t_start=t0, t_end=t0 + t_bins * w)
    theirs = tonic.transforms.ToFrame(sensor_size=tuple(SENSOR), time_window=w, start_time=t0,
                                      end_time=t0 + t_bins * w)(to_tonic(ev))
    assert theirs.shape == ours.shape and np.array_equal(theirs, ours)


def test_last_bin_convention_differs_from_tonic_n_time_bins_as_documented():
    """tonic's ToFrame(n_time_bins=B) bins [t0, t0 + B·floor(span/B)) and drops what lies after (always the
    last event); ours spans [t_min, t_max + 1) and keeps every event (docs/events.md)."""
    ev = random_events(np.random.default_rng(3), 1000, 34, 34, t_max=99_999)
    b = 4
    theirs = tonic.transforms.ToFrame(sensor_size=tuple(SENSOR), n_time_bins=b)(to_tonic(ev))
    ours = bin_by_time(ev, SENSOR, b)
    width = (int(ev["t"][-1]) - int(ev["t"][0])) // b
    dropped = int(np.sum(ev["t"] >= ev["t"][0] + b * width))
    assert dropped >= 1
    assert theirs.sum() == len(ev) - dropped and ours.sum() == len(ev)


@pytest.mark.parametrize("field,value,match", [("x", 40000, "field 'x'"), ("p", 2, "field 'p'"),
                                               ("t", -5, "field 't'"), ("t", np.inf, "field 't'"),
                                               ("x", 3.5, "field 'x'")])
def test_out_of_range_values_are_refused_not_wrapped(field, value, match):
    dtype = np.dtype([("x", float), ("y", np.int64), ("t", float), ("p", np.int64)])
    arr = np.zeros(3, dtype)
    arr[field][1] = value
    with pytest.raises(EventFileError, match=match + ".*event 1"):
        as_events(arr)
    with pytest.raises(EventFileError, match="missing"):
        as_events(np.zeros(2, [("x", int), ("y", int), ("t", int)]))


def test_structured_npy_file_and_sensor_size(tmp_path):
    ev = random_events(np.random.default_rng(4), 300, 20, 10)
    path = write_structured_npy(tmp_path / "rec.npy", ev)
    got, sensor = read_events(path)
    assert np.array_equal(got, ev) and sensor == SensorSize(int(ev["x"].max()) + 1, int(ev["y"].max()) + 1, 2)
    got, sensor = read_events(path, sensor_size=SensorSize(34, 34, 2))
    assert sensor == SensorSize(34, 34, 2)
    with pytest.raises(EventFileError, match="outside sensor"):
        read_structured_npy(path, SensorSize(5, 5, 2))
    np.save(tmp_path / "plain.npy", np.zeros((3, 3)))  # neither structured nor the (N, 4) gesture layout
    with pytest.raises(EventFileError):
        read_events(tmp_path / "plain.npy")


def test_infer_streams_a_tonic_style_npy_with_sensor_size(tmp_path):
    """The same recording as a tonic-style .npy (bool p) and as our .npz: the same prediction and spikes."""
    from neuro_agmm.events.h5npz import write_event_file
    from neuro_agmm.infer import main
    from neuro_agmm.streaming.run import infer
    from random_nets import event_artifact

    model = tmp_path / "m.h5"
    event_artifact(model)
    ev = random_events(np.random.default_rng(5), 3000, 34, 34, t_max=250_000)
    write_structured_npy(tmp_path / "npy" / "rec.npy", ev)
    write_event_file(tmp_path / "npz" / "rec.npz", ev, SENSOR)
    a = infer(model, tmp_path / "npy", sensor_size=(34, 34, 2)).recordings[0]
    b = infer(model, tmp_path / "npz").recordings[0]
    assert a.prediction == b.prediction and a.n_steps == b.n_steps and a.n_events == b.n_events == 3000
    assert a.counts == b.counts and a.readout_v == b.readout_v
    assert main([str(model), "--events", str(tmp_path / "npy" / "rec.npy"), "--sensor-size", "34,34,2",
                 "--no-progress"]) == 0
