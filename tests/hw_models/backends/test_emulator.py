"""The emulator is bit-exact with ``reference.run_reference`` (random nets, edge cases, streaming)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hw_models import geometry  # noqa: E402
from hw_models import core_spec
from random_nets import lif_step as _lif_step
from hw_models.backends import compiled, emulator as em
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.backends.reference import run_reference

KERNELS = ("numpy", "compiled")  # the fallback engine and the numba kernel: both must be bit-exact


def assert_same(net, x, tr, b=0):
    ref = run_reference(net, x)
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(tr.spikes[k][b], ref.spikes[k], err_msg=f"spikes layer {k}")
        np.testing.assert_array_equal(tr.v[k][b], ref.v[k], err_msg=f"v layer {k}")
        np.testing.assert_array_equal(tr.u[k][b], ref.u[k], err_msg=f"u layer {k}")
    assert tr.predictions[b] == ref.prediction()
    return ref


LAYOUTS = [
    ((11,), (("dense", 9), ("dense", 4))),
    ((13,), (("dense", 12), ("dense", 8), ("dense", 6), ("dense", 3))),
    ((2, 7, 6), (("conv", 3, 3, 2, 1), ("dense", 5))),
    ((1, 8, 8), (("conv", 4, 3, 1, 1), ("conv", 3, 2, 2, 0), ("dense", 4))),
    ((3, 5, 9), (("conv", 2, 3, 2, 2), ("conv", 2, 1, 1, 0), ("dense", 3))),
    # stride-1 convs scattered by kernel rows (5x5 and 3x3, a width that is not a power of two)
    ((2, 10, 12), (("conv", 4, 5, 1, 2), ("conv", 3, 3, 1, 0), ("dense", 3))),
    # binary convs fed by 8 and 16 spike channels: the compiled kernel's bit-plane path (2 words, then 1)
    ((2, 9, 9), (("conv", 8, 3, 2, 1), ("conv", 16, 3, 1, 1), ("conv", 4, 2, 1, 0), ("dense", 3))),
]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), layout=st.sampled_from(LAYOUTS), t_steps=st.integers(1, 8),
       density=st.floats(0.0, 1.0), imax=st.integers(1, 20), sparse=st.sampled_from([0.0, 1.0, em.SPARSE_THRESHOLD]),
       binary=st.booleans(), kernel=st.sampled_from(KERNELS), bitplane=st.booleans())
def test_random_networks_bit_exact(seed, layout, t_steps, density, imax, sparse, binary, kernel, bitplane):
    rng = np.random.default_rng(seed)
    shape, layers = layout
    net = em.random_network(rng, shape, layers, vth_range=(1, 24), binary_hidden=binary, input_max=imax)
    if kernel == "compiled" and bitplane and compiled.HAVE_NUMBA:  # every eligible layer on the bit-plane path
        compiled.plan_for(net).par[:, compiled.P_PCMIN] = 0
    b = 3
    x = rng.integers(0, imax + 1, (b, t_steps) + shape) * (rng.random((b, t_steps) + shape) < density)
    tr = em.run_batch(net, x, record_v=True, sparse_threshold=sparse, kernel=kernel)
    for i in range(b):
        assert_same(net, x[i], tr, i)


def test_paths_all_agree_and_are_used():
    rng = np.random.default_rng(3)
    net = em.random_network(rng, (2, 9, 9), (("conv", 4, 3, 2, 1), ("dense", 20), ("dense", 5)), vth_range=(1, 8))
    x = rng.integers(0, 3, (4, 6, 2, 9, 9)) * (rng.random((4, 6, 2, 9, 9)) < 0.02)
    runs = {}
    for thr in (0.0, 1.0):
        emu = em.Emulator(net, 4, sparse_threshold=thr, kernel="numpy")
        runs[thr] = emu.run(x, record_v=True)
        assert emu.last_paths[0] == ("unrolled" if thr == 0.0 else "sparse")
    for k in range(3):
        np.testing.assert_array_equal(runs[0.0].v[k], runs[1.0].v[k])
    assert runs[0.0].spikes[0].any(), "test net should spike"


def _one_layer(w, du=4095, dv=0, vth=10, bias_mant=0, bias_exp=0, weight_exp=0):
    n_out, n_in = w.shape
    layer = IntLayer("l", "dense", np.asarray(w, np.int16), weight_exp, 8, np.full(n_out, vth, np.int32),
                     np.full(n_out, bias_mant, np.int32), np.full(n_out, bias_exp, np.int32), du, dv,
                     (n_in,), (n_out,))
    return IntegerNetwork([layer], (n_in,), input_max=1000)


@pytest.mark.parametrize("w, xval, du, dv, vth, bm, be, we", [
    ([[255], [-256]], 600, 0, 0, core_spec.VTH_MAX, 0, 0, 0),      # current wraps at 24 bits (both signs)
    ([[255], [-256]], 600, 0, 4095, core_spec.VTH_MAX, 4095, 7, 2),  # plus saturating voltage and big bias
    ([[200], [-200]], 1000, 100, 1, core_spec.VTH_MAX, -4096, 7, 1),  # decays with rounding toward zero
    ([[3], [-3]], 1, 4095, 2048, 0, 1, 0, -1),  # weight_exp right shift floors negatives; vth 0
    ([[1], [-1]], 1, 4095, 2048, 1, 0, 0, 0),
    ([[255], [-256]], 1 << 24, 4095, 2048, core_spec.VTH_MAX, 0, 0, 2),  # int32 wrap of the activation
    ([[255], [-255]], 1 << 45, 0, 2048, core_spec.VTH_MAX, 0, 0, -3),  # beyond float64: exact int64 route
])
@pytest.mark.parametrize("kernel", KERNELS)
def test_edge_cases(w, xval, du, dv, vth, bm, be, we, kernel):
    net = _one_layer(np.array(w), du=du, dv=dv, vth=vth, bias_mant=bm, bias_exp=be, weight_exp=we)
    x = np.zeros((12, 1), np.int64)
    x[::2] = xval
    tr = em.run_batch(net, x[None], record_v=True, kernel=kernel)
    assert_same(net, x, tr)


@pytest.mark.parametrize("kernel", KERNELS)
def test_wrap_and_saturation_are_reached(kernel):
    net = _one_layer(np.array([[255], [-256]]), du=0, dv=0, vth=core_spec.VTH_MAX)
    x = np.full((6, 1), 600, np.int64)
    tr = em.run_batch(net, x[None], record_v=True, kernel=kernel)
    assert_same(net, x, tr)
    u = tr.u[0][0]
    assert np.any(np.diff(u[:, 0]) < 0), "positive current should wrap"
    assert np.any(np.abs(tr.v[0][0]) == core_spec.MAX_UV - 1), "voltage should saturate"


@settings(max_examples=200, deadline=None)
@given(u=st.integers(-2**31, 2**31 - 1), v=st.integers(-(2**23 - 1), 2**23 - 1), a=st.integers(-2**31, 2**31 - 1),
       du=st.integers(0, 4095), dv=st.integers(0, 4095), bias=st.integers(-4096 << 7, 4095 << 7),
       vth=st.integers(0, core_spec.VTH_MAX))
def test_fast_lif_matches_core_spec(u, v, a, du, dv, bias, vth):
    ur, vr, sr = _lif_step(np.array([u], np.int32), np.array([v], np.int32), np.array([a], np.int32),
                                    du, dv, np.array([bias], np.int32), np.array([vth]))
    uf, vf, sf = em.lif_step_fast(np.array([u], np.int64), np.array([v], np.int64), np.array([a], np.int64),
                                  du, dv, np.array([bias], np.int64), np.array([vth], np.int64) << 6)
    assert (int(uf[0]), int(vf[0]), bool(sf[0])) == (int(ur[0]), int(vr[0]), bool(sr[0]))


@pytest.mark.parametrize("kernel", KERNELS)
def test_streaming_equals_one_shot_and_counters_accumulate(kernel):
    rng = np.random.default_rng(7)
    net = em.random_network(rng, (2, 6, 6), (("conv", 3, 3, 2, 1), ("dense", 8), ("dense", 4)), vth_range=(1, 8))
    x = rng.integers(0, 3, (5, 9, 2, 6, 6))
    whole = em.run_batch(net, x, record_v=True, kernel="numpy")
    emu = em.Emulator(net, 5, kernel=kernel)
    parts = [emu.run(x[:, :4], record_v=True), emu.step(x[:, 4]), emu.run(x[:, 5:], record_v=True)]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([parts[0].spikes[k], whole.spikes[k][:, 4:5],
                                                      parts[2].spikes[k]], axis=1), whole.spikes[k])
        np.testing.assert_array_equal(parts[2].v[k], whole.v[k][:, 5:])
        assert emu.counts[k].total() == whole.counts[k].total()
    np.testing.assert_array_equal(parts[1][1], whole.v[-1][:, 4])
    np.testing.assert_array_equal(emu.predictions(), whole.predictions)
    assert emu.steps == 9
    emu.reset()
    assert emu.steps == 0 and all(c.total()["synops"] == 0 for c in emu.counts)
    again = emu.run(x)
    np.testing.assert_array_equal(again.predictions, whole.predictions)


def test_counts_match_definition():
    rng = np.random.default_rng(11)
    net = em.random_network(rng, (1, 5, 5), (("conv", 2, 3, 2, 1), ("dense", 3)), vth_range=(1, 4))
    x = rng.integers(0, 4, (2, 4, 1, 5, 5))
    tr = em.run_batch(net, x)
    fan = geometry.fan_out(net.layers[0])
    # 3x3 kernel, stride 2, padding 1 on 5x5 -> 3x3 outputs covering input rows -1..1, 1..3, 3..5:
    # rows 0, 2, 4 lie in one window, rows 1 and 3 in two; times 2 output channels
    f = fan.reshape(5, 5)
    assert (f[0, 0], f[2, 2], f[1, 1], f[1, 2], f[4, 3]) == (2, 2, 8, 4, 4)
    assert fan.sum() == geometry.synapse_list(net.layers[0])[0].size
    for b in range(2):
        ev = x[b].reshape(4, -1) != 0
        assert tr.counts[0].input_events[b] == ev.sum()
        assert tr.counts[0].synops[b] == (ev * fan).sum()
        assert tr.counts[1].input_events[b] == tr.spikes[0][b].sum()
        assert tr.counts[1].synops[b] == tr.spikes[0][b].sum() * 3
        assert tr.counts[1].neuron_updates[b] == 4 * 3


def test_synapse_list_reproduces_convolution():
    rng = np.random.default_rng(5)
    net = em.random_network(rng, (3, 7, 8), (("conv", 4, 3, 2, 2),))
    layer = net.layers[0]
    pre, post, w = geometry.synapse_list(layer)
    x = rng.integers(0, 5, layer.n_in)
    acc = np.bincount(post, weights=w * x[pre], minlength=layer.n_out).astype(np.int64)
    from hw_models.geometry import conv2d_int
    np.testing.assert_array_equal(acc, conv2d_int(x.reshape(layer.in_shape), layer.weight_mant,
                                                  layer.stride, layer.padding).reshape(-1))


def test_rejects_bad_inputs():
    net = em.random_network(np.random.default_rng(0))
    with pytest.raises(ValueError, match="integers"):
        em.run_batch(net, np.zeros((1, 2, 12), np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        em.run_batch(net, -np.ones((1, 2, 12), np.int64))
    with pytest.raises(ValueError, match="shape"):
        em.Emulator(net, 2).run(np.zeros((1, 2, 12), np.int64))


@pytest.mark.parametrize("dv", [0, 2048, 3072, 4094, 4095, 1, 2049])
@pytest.mark.parametrize("du", [4095, 2047, 0, 3071, 1000])
def test_fast_lif_power_of_two_decays(du, dv):
    rng = np.random.default_rng(du * 7 + dv)
    n = 400
    u = rng.integers(-2**31, 2**31, n).astype(np.int32)
    u[:100] = rng.integers(-2**23, 2**23, 100)
    v = rng.integers(-(2**23 - 1), 2**23, n).astype(np.int32)
    v[:50] = rng.integers(-5, 6, 50)  # small odd negatives exercise rounding toward zero
    a = rng.integers(-2**20, 2**20, n).astype(np.int32)
    bias = rng.integers(-4096 << 7, 4095 << 7, n).astype(np.int32)
    vth = rng.integers(0, core_spec.VTH_MAX + 1, n)
    ur, vr, sr = _lif_step(u, v, a, du, dv, bias, vth)
    for shifted in (False, True):
        aa = a.astype(np.int64) << (6 if shifted else 0)
        uf, vf, sf = em.lif_step_fast(u.astype(np.int64), v.astype(np.int64), aa, du, dv, bias.astype(np.int64),
                                      vth.astype(np.int64) << 6, shifted=shifted)
        np.testing.assert_array_equal(uf, ur)
        np.testing.assert_array_equal(vf, vr)
        np.testing.assert_array_equal(sf, sr)


@pytest.mark.parametrize("kernel, thr", [("numpy", None), ("numpy", 0.0), ("numpy", 1.0), ("compiled", None)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_single_sample_stepping_matches_reference(layout, thr, kernel):
    """Batch 1, one step per call (the streaming case): every accumulation path, carried bounds."""
    rng = np.random.default_rng(len(layout[1]) * 10 + (3 if thr is None else int(thr)))
    shape, layers = layout
    net = em.random_network(rng, shape, layers, vth_range=(1, 24), input_max=5)
    x = rng.integers(0, 6, (10,) + shape) * (rng.random((10,) + shape) < 0.3)
    x[3] = 0  # an all-zero step: only the decays act
    emu = em.Emulator(net, 1, sparse_threshold=thr, kernel=kernel)
    steps = [emu.run(x[None, t:t + 1], record_v=True) for t in range(len(x))]
    ref = run_reference(net, x)
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(np.concatenate([s.spikes[k][0] for s in steps]), ref.spikes[k])
        np.testing.assert_array_equal(np.concatenate([s.v[k][0] for s in steps]), ref.v[k])
        np.testing.assert_array_equal(np.concatenate([s.u[k][0] for s in steps]), ref.u[k])
    assert emu.last_paths[0] in ("sparse", "dense", "unrolled", "empty", "compiled")


@pytest.mark.parametrize("kernel", KERNELS)
def test_wrap_and_saturation_when_stepping(kernel):
    """Bounds carried from call to call must still catch the 24-bit wrap and the voltage clip."""
    net = _one_layer(np.array([[255], [-256], [3]]), du=0, dv=0, vth=core_spec.VTH_MAX)
    x = np.full((8, 1), 600, np.int64)
    x[5] = 0
    emu = em.Emulator(net, 1, kernel=kernel)
    steps = [emu.run(x[None, t:t + 1], record_v=True) for t in range(len(x))]
    ref = run_reference(net, x)
    np.testing.assert_array_equal(np.concatenate([s.u[0][0] for s in steps]), ref.u[0])
    np.testing.assert_array_equal(np.concatenate([s.v[0][0] for s in steps]), ref.v[0])


def test_int32_loop_equals_int64_loop():
    """The int32 LIF loop (shift-only decays, bounds proved) gives the int64 loop's result."""
    rng = np.random.default_rng(21)
    net = em.random_network(rng, (2, 8, 8), (("conv", 4, 3, 2, 1), ("dense", 16), ("dense", 5)), vth_range=(1, 8))
    for layer, (du, dv) in zip(net.layers, [(4095, 2048), (2047, 3072), (4095, 0)]):
        layer.du, layer.dv = du, dv
    x = rng.integers(0, 3, (3, 7, 2, 8, 8))
    fast = em.Emulator(net, 3, kernel="numpy")
    tr_fast = fast.run(x, record_v=True)
    assert all(p.int32_ok for p in fast._plans)
    slow = em.Emulator(net, 3, kernel="numpy")
    for p in slow._plans:
        p.int32_ok = False
    tr_slow = slow.run(x, record_v=True)
    for k in range(3):
        np.testing.assert_array_equal(tr_fast.v[k], tr_slow.v[k])
        np.testing.assert_array_equal(tr_fast.u[k], tr_slow.u[k])
        np.testing.assert_array_equal(tr_fast.spikes[k], tr_slow.spikes[k])
    assert_same(net, x[1], tr_fast, 1)


@pytest.mark.parametrize("min_cols, max_work", [(1 << 30, 0), (1, 1 << 60)])
def test_conv_im2col_and_unrolled_paths(monkeypatch, min_cols, max_work):
    """Both dense conv paths (im2col + BLAS, unrolled synapse matrix in column blocks) match the reference."""
    monkeypatch.setattr(em, "UNROLLED_MIN_COLUMNS", min_cols)
    monkeypatch.setattr(em, "UNROLLED_MAX_WORK", max_work)
    monkeypatch.setattr(em, "UNROLLED_BLOCK", 4)  # 10 columns: the unrolled product runs in blocks
    rng = np.random.default_rng(4)
    shape, layers = (3, 5, 9), (("conv", 2, 3, 2, 2), ("conv", 2, 1, 1, 0), ("dense", 3))
    net = em.random_network(rng, shape, layers, vth_range=(1, 8))
    x = rng.integers(0, 3, (2, 5) + shape)
    emu = em.Emulator(net, 2, sparse_threshold=0.0, kernel="numpy")
    tr = emu.run(x, record_v=True)
    assert emu.last_paths[0] == ("im2col" if max_work == 0 else "unrolled")
    for b in range(2):
        assert_same(net, x[b], tr, b)
    one = em.Emulator(net, 1, sparse_threshold=0.0, kernel="numpy")
    steps = [one.run(x[:1, t:t + 1], record_v=True) for t in range(5)]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([s.v[k][0] for s in steps]), tr.v[k][0])
