"""Brian2 runs the integer network spike for spike and voltage for voltage like the reference."""

import numpy as np
import pytest

from hw_models import geometry  # noqa: E402
from hw_models import core_spec
from hw_models.backends import emulator as em
from hw_models.backends.brian2 import layer_update_code, run_brian2
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.backends.reference import run_reference


def assert_trace_equal(net, x, tr):
    ref = run_reference(net, x)
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(tr.spikes[k], ref.spikes[k], err_msg=f"spikes layer {k}")
        np.testing.assert_array_equal(tr.v[k], ref.v[k], err_msg=f"v layer {k}")
        np.testing.assert_array_equal(tr.u[k], ref.u[k], err_msg=f"u layer {k}")
    return ref


@pytest.mark.parametrize("seed, shape, layers", [
    (0, (10,), (("dense", 8), ("dense", 3))),
    (1, (9,), (("dense", 7), ("dense", 6), ("dense", 5), ("dense", 3))),
    (2, (2, 7, 6), (("conv", 3, 3, 2, 1), ("dense", 4))),
    (3, (1, 8, 8), (("conv", 3, 3, 1, 1), ("conv", 2, 2, 2, 0), ("dense", 3))),
])
def test_random_networks_match_reference_and_emulator_counts(seed, shape, layers):
    rng = np.random.default_rng(seed)
    net = em.random_network(rng, shape, layers, vth_range=(1, 12), binary_hidden=seed % 2 == 1, input_max=4)
    x = rng.integers(0, 5, (6,) + shape) * (rng.random((6,) + shape) < 0.6)
    tr = run_brian2(net, x)
    assert tr.target == "numpy"
    ref = assert_trace_equal(net, x, tr)
    assert sum(s.sum() for s in ref.spikes[:-1]) > 0, "test net should spike"
    emu = em.run_batch(net, x[None])
    for k in range(len(net.layers)):
        assert tr.counts[k].total() == emu.counts[k].total(), f"layer {k}"
        # Brian2's per-synapse counters: every synapse counted once per nonzero event of its source
        pre, _, _ = geometry.synapse_list(net.layers[k])
        src = x.reshape(6, -1) if k == 0 else ref.spikes[k - 1]
        np.testing.assert_array_equal(tr.synops_per_synapse[k], (src != 0).sum(axis=0)[pre])


def test_wrap_saturation_and_rounding_edge_cases():
    w = np.array([[255], [-256], [37], [-37]], np.int16)
    layer = IntLayer("edge", "dense", w, 2, 8, np.array([core_spec.VTH_MAX] * 2 + [3, 3], np.int32),
                     np.array([4095, -4096, -5, 5], np.int32), np.array([7, 7, 1, 0], np.int32), 100, 4095,
                     (1,), (4,))
    net = IntegerNetwork([layer], (1,), input_max=1000)
    x = np.array([[600], [600], [0], [1], [999], [0], [3], [0]], np.int64)
    tr = run_brian2(net, x)
    assert_trace_equal(net, x, tr)
    assert np.any(np.abs(tr.v[0]) == core_spec.MAX_UV - 1)
    assert np.any(np.diff(tr.u[0][:, 0]) < 0)


def test_negative_weight_exponent_floors_like_lava():
    layer = IntLayer("shift", "dense", np.array([[3], [-3], [-1]], np.int16), -1, 8, np.array([1, 1, 1], np.int32),
                     np.zeros(3, np.int32), np.zeros(3, np.int32), 4095, 2048, (1,), (3,))
    net = IntegerNetwork([layer], (1,))
    x = np.array([[1], [1], [0], [1]], np.int64)
    tr = run_brian2(net, x, record_v=False)
    ref = run_reference(net, x)
    np.testing.assert_array_equal(tr.v[0][0], ref.v[0][-1])
    np.testing.assert_array_equal(tr.spikes[0], ref.spikes[0])


def test_update_code_is_the_same_for_every_layer():
    assert "clip" in layer_update_code() and "//" in layer_update_code()


def test_rejects_bad_target_and_inputs():
    net = em.random_network(np.random.default_rng(0))
    with pytest.raises(ValueError, match="target"):
        run_brian2(net, np.zeros((2, 12), np.int64), target="cpp_standalone")
    with pytest.raises(ValueError, match="integers"):
        run_brian2(net, np.zeros((2, 12), np.float64))


@pytest.mark.slow
def test_cython_target_matches():
    rng = np.random.default_rng(4)
    net = em.random_network(rng, (1, 6, 6), (("conv", 2, 3, 2, 1), ("dense", 6), ("dense", 3)), vth_range=(1, 8))
    x = rng.integers(0, 3, (5, 1, 6, 6))
    tr = run_brian2(net, x, target="cython")
    assert tr.target == "cython"
    assert_trace_equal(net, x, tr)
