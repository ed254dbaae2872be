"""Residual networks (shortcut synapse blocks, core_spec rule 1b): every backend agrees spike for spike.

The reference is checked against a hand computation of rule 1b; the NumPy emulator, Lava and Brian2 are
checked against the reference on random residual networks whose every hidden layer spikes, with shortcuts
from the input, over one layer (identity-like) and over a stride-2 downsample.
"""

import numpy as np
import pytest

from hw_models import core_spec
from hw_models.backends import emulator as em
from hw_models.backends import registry
from hw_models.backends.reference import run_reference, synaptic_activation
from hw_models.integer_network import IntegerNetwork, IntLayer, IntSynapse
from hw_models.results import counts_from_spikes


def _net(seed: int) -> IntegerNetwork:
    return em.random_residual_network(np.random.default_rng(seed))


def _inputs(seed: int, b: int = 2, t: int = 5) -> np.ndarray:
    rng = np.random.default_rng(100 + seed)
    return rng.integers(0, 4, size=(b, t, 2, 6, 6))


def _assert_same(net, ref, tr, b: int = 0, what: str = ""):
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(tr.spikes[k][b] if tr.spikes[k].ndim == 3 else tr.spikes[k], ref.spikes[k],
                                      err_msg=f"{what} spikes layer {k}")
        np.testing.assert_array_equal(tr.v[k][b] if tr.v[k].ndim == 3 else tr.v[k], ref.v[k],
                                      err_msg=f"{what} v layer {k}")


def _dense(name: str, w, exp: int, vth: int = 1000, shortcuts=()) -> IntLayer:
    w = np.array(w, np.int16)
    return IntLayer(name=name, kind="dense", weight_mant=w, weight_exp=exp, weight_bits=8,
                    vth=np.full(w.shape[0], vth, np.int32), bias_mant=np.zeros(w.shape[0], np.int32),
                    bias_exp=np.zeros(w.shape[0], np.int32), du=4095, dv=0, in_shape=(w.shape[1],),
                    out_shape=(w.shape[0],), shortcuts=list(shortcuts))


def test_rule_1b_by_hand():
    """Two blocks with different exponents: each shifts (floors) on its own, then the int32 sum enters u."""
    sc = IntSynapse("sc", -1, "dense", np.array([[7]], np.int16), -2, 8, (1,), (1,))
    net = IntegerNetwork([_dense("a", [[1]], 0), _dense("b", [[3]], -1, shortcuts=[sc])], input_shape=(1,),
                         input_max=3)
    net.validate()
    tr = run_reference(net, np.array([[3], [3]]))
    # step 0: layer a (vth 1000) is silent, so the main block gives floor(0 / 2) = 0 and the shortcut
    # floor(7 * 3 / 4) = 5: u = 5 << 6
    assert tr.u[1][0, 0] == 5 << 6
    a = core_spec.block_activation([synaptic_activation(net.layers[1], np.array([1])),
                                    synaptic_activation(sc, np.array([3]))])
    assert a.tolist() == [(3 >> 1) + (21 >> 2)] and a.dtype == np.int32  # 1 + 5, not floor((3 * 2 + 21) / 4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_numpy_emulator_matches_reference_and_counts(seed):
    net, x = _net(seed), _inputs(seed, b=3)
    bt = registry.run("emulator", net, x, record=True)
    assert bt.counts and registry.get("emulator")  # the compiled kernel falls back to the NumPy engine
    for b in range(len(x)):
        ref = run_reference(net, x[b])
        _assert_same(net, ref, bt, b, "emulator")
        for k in range(len(net.layers)):
            np.testing.assert_array_equal(bt.u[k][b], ref.u[k])
    rates = [float(s.mean()) for s in bt.spikes[:-1]]
    assert min(rates) > 0.01, f"every hidden layer must spike: {rates}"
    counts = counts_from_spikes(net, x, bt.spikes)
    for k, layer in enumerate(net.layers):
        for f in ("input_events", "synops", "spikes"):
            np.testing.assert_array_equal(getattr(bt.counts[k], f), getattr(counts[k], f), err_msg=f"{f} {k}")
    # a shortcut layer's SynOps include its shortcut's: more than its main block alone delivers
    k = 4
    main_only = counts_from_spikes(IntegerNetwork([l if i != k else _without_shortcuts(l) for i, l in
                                                   enumerate(net.layers)], net.input_shape, net.input_max), x,
                                   bt.spikes)
    assert np.all(bt.counts[k].synops > main_only[k].synops)


def _without_shortcuts(layer: IntLayer) -> IntLayer:
    import dataclasses

    return dataclasses.replace(layer, shortcuts=[])


def test_shortcuts_change_the_result():
    """Without its shortcut blocks the same network computes something else (the blocks are not ignored)."""
    net, x = _net(0), _inputs(0, b=1)
    plain = IntegerNetwork([_without_shortcuts(l) for l in net.layers], net.input_shape, net.input_max)
    a, b = run_reference(net, x[0]), run_reference(plain, x[0])
    assert not np.array_equal(a.v[2], b.v[2]) and np.array_equal(a.v[0], b.v[0])


def test_compiled_kernel_refuses_and_auto_falls_back():
    net = _net(0)
    with pytest.raises(ValueError, match="residual"):
        em.Emulator(net, 1, kernel="compiled")
    assert em.Emulator(net, 1, kernel="auto").kernel == "numpy"


def test_stepwise_emulator_equals_one_chunk():
    """State and node buffers carried across calls: one step at a time equals the whole run."""
    net, x = _net(1), _inputs(1, b=2)
    whole = em.run_batch(net, x, record_v=True)
    e = em.Emulator(net, 2)
    for t in range(x.shape[1]):
        e.run(x[:, t:t + 1])
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(e.v[k], whole.final_v[k])


@pytest.mark.parametrize("seed", [0, 2])
def test_brian2_matches_reference(seed):
    from hw_models.backends.brian2 import run_brian2

    net, x = _net(seed), _inputs(seed, b=1)
    tr = run_brian2(net, x[0])
    ref = run_reference(net, x[0])
    _assert_same(net, ref, tr, what="brian2")
    counts = counts_from_spikes(net, x, [s[None] for s in ref.spikes])
    for k in range(len(net.layers)):  # Brian2 counts every block's SynOps itself
        assert int(tr.counts[k].synops[0]) == int(counts[k].synops[0]), k
        assert int(tr.counts[k].input_events[0]) == int(counts[k].input_events[0]), k


def test_lava_matches_reference_recorded_and_batched():
    from hw_models.backends.lava.runner import run_lava, run_lava_batch, shortcut_delay

    assert shortcut_delay(2, 0) == 1 and shortcut_delay(1, -1) == 1 and shortcut_delay(3, 2) == 0
    net, x = _net(3), _inputs(3, b=2, t=4)
    tr = run_lava(net, x[0])
    ref = run_reference(net, x[0])
    _assert_same(net, ref, tr, what="lava")
    res = run_lava_batch(net, x)  # samples back to back: the delayed shortcuts must not leak across samples
    refs = [run_reference(net, xx) for xx in x]
    assert res.predictions.tolist() == [r.prediction() for r in refs]
    for k in range(len(net.layers)):
        np.testing.assert_array_equal(res.spike_counts[k], np.stack([r.spikes[k].sum(axis=0) for r in refs]))
    np.testing.assert_array_equal(res.readout_v, np.stack([r.v[-1][-1] for r in refs]))


def test_lava_stock_refuses_shortcuts():
    from hw_models.backends.lava.runner import check_stock_compatible

    sc = IntSynapse("sc", -1, "dense", np.array([[7]], np.int16), 0, 8, (1,), (1,))
    net = IntegerNetwork([_dense("a", [[1]], 0), _dense("b", [[3]], 0, shortcuts=[sc])], input_shape=(1,))
    with pytest.raises(ValueError, match="shortcut"):
        check_stock_compatible(net)


def test_validation_names_bad_shortcuts():
    net = _net(0)
    net.layers[2].shortcuts[0].source = 2
    with pytest.raises(ValueError, match="earlier node"):
        net.validate()
    net = _net(0)
    net.layers[4].shortcuts[0].stride = (1, 1)
    with pytest.raises(ValueError, match="shortcut"):
        net.validate()
    net = _net(0)
    net.layers[-1].shortcuts = [net.layers[2].shortcuts[0]]
    with pytest.raises(ValueError, match="readout"):
        net.validate()


def test_active_updates_are_the_union_over_blocks():
    """A neuron update is active when any block delivers an event: checked against the synapse lists."""
    from hw_models.geometry import synapse_list

    net, x = _net(2), _inputs(2, b=2)
    e = em.Emulator(net, 2)
    tr = e.run(x)
    b, t = x.shape[:2]
    nodes = [x.reshape(b, t, -1)] + [np.asarray(s).reshape(b, t, -1) for s in tr.spikes]
    for k, layer in enumerate(net.layers):
        hit = np.zeros((b, t, layer.n_out), bool)
        for blk, src in zip(layer.blocks(), net.sources(k)):
            pre, post, _ = synapse_list(blk)
            ev = nodes[src + 1][:, :, pre] != 0
            for i in range(b):
                for s in range(t):
                    hit[i, s, post[ev[i, s]]] = True
        np.testing.assert_array_equal(e.active_updates[k], hit.sum(axis=(1, 2)), err_msg=layer.name)


def test_a_shortcut_alone_makes_updates_active():
    """Main block silent (its source never spikes), shortcut fed by the input: every step with an input event
    is an active update of the layer, in the emulator and in the energy model."""
    from neuro_agmm.deploy.energy import activity_from_spikes

    sc = IntSynapse("sc", -1, "dense", np.array([[1, 2], [3, 0], [0, 1]], np.int16), 0, 8, (2,), (3,))
    net = IntegerNetwork([_dense("a", [[1, 1]], 0, vth=100000), _dense("b", [[1], [1], [1]], 0, shortcuts=[sc])],
                         input_shape=(2,), input_max=3)
    net.validate()
    x = np.array([[[1, 0], [0, 0], [2, 3], [0, 1]]])  # events in steps 0, 2, 3
    e = em.Emulator(net, 1)
    tr = e.run(x)
    assert not tr.spikes[0].any()
    assert e.active_updates[1].tolist() == [3 * 3] and e.active_updates[0].tolist() == [3]
    act = activity_from_spikes(net, x, tr.spikes)
    assert act.layers[1].active_updates == 9 and act.layers[1].synops == 4 * 3  # 4 input events x fan-out 3
