"""What a streamed recording yields: per-window latency and prediction, per-recording totals, the run."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import atomic_write


@dataclass
class WindowResult:
    end_us: int  # window end, relative to the stream origin
    n_events: int
    latency_s: float  # window complete -> prediction (binning + network)
    prediction: int


@dataclass
class RecordingResult:
    source: str
    label: Optional[int]
    n_events: int
    duration_us: int  # stream time covered by the windows
    n_steps: int
    prediction: int
    wall_s: float
    windows: list[WindowResult] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    energy_j: Optional[float] = None  # bsnn_loihi scenario
    energy_pj: dict = field(default_factory=dict)  # every neuro_agmm.energy scenario, pJ per inference
    readout_v: list = field(default_factory=list)  # final readout voltage (integer units; float for torch)
    skipped_windows: int = 0  # empty windows skipped at a fixed point (accounted, not stepped)

    @property
    def correct(self) -> Optional[bool]:
        return None if self.label is None else self.prediction == self.label


@dataclass
class InferResult:
    model: str
    backend: str
    window_us: int
    step_us: int
    streaming: bool
    recordings: list[RecordingResult]
    notes: list[str] = field(default_factory=list)
    workers: int = 1
    elapsed_s: Optional[float] = None  # wall time of the whole run (all workers)

    @property
    def accuracy(self) -> Optional[float]:
        lab = [r for r in self.recordings if r.label is not None]
        return float(np.mean([r.correct for r in lab])) if lab else None

    def stats(self) -> dict:
        rec = self.recordings
        wall = sum(r.wall_s for r in rec)
        ev = sum(r.n_events for r in rec)
        lat = np.array([w.latency_s for r in rec for w in r.windows]) if rec else np.zeros(0)
        stream_s = sum(r.duration_us for r in rec) / 1e6
        syn = [r.counts.get("synops") for r in rec if r.counts.get("synops") is not None]
        en = [r.energy_j for r in rec if r.energy_j is not None]
        return {
            "recordings": len(rec), "events": ev, "wall_s": wall, "events_per_s": ev / wall if wall else None,
            "stream_s": stream_s, "real_time_factor": stream_s / wall if wall else None,
            "windows": int(lat.size),
            "latency_ms_mean": float(lat.mean() * 1e3) if lat.size else None,
            "latency_ms_p50": float(np.percentile(lat, 50) * 1e3) if lat.size else None,
            "latency_ms_p99": float(np.percentile(lat, 99) * 1e3) if lat.size else None,
            "latency_ms_max": float(lat.max() * 1e3) if lat.size else None,
            "workers": self.workers, "elapsed_s": self.elapsed_s,
            "throughput_real_time_factor": stream_s / self.elapsed_s if self.elapsed_s else None,
            "synops_per_inference": float(np.mean(syn)) if syn else None,
            "energy_j_per_inference": float(np.mean(en)) if en else None,
            "accuracy": self.accuracy,
        }

    def summary(self) -> str:
        s = self.stats()

        def f(v, fmt):
            return "n/a" if v is None else format(v, fmt)
        lines = [f"streaming inference: {self.model} on backend {self.backend} "
                 f"({'streaming' if self.streaming else 'whole recordings'}; window {self.window_us} µs, "
                 f"step {self.step_us} µs)",
                 "| recordings | events | accuracy | events/s | real-time factor | latency/window mean / p99 / max (ms) "
                 "| SynOps/inference | energy/inference |",
                 "|---|---|---|---|---|---|---|---|",
                 f"| {s['recordings']} | {s['events']} | {f(s['accuracy'], '.3f')} | {f(s['events_per_s'], '.3g')} | "
                 f"{f(s['real_time_factor'], '.3g')} | {f(s['latency_ms_mean'], '.3f')} / {f(s['latency_ms_p99'], '.3f')}"
                 f" / {f(s['latency_ms_max'], '.3f')} | {f(s['synops_per_inference'], '.4g')} | "
                 f"{'n/a' if s['energy_j_per_inference'] is None else format(s['energy_j_per_inference'] * 1e6, '.4g') + ' µJ'} |"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stats"] = self.stats()
        return d

    def write_json(self, path: str | os.PathLike) -> Path:
        text = json.dumps(self.to_dict(), indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text))
