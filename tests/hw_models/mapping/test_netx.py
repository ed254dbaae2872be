"""lava-dl netx HDF5, judged by lava-dl's own reading rules (re-stated in ``netx_rules`` from lava-dl 0.6.0's
source, since lava-dl does not install on Python 3.11) and by Lava's stock processes configured the way
lava-dl configures them."""

import h5py
import numpy as np
import pytest

from hw_models import core_spec
from hw_models.backends.lava.runner import layer_offset, run_guarded
from hw_models.backends.reference import run_reference
from hw_models.mapping.netx import NetxRuleError, export_netx, import_netx
from hw_models.mapping.netx_quantizer import quantize_for_netx
from hw_models.mapping.netx_rules import (lava_dense_weights, lava_dl_view, netx_differences,
                                          optimize_weight_bits)
from hw_models.mapping.quantizer import quantize
from random_nets import random_artifact, random_inputs


def same_run(a, b, x):
    ra, rb = run_reference(a, x), run_reference(b, x)
    return all(np.array_equal(p, q) for p, q in zip(ra.spikes, rb.spikes)) and \
        all(np.array_equal(p, q) for p, q in zip(ra.v, rb.v))


def test_optimize_weight_bits_as_in_lava_dl():
    w, bits, exp, mode = optimize_weight_bits(np.array([[1, -1], [-1, 1]]))
    assert (w.tolist(), bits, exp, mode) == ([[128, -128], [-128, 128]], 2, -7, "mixed")  # what netx makes of ±1
    assert np.array_equal(lava_dense_weights(w, bits, mode) >> 7, [[1, -1], [-1, 1]])
    w, bits, exp, mode = optimize_weight_bits(np.array([[256, -256]]))  # our old binary export at weight_exp 8
    assert w.max() >> -exp == 254  # clipped: the weight changes
    w, bits, exp, mode = optimize_weight_bits(np.array([[3, 200, 0]]))
    assert mode == "excitatory" and np.array_equal(lava_dense_weights(w, bits, mode) >> -exp, [[3, 200, 0]])


@pytest.mark.parametrize("kind,kw", [("dense", dict(hidden=(12, 8), bn=True, first_int8=True)),
                                     ("conv", dict(hidden=(3, 4)))])
def test_netx_quantized_export_loads_exactly_and_round_trips(kind, kw, tmp_path):
    rng = np.random.default_rng(4)
    art = random_artifact(rng, kind=kind, **kw)
    net, report = quantize_for_netx(art)
    assert all(np.unique(l.vth).size == 1 for l in net.layers) and all(l.weight_exp == 0 for l in net.layers)
    ex = export_netx(net, tmp_path / "n.h5")
    assert ex.input_message_bits == int(art.input_max).bit_length()
    view = lava_dl_view(tmp_path / "n.h5", input_message_bits=ex.input_message_bits)
    assert netx_differences(view, net) == []
    back = import_netx(tmp_path / "n.h5")
    assert back.input_shape == net.input_shape and back.layers[-1].readout
    for s in range(3):
        x = random_inputs(np.random.default_rng(s), net, art.time_steps)
        assert same_run(view, net, x) and same_run(back, net, x)
    with h5py.File(tmp_path / "n.h5") as f:
        types = [f["layer"][str(i)]["type"][0] for i in range(len(f["layer"]))]
        if kind == "conv":  # an input layer (lava-dl cannot infer a first conv's input shape), per-channel bias
            assert types == [b"input", b"conv", b"conv", b"flatten", b"dense"]
            assert f["layer/1/bias"].shape == (net.layers[0].out_shape[0],)
        assert int(f["layer/1/neuron/iDecay"][()] if kind == "conv" else f["layer/0/neuron/iDecay"][()]) == 4096


def test_refused_exports_name_layer_and_rule_and_leave_nothing(tmp_path):
    rng = np.random.default_rng(6)
    general, _ = quantize(random_artifact(rng))  # per-neuron thresholds, weight exponents
    with pytest.raises(NetxRuleError, match="thresholds; lava-dl's LIF takes one per layer"):
        export_netx(general, tmp_path / "a.h5")
    net, _ = quantize_for_netx(random_artifact(rng))
    layer = net.layers[0]
    layer.weight_mant = np.sign(layer.weight_mant).astype(np.int16)  # ±1 << 8 = ±256: lava-dl clips to 254
    layer.weight_exp = 8
    with pytest.raises(NetxRuleError, match="weights change when lava-dl fits them"):
        export_netx(net, tmp_path / "b.h5")
    layer.weight_exp = 0
    layer.bias_mant[0], layer.bias_exp[0] = 3, 0  # 3: not a multiple of 64
    with pytest.raises(NetxRuleError, match="not a multiple of 64"):
        export_netx(net, tmp_path / "c.h5")
    layer.bias_mant[0], layer.bias_exp[0] = 4095, 7  # 64 * 8190: outside the 13-bit bias field
    with pytest.raises(NetxRuleError, match="outside the LIF bias field"):
        export_netx(net, tmp_path / "d.h5")
    layer.weight_exp = -1
    with pytest.raises(NetxRuleError, match="weight_exp=-1"):
        export_netx(net, tmp_path / "e.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no temporary left


def test_graded_input_needs_input_message_bits(tmp_path):
    net, _ = quantize_for_netx(random_artifact(np.random.default_rng(7), input_max=16))
    export_netx(net, tmp_path / "g.h5")
    with pytest.raises(NetxRuleError, match="input_message_bits=5"):
        lava_dl_view(tmp_path / "g.h5", input_message_bits=0)
    with h5py.File(tmp_path / "g.h5") as f:
        assert int(f.attrs["input_message_bits"]) == 5


def _bytes(g, key, value):
    g.create_dataset(key, (1,), "S10", [value.encode()])


def _neuron(g, vth, du=4095, dv=0, kind="CUBA"):
    n = g.create_group("neuron")
    _bytes(n, "type", kind)
    n.create_dataset("iDecay", data=du + 1)
    n.create_dataset("vDecay", data=dv)
    n.create_dataset("vThMant", data=vth)
    n.create_dataset("refDelay", data=1)
    n.create_dataset("gradedSpike", data=False)


def lava_dl_style_file(path, rng, delays=True, conv=True):
    """A netx file laid out as lava-dl's SLAYER ``export_hdf5`` writes it: an input layer with only a shape,
    a conv layer without ``inShape`` and a per-channel bias, ``flatten``, dense layers with ``delay`` given
    per output neuron (one value clipped by netx at 62), the readout last."""
    with h5py.File(path, "w") as f:
        top = f.create_group("layer")
        i = 0
        if conv:
            g = top.create_group(str(i)); i += 1
            _bytes(g, "type", "input")
            g.create_dataset("shape", data=np.array([2, 5, 5]))
            g = top.create_group(str(i)); i += 1
            _bytes(g, "type", "conv")
            g.create_dataset("shape", data=np.array([3, 3, 3]))
            g.create_dataset("weight", data=rng.choice([-64, 64], size=(3, 2, 3, 3)))
            g.create_dataset("bias", data=np.array([10, -20, 5]))
            for key, val in (("stride", [2, 2]), ("padding", [1, 1]), ("dilation", [1, 1])):
                g.create_dataset(key, data=np.array(val))
            g.create_dataset("groups", data=1)
            _neuron(g, vth=40, dv=1024)
            g = top.create_group(str(i)); i += 1
            _bytes(g, "type", "flatten")
            g.create_dataset("shape", data=np.array([27]))
        n_in = 27 if conv else 12
        g = top.create_group(str(i)); i += 1
        _bytes(g, "type", "dense")
        g.create_dataset("shape", data=np.array([10]))
        g.create_dataset("inFeatures", data=n_in)
        g.create_dataset("weight", data=rng.integers(-60, 61, size=(10, n_in)) * 2)
        if delays:
            d = rng.integers(0, 4, size=10)
            d[3] = 70  # netx clamps to 62
            g.create_dataset("delay", data=d.astype(float))
        _neuron(g, vth=30, dv=512)
        g = top.create_group(str(i))
        _bytes(g, "type", "dense")
        g.create_dataset("shape", data=np.array([4]))
        g.create_dataset("weight", data=rng.integers(-100, 101, size=(4, 10)))
        _neuron(g, vth=core_spec.VTH_MAX)
    return path


def test_import_of_files_as_lava_dl_writes_them(tmp_path):
    rng = np.random.default_rng(8)
    path = lava_dl_style_file(tmp_path / "slayer.h5", rng)
    net = import_netx(path)
    conv, dense, readout = net.layers
    assert net.input_shape == (2, 5, 5) and conv.in_shape == (2, 5, 5)  # inferred from the input layer
    assert conv.weight_bits == 1 and conv.weight_exp == 6  # ±64 = ±1 << 6: binary again
    assert np.array_equal(conv.bias.reshape(3, -1), np.repeat([[10], [-20], [5]], 9, axis=1) * 64)
    assert dense.delay.shape == (10, 27) and dense.delay[3].tolist() == [62] * 27
    assert np.all(dense.delay == dense.delay[:, :1])  # one delay per output neuron, repeated over inputs
    assert readout.readout
    x = random_inputs(rng, net, 12)
    assert sum(int(s.sum()) for s in run_reference(net, x).spikes[:2]) > 0
    back = import_netx(export_netx(net, tmp_path / "again.h5").path)  # our export of it reads back the same
    assert same_run(back, net, x)


@pytest.mark.parametrize("layer_type,neuron,match", [
    ("pool", "CUBA", "NotImplementedError"), ("average", "CUBA", "NotImplementedError"),
    ("dense", "SDNN", "Sigma-Delta"), ("dense", "RF_PHASE", "resonate-and-fire")])
def test_unsupported_layers_and_neurons_are_refused_by_name(tmp_path, layer_type, neuron, match):
    with h5py.File(tmp_path / "u.h5", "w") as f:
        g = f.create_group("layer/0")
        _bytes(g, "type", layer_type)
        g.create_dataset("shape", data=np.array([4]))
        g.create_dataset("weight", data=np.ones((4, 3), int))
        _neuron(g, vth=10, kind=neuron)
    with pytest.raises(NetxRuleError, match=match):
        import_netx(tmp_path / "u.h5")


def test_input_layer_with_neurons_is_an_identity_population(tmp_path):
    with h5py.File(tmp_path / "i.h5", "w") as f:
        g = f.create_group("layer/0")
        _bytes(g, "type", "input")
        g.create_dataset("shape", data=np.array([3]))
        g.create_dataset("bias", data=np.array([0, 40, 0]))  # bias-driven: neuron 1 fires by itself
        _neuron(g, vth=60)
        g = f.create_group("layer/1")
        _bytes(g, "type", "dense")
        g.create_dataset("shape", data=np.array([2]))
        g.create_dataset("weight", data=np.array([[1, 1, 1], [0, 2, 0]]))
        _neuron(g, vth=core_spec.VTH_MAX)
    net = import_netx(tmp_path / "i.h5")
    x = np.zeros((4, 3), np.int64)
    x[:, 0] = 1
    s = run_reference(net, x).spikes[0]
    assert s[:, 1].tolist() == [False, True, False, True]  # bias 40·64 per step, threshold 60·64
    assert not s[:, 0].any()  # input 1 (<< 6) per step reaches 4·64 < 60·64 in 4 steps


def test_netx_conv_rule_is_our_cross_correlation_in_lava():
    """lava-dl flips the stored kernel and transposes it to Lava's (O, kW, kH, C); Lava's own conv on the WHC
    map then equals our C-order cross-correlation of the stored weights (so export/import store them as is)."""
    from lava.proc.conv import utils as lava_conv
    from hw_models.geometry import conv2d_int

    rng = np.random.default_rng(11)
    w = rng.integers(-5, 6, size=(3, 2, 3, 3))
    x = rng.integers(0, 2, size=(2, 6, 7))
    for stride, pad in (((1, 2), (1, 0)), ((2, 1), (0, 1))):
        lw = w[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
        out = lava_conv.conv(x.transpose(2, 1, 0), lw, np.array(lw.shape[1:3]), np.array(stride[::-1]),
                             np.array(pad[::-1]), np.array([1, 1]), 1)
        assert np.array_equal(out.transpose(2, 1, 0), conv2d_int(x, w, stride, pad))


def _stock_lava_job(path: str, data: np.ndarray, period: int):
    """Lava's stock processes, built from the file the way lava-dl's netx does (dense layers)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset
    from lava.proc.monitor.process import Monitor

    source = Source(data=data.astype(np.int32))
    prev, sinks, mons, lifs = source.s_out, [], [], []
    with h5py.File(path) as f:
        for k in range(len(f["layer"])):
            g = f["layer"][str(k)]
            w = g["weight"][()].astype(int)
            w, bits, exp, _ = optimize_weight_bits(w)
            args = dict(weights=w, weight_exp=exp, num_weight_bits=bits, num_message_bits=0)
            if "delay" in g:
                d = np.clip(g["delay"][()], 0, 62).astype(int)
                syn = DelayDense(delays=np.repeat(d.reshape(-1, 1), w.shape[1], axis=1), max_delay=62, **args)
            else:
                syn = Dense(**args)
            n = g["neuron"]
            lif = LIFReset(shape=(w.shape[0],), vth=int(n["vThMant"][()]), du=int(n["iDecay"][()]) - 1,
                           dv=int(n["vDecay"][()]), bias_mant=np.zeros(w.shape[0], np.int32), bias_exp=6,
                           reset_interval=period, reset_offset=layer_offset(k) % period)
            prev.connect(syn.s_in)
            syn.a_out.connect(lif.a_in)
            sink = Sink(shape=(w.shape[0],), buffer=data.shape[1])
            lif.s_out.connect(sink.a_in)
            mon = Monitor()
            mon.probe(lif.v, data.shape[1])
            prev = lif.s_out
            sinks.append(sink)
            mons.append(mon)
            lifs.append(lif)
    try:
        source.run(condition=RunSteps(num_steps=data.shape[1]), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = [(np.asarray(s.data.get()).T.astype(bool), np.asarray(m.get_data()[l.name]["v"]).astype(np.int64))
               for s, m, l in zip(sinks, mons, lifs)]
    finally:
        source.stop()
    return out


def test_delayed_netx_file_runs_in_stock_lava_as_our_import_runs(tmp_path):
    """The judge: Lava's own Dense, DelayDense and LIFReset, configured by lava-dl's rules from the file."""
    rng = np.random.default_rng(9)
    path = lava_dl_style_file(tmp_path / "d.h5", rng, conv=False)
    with h5py.File(path, "a") as f:
        f["layer/0/delay"][...] = np.clip(f["layer/0/delay"][()], 0, 5)
    net = import_netx(path)
    t_steps = 10
    x = (rng.random((t_steps, 12)) < 0.5).astype(np.int64)
    ref = run_reference(net, x)
    n_steps = t_steps + layer_offset(len(net.layers) - 1) + 5
    data = np.zeros((12, n_steps), np.int32)
    data[:, :t_steps] = x.T
    out = run_guarded(_stock_lava_job, (str(path), data, n_steps), timeout=120)
    assert int(ref.spikes[0].sum()) > 0
    for k, (s, v) in enumerate(out):
        lo = layer_offset(k) - 1
        assert np.array_equal(s[lo:lo + t_steps], ref.spikes[k]), k
        assert np.array_equal(v[lo:lo + t_steps], ref.v[k]), k


def test_map_cli_writes_a_file_lava_dl_loads_exactly(tmp_path, capsys):
    from neuro_agmm.artifact import write_artifact
    from neuro_agmm.map import main

    rng = np.random.default_rng(10)
    art = random_artifact(rng, hidden=(8,))
    path = write_artifact(art, tmp_path / "a.h5")
    np.savez(tmp_path / "x.npz", x=rng.integers(0, art.input_max + 1, size=(6, art.time_steps, 20)))
    assert main(["--to", "netx", str(path), "--inputs", str(tmp_path / "x.npz"), "--out", str(tmp_path / "a.netx.h5")]) == 0
    out = capsys.readouterr().out
    assert "input_message_bits=5" in out and "prediction agreement" in out
    net, _ = quantize_for_netx(art)
    assert netx_differences(lava_dl_view(tmp_path / "a.netx.h5", 5), net) == []
    art.layers[0].threshold = 1e-9  # no integer threshold can hold it: refused, exit 2, no file
    write_artifact(art, path)
    assert main(["--to", "netx", str(path), "--out", str(tmp_path / "b.netx.h5")]) == 2
    assert "no netx threshold fits" in capsys.readouterr().err and not (tmp_path / "b.netx.h5").exists()
