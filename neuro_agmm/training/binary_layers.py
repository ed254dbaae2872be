"""Weight layers of three precisions: binary (±1 × per-channel scale), int8 (fake-quant) and float.

Why: a BSNN's hidden layers store one bit per synapse; the first and last layers usually keep
8 bits; the full-precision baseline keeps floats. All three compute the artifact's synapse
block ``I = scale[c] * (W x) + bias[c]`` (``neuro_agmm.artifact``) in exactly that order
(matmul/conv with the quantized ``W`` first, then the per-channel scale, then the bias), so an
exported artifact rebuilt in torch reproduces the trained model's numbers bit for bit.

* ``binarize(w)``: ``sign(w)`` with ``sign(0) = +1``; straight-through estimator clipped to
  ``|w| <= 1`` (gradient 1 inside, 0 outside). The latent real weight is the parameter
  ``.weight``; the per-output-channel scale ``.scale`` is a free parameter initialised to
  ``mean |w|`` of the channel. A negative scale is allowed in training; at export the channel's
  signs are flipped and ``|scale|`` stored (``sign(w) * s == (-sign(w)) * |s|`` exactly), so the
  artifact's scales are always >= 0.
* ``quantize_int8(w)``: codes ``clamp(round(w / s), -127, 127)`` with one per-layer scale
  ``s = max |w| / 127`` (no gradient through ``s``); STE passes the gradient to ``w``.
* Float layers: plain ``F.linear`` / ``F.conv2d``; exported by per-channel int8 post-training
  quantisation (see ``export_weight``).

Every layer has ``precision`` ("binary" | "int8" | "float") and ``export_weight()`` returning
``(W, scale, bias, artifact_precision)`` as NumPy arrays. Left out: per-channel int8 scales in
training, learnable int8 scales, weight clipping (the optimizer may leave ``|w| > 1``; those
weights simply stop receiving gradient).
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INT8_MAX = 127


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(s)
        return torch.clamp(torch.round(w / s), -INT8_MAX, INT8_MAX)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (s,) = ctx.saved_tensors
        return grad / s, None


def binarize(w: torch.Tensor) -> torch.Tensor:
    """``sign(w)`` in {-1, +1} (``sign(0) = +1``); gradient passes where ``|w| <= 1``, else 0."""
    return _SignSTE.apply(w)


def int8_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-layer int8 scale ``max|w| / 127`` (detached, never 0)."""
    return (w.detach().abs().max() / INT8_MAX).clamp_min(1e-12)


def quantize_int8(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Integer codes ``clamp(round(w / s), -127, 127)`` as floats; gradient ``d codes / d w = 1 / s``."""
    return _RoundSTE.apply(w, s)


def _channel_affine(y: torch.Tensor, scale: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """``y * scale[c] + bias[c]`` with the channel in dim 1 (dense: (N, C); conv: (N, C, H, W))."""
    shape = (1, -1) + (1,) * (y.dim() - 2)
    if scale is not None:
        y = y * scale.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


HALF_EXACT_FAN_IN = {torch.bfloat16: 256, torch.float16: 2048}  # integers a half-precision output holds exactly


def _half_exact(op, x: torch.Tensor, wb: torch.Tensor, half: torch.dtype, per_channel: int) -> torch.Tensor:
    """``op(x, wb)`` for 0/1 spikes ``x`` and ±1 ``wb`` in half precision, exactly: the reduction is cut into chunks
    of at most ``HALF_EXACT_FAN_IN[half]`` terms (``per_channel`` terms per input channel), whose integer sums a
    half-precision output holds exactly, and the chunks are added in float32 (exact below 2**24). The result
    equals the float32 ``op`` bit for bit; the backward runs in ``half`` (rounded gradients, as in any mixed
    precision training)."""
    step = max(1, HALF_EXACT_FAN_IN[half] // per_channel)
    out = None
    for c in range(0, x.shape[1], step):
        part = op(x[:, c:c + step].to(half), wb[:, c:c + step].to(half)).float()
        out = part if out is None else out + part
    return out


def binary_linear(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                  half: torch.dtype | None = None) -> torch.Tensor:
    """``scale * (sign(w) x) + bias``; x (N, in), w (out, in). ``half``: compute ``sign(w) x`` in that precision,
    exactly (``_half_exact``; only for 0/1 spike inputs)."""
    wb = binarize(w)
    z = F.linear(x, wb) if half is None else _half_exact(F.linear, x, wb, half, 1)
    return _channel_affine(z, scale, bias)


def binary_conv2d(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                  stride: tuple[int, int], padding: tuple[int, int], half: torch.dtype | None = None) -> torch.Tensor:
    """``scale[c] * conv(x, sign(w)) + bias[c]``; x (N, C, H, W), w (O, C, kH, kW); ``half`` as in ``binary_linear``."""
    wb = binarize(w)
    if half is None:
        z = F.conv2d(x, wb, stride=stride, padding=padding)
    else:
        z = _half_exact(lambda a, b: F.conv2d(a, b, stride=stride, padding=padding), x, wb, half,
                        int(wb.shape[2] * wb.shape[3]))
    return _channel_affine(z, scale, bias)


def int8_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    s = int8_scale(w)
    return _channel_affine(F.linear(x, quantize_int8(w, s)) * s, None, bias)


def int8_conv2d(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    s = int8_scale(w)
    return _channel_affine(F.conv2d(x, quantize_int8(w, s), stride=stride, padding=padding) * s, None, bias)


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


class _WeightLayer(nn.Module):
    """Shared parameter setup: latent ``weight``, optional ``bias``, kaiming-uniform init like torch."""

    precision = "float"
    kind = "dense"

    def _init(self, shape: tuple[int, ...], bias: bool) -> None:
        self.weight = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def _bias_np(self) -> np.ndarray:
        return _np(self.bias).astype(np.float32) if self.bias is not None else np.zeros(self.out_channels, np.float32)

    def export_weight(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """``(W, scale (C_out,), bias (C_out,), precision)`` in artifact form (see module docstring)."""
        raise NotImplementedError


class _BinaryMixin:
    half_dtype: torch.dtype | None = None  # set by ``use_half_precision`` on layers that read spikes (not nn.Module.half)

    def _init_scale(self) -> None:
        self.scale = nn.Parameter(self.weight.detach().abs().flatten(1).mean(1).clone())

    def export_weight(self):
        sign = np.where(_np(self.weight) >= 0, 1, -1).astype(np.int8)
        scale = _np(self.scale).astype(np.float32)
        flip = np.where(scale < 0, -1, 1).astype(np.int8).reshape((-1,) + (1,) * (sign.ndim - 1))
        return sign * flip, np.abs(scale), self._bias_np(), "binary"


class _Int8Mixin:
    def export_weight(self):
        s = int8_scale(self.weight)
        codes = _np(quantize_int8(self.weight.detach(), s)).astype(np.int8)
        return codes, np.full(self.out_channels, float(s), np.float32), self._bias_np(), "int8"


class _FloatMixin:
    def export_weight(self):
        w = _np(self.weight).astype(np.float64)
        flat = np.abs(w.reshape(w.shape[0], -1)).max(1)
        s = np.where(flat > 0, flat / INT8_MAX, 1.0).astype(np.float32)
        codes = np.clip(np.round(w / s.reshape((-1,) + (1,) * (w.ndim - 1))), -INT8_MAX, INT8_MAX).astype(np.int8)
        return codes, s, self._bias_np(), "int8"


class BinaryLinear(_BinaryMixin, _WeightLayer):
    precision = "binary"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self._init((out_features, in_features), bias)
        self._init_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binary_linear(x, self.weight, self.scale, self.bias, self.half_dtype)


class Int8Linear(_Int8Mixin, _WeightLayer):
    precision = "int8"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self._init((out_features, in_features), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int8_linear(x, self.weight, self.bias)


class FloatLinear(_FloatMixin, _WeightLayer):
    precision = "float"

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self._init((out_features, in_features), bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _ConvBase(_WeightLayer):
    kind = "conv"

    def _conv_init(self, cin: int, cout: int, kernel_size, stride, padding, bias: bool) -> None:
        k = _pair(kernel_size)
        self.stride, self.padding = _pair(stride), _pair(padding)
        self._init((cout, cin, k[0], k[1]), bias)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, stride={self.stride}, padding={self.padding}"


class BinaryConv2d(_BinaryMixin, _ConvBase):
    precision = "binary"

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=1,
                 bias: bool = True) -> None:
        super().__init__()
        self._conv_init(in_channels, out_channels, kernel_size, stride, padding, bias)
        self._init_scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binary_conv2d(x, self.weight, self.scale, self.bias, self.stride, self.padding, self.half_dtype)


class Int8Conv2d(_Int8Mixin, _ConvBase):
    precision = "int8"

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=1,
                 bias: bool = True) -> None:
        super().__init__()
        self._conv_init(in_channels, out_channels, kernel_size, stride, padding, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int8_conv2d(x, self.weight, self.bias, self.stride, self.padding)


class FloatConv2d(_FloatMixin, _ConvBase):
    precision = "float"

    def __init__(self, in_channels: int, out_channels: int, kernel_size=3, stride=1, padding=1,
                 bias: bool = True) -> None:
        super().__init__()
        self._conv_init(in_channels, out_channels, kernel_size, stride, padding, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


FloatConv = FloatConv2d

LINEAR = {"binary": BinaryLinear, "int8": Int8Linear, "float": FloatLinear}
CONV = {"binary": BinaryConv2d, "int8": Int8Conv2d, "float": FloatConv2d}


def weight_layers(model: nn.Module) -> Iterator[tuple[str, _WeightLayer]]:
    """``(name, layer)`` for every weight layer of any precision, in module order."""
    for name, m in model.named_modules():
        if isinstance(m, _WeightLayer):
            yield name, m


def binary_layers(model: nn.Module) -> Iterator[tuple[str, _WeightLayer]]:
    """``(name, layer)`` for every binary layer (``precision == "binary"``), in module order."""
    for name, m in weight_layers(model):
        if m.precision == "binary":
            yield name, m


HALF_PRECISIONS = {"none": None, "bf16": torch.bfloat16}


def use_half_precision(model: nn.Module, precision: str) -> list[str]:
    """Let the binary layers of ``model`` that read spikes compute ``sign(w) x`` in ``precision`` ("bf16" or
    "none"), exactly (``_half_exact``); returns their names. A binary layer fed by the graded network input (the
    first layer with ``first_last="binary"``) stays float32: its products are not integers. Only bf16 is offered:
    fp16 gradients would need loss scaling, which AGMM's gradient hooks and the instrumentation would see."""
    if precision not in HALF_PRECISIONS:
        raise ValueError(f"half precision {precision!r}: choose from {', '.join(HALF_PRECISIONS)}")
    first = getattr(model, "first_synapse", lambda: None)()
    names = []
    for name, m in model.named_modules():
        if isinstance(m, _BinaryMixin):
            m.half_dtype = HALF_PRECISIONS[precision] if m is not first else None
            if m.half_dtype is not None:
                names.append(name)
    return names
