"""Export a trained BSNN (``ModelArtifact``) to NIR, the Neuromorphic Intermediate Representation.

Why: NIR (``nir`` package, Pedersen et al., Nature Communications 2024) is how Norse, snnTorch,
Lava-dl, SpiNNaker2, Xylo and others exchange spiking networks. The graph this module writes is
built from the node kinds that **Norse 1.1.0's ``norse.torch.from_nir`` and snnTorch 1.0.0's
``snntorch.import_nir.import_from_nir`` both read correctly**, so a file we write runs there
(tests load it in both and compare predictions with our float model). No torch here.

Conventions (``docs/nir.md`` has the derivations and the importer quirks that fix them):

* **time step** ``DT = 1e-4`` s: snnTorch's importer hard-codes ``dt = 1e-4`` and Norse's takes
  ``from_nir(graph, dt=1e-4)``. NIR's LIF ``tau dv/dt = (v_leak - v) + r I`` stepped by forward
  Euler gives ``v <- (1 - dt/tau) v + (dt/tau) r I``;
* **a spiking layer with leak** ``λ``: ``nir.LIF(tau = DT/(1-λ), r = 1, v_leak = 0,
  v_threshold = threshold, v_reset = 0)`` after a synapse whose weights and bias carry
  ``1/(1-λ)`` (the *resistance is folded into the weights*: Norse ignores ``LIF.r``). A perfect
  integrator (``λ = 1``) is written with ``λ = 1 - 2**-24`` (``PERFECT_LEAK``), because
  snnTorch turns ``nir.IF`` into a neuron with ``β = 0.9``;
* **synapses**: ``nir.Affine`` (dense) or ``nir.Conv2d`` with ``weight = a·W``, ``bias = c``
  where ``(a, c) = LayerSpec.folded_affine()`` (binary scale, bias, batch norm and input gain
  folded); the first layer also holds ``input_scale``, so the graph's input is the integer
  graded-spike level per step;
* **the readout** (``spiking=False``) is its synapse alone: the graph's output is the readout
  current ``y[t]`` per step, and the prediction is ``argmax_k Σ_t λ_r^(T-1-t) y[t, k]`` with the
  readout leak ``λ_r`` in the graph metadata (``readout_leak``; 1 for our default readout: the sum
  over time). Neither importer reads ``nir.LI`` or ``nir.I``;
* ``nir.Flatten(start_dim=0)`` before a dense layer whose input is image-shaped (the input of an
  MLP on images, or a conv output). NIR shapes carry no batch axis, and both importers map
  ``start_dim`` to ``torch.nn.Flatten`` unchanged, so feed them one sample at a time (unbatched).

* **a residual add**: each shortcut is one more synapse node (``Conv2d``/``Affine``, weights
  folded the same way, the layer's ``1/(1-λ)`` included) from the source node's LIF (or the
  input) into the target LIF; NIR sums a node's inputs. snnTorch 1.0.0's importer (nirtorch's
  ``nir_to_torch``) runs such a graph exactly, and so do Norse's modules under ``nir_to_torch``;
  Norse 1.1.0's own ``from_nir`` does not: its scheduler (nirtorch's deprecated ``GraphExecutor``)
  runs nodes in depth-first preorder, which puts a residual add's target before its second branch
  (tests pin this; ``docs/nir.md`` gives the workaround).

Every parameter is a per-neuron array (``nir.write`` fails on scalars). ``simulate_nir`` runs
feed-forward graphs (DAGs, inputs summed) of the node kinds above (and ``IF``/``LI``/``I``, which third-party graphs use)
with exactly these discrete semantics. ``neuro_agmm.deploy.nir_import`` reads graphs back.
"""

from __future__ import annotations

import os
from pathlib import Path

import nir
import numpy as np

from neuro_agmm.artifact import INPUT_NODE, LayerSpec, ModelArtifact
from neuro_agmm.deploy.float_model import conv2d_float

DT = 1e-4
PERFECT_LEAK = 1.0 - 2.0 ** -24
PRODUCER = "neuro_agmm.deploy.nir"


def written_leak(leak: float) -> float:
    """The leak a layer is written with: its own, or ``PERFECT_LEAK`` for a perfect integrator."""
    return min(float(leak), PERFECT_LEAK)


def _lif(layer: LayerSpec, shape: tuple[int, ...]) -> nir.LIF:
    ones = np.ones(shape, np.float64)
    return nir.LIF(tau=ones * (DT / (1.0 - written_leak(layer.leak))), r=ones.copy(), v_leak=np.zeros(shape),
                   v_threshold=ones * float(layer.threshold), v_reset=np.zeros(shape))


def _synapse(layer: LayerSpec, first: bool, input_scale: float, block=None) -> nir.NIRNode:
    """The synapse node of ``layer``'s main block, or of its shortcut ``block`` (``first``: reads the input)."""
    if block is None:
        block, (a, c) = layer, layer.folded_affine()
    else:
        a, c = block.folded_affine()
        a, c = a * layer.input_gain, c * layer.input_gain
    if first:
        a = a * float(input_scale)
    gain = 1.0 / (1.0 - written_leak(layer.leak)) if layer.spiking else 1.0
    w = np.asarray(block.weight, np.float64)
    w_eff = w * (a * gain).reshape((-1,) + (1,) * (w.ndim - 1))
    b = np.asarray(c, np.float64) * gain
    if block.kind == "dense":
        return nir.Affine(weight=w_eff, bias=b)
    if block.kind == "conv":
        return nir.Conv2d(input_shape=tuple(int(x) for x in block.in_shape[1:]), weight=w_eff,
                          stride=tuple(block.stride), padding=tuple(block.padding), dilation=(1, 1), groups=1, bias=b)
    raise ValueError(f"block {block.name!r}: unknown kind {block.kind!r}")


def to_nir(art: ModelArtifact) -> nir.NIRGraph:
    """Build the NIR graph of ``art`` (see the module docstring for the conventions)."""
    if art.layers[-1].spiking or any(not l.spiking for l in art.layers[:-1]):
        raise ValueError("NIR export needs spiking hidden layers and one non-spiking readout as the last layer")
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(art.input_shape)})}
    edges: list[tuple[str, str]] = []
    prev, shape = "input", tuple(int(s) for s in art.input_shape)
    out_node = {INPUT_NODE: ("input", shape)}  # artifact node -> (NIR node emitting it, its shape)
    for i, layer in enumerate(art.layers):
        if layer.kind == "dense" and len(shape) > 1:
            name = f"{i}_flatten"
            nodes[name] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0)
            edges.append((prev, name))
            prev = name
        node = f"{i}_{layer.name}".replace(".", "_")  # torch module names (Norse, snnTorch) cannot hold a dot
        syn = f"{node}_syn"
        nodes[syn] = _synapse(layer, i == 0, art.input_scale)
        edges.append((prev, syn))
        prev, shape = syn, tuple(int(x) for x in layer.out_shape)
        if layer.shortcuts and not layer.spiking:
            raise ValueError(f"layer {layer.name!r}: the readout takes no residual shortcuts")
        for sc in layer.shortcuts:  # a residual add: a second synapse node into the same LIF (NIR sums inputs)
            src, src_shape = out_node[sc.source]
            if sc.kind == "dense" and len(src_shape) > 1:
                raise ValueError(f"layer {layer.name!r} shortcut {sc.name!r}: a dense shortcut from an image-shaped "
                                 f"node needs a Flatten of its own; not exported")
            sc_node = f"{node}_{sc.name}".replace(".", "_")
            nodes[sc_node] = _synapse(layer, sc.source == INPUT_NODE, art.input_scale, sc)
            edges.append((src, sc_node))
            edges.append((sc_node, f"{node}_lif"))
        if layer.spiking:
            neu = f"{node}_lif"
            nodes[neu] = _lif(layer, shape)
            edges.append((prev, neu))
            prev = neu
            out_node[layer.name] = (neu, shape)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    edges.append((prev, "output"))
    meta = {"producer": PRODUCER, "dt": DT, "readout_leak": float(art.layers[-1].leak),
            "time_steps": int(art.time_steps), "input_max": int(art.input_max),
            "input": "integer graded-spike levels per step (input_scale folded into the first synapse)",
            "prediction": "argmax over classes of sum_t readout_leak**(T-1-t) * output[t]"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def export_nir(art: ModelArtifact, path: str | os.PathLike) -> Path:
    """Write ``art`` as an NIR HDF5 file (atomically). Returns the path."""
    from neuro_agmm.artifact import atomic_write

    graph = to_nir(art)
    return atomic_write(path, lambda tmp: nir.write(str(tmp), graph))


def readout_scores(outputs: np.ndarray, readout_leak: float) -> np.ndarray:
    """``Σ_t λ^(T-1-t) y[t]`` for per-step outputs ``(B, T, n)``: the readout voltage after the last step."""
    y = np.asarray(outputs, np.float64)
    t_steps = y.shape[1]
    weights = float(readout_leak) ** np.arange(t_steps - 1, -1, -1, dtype=np.float64)
    return np.einsum("btn,t->bn", y.reshape(y.shape[0], t_steps, -1), weights)


def chain(graph: nir.NIRGraph) -> list[str]:
    """The node names after ``input`` in order; a graph that is not a single chain is refused."""
    nxt: dict[str, str] = {}
    for a, b in graph.edges:
        if a in nxt:
            raise ValueError(f"only chain graphs are supported: node {a!r} has two successors")
        nxt[a] = b
    if "input" not in graph.nodes:
        raise ValueError("the graph has no node named 'input'")
    order, node = [], "input"
    while node in nxt:
        node = nxt[node]
        if node in order:
            raise ValueError(f"only feed-forward chains are supported: node {node!r} closes a cycle")
        order.append(node)
    missing = set(graph.nodes) - set(order) - {"input"}
    if missing:
        raise ValueError(f"nodes not on the input chain: {sorted(missing)}")
    return order


def topological(graph: nir.NIRGraph) -> tuple[list[str], dict[str, list[str]]]:
    """The nodes after ``input`` in a topological order, and each node's predecessors (its inputs are summed,
    NIR's rule); a cycle or a node the input does not reach is refused by name."""
    if "input" not in graph.nodes:
        raise ValueError("the graph has no node named 'input'")
    preds: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        if a not in graph.nodes or b not in graph.nodes:
            raise ValueError(f"edge {a!r} -> {b!r} names a node the graph does not have")
        preds[b].append(a)
    order, done = [], {"input"}
    pending = [n for n in graph.nodes if n != "input"]
    while pending:
        ready = [n for n in pending if preds[n] and all(p in done for p in preds[n])]
        if not ready:
            raise ValueError(f"only feed-forward graphs from 'input' are supported: {sorted(pending)} are on a cycle "
                             f"or not reached from the input")
        for n in ready:
            order.append(n)
            done.add(n)
        pending = [n for n in pending if n not in done]
    return order, preds


def simulate_nir(graph: nir.NIRGraph, inputs: np.ndarray, dt: float = DT) -> tuple[list[np.ndarray], np.ndarray]:
    """Run a feed-forward graph on ``(B, T, *input_shape)`` inputs with forward-Euler steps of ``dt``.

    Returns (spikes per spiking node ``(B, T, ...)`` bool, the graph's output per step ``(B, T, ...)``).
    """
    x = np.asarray(inputs, np.float64)
    b, t_steps = x.shape[:2]
    order, preds = topological(graph)
    state: dict[str, np.ndarray] = {}
    spikes: dict[str, np.ndarray] = {}
    outputs = None
    for t in range(t_steps):
        out = {"input": x[:, t]}
        for name in order:
            h = out[preds[name][0]]
            for p in preds[name][1:]:  # several inputs: their sum (a residual add)
                h = h + out[p]
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
            elif isinstance(node, nir.Output):
                pass
            else:
                raise ValueError(f"simulate_nir: node {name!r} of type {type(node).__name__} is not supported")
            out[name] = h
        h = out[order[-1]] if "output" not in out else out["output"]
        if outputs is None:
            outputs = np.zeros((b, t_steps) + h.shape[1:])
        outputs[:, t] = h
    return [spikes[n] for n in order if n in spikes], outputs
