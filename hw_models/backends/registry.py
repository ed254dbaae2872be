"""Pick a backend by name: every backend runs an ``IntegerNetwork`` on ``(B, T, *input_shape)`` integer
inputs and returns one ``hw_models.results.BatchTrace`` in canonical time.

Why a registry: callers (crosscheck, infer, report, benchmarks) name a backend and never branch on
it, and a new backend plugs in with ``@register("name")`` without editing them. Backends are
imported only when run, so listing them needs neither Lava nor Brian2.

``record=True`` asks for per-step spikes and ``u``/``v``; ``record=False`` lets a backend return
only what it produces cheaply (predictions, final readout voltage, counts) — Lava then runs the
whole batch in one job instead of one job per sample.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from hw_models.integer_network import IntegerNetwork
from hw_models.results import BatchTrace


class BackendRun(Protocol):
    def __call__(self, net: IntegerNetwork, inputs: np.ndarray, *, record: bool = True, **options) -> BatchTrace:
        ...


_BACKENDS: dict[str, BackendRun] = {}


def register(name: str) -> Callable[[BackendRun], BackendRun]:
    """Decorator: make ``fn`` the backend called ``name``."""
    def deco(fn: BackendRun) -> BackendRun:
        _BACKENDS[name] = fn
        return fn
    return deco


def names() -> tuple[str, ...]:
    """Registered backend names, in registration order."""
    return tuple(_BACKENDS)


def get(name: str) -> BackendRun:
    """The backend called ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(_BACKENDS)}") from None


def run(name: str, net: IntegerNetwork, inputs: np.ndarray, *, record: bool = True, **options) -> BatchTrace:
    """Run backend ``name`` on ``inputs`` ``(B, T, *input_shape)``."""
    x = np.asarray(inputs)
    if x.ndim != len(net.input_shape) + 2:
        raise ValueError(f"inputs have shape {x.shape}, expected (B, T, *{tuple(net.input_shape)})")
    return get(name)(net, x, record=record, **options)


def _per_sample(net: IntegerNetwork, inputs: np.ndarray, traces: list) -> BatchTrace:
    """One-sample ``RunTrace``s as a ``BatchTrace``, counts taken from their spikes."""
    from hw_models.results import counts_from_spikes, stack_traces

    bt = stack_traces(traces, counts=[])
    bt.counts = counts_from_spikes(net, inputs, bt.spikes)  # from the stacked trains, not a second stack
    return bt


@register("reference")
def _reference(net: IntegerNetwork, inputs: np.ndarray, *, record: bool = True) -> BatchTrace:
    from hw_models.backends.reference import run_reference

    return _per_sample(net, inputs, [run_reference(net, x) for x in inputs])


@register("emulator")
def _emulator(net: IntegerNetwork, inputs: np.ndarray, *, record: bool = True, sparse_threshold=None,
              kernel: str = "auto", workers: int = 1) -> BatchTrace:
    from hw_models.backends.emulator import run_batch

    return run_batch(net, inputs, record_v=record, sparse_threshold=sparse_threshold, kernel=kernel, workers=workers)


@register("lava")
def _lava(net: IntegerNetwork, inputs: np.ndarray, *, record: bool = True, timeout=None,
          select_tag: str = "fixed_pt", chip="loihi2") -> BatchTrace:
    from hw_models.backends.lava.runner import run_lava, run_lava_batch
    from hw_models.results import counts_from_spike_counts

    if record:  # one job per sample, every step recorded
        return _per_sample(net, inputs, [run_lava(net, x, timeout=timeout, select_tag=select_tag, chip=chip)
                                         for x in inputs])
    res = run_lava_batch(net, inputs, timeout=timeout, select_tag=select_tag, chip=chip)
    per_neuron = [np.asarray(c) for c in res.spike_counts]  # (B, n) per layer
    return BatchTrace(spikes=None, v=None, u=None, final_v=[None] * (len(net.layers) - 1) + [res.readout_v],
                      final_u=None, predictions=res.predictions,
                      counts=counts_from_spike_counts(net, inputs, per_neuron))


@register("brian2")
def _brian2(net: IntegerNetwork, inputs: np.ndarray, *, record: bool = True, target: str = "numpy") -> BatchTrace:
    from hw_models.backends.brian2 import run_brian2
    from hw_models.results import LayerCounts, stack_traces

    traces = [run_brian2(net, x, target=target, record_v=record) for x in inputs]
    counts = [LayerCounts(*(np.concatenate([getattr(t.counts[k], f) for t in traces])
                            for f in ("input_events", "synops", "neuron_updates", "spikes")))
              for k in range(len(net.layers))]
    if record:
        return stack_traces(traces, counts)
    final_v = [np.stack([t.v[k][-1] for t in traces]) for k in range(len(net.layers))]
    final_u = [np.stack([t.u[k][-1] for t in traces]) for k in range(len(net.layers))]
    return BatchTrace(spikes=[np.stack([t.spikes[k] for t in traces]) for k in range(len(net.layers))],
                      v=None, u=None, final_v=final_v, final_u=final_u,
                      predictions=np.argmax(final_v[-1], axis=1), counts=counts)
