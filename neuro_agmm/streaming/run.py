"""Event-driven streaming inference: DVS streams -> a mapped network -> predictions as events arrive.

``python -m neuro_agmm.infer --model ARTIFACT --events FILE_OR_DIR --backend emulator`` (or
``--dataset NAME --split test``); library entry point ``infer(...) -> InferResult``.

How a stream is consumed (``backend="emulator"`` and ``"torch"``, truly streaming):

* the network's time step lasts ``step_us`` µs (default: the dataset's recording span /
  the artifact's ``time_steps``, e.g. 300 ms / T for N-MNIST and digits-dvs; override with
  ``--step-us``); the stream starts at its first event (digits-dvs: at 0, its fixed span);
* ``event_windows`` is a generator that hands out the events of consecutive windows of
  ``window_us`` (a multiple of ``step_us``) as they would arrive; each window is binned
  into ``window_us / step_us`` count frames (``events.binning`` edges, clipped to the
  artifact's ``input_max``, downsampled to the artifact's input shape) and run; the
  network state (u, v of every layer) is carried from window to window;
* after every window the prediction is ``argmax`` of the readout voltage so far; the
  final prediction is the one after the last window. Per window we time the wall-clock
  latency from "window complete" to "prediction" (binning + network).

Backends: ``emulator`` — ``hw_models.emulator.Emulator`` (bit-exact integer network,
stateful ``run``), activity counters give synaptic operations; ``torch`` — the float
network of the artifact (``neuro_agmm.artifact`` semantics: ``z = W x``, folded scale/bias/BN,
LIF with hard reset, readout integrator) stepped densely in torch with carried state (our
``TorchFloatStepper``; tests check it against ``neuro_agmm.float_model.run_float``);
``lava`` (``hw_models.lava_backend.run_lava``) and ``brian2``
(``hw_models.brian2_backend.run_brian2``) run each **whole recording** at once (not
streaming: one window = the recording; they report the final prediction only).

The integer network comes from ``hw_models.quantizer.quantize(artifact)``. Energy per
inference: the stream's input frames and spike trains go through
``neuro_agmm.energy.activity_from_spikes`` / ``energy_per_inference`` after the stream
(outside the timed loop); ``energy_j`` is the ``bsnn_loihi`` scenario, ``energy_pj`` holds
every scenario. Activity counts (SynOps = input events x structural fan-out, neuron updates,
spikes) come from the emulator's counters (Lava/Brian2: from their spike trains).

Left out: live camera input (any iterator of event arrays can be fed to ``stream``),
batching several streams, Lava/Brian2 streaming.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from neuro_agmm.artifact import ArtifactError, ModelArtifact, atomic_write, read_artifact
from neuro_agmm.deploy.energy import Activity, activity_from_spikes, energy_per_inference
from neuro_agmm.events import EVENT_SUFFIXES, EventFileError, SensorSize, read_events
from neuro_agmm.events.binning import bin_by_time, downsampled_size

BACKENDS = ("emulator", "torch", "lava", "brian2")
STREAMING_BACKENDS = ("emulator", "torch")
# Typical recording span per dataset, used for the default step length span / T.
DEFAULT_SPAN_US = {"digits-dvs": 300_000, "nmnist": 300_000, "dvsgesture": 6_000_000, "cifar10dvs": 1_300_000}


class InferError(ValueError):
    """A user-facing problem (bad flags, incompatible model and stream)."""


# ----------------------------------------------------------------------------- the stream

def event_windows(events: np.ndarray, window_us: int, t0: int, t_end: Optional[int] = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, end, events)`` of consecutive windows ``[t0 + k*w, t0 + (k+1)*w)`` µs.

    ``events`` must be time-sorted. Windows continue until ``t_end`` (default: one µs after
    the last event), so every event is in exactly one window; empty windows are yielded too.
    """
    if window_us < 1:
        raise ValueError(f"window_us must be >= 1, got {window_us}")
    t = events["t"]
    if t.size and t[0] < t0:
        raise ValueError(f"events start at {int(t[0])} µs, before the stream origin {t0}")
    end = (int(t[-1]) + 1 if t.size else t0 + 1) if t_end is None else int(t_end)
    lo = 0
    start = int(t0)
    while start < end:
        stop = start + window_us
        hi = int(np.searchsorted(t, stop, "left"))
        yield start, stop, events[lo:hi]
        lo, start = hi, stop


@dataclass
class InputMapping:
    """How raw events become network inputs: sensor, downsampling, clip, step length."""

    sensor_size: SensorSize
    downsample: int
    clip: int
    step_us: int

    @classmethod
    def fit(cls, sensor: SensorSize, input_shape: tuple[int, ...], clip: int, step_us: int) -> "InputMapping":
        if len(input_shape) != 3:
            raise InferError(f"the model's input shape {tuple(input_shape)} is not (P, H, W) event frames")
        p, h, w = input_shape
        if p != sensor.P:
            raise InferError(f"the model expects {p} polarity channels, the stream has {sensor.P}")
        f = max(1, -(-sensor.W // w))
        if tuple(downsampled_size(sensor, f)) != (w, h, p):
            raise InferError(f"the stream's sensor {tuple(sensor)} (W, H, P) does not downsample by an integer "
                             f"factor to the model's input (P, H, W) = {tuple(input_shape)}")
        return cls(SensorSize(*sensor), f, int(clip), int(step_us))

    def frames(self, events: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Events of ``[start, stop)`` -> ``((stop-start)//step_us, P, H, W)`` clipped counts."""
        n = (stop - start) // self.step_us
        f = bin_by_time(events, self.sensor_size, n, start, stop, self.downsample)
        return np.minimum(f, self.clip)


# ----------------------------------------------------------------------------- backends

class EmulatorStepper:
    """Streaming integer backend: ``hw_models.emulator.Emulator`` with batch 1."""

    name = "emulator"

    def __init__(self, net, record: bool = False):
        from hw_models.backends.emulator import Emulator
        self.net = net
        self.emu = Emulator(net, 1)
        self.record = record  # keep inputs and spike trains (for the energy model, after the stream)
        self.reset()

    def reset(self) -> None:
        self.emu.reset()
        self.inputs: list[np.ndarray] = []
        self.spikes: list[list[np.ndarray]] = []

    def run(self, frames: np.ndarray) -> np.ndarray:
        """Advance over ``frames`` (t, *input_shape); return the readout voltage (n_classes,)."""
        if len(frames):
            spikes = self.emu.advance(frames[None])[0]  # no trace: the cheap call
            if self.record:
                self.inputs.append(frames)
                self.spikes.append([sp[0] for sp in spikes])
        return self.emu.v[-1][0].astype(np.int64)

    def recorded(self) -> Optional[tuple[np.ndarray, list[np.ndarray]]]:
        """``(inputs (T, ...), spikes per layer (T, n))`` of the stream since ``reset`` (if recording)."""
        if not self.record or not self.inputs:
            return None
        return (np.concatenate(self.inputs), [np.concatenate([w[k] for w in self.spikes])
                                              for k in range(len(self.net.layers))])

    def counts(self) -> dict:
        return _totals([c.total() for c in self.emu.counts])


class TorchFloatStepper:
    """Streaming float backend: the artifact's float network stepped in torch, state carried.

    Synaptic currents come from ``neuro_agmm.export.ArtifactNet``'s layers (one definition of the
    float semantics); only the membrane state is kept here across calls.
    """

    name = "torch"

    def __init__(self, art: ModelArtifact, threads: int = 1):
        import torch

        from neuro_agmm.training.export import model_from_artifact
        torch.set_num_threads(threads)
        self.torch = torch
        self.art = art
        self.layers = list(model_from_artifact(art).layers)
        self.dynamics = [(float(s.leak), float(s.input_gain), float(s.threshold)) for s in art.layers]
        self.reset()

    def reset(self) -> None:
        self.v = [self.torch.zeros(int(np.prod(l.out_shape))) for l in self.layers]
        self._spikes = 0
        self._updates = 0

    def run(self, frames: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(frames, np.float32)) * float(self.art.input_scale)
            t = x.shape[0]
            x = x.reshape(t, 1, -1)
            for k, (layer, (leak, gain, thr)) in enumerate(zip(self.layers, self.dynamics)):
                z = gain * layer.current(x).reshape(t, -1)
                v = self.v[k]
                out = torch.empty_like(z)
                for s in range(t):
                    v = leak * v + z[s]
                    if layer.spiking:
                        spk = v > thr
                        v = torch.where(spk, torch.zeros_like(v), v)
                        out[s] = spk.float()
                self.v[k] = v
                self._updates += t * v.numel()
                if layer.spiking:
                    self._spikes += int(out.sum())
                x = out.reshape(t, 1, -1)
        return self.v[-1].numpy().astype(np.float64)

    def counts(self) -> dict:
        return {"synops": None, "neuron_updates": self._updates, "spikes": self._spikes}


def _whole_recording(backend: str, net, frames: np.ndarray) -> tuple[np.ndarray, Activity]:
    """Lava / Brian2: one run over the recording's frames; returns (final readout v, activity of its spikes)."""
    if backend == "lava":
        from hw_models.backends.lava.runner import run_lava
        tr = run_lava(net, frames)
    elif backend == "brian2":
        from hw_models.backends.brian2 import run_brian2
        tr = run_brian2(net, frames, record_v=False)
    else:
        raise InferError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return np.asarray(tr.v[-1][-1], np.float64), activity_from_spikes(net, frames, tr.spikes)


def _totals(per: list[dict]) -> dict:
    """Per-layer counts of one stream -> its totals (spikes leave out the non-spiking readout)."""
    return {"synops": sum(c["synops"] for c in per), "neuron_updates": sum(c["neuron_updates"] for c in per),
            "spikes": sum(c["spikes"] for c in per[:-1]), "input_events": per[0]["input_events"] if per else 0,
            "per_layer": per}


def _counts(act: Activity) -> dict:
    """``_totals`` of a one-stream ``Activity`` (its per-inference means are whole counts)."""
    return _totals([{"input_events": int(l.input_events), "synops": int(l.synops),
                     "neuron_updates": int(l.neuron_updates), "spikes": int(l.spikes)} for l in act.layers])


# ----------------------------------------------------------------------------- results

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


# ----------------------------------------------------------------------------- sources

@dataclass
class Recording:
    source: str
    events: np.ndarray
    sensor_size: SensorSize
    label: Optional[int] = None
    t0: Optional[int] = None  # stream origin (default: first event)
    span_us: Optional[int] = None  # fixed stream length (default: up to the last event)


def _label_from_path(path: Path) -> Optional[int]:
    return int(path.parent.name) if path.parent.name.isdigit() else None


def iter_recordings(events: Optional[str | os.PathLike] = None, dataset: Optional[str] = None,
                    split: str = "test", root: str | os.PathLike = "datasets",
                    limit: Optional[int] = None) -> tuple[int, Iterator[Recording]]:
    """``(count, iterator)`` over a file, a directory of event files, or a dataset split.

    Files in a directory: every supported event file below it (sorted); the label is the
    parent folder's name when it is an integer (N-MNIST layout), else unknown.
    """
    if (events is None) == (dataset is None):
        raise InferError("give exactly one of --events FILE_OR_DIR or --dataset NAME")
    if dataset is not None:
        from neuro_agmm.data.event_datasets import open_event_dataset
        ds = open_event_dataset(dataset, root, split)
        n = len(ds) if limit is None else min(limit, len(ds))

        def gen_ds():
            for i in range(n):
                ev, label = ds[i]
                yield Recording(ds.sources[i], ev, ds.sensor_size, label,
                                t0=0 if ds.fixed_span_us else None, span_us=ds.fixed_span_us)
        return n, gen_ds()
    p = Path(events)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in EVENT_SUFFIXES)
        if not files:
            raise InferError(f"{p}: no event files ({', '.join(EVENT_SUFFIXES)}) in this directory")
    elif p.exists():
        files = [p]
    else:
        raise InferError(f"{p}: no such file or directory")
    files = files if limit is None else files[:limit]

    def gen_files():
        for f in files:
            ev, sensor = read_events(f)
            yield Recording(str(f), ev, sensor, _label_from_path(f))
    return len(files), gen_files()


# ----------------------------------------------------------------------------- the loop

def _span(rec: Recording, step_us: int) -> tuple[int, int]:
    """``(t0, t_end)`` of a recording's stream: its fixed span, else whole steps covering the last event."""
    t0 = int(rec.events["t"][0]) if rec.t0 is None and rec.events.size else int(rec.t0 or 0)
    if rec.span_us is not None:
        return t0, t0 + int(rec.span_us)
    last = int(rec.events["t"][-1]) + 1 if rec.events.size else t0 + 1
    return t0, t0 + -(-(last - t0) // step_us) * step_us


def stream(stepper, mapping: InputMapping, rec: Recording, window_us: int) -> RecordingResult:
    """Run one recording window by window through a streaming backend (state reset first)."""
    stepper.reset()
    t0, t_end = _span(rec, mapping.step_us)
    windows = []
    v = None
    n_steps = 0
    start_wall = time.perf_counter()
    for start, stop, ev in event_windows(rec.events, window_us, t0, t_end):
        stop = min(stop, t_end)
        w0 = time.perf_counter()
        frames = mapping.frames(ev, start, stop)
        v = stepper.run(frames)
        lat = time.perf_counter() - w0
        n_steps += len(frames)
        windows.append(WindowResult(stop - t0, len(ev), lat, int(np.argmax(v))))
    wall = time.perf_counter() - start_wall
    pred = int(np.argmax(v)) if v is not None else 0
    return RecordingResult(rec.source, rec.label, int(rec.events.size), t_end - t0, n_steps, pred, wall, windows,
                           stepper.counts(), readout_v=[] if v is None else [float(x) for x in v])


def whole(backend: str, net, mapping: InputMapping, rec: Recording) -> tuple[RecordingResult, Activity]:
    """Lava / Brian2: bin the whole recording into steps and run it at once; also the run's activity."""
    t0, t_end = _span(rec, mapping.step_us)
    w0 = time.perf_counter()
    frames = mapping.frames(rec.events, t0, t_end)
    v, act = _whole_recording(backend, net, frames)
    wall = time.perf_counter() - w0
    return RecordingResult(rec.source, rec.label, int(rec.events.size), t_end - t0, len(frames), int(np.argmax(v)),
                           wall, [WindowResult(t_end - t0, int(rec.events.size), wall, int(np.argmax(v)))],
                           _counts(act), readout_v=[float(x) for x in v]), act


def energy_pj(act: Activity) -> dict[str, float]:
    """Energy per inference (pJ) of every ``neuro_agmm.energy`` scenario for one recorded stream."""
    return {sc.name: sc.total_pj for sc in energy_per_inference(act).scenarios}


def default_step_us(art: ModelArtifact, dataset: Optional[str]) -> int:
    name = dataset or str(art.provenance.get("dataset", ""))
    span = DEFAULT_SPAN_US.get(name)
    if span is None:
        raise InferError(f"no default step length for dataset {name!r}; pass --step-us")
    return max(1, span // int(art.time_steps))


def infer(model_path: str | os.PathLike, events_source: Optional[str | os.PathLike] = None, backend: str = "emulator",
          window_us: Optional[int] = None, *, dataset: Optional[str] = None, split: str = "test",
          root: str | os.PathLike = "datasets", step_us: Optional[int] = None, limit: Optional[int] = None,
          progress: bool = False, net=None, energy: bool = True) -> InferResult:
    """Stream recordings through ``backend``; see the module docstring.

    ``window_us`` defaults to one network step; it must be a multiple of ``step_us``.
    ``net`` (an ``IntegerNetwork``) skips quantization (tests, benchmarks). ``energy``: record
    spike trains and apply ``neuro_agmm.energy`` after each stream (outside the timed loop).
    """
    if backend not in BACKENDS:
        raise InferError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    art = read_artifact(model_path)
    step = int(step_us) if step_us else default_step_us(art, dataset)
    window = int(window_us) if window_us else step
    if window % step:
        raise InferError(f"window {window} µs is not a multiple of the step {step} µs")
    notes = []
    if net is None and backend != "torch":
        from hw_models.mapping.quantizer import quantize
        net, _ = quantize(art)
    if backend == "emulator":
        stepper = EmulatorStepper(net, record=energy)
    elif backend == "torch":
        stepper = TorchFloatStepper(art)
        notes.append("torch backend: the artifact's float network (not the integer one), stepped densely")
    else:
        stepper = None
        notes.append(f"{backend} backend runs whole recordings (not streaming): latency is per recording")
    if backend == "torch":
        notes.append("energy: not computed for the float torch backend (no integer network)")
    elif energy:
        notes.append("energy: neuro_agmm.energy scenario bsnn_loihi (Loihi-style figures); all scenarios in JSON")
    n, recs = iter_recordings(events_source, dataset, split, root, limit)
    if progress:
        from tqdm import tqdm
        recs = tqdm(recs, total=n, desc=f"infer {backend}", unit="rec")
    results = []
    mapping = None
    for rec in recs:
        if mapping is None or mapping.sensor_size != rec.sensor_size:
            mapping = InputMapping.fit(rec.sensor_size, tuple(art.input_shape), art.input_max, step)
        act = None
        if stepper is not None:
            r = stream(stepper, mapping, rec, window)
            recorded = stepper.recorded() if isinstance(stepper, EmulatorStepper) else None
            if recorded is not None:
                act = activity_from_spikes(net, *recorded)
        else:
            r, act = whole(backend, net, mapping, rec)
        if energy and act is not None:
            r.energy_pj = energy_pj(act)
            r.energy_j = r.energy_pj["bsnn_loihi"] * 1e-12
        results.append(r)
    return InferResult(str(model_path), backend, window, step, stepper is not None, results, notes)


# ----------------------------------------------------------------------------- CLI

def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neuro_agmm.infer", description=(
        "Event-driven streaming inference of a model artifact on DVS recordings: events are consumed in "
        "windows as they arrive, the network state is carried across windows, and a prediction is made after "
        "every window. Prints a summary table; --json writes every number."))
    ap.add_argument("--model", required=True, metavar="ARTIFACT.h5", help="model artifact (neuro_agmm.train output)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--events", metavar="FILE_OR_DIR", help="an event file (.bin .aedat .aedat4 .npy .npz .h5) "
                                                             "or a directory of them")
    src.add_argument("--dataset", help="stream a dataset split instead: digits-dvs | nmnist | dvsgesture | cifar10dvs")
    ap.add_argument("--split", default="test", choices=("train", "test"), help="dataset split (default test)")
    ap.add_argument("--root", default="datasets", help="data root for --dataset (default datasets)")
    ap.add_argument("--backend", default="emulator", choices=BACKENDS, help="default emulator")
    ap.add_argument("--window-us", type=int, help="window length in µs (default: one network step)")
    ap.add_argument("--step-us", type=int, help="network time-step length in µs (default: dataset span / T)")
    ap.add_argument("--limit", type=int, help="only the first N recordings")
    ap.add_argument("--json", metavar="OUT.json", help="write the full result (per recording and window) as JSON")
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bar")
    args = ap.parse_args(argv)
    try:
        res = infer(args.model, args.events, args.backend, args.window_us, dataset=args.dataset, split=args.split,
                    root=args.root, step_us=args.step_us, limit=args.limit, progress=args.progress)
    except (InferError, ArtifactError, EventFileError, FileNotFoundError, ValueError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    print(res.summary())
    if args.json:
        print(f"wrote {res.write_json(args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
