"""Lava (fixed_pt) runs agree EXACTLY with ``run_reference``; the watchdog turns hangs into errors.

Each Lava run costs ~2-4 s of start-up on this machine, so the default suite runs a handful of
tiny networks; ``-m slow`` runs many more.
"""

import os
import time

import numpy as np
import pytest

from hw_models.backends.lava.runner import LavaRunError, check_stock_compatible, run_guarded, run_lava, run_lava_batch
from hw_models.backends.reference import run_reference
from random_nets import random_inputs, random_int_network


def assert_same(tr, ref):
    for k in range(len(ref.spikes)):
        assert np.array_equal(tr.spikes[k], ref.spikes[k]), f"layer {k} spikes"
        assert np.array_equal(tr.v[k], ref.v[k]), f"layer {k} v"
        assert np.array_equal(tr.u[k], ref.u[k]), f"layer {k} u"


def active_net(seed, kind, depth, **kw):
    """A random network whose hidden layers actually spike on random input (else the test is weak)."""
    for s in range(seed, seed + 50):
        rng = np.random.default_rng(s)
        net = random_int_network(rng, kind, depth=depth, **kw)
        x = random_inputs(rng, net, 6)
        ref = run_reference(net, x)
        if all(sp.sum() > 0 for sp in ref.spikes[:-1]):
            return net, x, ref
    raise AssertionError("no active network found")


@pytest.mark.parametrize("kind,depth", [("dense", 3), ("conv", 3)])
def test_our_fixed_pt_models_match_reference(kind, depth):
    net, x, ref = active_net(10, kind, depth)
    assert_same(run_lava(net, x, timeout=120), ref)


@pytest.mark.parametrize("zero_bias", [True, False])
def test_stock_dense_lif_match_reference(zero_bias):
    # zero bias: stock Dense + LIF; nonzero bias: stock Dense + LIFReset (zeroes the state at the window start)
    net, x, _ = active_net(20, "dense", 2, scalar_vth=True)
    if zero_bias:
        for layer in net.layers:
            layer.bias_mant[:] = 0
    ref = run_reference(net, x)
    check_stock_compatible(net)
    assert_same(run_lava(net, x, stock=True, timeout=120), ref)


def test_stock_refuses_per_neuron_thresholds():
    net = random_int_network(np.random.default_rng(0), "dense", depth=2)
    with pytest.raises(ValueError, match="scalar vth"):
        run_lava(net, random_inputs(np.random.default_rng(0), net, 3), stock=True)


def test_batch_run_resets_between_samples():
    net, _, _ = active_net(30, "dense", 2)
    rng = np.random.default_rng(1)
    xb = random_inputs(rng, net, 4, batch=5)
    res = run_lava_batch(net, xb, timeout=120)
    for b in range(5):
        ref = run_reference(net, xb[b])
        assert np.array_equal(res.readout_v[b], ref.v[-1][-1])
        for k in range(len(net.layers)):
            assert np.array_equal(res.spike_counts[k][b], ref.spikes[k].sum(axis=0))
        assert res.predictions[b] == ref.prediction()
    assert res.n_steps > 0 and res.time_per_step_ms > 0


def _failing_lava_job():
    # Lava's stock fixed_pt LIF with a float du raises inside its worker; Lava then blocks forever.
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    src = RingBuffer(data=np.ones((3, 5), np.int32))
    d = Dense(weights=np.ones((2, 3)))
    lif = LIF(shape=(2,), du=0.5, dv=0.5, vth=1)
    src.s_out.connect(d.s_in)
    d.a_out.connect(lif.a_in)
    try:
        src.run(condition=RunSteps(num_steps=5), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
    finally:
        src.stop()


def test_watchdog_stops_a_failing_process_model_and_cleans_shared_memory():
    t0 = time.monotonic()
    with pytest.raises(LavaRunError, match=r"worker process ended .*process model raised \(TypeError") as err:
        run_guarded(_failing_lava_job, (), timeout=60, grace=3.0)
    assert time.monotonic() - t0 < 30  # reported by the dying worker itself, well before the 60 s bound
    assert err.value.shm_names, "the job's shared-memory segments should have been logged"
    assert not [n for n in err.value.shm_names if os.path.exists(f"/dev/shm/{n}")]


def _sleep_forever():
    time.sleep(3600)


def test_watchdog_timeout_is_bounded():
    t0 = time.monotonic()
    with pytest.raises(LavaRunError, match="within the 2 s watchdog bound"):
        run_guarded(_sleep_forever, (), timeout=2)
    assert time.monotonic() - t0 < 10


def _raise():
    raise RuntimeError("boom")


def test_job_exception_is_reported():
    with pytest.raises(LavaRunError, match="boom"):
        run_guarded(_raise, (), timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_many_random_networks_match_reference(seed, kind):
    rng = np.random.default_rng(100 + seed)
    depth = int(rng.integers(1, 5))
    net = random_int_network(rng, kind, depth=depth, binary=bool(seed % 2))
    x = random_inputs(rng, net, 10)
    assert_same(run_lava(net, x, timeout=300), run_reference(net, x))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_many_random_networks_match_stock_lava(seed):
    rng = np.random.default_rng(200 + seed)
    net = random_int_network(rng, "dense", depth=int(rng.integers(1, 4)), scalar_vth=True)
    x = random_inputs(rng, net, 10)
    assert_same(run_lava(net, x, stock=True, timeout=300), run_reference(net, x))


def test_var_get_readback_equals_dump_readback():
    # without a dump directory the recordings come back through Lava's Var.get()
    from hw_models.backends.lava.runner import _input_matrix, _run_job, layer_offset

    net, x, ref = active_net(40, "dense", 2)
    data = _input_matrix(net, x, x.shape[0] + layer_offset(len(net.layers) - 1) - 1)
    out = run_guarded(_run_job, (net, data, x.shape[0], 1, "all", False, "fixed_pt", None), timeout=120)
    for k, rec in enumerate(out["layers"]):
        assert np.array_equal(rec["s"].astype(bool), ref.spikes[k]) and np.array_equal(rec["v"], ref.v[k])
