"""What every backend returns: per-layer traces and one activity-count type.

``BatchTrace`` (``B`` samples) is the one result type of ``hw_models.backends.registry``;
``RunTrace`` is one sample of it (``BatchTrace.sample``); ``LayerCounts`` is the activity of
one layer per sample, the only count type that energy, report, crosscheck and infer consume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    from hw_models.integer_network import IntegerNetwork


@dataclass
class RunTrace:
    """Per-layer spikes ``(T, n_out)`` bool and voltages/currents ``(T, n_out)`` int32, canonical time."""

    spikes: list[np.ndarray]
    v: list[np.ndarray]
    u: list[np.ndarray]

    def prediction(self) -> int:
        """``argmax`` of the last layer's voltage after the last step (lowest index wins ties)."""
        return int(np.argmax(self.v[-1][-1]))



@dataclass
class LayerCounts:
    """Activity of one layer, per sample ``(B,)`` int64, summed over the steps run."""

    input_events: np.ndarray  # nonzero input entries (graded values count once)
    synops: np.ndarray  # input events x their fan-out
    neuron_updates: np.ndarray  # n_out per step
    spikes: np.ndarray  # output spikes

    @classmethod
    def zeros(cls, batch: int) -> "LayerCounts":
        return cls(*(np.zeros(batch, np.int64) for _ in range(4)))

    @classmethod
    def of_rows(cls, rows: np.ndarray) -> "LayerCounts":
        """Counts whose fields are views of the rows of ``rows`` ``(4, B)`` (in field order)."""
        return cls(rows[0], rows[1], rows[2], rows[3])

    def add(self, other: "LayerCounts") -> None:
        for name in ("input_events", "synops", "neuron_updates", "spikes"):
            getattr(self, name).__iadd__(getattr(other, name))

    def total(self) -> dict[str, int]:
        return {name: int(getattr(self, name).sum())
                for name in ("input_events", "synops", "neuron_updates", "spikes")}


@dataclass
class BatchTrace:
    """Result of a batched run in canonical time.

    ``spikes[k]`` is ``(B, t, n_k)`` bool (the emulator's is a view of step-major storage, not
    C-contiguous); ``v[k]``/``u[k]`` are ``(B, t, n_k)`` int32 when recorded (``record=True``), else
    ``None``; ``final_v``/``final_u`` ``(B, n_k)`` int32 are the states after the last step;
    ``predictions`` ``(B,)`` is the argmax of the last layer's voltage after the last step;
    ``counts[k]`` the activity of layer ``k``. Lava's unrecorded batch mode has no ``spikes``, no
    ``final_u`` and only the readout's ``final_v`` (the others ``None``): it is what one Lava job yields.
    """

    spikes: Optional[list[np.ndarray]]
    v: Optional[list[np.ndarray]]
    u: Optional[list[np.ndarray]]
    final_v: list[Optional[np.ndarray]]
    final_u: Optional[list[np.ndarray]]
    predictions: np.ndarray
    counts: list[LayerCounts]

    def sample(self, b: int) -> RunTrace:
        """One sample as a ``reference.RunTrace`` (needs ``record_v=True``)."""
        if self.v is None or self.u is None:
            raise ValueError("voltages were not recorded; run with record_v=True")
        return RunTrace(spikes=[s[b] for s in self.spikes], v=[x[b] for x in self.v], u=[x[b] for x in self.u])


def stack_traces(traces: Sequence[RunTrace], counts: list[LayerCounts]) -> BatchTrace:
    """``B`` one-sample traces as one ``BatchTrace`` (what per-sample backends return)."""
    n_layers = len(traces[0].spikes)
    spikes = [np.stack([tr.spikes[k] for tr in traces]) for k in range(n_layers)]
    v = [np.stack([tr.v[k] for tr in traces]) for k in range(n_layers)]
    u = [np.stack([tr.u[k] for tr in traces]) for k in range(n_layers)]
    return BatchTrace(spikes=spikes, v=v, u=u, final_v=[x[:, -1] for x in v], final_u=[x[:, -1] for x in u],
                      predictions=np.argmax(v[-1][:, -1], axis=1), counts=counts)


def counts_from_spike_counts(net: "IntegerNetwork", inputs: np.ndarray,
                             per_neuron: Sequence[np.ndarray]) -> list[LayerCounts]:
    """``LayerCounts`` per layer from each layer's spikes per neuron and sample, ``per_neuron[k]`` ``(B, n_k)``.

    ``inputs`` ``(B, T, *input_shape)``; SynOps follow ``geometry.fan_out`` (one per synapse and input event).
    A layer with shortcuts counts the events and SynOps of every block into it.
    """
    from hw_models.geometry import fan_out

    x = np.asarray(inputs)
    b, t = x.shape[:2]
    events = [(x.reshape(b, t, -1) != 0).sum(axis=1).astype(np.int64)]  # (B, n) events per neuron; input first
    out = []
    for k, layer in enumerate(net.layers):
        s = np.asarray(per_neuron[k], np.int64).reshape(b, -1)
        ev_in = events[k]  # the main block reads layer k-1 (index k here: the input is events[0])
        c = LayerCounts(input_events=ev_in.sum(axis=1), synops=ev_in @ fan_out(layer),
                        neuron_updates=np.full(b, t * layer.n_out, np.int64), spikes=s.sum(axis=1))
        for sc in layer.shortcuts:  # every block counts the events it receives and the synapses they reach
            ev_sc = events[sc.source + 1]
            c.input_events = c.input_events + ev_sc.sum(axis=1)
            c.synops = c.synops + ev_sc @ fan_out(sc)
        out.append(c)
        events.append(s)
    return out


def counts_from_spikes(net: "IntegerNetwork", inputs: np.ndarray, spikes: Sequence[np.ndarray]) -> list[LayerCounts]:
    """``LayerCounts`` from spike trains ``spikes[k]`` ``(B, T, n_k)``."""
    return counts_from_spike_counts(net, inputs, [np.asarray(s).sum(axis=1) for s in spikes])


def active_updates(layer, rows: np.ndarray, connectivity=None, shortcut_rows: Sequence = (),
                   shortcut_connectivity: Sequence = ()) -> np.ndarray:
    """Neurons of ``layer`` that receive at least one synaptic event, per row of ``rows`` ``(N, n_in)`` (one row =
    one sample-step of the layer's input; nonzero = an event). ``(N,)`` int64.

    The energy model's *active* neuron update: a dense layer's every neuron when any input is active; a conv
    layer's neurons whose receptive field (``geometry.synapse_list``) holds an active input. ``connectivity``:
    ``conv_connectivity(layer)``, for callers that count many chunks of one layer. ``shortcut_rows``: one
    ``(N, n_in)`` array per shortcut block of ``layer`` (its source's events); a neuron is active when any of
    its blocks delivers an event. ``shortcut_connectivity``: the blocks' ``conv_connectivity`` (None for dense).
    """
    hit = _block_hits(layer, rows, connectivity)
    conns = list(shortcut_connectivity) or [None] * len(layer.shortcuts)
    for sc, r, conn in zip(layer.shortcuts, shortcut_rows, conns):
        hit = hit | _block_hits(sc, r, conn)
    per_pos = layer.n_out // hit.shape[1]
    return hit.sum(axis=1).astype(np.int64) * per_pos


def _block_hits(block, rows: np.ndarray, connectivity=None) -> np.ndarray:
    """``(N, P)`` bool: output positions of ``block`` reached by an event (P = H'*W' for a (C, H', W') output,
    1 for a flat one; every channel at a reached position is reached)."""
    import scipy.sparse as sp

    nz = np.asarray(rows).reshape(len(rows), -1) != 0
    n_pos = int(np.prod(block.out_shape[1:])) if len(block.out_shape) == 3 else 1
    if block.kind == "dense":
        return np.repeat(nz.any(axis=1)[:, None], n_pos, axis=1)
    conn = conv_connectivity(block) if connectivity is None else connectivity
    c_in = int(block.in_shape[0])
    pos = nz.reshape(len(nz), c_in, -1).any(axis=1)  # every in-channel reaches every out-channel: positions suffice
    hit = sp.csr_matrix(pos.astype(np.float32)) @ conn
    return np.asarray(hit.todense()) > 0


def conv_connectivity(layer):
    """``(H*W, H'*W')`` CSR of ones: input position -> the output positions whose receptive field holds it
    (``geometry.synapse_list``'s positions; every channel pair of a conv is connected)."""
    import scipy.sparse as sp

    from hw_models.geometry import synapse_list

    pre, post, _ = synapse_list(layer)
    hw_in = int(np.prod(layer.in_shape[1:]))
    hw_out = int(np.prod(layer.out_shape[1:]))
    conn = sp.csr_matrix((np.ones(pre.size, np.float32), (pre % hw_in, post % hw_out)), shape=(hw_in, hw_out))
    conn.sum_duplicates()
    conn.data[:] = 1
    return conn
