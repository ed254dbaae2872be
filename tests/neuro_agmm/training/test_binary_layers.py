"""Binary / int8 / float weight layers: sign with STE, fake-quant, export form."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_agmm.training.binary_layers import (BinaryConv2d, BinaryLinear, FloatConv2d, FloatLinear, Int8Conv2d, Int8Linear,
                                      binarize, binary_layers, int8_scale, quantize_int8, weight_layers)


def test_binarize_sign_zero_positive_and_clipped_ste():
    w = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    b = binarize(w)
    assert b.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    b.backward(torch.arange(1.0, 8.0))
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-3, 3, allow_nan=False, width=32), min_size=1, max_size=64))
def test_binarize_property(values):
    w = torch.tensor(values, dtype=torch.float32)
    b = binarize(w)
    assert torch.all(b.abs() == 1)
    assert torch.equal(b > 0, w >= 0)


def test_quantize_int8_codes_and_gradient():
    torch.manual_seed(0)
    w = torch.randn(20, 7, requires_grad=True)
    s = int8_scale(w)
    q = quantize_int8(w, s)
    assert torch.equal(q, torch.round(q)) and q.abs().max() == 127
    assert (q * s - w).abs().max() <= s / 2 + 1e-7
    q.sum().backward()
    torch.testing.assert_close(w.grad, torch.full_like(w, 1 / float(s)))


def _apply_export(layer, x):
    w, scale, bias, _ = layer.export_weight()
    w = torch.as_tensor(w.astype(np.float32))
    z = F.linear(x, w) if w.dim() == 2 else F.conv2d(x, w, stride=layer.stride, padding=layer.padding)
    shape = (1, -1) + (1,) * (z.dim() - 2)
    return z * torch.as_tensor(scale).view(shape) + torch.as_tensor(bias).view(shape)


@pytest.mark.parametrize("make", [lambda: BinaryLinear(10, 6), lambda: Int8Linear(10, 6),
                                  lambda: BinaryConv2d(3, 5, 3, 2, 1), lambda: Int8Conv2d(3, 5, 3, 1, 1)])
def test_export_form_reproduces_forward_exactly(make):
    torch.manual_seed(3)
    layer = make()
    with torch.no_grad():
        layer.bias.normal_()
        if hasattr(layer, "scale"):
            layer.scale.mul_(torch.tensor([1.0, -1.0, 2.0, -0.5, 1.0] + [1.0] * (layer.out_channels - 5)))
    x = torch.rand(4, 10) if layer.kind == "dense" else torch.rand(4, 3, 6, 6)
    w, scale, bias, precision = layer.export_weight()
    assert precision == layer.precision and np.all(scale >= 0)
    if precision == "binary":
        assert set(np.unique(w)) <= {-1, 1} and w.dtype == np.int8
    else:
        assert np.abs(w).max() <= 127 and w.dtype == np.int8
    torch.testing.assert_close(_apply_export(layer, x), layer(x).detach(), rtol=0, atol=0)


def test_binary_forward_formula_and_scale_init():
    torch.manual_seed(0)
    layer = BinaryLinear(8, 4, bias=False)
    torch.testing.assert_close(layer.scale.detach(), layer.weight.detach().abs().mean(1))
    x = torch.rand(3, 8)
    expect = (x @ torch.where(layer.weight >= 0, 1.0, -1.0).T) * layer.scale
    torch.testing.assert_close(layer(x), expect)
    assert layer.bias is None


def test_gradients_reach_latent_weights_and_scale():
    layer = BinaryConv2d(2, 4, 3, 1, 1)
    layer(torch.rand(2, 2, 5, 5)).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert layer.scale.grad is not None and layer.scale.grad.abs().sum() > 0


def test_float_layers_export_as_per_channel_int8():
    torch.manual_seed(1)
    layer = FloatLinear(30, 5)
    w, scale, bias, precision = layer.export_weight()
    assert precision == "int8" and scale.shape == (5,)
    np.testing.assert_allclose(w * scale[:, None], layer.weight.detach().numpy(), atol=float(scale.max()) / 2 + 1e-7)
    conv = FloatConv2d(2, 3, 3)
    x = torch.rand(1, 2, 4, 4)
    assert conv(x).shape == (1, 3, 4, 4) and conv.precision == "float"


def test_binary_layers_helper():
    net = torch.nn.Sequential(Int8Linear(4, 8), BinaryLinear(8, 8), BinaryLinear(8, 3), FloatLinear(3, 2))
    names = [n for n, _ in binary_layers(net)]
    assert names == ["1", "2"]
    assert [m.precision for _, m in weight_layers(net)] == ["int8", "binary", "binary", "float"]
