"""Spike-level fidelity report: Lava, Brian2 and the emulator against the integer reference.

Why it exists: the project's claim is that three independent implementations of the
Loihi-style integer semantics agree spike for spike and voltage for voltage. This module
runs them on the same network and inputs and counts, per backend, layer and time step,
every spike, voltage and current that differs from ``hw_models.reference.run_reference``
(the goal is zero), checks that the energy counts derived from each backend's spike trains
are identical, and — given an artifact — reports how closely the integer network follows
the float model (per-layer spike agreement, output agreement) instead of hiding it.

Lava runs one process graph per sample (``hw_models.lava_backend.run_lava``; seconds
each), so ``lava_samples`` bounds how many samples Lava checks. What it leaves out:
timing (see ``benchmarks/emulators.py``), Lava's floating-point models.

CLI: ``python -m neuro_agmm.crosscheck ARTIFACT [--inputs X.npz] [--samples N]
[--backends emulator,brian2,lava] [--out report.json]``; ``python -m neuro_agmm.map --to
brian2 ARTIFACT`` calls ``run_brian2_cli``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from hw_models.integer_network import IntegerNetwork
from hw_models.backends import registry
from hw_models.results import LayerCounts, RunTrace
from neuro_agmm.artifact import ModelArtifact, atomic_write
from neuro_agmm.deploy.network import mapped_network

BACKENDS = ("emulator", "brian2", "lava")  # the default comparison set; any registry name works


@dataclass
class LayerMismatch:
    """Mismatches of one backend in one layer, summed over the samples it ran."""

    layer: str
    entries: int  # samples x T x n compared
    spikes: int
    v: int
    u: int
    first: Optional[tuple[int, int, int]] = None  # (sample, t, neuron) of the first differing spike or voltage


@dataclass
class BackendResult:
    backend: str
    samples: int
    layers: list[LayerMismatch]
    prediction_mismatches: int
    counts_identical: bool  # SynOps/spikes/events/active updates equal to the reference's
    seconds: float
    note: str = ""

    @property
    def mismatches(self) -> int:
        return int(sum(l.spikes + l.v + l.u for l in self.layers))


@dataclass
class FloatAgreement:
    """Integer reference vs float model on the same inputs."""

    samples: int
    layer_spike_agreement: list[float]  # fraction of equal (sample, t, neuron) spike entries per spiking layer
    layer_rate_float: list[float]
    layer_rate_int: list[float]
    output_agreement: float  # fraction of equal predictions


@dataclass
class CrosscheckResult:
    n_samples: int
    time_steps: int
    backends: list[BackendResult]
    float_agreement: Optional[FloatAgreement] = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_mismatches(self) -> int:
        return int(sum(b.mismatches + b.prediction_mismatches for b in self.backends))

    def to_dict(self) -> dict:
        d = {"n_samples": self.n_samples, "time_steps": self.time_steps, "total_mismatches": self.total_mismatches,
             "backends": [asdict(b) | {"mismatches": b.mismatches} for b in self.backends],
             "float_agreement": asdict(self.float_agreement) if self.float_agreement else None,
             "notes": self.notes}
        return d

    def summary(self) -> str:
        lines = [f"Crosscheck against hw_models.reference ({self.n_samples} samples, T={self.time_steps})",
                 f"{'backend':10s} {'samples':>7s} {'layer':12s} {'entries':>9s} {'spikes':>7s} {'v':>7s} "
                 f"{'u':>7s}  first mismatch (sample, t, neuron)"]
        for b in self.backends:
            for l in b.layers:
                lines.append(f"{b.backend:10s} {b.samples:7d} {l.layer:12s} {l.entries:9d} {l.spikes:7d} {l.v:7d} "
                             f"{l.u:7d}  {l.first if l.first else '-'}")
            lines.append(f"{b.backend:10s} predictions differing: {b.prediction_mismatches}; energy counts "
                         f"identical: {b.counts_identical}; {b.seconds:.2f} s" + (f"; {b.note}" if b.note else ""))
        lines.append(f"TOTAL mismatches (spikes + v + u + predictions): {self.total_mismatches}")
        if self.float_agreement:
            fa = self.float_agreement
            lines.append(f"float model vs integer network ({fa.samples} samples): output agreement "
                         f"{fa.output_agreement:.3f}")
            for k, (ag, rf, ri) in enumerate(zip(fa.layer_spike_agreement, fa.layer_rate_float, fa.layer_rate_int)):
                lines.append(f"  layer {k}: spike agreement {ag:.4f}, firing rate float {rf:.4f} / int {ri:.4f}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write_json(self, path: str | os.PathLike) -> Path:
        text = json.dumps(self.to_dict(), indent=2, default=_json_default)
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def network_from(artifact_or_net) -> tuple[IntegerNetwork, Optional[ModelArtifact], object]:
    """``(net, artifact or None, chip)`` from a network, a ``ModelArtifact`` or an artifact path
    (``deploy.network``); ``chip``: the chip profile (with its chip count) of the artifact's ``/hardware``
    placement, ``"loihi2"`` without one; one read of the file."""
    if isinstance(artifact_or_net, IntegerNetwork):
        return artifact_or_net, None, "loihi2"
    if not isinstance(artifact_or_net, (str, os.PathLike, ModelArtifact)):
        raise TypeError(f"expected an IntegerNetwork, ModelArtifact or artifact path, got {type(artifact_or_net)}")
    net, art, _, placement = mapped_network(artifact_or_net)
    return net, art, placement.chip if placement is not None else "loihi2"


def _compare(name: str, traces: Sequence[RunTrace], refs: Sequence[RunTrace], net: IntegerNetwork,
             compare_uv: bool = True) -> list[LayerMismatch]:
    out = []
    for k, layer in enumerate(net.layers):
        ms = LayerMismatch(layer=layer.name, entries=0, spikes=0, v=0, u=0)
        for i, (tr, ref) in enumerate(zip(traces, refs)):
            ds = tr.spikes[k] != ref.spikes[k]
            dv = tr.v[k] != ref.v[k] if compare_uv else np.zeros_like(ds)
            du = tr.u[k] != ref.u[k] if compare_uv else np.zeros_like(ds)
            ms.entries += int(ds.size)
            ms.spikes += int(ds.sum())
            ms.v += int(dv.sum())
            ms.u += int(du.sum())
            bad = ds | dv | du
            if ms.first is None and bad.any():
                t, n = np.argwhere(bad)[0]
                ms.first = (i, int(t), int(n))
        out.append(ms)
    return out


def _counts_equal(counts: Sequence[LayerCounts], ref: Sequence[LayerCounts], m: int) -> bool:
    """The backend's own activity counters equal the reference's, sample by sample (first ``m``)."""
    fields = ("input_events", "synops", "neuron_updates", "spikes")
    return all(np.array_equal(getattr(c, f)[:m], getattr(r, f)[:m]) for c, r in zip(counts, ref) for f in fields)


def float_agreement(art: ModelArtifact, net: IntegerNetwork, inputs: np.ndarray,
                    int_spikes: Sequence[np.ndarray], int_predictions: np.ndarray) -> FloatAgreement:
    """Per-layer spike agreement and output agreement of the float model with the integer network.

    ``int_spikes[k]`` ``(B, T, n)``; the readout layer (non-spiking) is compared by prediction only.
    """
    from neuro_agmm.deploy.float_model import run_float

    ft = run_float(art, inputs)
    ag, rf, ri = [], [], []
    for k, layer in enumerate(net.layers):
        if layer.readout:
            continue
        fs, is_ = ft.spikes[k], np.asarray(int_spikes[k])
        ag.append(float((fs == is_).mean()))
        rf.append(float(fs.mean()))
        ri.append(float(is_.mean()))
    return FloatAgreement(samples=int(inputs.shape[0]), layer_spike_agreement=ag, layer_rate_float=rf,
                          layer_rate_int=ri,
                          output_agreement=float((ft.predictions() == np.asarray(int_predictions)).mean()))


def crosscheck(artifact_or_net, inputs: np.ndarray, backends: Sequence[str] = BACKENDS, *,
               brian2_target: str = "numpy", lava_samples: int = 2, lava_timeout: Optional[float] = None,
               float_model: bool = True, chip=None) -> CrosscheckResult:
    """Run ``backends`` on ``inputs`` ``(N, T, *input_shape)`` (or one sample) and compare with the reference.

    The emulator runs all N samples in one batch, Brian2 one run per sample, Lava the first
    ``lava_samples`` samples (one Lava run each, under its watchdog). With an artifact, the
    float model's agreement is added (``float_model=True``). ``chip``: the chip profile Lava's runs are placed
    on first (a ``ChipSpec`` or name; default: the placement in the artifact's ``/hardware``, else one Loihi 2).
    """
    for b in backends:
        registry.get(b)  # unknown names fail before any work
    net, art, mapped_chip = network_from(artifact_or_net)
    x = np.asarray(inputs)
    if x.ndim == len(net.input_shape) + 1:
        x = x[None]
    if x.ndim != len(net.input_shape) + 2:
        raise ValueError(f"inputs have shape {x.shape}, expected (N, T, *{tuple(net.input_shape)})")
    n = x.shape[0]
    ref_bt = registry.run("reference", net, x, record=True)
    refs = [ref_bt.sample(i) for i in range(n)]
    ref_pred = ref_bt.predictions
    result = CrosscheckResult(n_samples=n, time_steps=int(x.shape[1]), backends=[])
    if chip is None:
        chip = mapped_chip
    options = {"brian2": {"target": brian2_target}, "lava": {"timeout": lava_timeout, "chip": chip}}
    for backend in backends:
        t0 = time.perf_counter()
        m = min(n, max(0, int(lava_samples))) if backend == "lava" else n  # Lava: one watchdog job per sample
        bt = registry.run(backend, net, x[:m], record=True, **options.get(backend, {}))
        traces = [bt.sample(i) for i in range(m)]
        preds = bt.predictions
        note = {"brian2": f"codegen target {brian2_target}", "lava": f"fixed_pt, first {m} of {n} samples"}.get(backend, "")
        m = len(traces)
        seconds = time.perf_counter() - t0
        result.backends.append(BackendResult(
            backend=backend, samples=m, layers=_compare(backend, traces, refs[:m], net),
            prediction_mismatches=int((np.asarray(preds)[:m] != ref_pred[:m]).sum()),
            counts_identical=_counts_equal(bt.counts, ref_bt.counts, m), seconds=seconds, note=note))
    if float_model and art is not None:
        result.float_agreement = float_agreement(
            art, net, x, [np.stack([r.spikes[k] for r in refs]) for k in range(len(net.layers))], ref_pred)
    elif float_model:
        result.notes.append("float model skipped: an IntegerNetwork was given, not an artifact")
    return result
