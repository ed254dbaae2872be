"""Import a NIR graph (e.g. trained in Norse or snnTorch) into a ``ModelArtifact``, so it maps onto our cores.

Why: NIR is how the field's trainers hand a network on. A graph becomes an artifact with the float
semantics of ``neuro_agmm.artifact`` and then goes through ``neuro_agmm.map`` like one we trained.

Supported: a single chain ``Input → [Flatten] → synapse → neuron → … → synapse → [LI | I] → Output``
with synapses ``Affine``, ``Linear``, ``Conv2d`` (dilation 1, one group) and neurons ``LIF`` and ``IF``
(hidden, spiking), ``LI`` and ``I`` (the readout, non-spiking). A readout that is a synapse alone
(the graph's output is its current per step, as ``neuro_agmm.deploy.nir`` writes) integrates with
the leak in ``metadata["readout_leak"]`` (default 1: the sum over time). Forward Euler with step
``dt`` (``metadata["dt"]`` unless given):

* ``LIF/LI``: ``v <- λ v + g (W z + b) + (dt/τ) v_leak`` with ``λ = 1 - dt/τ``, ``g = r dt/τ``;
* ``IF/I``: ``λ = 1``, ``g = r dt``;
* a per-neuron threshold ``θ > 0`` is divided into ``g`` and the bias (the reset is to 0, so
  spikes are unchanged) when a layer's thresholds differ; ``λ`` must be one number per layer
  and, in a conv layer, ``g``, ``θ`` and the bias one number per channel.

Weights: a row (output channel) whose entries all have one magnitude ``m`` is stored as binary
``±1`` with scale ``m``; any other row as int8 codes with scale ``max|w| / 127``, and the largest
relative rounding error is recorded in ``provenance["nir_import"]`` (0 when exact). Anything else —
``CubaLIF`` (a synaptic current with memory), ``v_reset ≠ 0``, pooling, recurrent or branching
graphs, a spiking last layer — is refused by name with ``NirImportError``; nothing is dropped.
"""

from __future__ import annotations

import os
from typing import Optional

import nir
import numpy as np

from neuro_agmm.artifact import ArtifactError, LayerSpec, ModelArtifact
from neuro_agmm.deploy.nir import chain

SYNAPSES = (nir.Affine, nir.Linear, nir.Conv2d)
SPIKING = (nir.LIF, nir.IF)
INTEGRATORS = (nir.LI, nir.I)


class NirImportError(ArtifactError):
    """A NIR graph uses a node kind or parameter the artifact cannot express (names the node and the rule)."""


def _meta(graph: nir.NIRGraph, key: str):
    v = (graph.metadata or {}).get(key)
    return v.item() if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0) else v


def _per_neuron(node_name: str, field: str, value, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value, np.float64)
    try:
        arr = arr.reshape(shape) if arr.size == int(np.prod(shape)) else np.broadcast_to(arr, shape)
    except ValueError as e:
        raise NirImportError(f"node {node_name!r}: {field} of shape {np.shape(value)} does not fit neurons {shape}") from e
    if not np.all(np.isfinite(arr)):
        raise NirImportError(f"node {node_name!r}: {field} is not finite")
    return arr


def _dynamics(name: str, node: nir.NIRNode, shape: tuple[int, ...], dt: float):
    """Per-neuron (λ, g, bias from v_leak, θ) of a neuron node (θ = None for integrators)."""
    if isinstance(node, (nir.LIF, nir.LI)):
        tau = _per_neuron(name, "tau", node.tau, shape)
        if np.any(tau <= 0):
            raise NirImportError(f"node {name!r}: tau must be > 0")
        k = dt / tau
        lam, gain = 1.0 - k, _per_neuron(name, "r", node.r, shape) * k
        leak_bias = _per_neuron(name, "v_leak", node.v_leak, shape) * k
    else:
        lam = np.ones(shape)
        gain = _per_neuron(name, "r", node.r, shape) * dt
        leak_bias = np.zeros(shape)
    theta = None
    if isinstance(node, SPIKING):
        if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
            raise NirImportError(f"node {name!r}: v_reset must be 0 (our neurons reset to 0)")
        theta = _per_neuron(name, "v_threshold", node.v_threshold, shape)
        if np.any(theta <= 0):
            raise NirImportError(f"node {name!r}: v_threshold must be > 0")
    if np.ptp(lam) > 1e-12 * max(1.0, float(np.abs(lam).max())):
        raise NirImportError(f"node {name!r}: the leak 1 - dt/tau differs between neurons; our layers have one leak")
    if not 0.0 <= float(lam.flat[0]) <= 1.0:
        raise NirImportError(f"node {name!r}: leak 1 - dt/tau = {float(lam.flat[0]):.4g} is outside [0, 1] "
                             f"(dt = {dt} s too large for tau?)")
    return float(lam.flat[0]), gain, leak_bias, theta


def _per_channel(name: str, field: str, arr: np.ndarray, conv: bool) -> np.ndarray:
    if not conv:
        return arr.reshape(-1)
    flat = arr.reshape(arr.shape[0], -1)
    if np.any(flat.max(1) != flat.min(1)):
        raise NirImportError(f"node {name!r}: {field} differs within a conv channel; a conv layer takes one per channel")
    return flat[:, 0]


def _quantize(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, float]:
    """(codes, per-row scale, precision, largest relative rounding error) for weights ``(C_out, ...)``.

    A row that is already ``scale * integer codes`` (peak code ``m ≤ 127``, found by trying each ``m``)
    is kept exactly; other rows get ``scale = max|w| / 127`` and rounding.
    """
    rows = w.reshape(w.shape[0], -1)
    mag = np.abs(rows)
    peak = mag.max(1)
    if np.all(peak > 0) and np.all(mag == peak[:, None]):
        return np.sign(w).astype(np.float32), peak, "binary", 0.0
    safe = np.where(peak > 0, peak, 1.0)
    scale = safe / 127.0
    todo = np.ones(len(rows), bool)
    for m in range(1, 128):  # smallest peak code that puts every weight of the row on the integer grid
        q = rows[todo] * (m / safe[todo, None])
        exact = np.all(np.abs(q - np.round(q)) <= 1e-4, axis=1)  # float32 weights sit within ~1e-5 of the grid
        idx = np.flatnonzero(todo)[exact]
        scale[idx] = safe[idx] / m
        todo[idx] = False
        if not todo.any():
            break
    codes = np.clip(np.round(rows / scale[:, None]), -127, 127)
    err = np.abs(codes * scale[:, None] - rows).max(1) / safe
    return codes.reshape(w.shape).astype(np.float32), scale, "int8", float(err.max())


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """``nir.read`` with its failures (not HDF5, not a NIR graph, a corrupt node) as ``NirImportError``."""
    from neuro_agmm.artifact.guard import preflight

    preflight(path, lambda p: nir.read(str(p)), NirImportError)
    try:
        return nir.read(str(path))
    except Exception as e:  # nir and h5py raise OSError, KeyError, TypeError, ValueError, ... for bad files
        raise NirImportError(f"{path}: not a readable NIR graph ({type(e).__name__}: {e})") from e


def from_nir(graph: nir.NIRGraph | str | os.PathLike, time_steps: Optional[int] = None, dt: Optional[float] = None,
             input_max: Optional[int] = None, readout_leak: Optional[float] = None) -> ModelArtifact:
    """Convert a chain NIR graph (or file) into a ``ModelArtifact`` (see the module docstring for the rules)."""
    if not isinstance(graph, nir.NIRGraph):
        graph = read_graph(graph)
    dt = float(dt if dt is not None else _meta(graph, "dt") or 0.0)
    if not dt > 0:
        raise NirImportError("the graph's metadata has no 'dt': pass dt (the importer's time step in seconds)")
    time_steps = int(time_steps if time_steps is not None else _meta(graph, "time_steps") or 0)
    if time_steps < 1:
        raise NirImportError("the graph's metadata has no 'time_steps': pass time_steps (steps per sample)")
    inp = graph.nodes["input"] if "input" in graph.nodes else None
    if not isinstance(inp, nir.Input):
        raise NirImportError("the graph has no nir.Input node named 'input'")
    try:
        order = chain(graph)
    except ValueError as e:
        raise NirImportError(str(e)) from e
    input_shape = tuple(int(s) for s in np.asarray(inp.input_type["input"]).reshape(-1))
    shape, layers, worst = input_shape, [], 0.0
    i, names = 0, [n for n in order if not isinstance(graph.nodes[n], nir.Output)]
    while i < len(names):
        name, node = names[i], graph.nodes[names[i]]
        if isinstance(node, nir.Flatten):
            shape = (int(np.prod(shape)),)
            i += 1
            continue
        if not isinstance(node, SYNAPSES):
            raise NirImportError(f"node {name!r}: {type(node).__name__} is not supported here "
                                 f"(expected Affine, Linear, Conv2d or Flatten; see neuro_agmm.deploy.nir_import)")
        nxt = graph.nodes[names[i + 1]] if i + 1 < len(names) else None
        if nxt is not None and not isinstance(nxt, SPIKING + INTEGRATORS):
            raise NirImportError(f"node {names[i + 1]!r}: {type(nxt).__name__} after synapse {name!r} is not "
                                 f"supported (LIF, IF, LI or I expected)")
        layer, shape, err = _layer(graph, names, i, shape, dt, readout_leak)
        worst = max(worst, err)
        layers.append(layer)
        i += 1 if nxt is None else 2
    if not layers or layers[-1].spiking:
        raise NirImportError("the last layer must be a non-spiking readout (a synapse alone, or followed by LI or I); "
                             "the artifact predicts from the readout voltage")
    if any(not l.spiking for l in layers[:-1]):
        bad = next(l.name for l in layers[:-1] if not l.spiking)
        raise NirImportError(f"node {bad!r}: a non-spiking layer before the readout is not supported")
    in_max = int(input_max if input_max is not None else _meta(graph, "input_max") or 1)
    prov = {"source": "nir", "producer": str(_meta(graph, "producer") or "unknown"),
            "nir_import": {"dt": dt, "max_weight_rounding": worst}}
    return ModelArtifact(layers=layers, input_shape=input_shape, input_scale=1.0, input_max=in_max,
                         time_steps=time_steps, encoding="direct", provenance=prov)


def _layer(graph: nir.NIRGraph, names: list[str], i: int, shape: tuple[int, ...], dt: float,
           readout_leak: Optional[float]) -> tuple[LayerSpec, tuple[int, ...], float]:
    name, syn = names[i], graph.nodes[names[i]]
    w = np.asarray(syn.weight, np.float64)
    conv = isinstance(syn, nir.Conv2d)
    if conv:
        if np.any(np.asarray(syn.dilation) != 1) or int(np.asarray(syn.groups)) != 1:
            raise NirImportError(f"node {name!r}: Conv2d with dilation or groups is not supported")
        if isinstance(syn.padding, str):
            raise NirImportError(f"node {name!r}: string padding {syn.padding!r} is not supported (give integers)")
        if len(shape) != 3 or shape[0] != w.shape[1]:
            raise NirImportError(f"node {name!r}: Conv2d expects {w.shape[1]} input channels, the input is {shape}")
        stride = tuple(int(s) for s in np.broadcast_to(syn.stride, (2,)))
        pad = tuple(int(p) for p in np.broadcast_to(syn.padding, (2,)))
        ho = (shape[1] + 2 * pad[0] - w.shape[2]) // stride[0] + 1
        wo = (shape[2] + 2 * pad[1] - w.shape[3]) // stride[1] + 1
        out_shape: tuple[int, ...] = (int(w.shape[0]), ho, wo)
    else:
        if int(np.prod(shape)) != w.shape[1] or len(shape) != 1:
            raise NirImportError(f"node {name!r}: {type(syn).__name__} takes {w.shape[1]} inputs, the input is {shape}"
                                 + (" (a Flatten is missing)" if len(shape) > 1 else ""))
        stride, pad, out_shape = (1, 1), (0, 0), (int(w.shape[0]),)
    bias = np.asarray(getattr(syn, "bias", None) if getattr(syn, "bias", None) is not None else 0.0, np.float64)
    bias = np.broadcast_to(bias.reshape(-1) if bias.ndim else bias, (w.shape[0],))
    neu_name = names[i + 1] if i + 1 < len(names) else None
    neu = graph.nodes[neu_name] if neu_name else None
    if neu is None:
        lam = float(readout_leak if readout_leak is not None else _meta(graph, "readout_leak") or 1.0)
        gain, leak_bias, theta = np.ones(out_shape), np.zeros(out_shape), None
    else:
        lam, gain, leak_bias, theta = _dynamics(neu_name, neu, out_shape, dt)
    g = _per_channel(neu_name or name, "the input gain", gain, conv)
    lb = _per_channel(neu_name or name, "v_leak", leak_bias, conv)
    spiking = theta is not None
    threshold = 1.0
    if spiking:
        th = _per_channel(neu_name, "v_threshold", theta, conv)
        if np.all(th == th[0]):
            threshold, th = float(th[0]), np.ones_like(th)
    else:
        th = np.ones(out_shape[0])
    codes, s, precision, err = _quantize(w)
    layer = LayerSpec(name=name, kind="conv" if conv else "dense", precision=precision, weight=codes,
                      scale=g * s / th, bias=(g * bias + lb) / th, in_shape=tuple(shape), out_shape=out_shape,
                      leak=lam, threshold=threshold, spiking=spiking, stride=stride, padding=pad)
    return layer, out_shape, err
