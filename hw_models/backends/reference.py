"""The reference run of an integer network: ``core_spec`` applied literally, one sample.

Deliberately plain (a Python loop over time, an explicit convolution) so that it is
easy to check by eye; it is the yardstick the fast emulator, Lava and Brian2 are tested
against, not the path for batches (``hw_models.emulator`` is).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer


@dataclass
class RunTrace:
    """Per-layer spikes ``(T, n_out)`` bool and voltages/currents ``(T, n_out)`` int32, canonical time."""

    spikes: list[np.ndarray]
    v: list[np.ndarray]
    u: list[np.ndarray]

    def prediction(self) -> int:
        """``argmax`` of the last layer's voltage after the last step (lowest index wins ties)."""
        return int(np.argmax(self.v[-1][-1]))


def conv_output_hw(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int]) -> tuple[int, int]:
    """Output height and width of a 2-D cross-correlation (torch's ``conv2d`` arithmetic)."""
    return ((h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)


def conv2d(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
           dtype=np.int64) -> np.ndarray:
    """Cross-correlation (torch's ``conv2d``) of ``x`` (C, H, W) or (B, C, H, W) with ``w`` (O, C, kH, kW).

    Computed in ``dtype`` (int64 for the integer network, float for the float model);
    returns (O, H', W') or (B, O, H', W').
    """
    batched = x.ndim == 4
    xb = x if batched else x[None]
    b, c, h, wd = xb.shape
    o, c2, kh, kw = w.shape
    if c != c2:
        raise ValueError(f"conv input has {c} channels, weights expect {c2}")
    ph, pw = padding
    sh, sw = stride
    xp = np.zeros((b, c, h + 2 * ph, wd + 2 * pw), dtype=dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = xb
    ho, wo = conv_output_hw(h, wd, (kh, kw), stride, padding)
    out = np.zeros((b, o, ho, wo), dtype=dtype)
    wc = w.astype(dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw]  # (B, C, ho, wo)
            out += np.einsum("oc,bchw->bohw", wc[:, :, i, j], patch)
    return out if batched else out[0]


def conv2d_int(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Integer cross-correlation of ``x`` (C, H, W) with ``w`` (O, C, kH, kW); returns (O, H', W') int64."""
    return conv2d(x, w, stride, padding, dtype=np.int64)


def synaptic_activation(layer: IntLayer, s_in: np.ndarray) -> np.ndarray:
    """Step 1 of ``core_spec``: the int32 activation of ``layer`` for flat input ``s_in``."""
    if layer.kind == "dense":
        acc = layer.weight_mant.astype(np.int64) @ s_in.astype(np.int64).reshape(-1)
    elif layer.kind == "conv":
        acc = conv2d_int(s_in.reshape(layer.in_shape), layer.weight_mant, layer.stride, layer.padding).reshape(-1)
    else:
        raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")
    return core_spec.apply_weight_exp(acc, layer.weight_exp)


def run_reference(net: IntegerNetwork, inputs: np.ndarray) -> RunTrace:
    """Run ``net`` on ``inputs`` of shape ``(T, *input_shape)`` (non-negative integers), canonical schedule."""
    inputs = np.asarray(inputs)
    if not np.issubdtype(inputs.dtype, np.integer) and inputs.dtype != bool:
        raise ValueError(f"inputs must be integers (graded spikes), got {inputs.dtype}")
    t_steps = inputs.shape[0]
    spikes, volts, currents = [], [], []
    layer_in = inputs.reshape(t_steps, -1).astype(np.int64)
    for layer in net.layers:
        u = np.zeros(layer.n_out, np.int32)
        v = np.zeros(layer.n_out, np.int32)
        bias = layer.bias
        s_rec = np.zeros((t_steps, layer.n_out), bool)
        v_rec = np.zeros((t_steps, layer.n_out), np.int32)
        u_rec = np.zeros((t_steps, layer.n_out), np.int32)
        for t in range(t_steps):
            a = synaptic_activation(layer, layer_in[t])
            u, v, s = core_spec.lif_step(u, v, a, layer.du, layer.dv, bias, layer.vth)
            s_rec[t], v_rec[t], u_rec[t] = s, v, u
        spikes.append(s_rec)
        volts.append(v_rec)
        currents.append(u_rec)
        layer_in = s_rec.astype(np.int64)
    return RunTrace(spikes=spikes, v=volts, u=currents)
