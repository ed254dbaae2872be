import json

import numpy as np
import pytest

from hw_models.backends.emulator import run_batch
from hw_models.mapping.quantizer import quantize
from hw_models.backends.reference import run_reference
from neuro_agmm.events.binning import bin_by_time
from neuro_agmm.events.h5npz import write_event_file
from neuro_agmm.events.types import SensorSize, make_events, sort_by_time
from neuro_agmm.infer import main
from neuro_agmm.streaming.run import infer
from neuro_agmm.streaming.steppers import TorchFloatStepper
from neuro_agmm.streaming.windows import InferError, InputMapping, event_windows
from random_nets import event_artifact as make_artifact


def test_event_windows_keep_every_event():
    ev = make_events([0] * 6, [0] * 6, [10, 19, 20, 29, 55, 56], [1] * 6)
    w = list(event_windows(ev, 10, t0=10))
    assert [(s, e, x["t"].tolist()) for s, e, x in w] == [(10, 20, [10, 19]), (20, 30, [20, 29]), (30, 40, []),
                                                         (40, 50, []), (50, 60, [55, 56])]
    with pytest.raises(ValueError, match="before the stream origin"):
        list(event_windows(ev, 10, t0=11))


def test_input_mapping_checks_shapes():
    m = InputMapping.fit(SensorSize(128, 128, 2), (2, 32, 32), 15, 1000)
    assert m.downsample == 4
    with pytest.raises(InferError, match="does not downsample"):
        InputMapping.fit(SensorSize(128, 128, 2), (2, 34, 34), 15, 1000)
    with pytest.raises(InferError, match="polarity"):
        InputMapping.fit(SensorSize(34, 34, 2), (1, 34, 34), 15, 1000)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.h5"
    art = make_artifact(path)
    net, _ = quantize(art)
    return path, art, net


def test_streaming_equals_batch_run_on_dataset_frames(digits_model):
    """Streaming window by window (state carried) = one run over the training-style frames."""
    from neuro_agmm.data.event_datasets import BinningConfig, bin_dataset, open_event_dataset

    path, art, net = digits_model
    res = infer(path, backend="emulator", dataset="digits-dvs", split="test", limit=6, window_us=2 * 37_500)
    assert res.step_us == 37_500 and res.streaming
    ds = open_event_dataset("digits-dvs", split="test")
    x, y, _ = bin_dataset(ds, BinningConfig(8), limit=6)
    tr = run_batch(net, x, record_v=True)
    assert [r.prediction for r in res.recordings] == tr.predictions.tolist()
    assert [r.label for r in res.recordings] == y.tolist()
    for b, r in enumerate(res.recordings):
        assert len(r.windows) == 4 and r.n_steps == 8 and r.duration_us == 300_000
        # the prediction after window k is argmax of the readout voltage after step 2k+1
        assert [w.prediction for w in r.windows] == [int(np.argmax(tr.v[-1][b, 2 * k + 1])) for k in range(4)]
        assert sum(w.n_events for w in r.windows) == r.n_events == len(ds[b][0])
        assert r.counts["synops"] > 0 and r.energy_j > 0
    # energy from the streamed spike trains = energy of the one-shot run's spike trains
    from neuro_agmm.deploy.energy import activity_from_spikes, energy_per_inference
    e0 = energy_per_inference(activity_from_spikes(net, x[:1], [s[:1] for s in tr.spikes]))
    assert res.recordings[0].energy_pj == pytest.approx({sc.name: sc.total_pj for sc in e0.scenarios})
    ref = run_reference(net, x[0])
    assert ref.prediction() == res.recordings[0].prediction
    s = res.stats()
    assert s["windows"] == 24 and s["events_per_s"] > 0 and s["real_time_factor"] > 0
    assert "accuracy" in res.summary()


def test_torch_stepper_matches_numpy_float_model(digits_model):
    from neuro_agmm.deploy.float_model import run_float

    _, art, _ = digits_model
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (8, 2, 34, 34)) * (rng.random((8, 2, 34, 34)) < 0.1)
    st = TorchFloatStepper(art)
    v = st.run(x[:3])
    v = st.run(x[3:])  # state carried across two windows
    ref = run_float(art, x[None])
    np.testing.assert_allclose(v, ref.v[-1][0, -1], rtol=1e-4, atol=1e-4)


def test_files_dir_cli_and_json(tmp_path, digits_model):
    path, art, net = digits_model
    rng = np.random.default_rng(2)
    for label in (3, 7):
        n = 800
        ev = sort_by_time(make_events(rng.integers(0, 34, n), rng.integers(0, 34, n), 5000 + rng.integers(0, 250_000, n),
                                      rng.integers(0, 2, n)))
        write_event_file(tmp_path / "rec" / str(label) / "a.npz", ev, SensorSize(34, 34, 2))
    out = tmp_path / "r.json"
    assert main([str(path), "--events", str(tmp_path / "rec"), "--json", str(out), "--no-progress"]) == 0
    d = json.loads(out.read_text())
    assert [r["label"] for r in d["recordings"]] == [3, 7]
    r0 = d["recordings"][0]
    assert r0["n_steps"] * 37_500 == r0["duration_us"] and r0["duration_us"] >= 250_000
    # the stream starts at the first event: frames of [t0, t0 + k*step) through the emulator
    ev = np.load(tmp_path / "rec" / "3" / "a.npz")
    t0 = int(ev["t"].min())
    evs = sort_by_time(make_events(ev["x"], ev["y"], ev["t"], ev["p"]))
    frames = np.minimum(bin_by_time(evs, SensorSize(34, 34, 2), r0["n_steps"], t0, t0 + r0["duration_us"]), 15)
    assert r0["prediction"] == run_reference(net, frames).prediction()
    assert d["stats"]["accuracy"] in (0.0, 0.5, 1.0)


def test_cli_user_errors(tmp_path, digits_model, capsys):
    path, _, _ = digits_model
    assert main([str(path), "--events", str(tmp_path / "nope.bin")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([str(tmp_path / "none.h5"), "--events", str(tmp_path)]) == 2
    assert main([str(path), "--dataset", "digits-dvs", "--window-us", "1000", "--limit", "1"]) == 2
    assert "not a multiple" in capsys.readouterr().err
    (tmp_path / "bad.bin").write_bytes(b"\0" * 7)
    assert main([str(path), "--events", str(tmp_path / "bad.bin")]) == 2
    assert "at byte 5" in capsys.readouterr().err


@pytest.fixture()
def tiny(tmp_path):
    """A tiny artifact (6x6x2 sensor, so Brian2 and Lava are quick) and one random recording."""
    path = tmp_path / "tiny.h5"
    make_artifact(path, input_shape=(2, 6, 6), hidden=8, n_cls=3, time_steps=4, seed=3, input_max=3,
                  scales=(0.05, 0.6, 0.2))
    rng = np.random.default_rng(4)
    ev = sort_by_time(make_events(rng.integers(0, 6, 600), rng.integers(0, 6, 600), rng.integers(0, 40_000, 600),
                                  rng.integers(0, 2, 600)))
    write_event_file(tmp_path / "r.npz", ev, SensorSize(6, 6, 2))
    return path, tmp_path / "r.npz"


def test_brian2_whole_recording_agrees(tiny):
    """Whole-recording Brian2 run (numpy target) = the streaming emulator."""
    path, rec = tiny
    emu = infer(path, rec, "emulator", step_us=10_000)
    b2 = infer(path, rec, "brian2", step_us=10_000)
    assert not b2.streaming and b2.recordings[0].prediction == emu.recordings[0].prediction
    assert b2.recordings[0].counts["spikes"] == emu.recordings[0].counts["spikes"] > 0
    assert b2.recordings[0].readout_v == emu.recordings[0].readout_v and any(emu.recordings[0].readout_v)
    assert b2.recordings[0].counts == emu.recordings[0].counts  # SynOps etc. from Brian2's spikes = emulator counters
    assert b2.recordings[0].energy_pj == pytest.approx(emu.recordings[0].energy_pj)


def test_lava_whole_recording_agrees(tiny):
    """Lava (fixed_pt, under the watchdog) on a whole tiny recording = the streaming emulator."""
    path, rec = tiny
    emu = infer(path, rec, "emulator", step_us=10_000)
    lava = infer(path, rec, "lava", step_us=10_000)
    assert lava.recordings[0].prediction == emu.recordings[0].prediction
    assert lava.recordings[0].counts["spikes"] == emu.recordings[0].counts["spikes"] > 0
    assert lava.recordings[0].readout_v == emu.recordings[0].readout_v and any(emu.recordings[0].readout_v)


@pytest.mark.parametrize("window_steps", [1, 3])  # one bin per window (no bin index), three bins
@pytest.mark.parametrize("sensor, shape, clip, step", [
    (SensorSize(34, 34, 2), (2, 34, 34), 15, 1000),
    (SensorSize(128, 128, 2), (2, 32, 32), 3, 250),  # downsample 4 (a shift), low clip: saturation is reached
    (SensorSize(36, 36, 2), (2, 12, 12), 15, 500),  # downsample 3: a division
    (SensorSize(20, 12, 1), (1, 12, 20), 255, 700),  # one polarity channel counts both polarities
])
def test_window_binner_equals_numpy_frames(sensor, shape, clip, step, window_steps):
    """The compiled binner (uint8, saturating) gives ``InputMapping.frames``'s counts window by window."""
    from neuro_agmm.streaming.windows import window_bounds

    rng = np.random.default_rng(step)
    n = 5000
    ev = sort_by_time(make_events(rng.integers(0, sensor.W, n), rng.integers(0, sensor.H, n),
                                  rng.integers(0, 40 * step, n), rng.integers(0, 2, n)))
    m = InputMapping.fit(sensor, shape, clip, step)
    binner = m.binner(ev)
    seen, saturated = 0, False
    for start, stop, lo, hi in window_bounds(binner.t, window_steps * step, 0, 40 * step):
        got = binner.frames(lo, hi, start, stop)
        want = m.frames(ev[lo:hi], start, stop)
        np.testing.assert_array_equal(got, want)
        seen += hi - lo
        saturated |= bool((want == clip).any())
    assert seen == n
    assert saturated or clip > 3, "the low-clip case should reach the clip"


def test_window_binner_reports_events_outside_the_sensor_like_frames():
    sensor = SensorSize(34, 34, 2)
    ev = make_events([3, 40], [3, 3], [10, 20], [1, 1])  # x = 40 is outside a 34-wide sensor
    m = InputMapping.fit(sensor, (2, 34, 34), 15, 100)
    with pytest.raises(ValueError, match="outside sensor"):
        m.binner(ev).frames(0, 2, 0, 100)


def test_stream_energy_from_counters_equals_energy_from_spike_trains(digits_model):
    """The emulator stepper keeps no spike trains; its counters give the same activity as the trains."""
    from neuro_agmm.deploy.energy import activity_from_spikes
    from neuro_agmm.streaming.steppers import EmulatorStepper

    _, _, net = digits_model
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, (9, 2, 34, 34)) * (rng.random((9, 2, 34, 34)) < 0.05)
    st = EmulatorStepper(net)
    for lo in range(0, 9, 3):
        st.run(x[lo:lo + 3])
    got = st.activity()
    tr = run_batch(net, x[None])
    want = activity_from_spikes(net, x[None], tr.spikes)
    assert got.totals() == want.totals()
    assert want.totals()["active_updates"] > 0 and want.totals()["spikes"] > 0
    for a, b in zip(got.layers, want.layers):
        assert a == b


def test_workers_give_the_same_results_in_order(digits_model):
    """Two worker processes stream the recordings: same predictions, counts and energy, same order."""
    path, _, _ = digits_model
    one = infer(path, backend="emulator", dataset="digits-dvs", split="test", limit=5)
    two = infer(path, backend="emulator", dataset="digits-dvs", split="test", limit=5, workers=2)
    assert [r.source for r in two.recordings] == [r.source for r in one.recordings]
    assert [r.prediction for r in two.recordings] == [r.prediction for r in one.recordings]
    assert [r.counts["synops"] for r in two.recordings] == [r.counts["synops"] for r in one.recordings]
    assert [r.energy_j for r in two.recordings] == [r.energy_j for r in one.recordings]
    assert two.workers == 2 and two.stats()["throughput_real_time_factor"] > 0
    with pytest.raises(InferError, match="--workers applies"):
        infer(path, backend="brian2", dataset="digits-dvs", limit=1, workers=2)


@pytest.mark.parametrize("gap_us", [30_000_000, 3_600_000_000, 1 << 40])
def test_long_gaps_cost_nothing_and_equal_stepping_through(digits_model, gap_us):
    """Four events, a one-hour (or 2**40 µs) gap, four events: windows at rest are skipped in O(1); the result
    (prediction, readout voltage, counts, steps) equals stepping through every window of the gap."""
    from neuro_agmm.streaming.run import stream
    from neuro_agmm.streaming.sources import Recording
    from neuro_agmm.streaming.steppers import EmulatorStepper

    path, art, net = digits_model
    rng = np.random.default_rng(3)
    t = np.array([0, 10, 20, 30, gap_us, gap_us + 10, gap_us + 20, gap_us + 30])
    ev = make_events(rng.integers(0, 34, 8), rng.integers(0, 34, 8), t, rng.integers(0, 2, 8))
    mapping = InputMapping.fit(SensorSize(34, 34, 2), art.input_shape, 15, 37_500)
    rec = Recording("gap", ev, SensorSize(34, 34, 2))
    fast = stream(EmulatorStepper(net), mapping, rec, 37_500)
    assert fast.skipped_windows >= gap_us // 37_500 - 50 and len(fast.windows) < 60  # memory ~ windows run
    if gap_us < 1 << 40:  # stepping through 2**40 µs would take days: that is the point
        short = Recording("gap", ev, SensorSize(34, 34, 2))
        window = 37_500 if gap_us <= 30_000_000 else 37_500 * 4000  # the same steps, in fewer calls for an hour
        slow = stream(EmulatorStepper(net), mapping, short, window, skip_idle=False)
        assert slow.n_steps == fast.n_steps and slow.readout_v == fast.readout_v
        assert slow.prediction == fast.prediction and slow.counts == fast.counts


def test_an_empty_recording_is_reported(tmp_path, digits_model):
    path, _, _ = digits_model
    write_event_file(tmp_path / "empty.npz", make_events([], [], [], []), SensorSize(34, 34, 2))
    res = infer(path, tmp_path / "empty.npz")
    assert res.recordings[0].n_events == 0
    assert any("hold no events" in n for n in res.notes)


@pytest.mark.skipif(not __import__("hw_models.backends.compiled", fromlist=["x"]).HAVE_NUMBA, reason="needs numba")
@pytest.mark.parametrize("window_steps", [1, 3])
def test_one_call_windows_equal_binning_frames_then_running_them(window_steps):
    """``EmulatorStepper.run_window`` (binning and every layer in one compiled call) gives, window by window,
    the readout, prediction, state and every counter of binning frames and running them; including windows
    whose counts exceed every earlier one (the int32 proof is redone) and a binary conv on the bit-plane path."""
    from hw_models.backends import emulator as em
    from neuro_agmm.streaming.run import Recording, stream
    from neuro_agmm.streaming.steppers import EmulatorStepper

    rng = np.random.default_rng(3)
    net = em.random_network(rng, (2, 16, 16), (("conv", 8, 3, 2, 1), ("conv", 8, 3, 1, 1), ("dense", 5)),
                            binary_hidden=True, vth_range=(1, 4), input_max=15)
    sensor, step = SensorSize(16, 16, 2), 1000
    n = 6000  # the rate ramps up: later windows hold larger counts per pixel than any before them
    t = np.sort((np.sqrt(rng.random(n)) * 60_000).astype(np.int64))
    ev = sort_by_time(make_events(rng.integers(0, 16, n), rng.integers(0, 16, n), t, rng.integers(0, 2, n)))
    m = InputMapping.fit(sensor, (2, 16, 16), 15, step)
    rec = Recording("ramp", ev, sensor, None, 0, 60_000)

    class FramesOnly(EmulatorStepper):
        run_window = None  # the frames path

    fused, frames = EmulatorStepper(net), FramesOnly(net)
    a = stream(fused, m, rec, window_steps * step, skip_idle=False)
    b = stream(frames, m, rec, window_steps * step, skip_idle=False)
    run = fused.emu._run
    assert run._frames, "the one-call path should have run"
    assert run._x_seen > 2, "counts should have grown past the first proof's bound"
    assert [w.prediction for w in a.windows] == [w.prediction for w in b.windows]
    assert a.readout_v == b.readout_v and a.n_steps == b.n_steps == 60
    np.testing.assert_array_equal(fused.emu._totals, frames.emu._totals)
    for x, y in zip(fused.state(), frames.state()):
        np.testing.assert_array_equal(x, y)
    assert fused.counts()["synops"] > 0 and fused.emu.steps == frames.emu.steps
    assert min(s.mean() for s in [fused.emu._totals[k, 3] for k in range(2)]) > 0, "hidden layers should spike"


def test_one_call_windows_still_report_events_outside_the_sensor():
    from hw_models.backends import emulator as em
    from neuro_agmm.streaming.run import Recording, stream
    from neuro_agmm.streaming.steppers import EmulatorStepper

    net = em.random_network(np.random.default_rng(0), (2, 8, 8), (("conv", 4, 3, 2, 1), ("dense", 3)))
    sensor = SensorSize(8, 8, 2)
    ev = make_events([1, 2, 9], [1, 2, 3], [10, 1500, 2500], [0, 1, 1])  # x = 9: outside an 8-wide sensor
    rec = Recording("bad", ev, sensor, None, 0, 3000)
    with pytest.raises(ValueError, match="outside sensor"):
        stream(EmulatorStepper(net), InputMapping.fit(sensor, (2, 8, 8), 15, 1000), rec, 1000)


def test_window_binner_reads_records_in_place_and_converts_other_layouts():
    """``EVENT_DTYPE`` records are binned in place (no copy); tonic's layout (``t`` first, uint16 coordinates,
    bool polarity) is converted once and bins the same; a coordinate that does not fit int16 leaves the
    compiled route, and ``frames`` reports it."""
    rng = np.random.default_rng(4)
    n = 3000
    sensor = SensorSize(34, 34, 2)
    ev = sort_by_time(make_events(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 9000, n),
                                  rng.integers(0, 2, n)))
    m = InputMapping.fit(sensor, (2, 34, 34), 15, 1000)
    canonical = m.binner(ev)
    assert canonical.records is ev
    tonic = np.empty(n, [("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")])
    for f in ("t", "x", "y", "p"):
        tonic[f] = ev[f]
    converted = m.binner(tonic)
    assert converted.compiled and converted.records is not tonic
    for lo, hi, start, stop in ((0, canonical.window_end(0, 3000), 0, 3000),
                                (canonical.window_end(0, 3000), canonical.window_end(0, 9000), 3000, 9000)):
        assert converted.window_end(lo, stop) == hi == int(np.searchsorted(ev["t"], stop))
        np.testing.assert_array_equal(converted.frames(lo, hi, start, stop), canonical.frames(lo, hi, start, stop))
        np.testing.assert_array_equal(canonical.frames(lo, hi, start, stop), m.frames(ev[lo:hi], start, stop))
    wide = tonic.astype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")])
    wide["x"][5] = 40000  # beyond int16: not narrowed
    assert m.binner(wide).records is None and not m.binner(wide).compiled
    with pytest.raises(ValueError, match="outside sensor"):
        m.binner(wide).frames(0, n, 0, 9000)
