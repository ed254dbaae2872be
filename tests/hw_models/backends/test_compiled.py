"""The compiled kernel's own contracts: plans built once and frozen, workers, accumulator width, fallback.

Bit-exactness against the reference over random networks is in ``test_emulator`` (every test there runs
both kernels)."""

import numpy as np
import pytest

from hw_models.backends import compiled, emulator as em
from hw_models.backends.reference import run_reference

NO_NUMBA = pytest.mark.skipif(not compiled.HAVE_NUMBA, reason="numba is not installed (NumPy engine only)")


def _conv_net(seed=0):
    rng = np.random.default_rng(seed)
    return em.random_network(rng, (2, 9, 9), (("conv", 4, 3, 2, 1), ("conv", 3, 3, 1, 1), ("dense", 6), ("dense", 3)),
                             vth_range=(1, 6), input_max=3)


@NO_NUMBA
@pytest.mark.parametrize("workers", [2, 3, 7])
def test_workers_split_the_batch_without_changing_anything(workers):
    net = _conv_net(1)
    rng = np.random.default_rng(2)
    x = rng.integers(0, 4, (5, 6, 2, 9, 9))
    one = em.run_batch(net, x, record_v=True, kernel="compiled")
    many = em.run_batch(net, x, record_v=True, kernel="compiled", workers=workers)
    assert sum(s.sum() for s in one.spikes[:-1]) > 0, "test net should spike"
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(one.spikes[k], many.spikes[k])
        np.testing.assert_array_equal(one.v[k], many.v[k])
        np.testing.assert_array_equal(one.u[k], many.u[k])
        assert one.counts[k].total() == many.counts[k].total()
        np.testing.assert_array_equal(one.counts[k].synops, many.counts[k].synops)
    np.testing.assert_array_equal(one.predictions, many.predictions)


@NO_NUMBA
def test_plan_is_built_once_and_the_network_is_frozen():
    net = _conv_net(3)
    p1 = compiled.plan_for(net)
    assert compiled.plan_for(net) is p1
    assert em.Emulator(net, 2)._plan is p1
    with pytest.raises(ValueError, match="read-only"):
        net.layers[0].weight_mant[0, 0, 0, 0] = 1
    # replacing an array (or a register) is seen: a new plan with the new weights
    x = np.random.default_rng(4).integers(0, 3, (1, 5, 2, 9, 9))
    before = em.run_batch(net, x, record_v=True).v[0]
    net.layers[0].weight_mant = -np.asarray(net.layers[0].weight_mant)
    assert compiled.plan_for(net) is not p1
    after = em.run_batch(net, x, record_v=True)
    assert not np.array_equal(before, after.v[0])
    np.testing.assert_array_equal(after.v[0][0], run_reference(net, x[0]).v[0])
    net.layers[1].du = 100
    np.testing.assert_array_equal(em.run_batch(net, x, record_v=True).u[1][0], run_reference(net, x[0]).u[1])


@NO_NUMBA
def test_accumulators_widen_when_int32_could_overflow():
    net = em.random_network(np.random.default_rng(5), (40,), (("dense", 8), ("dense", 3)), weight_range=(-256, 255))
    lp = compiled.plan_for(net).layers[0]
    assert compiled._layer_call(lp, 1)[0] == np.int32
    assert compiled._layer_call(lp, 1 << 24)[0] == np.int64
    for x_max in (1, 100, 1 << 24):  # int32 accumulators, then int64 ones, at their largest sums
        x = np.full((1, 3, 40), x_max, np.int64)
        tr = em.run_batch(net, x, record_v=True, kernel="compiled")
        ref = run_reference(net, x[0])
        for k in range(2):
            np.testing.assert_array_equal(tr.v[k][0], ref.v[k])
            np.testing.assert_array_equal(tr.u[k][0], ref.u[k])


@NO_NUMBA
def test_bool_and_wide_inputs_are_accepted():
    net = _conv_net(6)
    x = np.random.default_rng(7).random((2, 4, 2, 9, 9)) < 0.3
    a = em.run_batch(net, x, record_v=True, kernel="compiled")
    b = em.run_batch(net, x.astype(np.int64), record_v=True, kernel="numpy")
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(a.v[k], b.v[k])


def test_fallback_without_numba_is_the_numpy_engine_with_a_note(monkeypatch):
    monkeypatch.setattr(compiled, "HAVE_NUMBA", False)
    monkeypatch.setattr(em, "_FALLBACK_NOTED", False)
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        assert em.resolve_kernel("auto") == "numpy"
    with pytest.raises(ValueError, match="needs numba"):
        em.resolve_kernel("compiled")
    net = _conv_net(8)
    x = np.random.default_rng(9).integers(0, 3, (2, 3, 2, 9, 9))
    emu = em.Emulator(net, 2)
    assert emu.kernel == "numpy"
    tr = emu.run(x, record_v=True)
    np.testing.assert_array_equal(tr.v[-1][1], run_reference(net, x[1]).v[-1])
    with pytest.raises(ValueError, match="unknown emulator kernel"):
        em.resolve_kernel("cuda")


@pytest.mark.parametrize("kernel", [pytest.param("compiled", marks=NO_NUMBA), "numpy"])
def test_active_updates_follow_the_energy_rule(kernel):
    """Both engines count active neuron updates as ``results.active_updates`` defines them (the energy model's
    rule), conv and dense, on the very spike trains they produce."""
    from hw_models.results import active_updates

    net = _conv_net(10)
    x = np.random.default_rng(11).integers(0, 3, (3, 5, 2, 9, 9)) * (np.random.default_rng(12).random((3, 5, 2, 9, 9)) < 0.1)
    emu = em.Emulator(net, 3, kernel=kernel)
    tr = emu.run(x)
    ins = [x.reshape(3, 5, -1)] + list(tr.spikes[:-1])
    want = np.stack([active_updates(l, a.reshape(15, -1)).reshape(3, 5).sum(axis=1) for l, a in zip(net.layers, ins)])
    np.testing.assert_array_equal(emu.active_updates, want)
    assert 0 < want[0].sum() < 5 * net.layers[0].n_out * 3  # some, not all, conv neurons were reached
