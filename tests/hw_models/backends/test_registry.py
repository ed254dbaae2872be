"""Every backend behind one interface, driven against the reference (``core_spec`` applied literally).

One property test sends random dense and conv networks and inputs through every emulator kernel
path (forced event-driven, forced dense/BLAS, the automatic choice; batch 1 and batch > 1, int32 and
int64 LIF loops via the random decays) and checks spikes, ``u``, ``v``, predictions and SynOp counts
against the reference. Brian2 and Lava run for real on a few networks through the same call.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw_models.backends import registry
from hw_models.backends.emulator import random_network
from hw_models.results import BatchTrace
from random_nets import random_inputs, random_int_network

FIELDS = ("input_events", "synops", "neuron_updates", "spikes")


def assert_same(bt: BatchTrace, ref: BatchTrace, states: bool = True) -> None:
    assert np.array_equal(bt.predictions, ref.predictions)
    for k in range(len(ref.counts)):
        for f in FIELDS:
            assert np.array_equal(getattr(bt.counts[k], f), getattr(ref.counts[k], f)), (k, f)
        if bt.spikes is not None:
            assert np.array_equal(bt.spikes[k], ref.spikes[k]), k
        if states:
            assert np.array_equal(bt.v[k], ref.v[k]) and np.array_equal(bt.u[k], ref.u[k]), k
    assert np.array_equal(bt.final_v[-1], ref.final_v[-1])


def test_registry_names_and_errors():
    assert {"reference", "emulator", "lava", "brian2"} <= set(registry.names())
    with pytest.raises(ValueError, match="unknown backend 'loihi9'.*reference"):
        registry.get("loihi9")
    net = random_int_network(np.random.default_rng(0))
    with pytest.raises(ValueError, match="expected \\(B, T"):
        registry.run("reference", net, np.zeros((4, 12), np.int64))


def test_a_new_backend_plugs_in_without_editing_callers():
    from neuro_agmm.deploy.crosscheck import crosscheck

    @registry.register("reference-copy")
    def _copy(net, inputs, *, record=True):
        return registry.run("reference", net, inputs, record=record)

    rng = np.random.default_rng(1)
    net = random_int_network(rng)
    res = crosscheck(net, random_inputs(rng, net, 5, batch=3), backends=("reference-copy",))
    assert res.total_mismatches == 0 and res.backends[0].counts_identical


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), conv=st.booleans(), batch=st.sampled_from([1, 3]),
       t_steps=st.integers(1, 6), threshold=st.sampled_from([None, 0.0, 1.0]))
def test_every_emulator_path_matches_the_reference(seed, conv, batch, t_steps, threshold):
    rng = np.random.default_rng(seed)
    layers = (("conv", 3, 3, 1, 1), ("conv", 2, 3, 2, 0), ("dense", 4)) if conv else (("dense", 9), ("dense", 4))
    net = random_network(rng, input_shape=(2, 6, 6) if conv else (12,), layers=layers, binary_hidden=True)
    x = rng.integers(0, net.input_max + 1, size=(batch, t_steps) + tuple(net.input_shape))
    x[rng.random(x.shape) < rng.random()] = 0  # sparsity from dense to empty
    ref = registry.run("reference", net, x)
    assert_same(registry.run("emulator", net, x, sparse_threshold=threshold), ref)


def test_brian2_through_the_registry():
    rng = np.random.default_rng(4)
    for kind in ("dense", "conv"):
        net = random_int_network(rng, kind=kind)
        x = random_inputs(rng, net, 5, batch=2)
        ref = registry.run("reference", net, x)
        assert_same(registry.run("brian2", net, x), ref)
        assert_same(registry.run("brian2", net, x, record=False), ref, states=False)


def test_lava_batch_mode_through_the_registry():
    rng = np.random.default_rng(5)
    net = random_int_network(rng, kind="dense")
    x = random_inputs(rng, net, 4, batch=3)
    ref = registry.run("reference", net, x)
    bt = registry.run("lava", net, x, record=False)
    assert bt.spikes is None
    assert_same(bt, ref, states=False)
    assert any(c.spikes.sum() for c in ref.counts[:-1]), "the network under test should spike"
