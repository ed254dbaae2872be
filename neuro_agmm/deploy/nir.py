"""Export a trained BSNN (``ModelArtifact``) to NIR, the Neuromorphic Intermediate Representation.

Why: NIR (``nir`` package, Pedersen et al., Nature Communications 2024) is read by many
simulators and hardware tool chains (Norse, snnTorch, Lava-dl, SpiNNaker2, Xylo, ...);
an NIR file lets them run our float model. No torch here (``nir`` is NumPy + h5py).

Conversion (NIR nodes are continuous-time; we fix ``dt = 1`` time step and use the
forward-Euler step every NIR reader uses for discrete simulation,
``v <- v + dt/tau * ((v_leak - v) + r * I)``):

* synapses: ``nir.Affine(weight = a_o * W, bias = c_o)`` for dense layers and
  ``nir.Conv2d(weight = a_o * W, bias = c_o, stride, padding)`` for conv layers, where
  ``(a, c) = LayerSpec.folded_affine()`` (scale, bias, batch norm and ``input_gain``
  folded); the first layer's ``a`` also holds ``input_scale``, so the graph's input is the
  integer graded-spike level per step;
* a spiking layer with leak ``λ < 1``: ``nir.LIF(tau = dt/(1-λ), r = 1/(1-λ), v_leak = 0,
  v_threshold = threshold, v_reset = 0)``, which gives exactly
  ``v <- λ v + (a z + c)``, spike if ``v > threshold``, reset to 0; with ``λ = 1``:
  ``nir.IF(r = 1, v_threshold)``;
* the readout (``spiking=False``): ``nir.I(r = 1)`` for ``λ = 1`` (a perfect integrator)
  or ``nir.LI(tau, r, v_leak = 0)``; the prediction is argmax of its state after the
  last step;
* ``nir.Flatten(start_dim=0)`` between a conv and a dense layer (C-order, as in torch).

Every parameter is a per-neuron array (``nir.write`` fails on scalars). ``simulate_nir``
runs such a graph with exactly those discrete semantics, so tests can check the
export against ``neuro_agmm.float_model``. What it leaves out: NIR's ``CubaLIF`` (our
synaptic current has no memory: ``du = 4095``), delays, and importing arbitrary
third-party NIR graphs (``simulate_nir`` handles the node types written here).
"""

from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np

from neuro_agmm.artifact import ModelArtifact
from neuro_agmm.deploy.float_model import conv2d_float

DT = 1.0


def _neuron_node(layer, shape: tuple[int, ...]) -> nir.NIRNode:
    ones = np.ones(shape, np.float64)
    lam = float(layer.leak)
    if layer.spiking:
        if lam >= 1.0:
            return nir.IF(r=ones.copy(), v_threshold=ones * layer.threshold, v_reset=np.zeros(shape))
        return nir.LIF(tau=ones * (DT / (1.0 - lam)), r=ones / (1.0 - lam), v_leak=np.zeros(shape),
                       v_threshold=ones * layer.threshold, v_reset=np.zeros(shape))
    if lam >= 1.0:
        return nir.I(r=ones.copy())
    return nir.LI(tau=ones * (DT / (1.0 - lam)), r=ones / (1.0 - lam), v_leak=np.zeros(shape))


def to_nir(art: ModelArtifact) -> nir.NIRGraph:
    """Build the NIR graph of ``art`` (see the module docstring for the conversion)."""
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(art.input_shape)})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    prev_kind = None
    for i, layer in enumerate(art.layers):
        a, c = layer.folded_affine()
        if i == 0:
            a = a * float(art.input_scale)
        w = np.asarray(layer.weight, np.float64)
        w_eff = w * a.reshape((-1,) + (1,) * (w.ndim - 1))
        if layer.kind == "dense" and prev_kind == "conv":
            name = f"{i}_flatten"
            nodes[name] = nir.Flatten(input_type={"input": np.array(art.layers[i - 1].out_shape)}, start_dim=0)
            edges.append((prev, name))
            prev = name
        syn = f"{i}_{layer.name}_syn"
        if layer.kind == "dense":
            nodes[syn] = nir.Affine(weight=w_eff, bias=np.asarray(c, np.float64))
        elif layer.kind == "conv":
            nodes[syn] = nir.Conv2d(input_shape=tuple(int(x) for x in layer.in_shape[1:]), weight=w_eff,
                                    stride=tuple(layer.stride), padding=tuple(layer.padding), dilation=(1, 1),
                                    groups=1, bias=np.asarray(c, np.float64))
        else:
            raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")
        neu = f"{i}_{layer.name}_neuron"
        nodes[neu] = _neuron_node(layer, tuple(int(x) for x in layer.out_shape))
        edges += [(prev, syn), (syn, neu)]
        prev, prev_kind = neu, layer.kind
    nodes["output"] = nir.Output(output_type={"output": np.array(art.layers[-1].out_shape)})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"dt": DT, "producer": "neuro_agmm.deploy.nir",
                                  "input": "integer graded-spike levels per step (input_scale folded into layer 0)",
                                  "prediction": "argmax of the last node's state after the last step"})


def export_nir(art: ModelArtifact, path: str | os.PathLike) -> Path:
    """Write ``art`` as an NIR HDF5 file (atomically). Returns the path."""
    from neuro_agmm.artifact import atomic_write

    graph = to_nir(art)
    return atomic_write(path, lambda tmp: nir.write(str(tmp), graph))


def _order(graph: nir.NIRGraph) -> list[str]:
    nxt = {a: b for a, b in graph.edges}
    if len(nxt) != len(graph.edges):
        raise ValueError("simulate_nir handles chains only (a node with two successors found)")
    order, node = [], "input"
    while node in nxt:
        node = nxt[node]
        order.append(node)
    return order


def simulate_nir(graph: nir.NIRGraph, inputs: np.ndarray, dt: float = DT) -> tuple[list[np.ndarray], np.ndarray]:
    """Run a chain graph of the node types ``to_nir`` writes on ``(B, T, *input_shape)`` inputs.

    Forward Euler with step ``dt``; returns (spikes per spiking node ``(B, T, ...)``, final
    state of the last stateful node ``(B, ...)``).
    """
    x = np.asarray(inputs, np.float64)
    b, t_steps = x.shape[:2]
    order = _order(graph)
    state: dict[str, np.ndarray] = {}
    spikes: dict[str, np.ndarray] = {}
    last_state = None
    for t in range(t_steps):
        h = x[:, t]
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Affine):
                h = h.reshape(b, -1) @ node.weight.T + node.bias
            elif isinstance(node, nir.Linear):
                h = h.reshape(b, -1) @ node.weight.T
            elif isinstance(node, nir.Conv2d):
                h = conv2d_float(h, node.weight, tuple(np.broadcast_to(node.stride, (2,))),
                                 tuple(np.broadcast_to(node.padding, (2,)))) + node.bias[None, :, None, None]
            elif isinstance(node, nir.Flatten):
                h = h.reshape(b, -1)
            elif isinstance(node, (nir.LIF, nir.IF, nir.LI, nir.I)):
                v = state.get(name, np.zeros_like(h))
                if isinstance(node, (nir.LIF, nir.LI)):
                    v = v + dt / node.tau * ((node.v_leak - v) + node.r * h)
                else:
                    v = v + dt * node.r * h
                if isinstance(node, (nir.LIF, nir.IF)):
                    s = v > node.v_threshold
                    v = np.where(s, node.v_reset, v)
                    spikes.setdefault(name, np.zeros((b, t_steps) + s.shape[1:], bool))[:, t] = s
                    h = s.astype(np.float64)
                else:
                    h = v
                state[name] = v
                last_state = name
            elif isinstance(node, nir.Output):
                pass
            else:
                raise ValueError(f"simulate_nir: node {name!r} of type {type(node).__name__} is not supported")
    return [spikes[n] for n in order if n in spikes], state[last_state]
