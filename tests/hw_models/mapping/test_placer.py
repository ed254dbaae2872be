"""Placer: every core within every limit, exact counts, clear errors, reports."""

import json

import numpy as np
import pytest

from hw_models.core_limits import LOIHI1, CoreSpec, ChipSpec, get_chip
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.mapping.placer import PlacementError, place
from hw_models.geometry import conv2d_int


def dense(name, n_in, n_out, bits=1, readout=False):
    w = np.ones((n_out, n_in), np.int8)
    return IntLayer(name=name, kind="dense", weight_mant=w, weight_exp=0, weight_bits=bits,
                    vth=np.full(n_out, 10, np.int32), bias_mant=np.zeros(n_out, np.int32),
                    bias_exp=np.zeros(n_out, np.int32), du=4095, dv=2048, in_shape=(n_in,), out_shape=(n_out,),
                    readout=readout)


def conv(name, in_shape, c_out, k=3, stride=2, pad=1):
    c, h, w = in_shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    n = c_out * ho * wo
    return IntLayer(name=name, kind="conv", weight_mant=np.ones((c_out, c, k, k), np.int8), weight_exp=0,
                    weight_bits=1, vth=np.full(n, 10, np.int32), bias_mant=np.zeros(n, np.int32),
                    bias_exp=np.zeros(n, np.int32), du=4095, dv=2048, in_shape=in_shape, out_shape=(c_out, ho, wo),
                    stride=(stride, stride), padding=(pad, pad))


def check_limits(pl, net):
    spec = pl.chip.core
    for c in pl.cores:
        assert 0 < c.neurons <= spec.max_neurons
        assert c.synaptic_bits <= spec.synaptic_memory_bits
        assert c.fan_in_axons <= spec.max_fan_in_axons
        assert c.fan_out_axons <= spec.max_fan_out_axons
    for li, layer in enumerate(net.layers):  # every neuron placed exactly once, in order
        cs = [c for c in pl.cores if c.layer_index == li]
        assert cs[0].neuron_start == 0 and cs[-1].neuron_stop == layer.n_out
        assert all(a.neuron_stop == b.neuron_start for a, b in zip(cs, cs[1:]))


def test_dense_counts_follow_the_limits():
    net = IntegerNetwork([dense("a", 784, 2000), dense("b", 2000, 3000), dense("o", 3000, 10, bits=8, readout=True)],
                         input_shape=(784,))
    pl = place(net, "loihi1")
    check_limits(pl, net)
    mem = LOIHI1.core.synaptic_memory_bits
    per_core_b = min(1024, mem // 2000)  # memory-bound: 524 neurons of 2000 one-bit synapses
    assert pl.cores_per_layer()["b"] == -(-3000 // per_core_b)
    assert pl.meta["n_synapses"] == 784 * 2000 + 2000 * 3000 + 3000 * 10
    assert pl.n_chips == 1


def test_conv_synapses_and_fan_in_are_exact():
    net = IntegerNetwork([conv("c1", (2, 16, 16), 8), conv("c2", (8, 8, 8), 16), dense("o", 16 * 16, 4, 8, True)],
                         input_shape=(2, 16, 16))
    pl = place(net, get_chip("loihi1"))
    check_limits(pl, net)
    layer = net.layers[0]
    ones = conv2d_int(np.ones(layer.in_shape, np.int64), np.ones_like(layer.weight_mant), layer.stride, layer.padding)
    n_syn = int(ones.sum())  # valid (non-padding) taps
    assert sum(c.synapses for c in pl.cores if c.layer == "c1") == n_syn


def test_small_core_splits_conv_and_respects_fan_out():
    core = CoreSpec(name="tiny", max_neurons=40, synaptic_memory_bits=2000, max_fan_in_axons=200,
                    max_fan_out_axons=50)
    chip = ChipSpec(name="tiny", core=core, cores_per_chip=64)
    net = IntegerNetwork([conv("c1", (2, 12, 12), 4), dense("d", 144, 30), dense("o", 30, 3, 8, True)],
                         input_shape=(2, 12, 12))
    pl = place(net, chip)
    check_limits(pl, net)
    assert pl.cores_per_layer()["c1"] > 1
    assert pl.meta["neuron_caps"][0] < 40  # c1 cores were shrunk to meet the fan-out limit


def test_errors_name_limit_and_excess():
    with pytest.raises(PlacementError, match="'a'.*fan-in of 5000 axons.*by 904"):
        place(IntegerNetwork([dense("a", 5000, 4)], input_shape=(5000,)), "loihi1")
    with pytest.raises(PlacementError, match="needs 1000 cores, 872 more than the 128"):
        core = CoreSpec(name="c", max_neurons=1, synaptic_memory_bits=10**6, max_fan_in_axons=4096,
                        max_fan_out_axons=4096)
        place(IntegerNetwork([dense("a", 10, 1000)], input_shape=(10,)), ChipSpec("c", core, 128))
    with pytest.raises(PlacementError, match="'a'.*synapses need 4000 bits"):
        core = CoreSpec(name="c", max_neurons=10, synaptic_memory_bits=1000, max_fan_in_axons=4096,
                        max_fan_out_axons=4096)
        place(IntegerNetwork([dense("a", 4000, 2)], input_shape=(4000,)), ChipSpec("c", core, 128))
    with pytest.raises(ValueError, match="unknown chip"):
        get_chip("truenorth")


def test_more_chips_make_it_fit():
    core = CoreSpec(name="c", max_neurons=1, synaptic_memory_bits=10**6, max_fan_in_axons=4096,
                    max_fan_out_axons=4096)
    net = IntegerNetwork([dense("a", 10, 200)], input_shape=(10,))
    pl = place(net, ChipSpec("c", core, 128), max_chips=2)
    assert pl.n_cores == 200 and pl.n_chips == 2


def test_reports(tmp_path):
    net = IntegerNetwork([dense("a", 64, 100), dense("o", 100, 10, 8, True)], input_shape=(64,))
    pl = place(net, "loihi2")
    d = pl.to_dict()
    assert d["n_cores"] == 2 and d["cores_per_layer"] == {"a": 1, "o": 1}
    assert json.loads(json.dumps(d)) == d
    assert type(pl).from_dict(d).to_dict() == d
    assert "loihi2" in pl.summary() and "fan-in" in pl.summary()
    png = pl.plot(tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(pl.to_json(tmp_path / "p.json").read_text())["n_cores"] == 2
    assert 0 < pl.utilisation()["neurons"][0] <= 1


def test_core_limit_profiles():
    from hw_models.core_limits import LOIHI2

    assert LOIHI1.max_cores == 128 and LOIHI1.core.max_neurons == 1024
    assert LOIHI1.core.synaptic_memory_bits == 128 * 1024 * 8 == 1048576
    assert LOIHI1.core.max_fan_in_axons == LOIHI1.core.max_fan_out_axons == 4096
    assert LOIHI2.core.max_neurons == 8192 and "max_fan_in_axons" in LOIHI2.core.unsure
    assert "Davies" in LOIHI1.source and LOIHI1.with_chips(2).max_cores == 256
