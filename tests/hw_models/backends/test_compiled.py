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


@NO_NUMBA
def test_a_layer_whose_voltage_clips_runs_on_the_int32_path_exactly():
    """The clip (rule 3) no longer sends a layer to the int64 path: ``_lif32`` applies it. A non-leaking
    layer driven by strongly negative currents saturates at ``1 - 2**23``; the plan proves it cannot wrap,
    takes the int32 path, and matches the reference step for step (the saturation included)."""
    from hw_models import core_spec

    net = em.random_network(np.random.default_rng(11), (64,), (("dense", 16), ("dense", 3)))
    layer = net.layers[0]
    layer.weight_mant = np.full((16, 64), -120, np.int16)
    layer.weight_exp, layer.du, layer.dv = 0, 4095, 0  # u cleared every step, v never decays
    layer.bias_mant = np.zeros(16, np.int64)
    x = np.ones((1, 40, 64), np.int64)  # |a| = 64 * 120 = 7680 per step: a << 6 = 491,520, no wrap
    run = compiled.CompiledRun(compiled.plan_for(net), 1)
    run.advance(x)
    assert run.last_fast[0], "no wrap is possible: the layer must take the int32 path"
    assert not core_spec.run_bounds(7680, 0, 0, 4096, 40)[-1].may_wrap
    tr = em.run_batch(net, x, record_v=True, kernel="compiled")
    ref = run_reference(net, x[0])
    assert (ref.v[0] == 1 - core_spec.MAX_UV).any(), "the test should reach the clip"
    for k in range(2):
        np.testing.assert_array_equal(tr.v[k][0], ref.v[k])
        np.testing.assert_array_equal(tr.u[k][0], ref.u[k])
        np.testing.assert_array_equal(tr.spikes[k][0], ref.spikes[k])


@NO_NUMBA
def test_active_inputs_lists_every_nonzero_byte_in_order():
    """The word-at-a-time scan (nonzero-byte mask, count trailing zeros) against ``np.flatnonzero``, for
    bytes with the top bit set, the low bits only, and runs of zero words."""
    @compiled.jit
    def scan(xs, xs64, evbuf):
        return compiled._active_inputs(xs, xs64, evbuf)

    rng = np.random.default_rng(0)
    for density in (0.0, 0.01, 0.3, 1.0):
        x = np.where(rng.random(4096) < density, rng.integers(1, 256, 4096), 0).astype(np.uint8)
        x[[5, 6, 7, 8]] = [128, 1, 255, 127]  # carries between bytes would corrupt exactly these
        buf = np.full(4096 + 8, -1, np.int32)  # _active_inputs writes up to 8 slots past the count
        n = scan(x, x.view(np.uint64), buf)
        np.testing.assert_array_equal(buf[:n], np.flatnonzero(x))
        n = scan(x, np.zeros(0, np.uint64), buf)  # the byte-by-byte path (rows not a multiple of 8)
        np.testing.assert_array_equal(buf[:n], np.flatnonzero(x))


def _binary_conv_net(seed):
    rng = np.random.default_rng(seed)
    return em.random_network(rng, (2, 12, 12), (("conv", 8, 3, 2, 1), ("conv", 16, 3, 1, 1), ("conv", 8, 2, 2, 0),
                                                ("dense", 4)), binary_hidden=True, vth_range=(1, 3), input_max=3)


@NO_NUMBA
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bitplane_binary_conv_equals_the_scatter_and_the_reference(seed):
    """Binary convs fed by a conv layer's spikes (8 and 16 input channels, strides 1 and 2, a kernel that
    does not overlap) may run as popcounts of bit planes; forced onto that path, onto the scatter, or left to
    choose, every trace and every count (events, SynOps, updates, spikes, active updates) is the same, and
    equals the NumPy engine and the reference."""
    net = _binary_conv_net(seed)
    plan = compiled.plan_for(net)
    assert [lp.bits is not None for lp in plan.layers] == [False, True, True, False]
    x = np.random.default_rng(seed + 10).integers(0, 4, (2, 7, 2, 12, 12))
    chosen = plan.par[:, compiled.P_PCMIN].copy()
    runs = {}
    for name, pcmin in (("bitplane", 0), ("scatter", 1 << 40), ("chosen", None)):
        plan.par[:, compiled.P_PCMIN] = chosen if pcmin is None else pcmin
        emu = em.Emulator(net, 2, kernel="compiled")
        runs[name] = (emu.run(x, record_v=True), emu._totals.copy())
    plan.par[:, compiled.P_PCMIN] = chosen
    numpy_tr = em.run_batch(net, x, record_v=True, kernel="numpy")
    tr0, totals0 = runs["bitplane"]
    assert 0.05 < tr0.spikes[0].mean() < 0.95 and 0.05 < tr0.spikes[1].mean() < 0.95, "the hidden layers should spike"
    for name, (tr, totals) in runs.items():
        np.testing.assert_array_equal(totals, totals0, err_msg=name)
        for k in range(len(net.layers)):
            np.testing.assert_array_equal(tr.spikes[k], tr0.spikes[k], err_msg=name)
            np.testing.assert_array_equal(tr.v[k], numpy_tr.v[k], err_msg=name)
            np.testing.assert_array_equal(tr.u[k], numpy_tr.u[k], err_msg=name)
            np.testing.assert_array_equal(tr.counts[k].synops, numpy_tr.counts[k].synops, err_msg=name)
            np.testing.assert_array_equal(tr.counts[k].input_events, numpy_tr.counts[k].input_events, err_msg=name)
    for b in range(2):
        ref = run_reference(net, x[b])
        for k in range(len(net.layers)):
            np.testing.assert_array_equal(tr0.v[k][b], ref.v[k])
            np.testing.assert_array_equal(tr0.spikes[k][b], ref.spikes[k])


@NO_NUMBA
def test_bitplane_weights_pack_the_plus_one_bits_in_receptive_field_order():
    w = -np.ones((2, 8, 3, 3), np.int64)
    w[0, 5, 1, 2] = 1  # bit (1 * 3 + 2) * 8 + 5 = 45 of word 0
    w[1, 7, 2, 2] = 1  # bit (2 * 3 + 2) * 8 + 7 = 71: word 1, bit 7
    bits = compiled._bitplane_weights(w)
    assert bits.shape == (2, compiled.POPCOUNT_WORDS) and bits.dtype == np.uint64
    assert bits[0].tolist() == [1 << 45, 0, 0, 0] and bits[1].tolist() == [0, 1 << 7, 0, 0]
    w[0, 0, 0, 0] = 0  # a zero weight is not binary: no bit-plane path
    assert compiled._bitplane_weights(w) is None
    assert compiled._bitplane_weights(np.ones((2, 4, 3, 3), np.int64)) is None  # 4 channels: not whole input words


@NO_NUMBA
def test_per_channel_registers_are_stored_as_one_tile_and_stay_exact():
    """Conv layers whose thresholds and biases depend on the channel only (as the quantizer makes them) keep
    one 64-entry tile of int32 registers (channel-last, they repeat every 64 neurons); the run equals the
    reference. Per-neuron registers stay per neuron."""
    rng = np.random.default_rng(7)
    net = em.random_network(rng, (2, 16, 16), (("conv", 8, 3, 2, 1), ("conv", 16, 3, 1, 1), ("dense", 4)),
                            vth_range=(1, 6), input_max=3)
    for layer in net.layers[:2]:
        c, hw = layer.out_shape[0], layer.out_shape[1] * layer.out_shape[2]
        layer.du, layer.dv = 4095, 2048  # u cleared every step, v halved: the int32 path's tiled loop
        layer.vth = np.repeat(rng.integers(1, 6, c), hw)
        layer.bias_mant = np.repeat(rng.integers(-3, 4, c), hw).astype(np.asarray(layer.bias_mant).dtype)
        layer.bias_exp = np.zeros(layer.n_out, np.asarray(layer.bias_exp).dtype)
    net.layers[2].vth = rng.integers(1, 6, 4)
    plan = compiled.plan_for(net)
    lens = plan.par[:, compiled.P_R32LEN].tolist()
    assert lens[:2] == [compiled.REG_TILE, compiled.REG_TILE] and lens[2] in (0, 4)
    x = rng.integers(0, 4, (2, 9, 2, 16, 16))
    tr = em.run_batch(net, x, record_v=True, kernel="compiled")
    run = compiled.CompiledRun(plan, 2)
    assert run.advance(x)[0][0].any(), "layer 0 should spike"
    assert run.last_fast[:2].all(), "the tiled layers should run on the int32 path"
    for b in range(2):
        ref = run_reference(net, x[b])
        for k in range(3):
            np.testing.assert_array_equal(tr.v[k][b], ref.v[k])
            np.testing.assert_array_equal(tr.spikes[k][b], ref.spikes[k])


@NO_NUMBA
def test_stride_one_convs_scatter_by_kernel_rows_and_match_the_reference():
    """Convs of stride 1 (5x5 padded, 3x3 unpadded, channel-last and network-order inputs, widths that are and
    are not powers of two) take the row scatter (``_conv_rows``, kernel columns stored reversed); stride 2 keeps
    the tap table. Traces and SynOps equal the reference and the NumPy engine."""
    rng = np.random.default_rng(12)
    for shape in ((2, 16, 16), (3, 9, 11)):
        net = em.random_network(rng, shape, (("conv", 8, 5, 1, 2), ("conv", 4, 3, 1, 0), ("conv", 4, 3, 2, 1),
                                             ("dense", 3)), vth_range=(1, 8), input_max=4)
        plan = compiled.plan_for(net)
        assert plan.par[:3, compiled.P_ROWS].tolist() == [1, 1, 0]
        x = rng.integers(0, 5, (2, 5) + shape) * (rng.random((2, 5) + shape) < 0.4)
        tr = em.run_batch(net, x, record_v=True, kernel="compiled")
        ref_np = em.run_batch(net, x, record_v=True, kernel="numpy")
        assert tr.spikes[0].any() and tr.spikes[1].any(), "the conv layers should spike"
        for k in range(4):
            np.testing.assert_array_equal(tr.counts[k].synops, ref_np.counts[k].synops)
        for b in range(2):
            ref = run_reference(net, x[b])
            for k in range(4):
                np.testing.assert_array_equal(tr.v[k][b], ref.v[k])
                np.testing.assert_array_equal(tr.spikes[k][b], ref.spikes[k])
