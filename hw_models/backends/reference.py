"""The reference run of an integer network: ``core_spec`` applied literally, one sample.

Deliberately plain (a Python loop over time, an explicit convolution) so that it is
easy to check by eye; it is the yardstick the fast emulator, Lava and Brian2 are tested
against, not the path for batches (``hw_models.emulator`` is).
"""

from __future__ import annotations

import numpy as np

from hw_models import core_spec
from hw_models.geometry import conv2d_int
from hw_models.integer_network import IntegerNetwork, IntLayer, IntSynapse
from hw_models.results import RunTrace


def synaptic_activation(layer: IntLayer | IntSynapse, s_in: np.ndarray) -> np.ndarray:
    """Step 1 of ``core_spec``: the int32 activation of ``layer`` (or a shortcut block) for flat input ``s_in``."""
    if layer.kind == "dense":
        acc = layer.weight_mant.astype(np.int64) @ s_in.astype(np.int64).reshape(-1)
    elif layer.kind == "conv":
        acc = conv2d_int(s_in.reshape(layer.in_shape), layer.weight_mant, layer.stride, layer.padding).reshape(-1)
    else:
        raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")
    return core_spec.apply_weight_exp(acc, layer.weight_exp)


def delayed_activation(layer: IntLayer, history: np.ndarray, t: int) -> np.ndarray:
    """Step 1 with per-synapse delays: ``shift(sum_j W_ij s_j[t - d_ij], weight_exp)`` (``history`` is (T, n_in))."""
    w = layer.weight_mant.astype(np.int64)
    acc = np.zeros(layer.n_out, np.int64)
    for d in np.unique(layer.delay):
        if t - d >= 0:
            acc += np.where(layer.delay == d, w, 0) @ history[t - d]
    return core_spec.apply_weight_exp(acc, layer.weight_exp)


def run_reference(net: IntegerNetwork, inputs: np.ndarray) -> RunTrace:
    """Run ``net`` on ``inputs`` of shape ``(T, *input_shape)`` (non-negative integers), canonical schedule."""
    inputs = np.asarray(inputs)
    if not np.issubdtype(inputs.dtype, np.integer) and inputs.dtype != bool:
        raise ValueError(f"inputs must be integers (graded spikes), got {inputs.dtype}")
    t_steps = inputs.shape[0]
    spikes, volts, currents = [], [], []
    x_in = inputs.reshape(t_steps, -1).astype(np.int64)
    layer_in = x_in
    for k, layer in enumerate(net.layers):
        state = core_spec.CoreState(np.zeros(layer.n_out, np.int32), np.zeros(layer.n_out, np.int32))
        params = layer.core_params()
        s_rec = np.zeros((t_steps, layer.n_out), bool)
        v_rec = np.zeros((t_steps, layer.n_out), np.int32)
        u_rec = np.zeros((t_steps, layer.n_out), np.int32)
        for t in range(t_steps):
            a = synaptic_activation(layer, layer_in[t]) if layer.delay is None else \
                delayed_activation(layer, layer_in, t)
            if layer.shortcuts:  # rule 1b: every block by rule 1, then the int32 sum
                a = core_spec.block_activation(
                    [a] + [synaptic_activation(sc, (x_in if sc.source < 0 else spikes[sc.source])[t])
                           for sc in layer.shortcuts])
            s, state = core_spec.step(state, a, params)  # rules 2-4
            s_rec[t], v_rec[t], u_rec[t] = s, state.v, state.u
        spikes.append(s_rec)
        volts.append(v_rec)
        currents.append(u_rec)
        layer_in = s_rec.astype(np.int64)
    return RunTrace(spikes=spikes, v=volts, u=currents)
