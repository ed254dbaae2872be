"""Energy accounting: counts by definition, identical across backends, figures with sources."""

import numpy as np
import pytest

from hw_models import geometry  # noqa: E402
from hw_models import energy_figures as ef
from hw_models.backends import emulator as em
from hw_models.backends.brian2 import run_brian2
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.backends.reference import run_reference
from neuro_agmm.deploy import energy


def test_figures_are_the_published_ones():
    assert ef.LOIHI["synop"].pj == 23.6 and ef.LOIHI["neuron_update_active"].pj == 81.0
    assert ef.LOIHI["neuron_update_inactive"].pj == 52.0 and ef.LOIHI["spike_in_tile"].pj == 1.7
    assert ef.FP32_MAC == pytest.approx(4.6) and ef.FP32_AC == pytest.approx(0.9)
    assert ef.INT8_MAC == pytest.approx(0.23) and ef.INT32_AC == pytest.approx(0.1)
    assert all("Davies" in f.source or "Horowitz" in f.source for f in ef.all_figures())


def _tiny_dense():
    """2 inputs -> 3 LIF -> 2 readout, hand-checkable."""
    l0 = IntLayer("h", "dense", np.array([[1, 1], [1, -1], [-1, -1]], np.int16), 0, 1, np.array([0, 0, 0], np.int32),
                  np.zeros(3, np.int32), np.zeros(3, np.int32), 4095, 2048, (2,), (3,))
    l1 = IntLayer("o", "dense", np.array([[2, 0, 1], [1, 1, 1]], np.int16), 0, 8, np.full(2, 131071, np.int32),
                  np.zeros(2, np.int32), np.zeros(2, np.int32), 4095, 0, (3,), (2,), readout=True)
    return IntegerNetwork([l0, l1], (2,), input_max=3)


def test_counts_by_hand():
    net = _tiny_dense()
    x = np.array([[2, 0], [0, 0], [1, 1]])  # T=3
    ref = run_reference(net, x)
    # step 0: input (2,0): a = (2, 2, -2) -> h0, h1 spike (v > 0); step 2: (1,1): a = (2, 0, -2) -> h0 spikes
    np.testing.assert_array_equal(ref.spikes[0], [[1, 1, 0], [0, 0, 0], [1, 0, 0]])
    act = energy.activity_from_spikes(net, x, ref.spikes)
    h, o = act.layers
    assert (h.input_events, h.synops, h.neuron_updates, h.active_updates, h.spikes) == (3, 9, 9, 6, 3)
    assert (o.input_events, o.synops, o.neuron_updates, o.active_updates, o.spikes) == (3, 6, 6, 4, 0)
    assert h.graded_input and not o.graded_input
    assert h.firing_rate == pytest.approx(3 / 9)
    res = energy.energy_per_inference(act)
    lo = res.scenario("bsnn_loihi")
    expect = (15 * 23.6) + (10 * 81 + 5 * 52) + (3 + 3) * 1.7
    assert lo.total_pj == pytest.approx(expect)
    assert res.scenario("ann_fp32_45nm").total_pj == pytest.approx((6 + 6) * 4.6)
    assert res.scenario("snn_fp32_45nm").by_kind["synaptic"] == pytest.approx(9 * 4.6 + 6 * 0.9)
    assert res.scenario("bsnn_45nm").by_kind["synaptic"] == pytest.approx(9 * 0.3 + 6 * 0.1)
    assert "Davies" in res.table() and "Horowitz" in res.table()


def test_conv_fan_out_and_active_updates():
    rng = np.random.default_rng(2)
    net = em.random_network(rng, (1, 5, 5), (("conv", 2, 3, 2, 1), ("dense", 3)), vth_range=(1, 4))
    x = np.zeros((1, 2, 1, 5, 5), np.int64)
    x[0, 0, 0, 0, 0] = 1  # corner: one window, 2 channels
    x[0, 1, 0, 1, 1] = 5  # graded, in 4 windows
    tr = em.run_batch(net, x)
    act = energy.activity_from_trace(net, x, tr)
    assert act.layers[0].synops == 2 + 8
    assert act.layers[0].active_updates == 2 + 8
    assert act.layers[0].input_events == 2
    assert act.layers[0].n_synapses == geometry.fan_out(net.layers[0]).sum()


def test_counts_identical_across_emulator_brian2_reference():
    rng = np.random.default_rng(5)
    net = em.random_network(rng, (1, 6, 6), (("conv", 3, 3, 2, 1), ("dense", 8), ("dense", 3)), vth_range=(1, 6))
    x = rng.integers(0, 3, (2, 5, 1, 6, 6))
    batch = em.run_batch(net, x)
    a_emu = energy.activity_from_trace(net, x, batch)
    for b in range(2):
        a_ref = energy.activity_from_spikes(net, x[b], run_reference(net, x[b]).spikes)
        b2 = run_brian2(net, x[b])
        a_b2 = energy.activity_from_spikes(net, x[b], b2.spikes)
        assert a_ref.to_dict() == a_b2.to_dict()
        for k, la in enumerate(a_b2.layers):
            assert la.synops == b2.counts[k].synops[0] == batch.counts[k].synops[b]
            assert la.spikes == b2.counts[k].spikes[0] == batch.counts[k].spikes[b]
            assert la.input_events == b2.counts[k].input_events[0] == batch.counts[k].input_events[b]
    assert a_emu.totals()["synops"] > 0


def test_measure_activity_batches_and_memory():
    rng = np.random.default_rng(9)
    net = em.random_network(rng, (10,), (("dense", 8), ("dense", 3)), binary_hidden=True)
    x = rng.integers(0, 3, (7, 4, 10))
    whole = energy.activity_from_trace(net, x, em.run_batch(net, x))
    parts = energy.measure_activity(net, x, batch_size=3)
    for a, b in zip(whole.layers, parts.layers):
        assert a.synops == pytest.approx(b.synops) and a.spikes == pytest.approx(b.spikes)
    assert parts.n_samples == 7 and parts.per_sample_synops.shape == (7,)
    mem = energy.memory_footprint(net)
    assert mem.layers[0]["bits"] == 80 * 8 and mem.total_float32_bits == 32 * (80 + 24)
    assert mem.to_dict()["compression"] == pytest.approx(32 / 8)
