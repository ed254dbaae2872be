"""Quantizer: the folding rule, the overflow guarantee, the refusals, and float-vs-integer agreement."""

import numpy as np
import pytest

from hw_models import core_spec
from neuro_agmm.deploy.fidelity import fill_agreement  # noqa: E402
from hw_models.mapping.quantizer import quantize
from hw_models.backends.reference import run_reference
from random_nets import artifact_inputs, random_artifact
from neuro_agmm.artifact import LayerSpec, ModelArtifact


def one_layer(scale, bias, threshold=1.0, leak=0.5, input_scale=1 / 16, input_max=16, n_in=6, readout=True,
              weight=None):
    rng = np.random.default_rng(0)
    scale = np.asarray(scale, float)
    n = scale.size
    w = weight if weight is not None else rng.choice([-1.0, 1.0], size=(n, n_in))
    hidden = LayerSpec(name="h", kind="dense", precision="binary", weight=w, scale=scale,
                       bias=np.asarray(bias, float), in_shape=(n_in,), out_shape=(n,), leak=leak, threshold=threshold,
                       input_gain=1 - leak)
    layers = [hidden]
    if readout:
        layers.append(LayerSpec(name="out", kind="dense", precision="int8", weight=rng.integers(-127, 128, (3, n)).astype(float),
                                scale=np.full(3, 0.01), bias=np.zeros(3), in_shape=(n,), out_shape=(3,), leak=1.0,
                                threshold=1.0, spiking=False))
    return ModelArtifact(layers=layers, input_shape=(n_in,), input_scale=input_scale, input_max=input_max,
                         time_steps=4, encoding="direct")


def test_rule_threshold_bias_decay_and_sign_flip():
    art = one_layer(scale=[0.2, -0.3, 0.05], bias=[0.1, -0.2, 0.0])
    net, rep = quantize(art)
    l = net.layers[0]
    k = l.weight_exp
    a = np.array([0.2, -0.3, 0.05]) * 0.5 / 16  # scale * input_gain * input_scale
    c = np.array([0.1, -0.2, 0.0]) * 0.5
    assert np.array_equal(l.vth, np.round(1.0 * 2.0**k / np.abs(a)).astype(int))
    assert np.allclose(l.bias, c / np.abs(a) * 2.0 ** (k + 6), atol=2 ** l.bias_exp.max())
    assert l.dv == 2048 and l.du == 4095
    w = art.layers[0].weight
    assert np.array_equal(l.weight_mant[1], -w[1]) and np.array_equal(l.weight_mant[0], w[0])  # negative a: flip
    assert set(np.unique(l.weight_mant)) <= {-1, 1} and l.weight_bits == 1
    assert rep.layers[0].n_flipped == 1
    out = net.layers[1]
    assert out.readout and out.dv == 0 and np.all(out.vth == core_spec.VTH_MAX)
    assert np.array_equal(out.weight_mant, art.layers[1].weight.astype(int))  # int8 codes kept (common scale)


def test_exponent_is_largest_without_overflow():
    # 6 inputs at level <= 16, ±1 weights, zero bias, leak 0.5 (negative voltage gain bound 2):
    # k is the largest with pos*16 * 2**k * 64 <= 2**23 - 1 and neg*16 * 2**k * 64 * 2 <= 2**23 - 1
    art = one_layer(scale=[0.5, 0.5], bias=[0.0, 0.0], threshold=0.01, readout=False)
    art.layers[0].spiking = True
    net, rep = quantize(art)
    w = art.layers[0].weight
    pos, neg = (w > 0).sum(axis=1).max() * 16, (w < 0).sum(axis=1).max() * 16

    def ok(k):
        return pos * 2**k * 64 <= 2**23 - 1 and neg * 2**k * 64 * 2 <= 2**23 - 1

    k = net.layers[0].weight_exp
    assert ok(k) and not ok(k + 1)


@pytest.mark.parametrize("kind,kw", [("dense", {}), ("dense", dict(bn=True, first_int8=True, hidden=(24, 12))),
                                     ("conv", dict(hidden=(4, 6)))])
def test_float_and_integer_agree(kind, kw):
    rng = np.random.default_rng(3)
    art = random_artifact(rng, kind=kind, **kw)
    x = artifact_inputs(rng, art, 40)
    net, rep = quantize(art)
    fill_agreement(rep, art, net, x, rng.integers(0, 4, 40))
    assert all(a >= 0.995 for a in rep.spike_agreement), rep.summary()
    assert rep.prediction_agreement >= 0.95
    assert all(l.vth_rel_err_max < 1e-3 for l in rep.layers if not l.readout)
    assert abs(rep.float_accuracy - rep.int_accuracy) <= 0.05
    assert "spike agreement" in rep.summary()


def test_worst_case_inputs_never_wrap_or_clip():
    rng = np.random.default_rng(5)
    art = random_artifact(rng, hidden=(16, 8), time_steps=8)
    net, rep = quantize(art)
    for level in (0, art.input_max):
        tr = run_reference(net, np.full((8,) + art.input_shape, level, np.int64))
        for q, u, v in zip(rep.layers, tr.u, tr.v):
            assert np.abs(u.astype(np.int64)).max() <= q.u_bound < 2**23
            assert v.min() > -(2**23 - 1)
        assert tr.v[-1].max() <= core_spec.VTH_MAX << 6 and not tr.spikes[-1].any()


def test_readout_with_unequal_scales_is_requantised():
    art = one_layer(scale=[0.2, 0.3], bias=[0.0, 0.1])
    art.layers[1].scale = np.array([0.01, 0.02, -0.015])
    net, rep = quantize(art)
    out = net.layers[1]
    assert out.weight_bits == 8 and np.abs(out.weight_mant).max() == 127
    assert 0 < rep.layers[1].weight_rel_err_max <= 0.5 / 127 + 1e-12


def test_refusals_name_layer_and_value():
    art = one_layer(scale=[0.2, np.nan], bias=[0.0, 0.0])
    with pytest.raises(ValueError, match="'h'.*NaN"):
        quantize(art)
    with pytest.raises(ValueError, match="'h'.*leak=0.0"):
        quantize(one_layer(scale=[0.2], bias=[0.0], leak=0.0))
    with pytest.raises(ValueError, match="'h'.*threshold"):
        quantize(one_layer(scale=[0.2], bias=[0.0], threshold=-1.0))
    with pytest.raises(ValueError, match="'h'.*zero scale"):
        quantize(one_layer(scale=[0.2, 0.0], bias=[0.0, 0.0]))
    # a bias 1e9 thresholds wide cannot be held by 13-bit mantissa << 7 at any exponent
    with pytest.raises(ValueError, match="'h'.*(bias|vth)"):
        quantize(one_layer(scale=[1e-9], bias=[1e3], threshold=1e6))
    art = one_layer(scale=[0.2], bias=[0.0])
    art.input_scale = float("nan")
    with pytest.raises(ValueError, match="input_scale"):
        quantize(art)
