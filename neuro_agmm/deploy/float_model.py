"""A NumPy float forward pass of a ``ModelArtifact``: the trained model without torch.

Why: mapping and deployment tools must compare the integer hardware network with the
float model it came from (accuracy, per-layer spike agreement) on a machine with no
training stack. This module implements exactly the float semantics written in
``neuro_agmm.artifact``'s docstring, vectorised over a batch:

    x = input_scale * x_int;  z = W x;  I = scale * z + bias;  [BN];
    I += scale_b * (W_b x_b) + bias_b [BN_b]   for each residual shortcut b (x_b: its source node);
    v[t] = leak * v[t-1] + input_gain * I[t];  spike if v > threshold; reset to 0;
    readout (spiking=False): no spikes; prediction = argmax v[T-1].

It computes in float64 by default (``dtype=np.float32`` imitates a float32 trainer;
a few threshold ties may then resolve differently from float64). What it leaves out:
training-only parts (surrogate gradients, AGMM, latent weights) — the artifact holds
only the deployed binary network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuro_agmm.artifact import INPUT_NODE, LayerSpec, ModelArtifact
from hw_models.geometry import conv2d


@dataclass
class FloatTrace:
    """Per-layer spikes ``(B, T, n)`` bool and voltages ``(B, T, n)`` float; ``logits`` = last v ``(B, n_cls)``."""

    spikes: list[np.ndarray]
    v: list[np.ndarray]

    @property
    def logits(self) -> np.ndarray:
        return self.v[-1][:, -1, :]

    def predictions(self) -> np.ndarray:
        """``argmax`` of the readout voltage after the last step (lowest index wins ties)."""
        return np.argmax(self.logits, axis=1)


def conv2d_float(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Cross-correlation of ``x`` (B, C, H, W) with ``w`` (O, C, kH, kW) in ``x``'s float dtype."""
    return conv2d(x, w, stride, padding, dtype=x.dtype)


def block_current(block, x: np.ndarray, a: np.ndarray, c: np.ndarray, dtype=np.float64) -> np.ndarray:
    """``a * (W x) + c`` of one synapse block (a layer or a shortcut) for flat inputs ``x`` (B, n_in) -> (B, n_out)."""
    w = np.asarray(block.weight, dtype=dtype)
    if block.kind == "dense":
        return x @ w.T * a.astype(dtype) + c.astype(dtype)
    if block.kind == "conv":
        z = conv2d_float(x.reshape((x.shape[0],) + tuple(block.in_shape)), w, block.stride, block.padding)
        z = z * a.astype(dtype)[None, :, None, None] + c.astype(dtype)[None, :, None, None]
        return z.reshape(x.shape[0], -1)
    raise ValueError(f"block {block.name!r}: unknown kind {block.kind!r}")


def layer_input_current(layer: LayerSpec, x: np.ndarray, dtype=np.float64, shortcut_inputs=()) -> np.ndarray:
    """``input_gain * I`` for flat inputs ``x`` (B, n_in) -> (B, n_out), via ``folded_affine``;
    ``shortcut_inputs``: the flat input of each of the layer's shortcuts (their currents are added to ``I``)."""
    a, c = layer.folded_affine()
    cur = block_current(layer, x, a, c, dtype)
    for sc, xs in zip(layer.shortcuts, shortcut_inputs):
        a_b, c_b = sc.folded_affine()
        cur = cur + block_current(sc, xs, a_b * layer.input_gain, c_b * layer.input_gain, dtype)
    return cur


def run_float(art: ModelArtifact, inputs: np.ndarray, dtype=np.float64) -> FloatTrace:
    """Run the float model on integer inputs ``(B, T, *input_shape)`` (or one sample ``(T, ...)``)."""
    x = np.asarray(inputs)
    if x.ndim == len(art.input_shape) + 1:
        x = x[None]
    if x.ndim != len(art.input_shape) + 2 or tuple(x.shape[2:]) != tuple(art.input_shape):
        raise ValueError(f"inputs have shape {x.shape}, expected (B, T, *{tuple(art.input_shape)})")
    b, t_steps = x.shape[:2]
    layer_in = x.reshape(b, t_steps, -1).astype(dtype) * dtype(art.input_scale)
    spikes, volts = [], []
    nodes = {INPUT_NODE: layer_in}  # every node's output by name (residual shortcuts read earlier ones)
    for layer in art.layers:
        n = int(np.prod(layer.out_shape))
        v = np.zeros((b, n), dtype)
        s_rec = np.zeros((b, t_steps, n), bool)
        v_rec = np.zeros((b, t_steps, n), dtype)
        leak, thr = dtype(layer.leak), dtype(layer.threshold)
        for t in range(t_steps):
            cur = layer_input_current(layer, layer_in[:, t], dtype,
                                      [nodes[sc.source][:, t] for sc in layer.shortcuts])
            v = leak * v + cur
            if layer.spiking:
                s = v > thr
                v = np.where(s, dtype(0), v)
                s_rec[:, t] = s
            v_rec[:, t] = v
        spikes.append(s_rec)
        volts.append(v_rec)
        layer_in = s_rec.astype(dtype)
        nodes[layer.name] = layer_in
    return FloatTrace(spikes=spikes, v=volts)


def predict(art: ModelArtifact, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Predicted class per sample for ``(B, T, *input_shape)`` integer inputs."""
    x = np.asarray(inputs)
    preds = [run_float(art, x[i:i + batch_size]).predictions() for i in range(0, len(x), batch_size)]
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def accuracy(art: ModelArtifact, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose prediction equals the label."""
    return float(np.mean(predict(art, inputs) == np.asarray(labels))) if len(labels) else float("nan")
