"""Event-driven streaming inference: DVS streams -> a mapped network -> predictions as events arrive.

``python -m neuro_agmm.infer --model ARTIFACT --events FILE_OR_DIR --backend emulator`` (or
``--dataset NAME --split test``); library entry point ``infer(...) -> InferResult``.

How a stream is consumed (``backend="emulator"`` and ``"torch"``, truly streaming):

* the network's time step lasts ``step_us`` µs (default: the artifact's encoding record, the
  training span / T, e.g. 300 ms / T for N-MNIST and digits-dvs; override with ``--step-us``);
  the stream starts at its first event (digits-dvs: at 0, its fixed span);
* ``event_windows`` is a generator that hands out the events of consecutive windows of
  ``window_us`` (a multiple of ``step_us``) as they would arrive; each window is binned
  into ``window_us / step_us`` count frames (``events.binning`` edges, clipped to the
  artifact's ``input_max``, downsampled to the artifact's input shape) and run; the
  network state (u, v of every layer) is carried from window to window;
* after every window the prediction is ``argmax`` of the readout voltage so far; the
  final prediction is the one after the last window. Per window we time the wall-clock
  latency from "window complete" to "prediction" (binning + network); the kernels are compiled (or
  loaded from numba's cache) by one empty step before the first window, outside the timing.

Backends: ``emulator`` — ``hw_models.emulator.Emulator`` (bit-exact integer network,
stateful ``run``), activity counters give synaptic operations; ``torch`` — the float
network of the artifact (``neuro_agmm.artifact`` semantics: ``z = W x``, folded scale/bias/BN,
LIF with hard reset, readout integrator) stepped densely in torch with carried state (our
``TorchFloatStepper``; tests check it against ``neuro_agmm.float_model.run_float``);
``lava`` (``hw_models.lava_backend.run_lava``) and ``brian2``
(``hw_models.brian2_backend.run_brian2``) run each **whole recording** at once (not
streaming: one window = the recording; they report the final prediction only).

The integer network comes from ``neuro_agmm.deploy.network.integer_network`` (the artifact's
``/hardware`` section when present and current) and the input encoding (step length, downsample,
clip, sensor) from the artifact's ``InputEncoding`` record. Energy per
inference: ``neuro_agmm.energy.activity_from_counts`` of the emulator's running counters (no spike
trains are kept, so memory does not grow with the stream), then ``energy_per_inference``;
``energy_j`` is the ``bsnn_loihi`` scenario, ``energy_pj`` holds every scenario. Activity counts (SynOps = input events x structural fan-out, neuron updates,
spikes) come from the emulator's counters (Lava/Brian2: from their spike trains).

Left out: live camera input (any iterator of event arrays can be fed to ``stream``),
batching several streams, Lava/Brian2 streaming.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Optional

import numpy as np

from hw_models.backends import registry
from neuro_agmm.artifact import ModelArtifact, read_artifact
from neuro_agmm.deploy.energy import Activity, activity_from_spikes, energy_per_inference
from neuro_agmm.deploy.network import integer_network
from neuro_agmm.streaming.results import InferResult, RecordingResult, WindowResult
from neuro_agmm.events import SensorSize
from neuro_agmm.streaming.sources import Recording, iter_recordings
from neuro_agmm.streaming.steppers import STEPPERS, stream_totals
from neuro_agmm.streaming.windows import InferError, InputMapping

WHOLE_RECORDING_BACKENDS = ("lava", "brian2")
BACKENDS = tuple(STEPPERS) + WHOLE_RECORDING_BACKENDS


def _whole_recording(backend: str, net, frames: np.ndarray) -> tuple[np.ndarray, Activity]:
    """Lava / Brian2: one run over the recording's frames; returns (final readout v, activity of its spikes)."""
    bt = registry.run(backend, net, frames[None], record=True)
    return np.asarray(bt.final_v[-1][0], np.float64), activity_from_spikes(net, frames[None], bt.spikes)


def _counts(act: Activity) -> dict:
    """``_totals`` of a one-stream ``Activity`` (its per-inference means are whole counts)."""
    return stream_totals([{"input_events": int(l.input_events), "synops": int(l.synops),
                     "neuron_updates": int(l.neuron_updates), "spikes": int(l.spikes)} for l in act.layers])


def _span(rec: Recording, step_us: int) -> tuple[int, int]:
    """``(t0, t_end)`` of a recording's stream: its fixed span, else whole steps covering the last event."""
    t0 = int(rec.events["t"][0]) if rec.t0 is None and rec.events.size else int(rec.t0 or 0)
    if rec.span_us is not None:
        return t0, t0 + int(rec.span_us)
    last = int(rec.events["t"][-1]) + 1 if rec.events.size else t0 + 1
    return t0, t0 + -(-(last - t0) // step_us) * step_us


def stream(stepper, mapping: InputMapping, rec: Recording, window_us: int, skip_idle: bool = True
           ) -> RecordingResult:
    """Run one recording window by window through a streaming backend (state reset first).

    Gaps cost O(1): when an empty window leaves the network exactly as it found it (no spike, the same
    ``u``/``v``: a fixed point, so every further empty step is the same no-op), the windows up to the
    next event are skipped at once and only accounted (``stepper.idle``: neuron updates, steps). The result
    equals stepping through the gap (tested). A network that does not come to rest without input (a
    bias that keeps it spiking) is stepped through. Memory holds one ``WindowResult`` per window run.
    """
    stepper.reset()
    t0, t_end = _span(rec, mapping.step_us)
    windows = []
    v = None
    n_steps = skipped = 0
    start_wall = time.perf_counter()
    binner = mapping.binner(rec.events)
    n_events = int(rec.events.size)
    per_window = window_us // mapping.step_us
    can_skip = skip_idle and hasattr(stepper, "state") and hasattr(stepper, "idle")
    run_window = getattr(stepper, "run_window", None)  # bins and runs a window in one call, where it can
    at_rest = False
    lo, start = 0, int(t0)
    while start < t_end:
        hi = binner.window_end(lo, start + window_us)
        if at_rest and lo == hi:  # jump over the whole empty windows before the next event
            nxt = binner.time_at(hi) if hi < n_events else t_end
            k = min(nxt - start, t_end - start) // window_us
            if k >= 1:
                stepper.idle(k * per_window)
                n_steps += k * per_window
                skipped += k
                start += k * window_us
                continue
        stop = min(start + window_us, t_end)
        w0 = time.perf_counter()
        before = stepper.state() if can_skip and lo == hi else None
        v = run_window(binner, lo, hi, start, stop) if run_window is not None else None
        if v is None:  # bin the frames here (a backend without the one-call path, or an event to report)
            v = stepper.run(binner.frames(lo, hi, start, stop))
        lat = time.perf_counter() - w0
        if before is not None:
            after = stepper.state()
            at_rest = all(np.array_equal(a, b) for a, b in zip(before, after))
        else:
            at_rest = False
        n_steps += (stop - start) // mapping.step_us
        windows.append(WindowResult(stop - t0, hi - lo, lat, int(np.argmax(v))))
        lo, start = hi, start + window_us
    wall = time.perf_counter() - start_wall
    pred = int(np.argmax(v)) if v is not None else 0
    return RecordingResult(rec.source, rec.label, int(rec.events.size), t_end - t0, n_steps, pred, wall, windows,
                           stepper.counts(), readout_v=[] if v is None else [float(x) for x in v],
                           skipped_windows=skipped)


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


def default_step_us(art: ModelArtifact) -> int:
    """The step length of the artifact's encoding (span / T of the training binning)."""
    enc = art.input_encoding
    if enc is None or enc.kind != "events":
        raise InferError(f"the model was trained on {art.encoding!r} input, not events: it cannot be streamed")
    if not enc.step_us:
        raise InferError("the model's encoding record has no step length; pass --step-us")
    return int(enc.step_us)


@dataclass
class _Job:
    """What streaming one recording needs (handed to worker processes once, at fork)."""

    backend: str
    net: object
    art: ModelArtifact
    step: int
    window: int
    sensor_size: Optional[tuple[int, int, int]]
    energy: bool
    stepper: object = None
    mappings: dict = dc_field(default_factory=dict)

    def start(self) -> "_Job":
        if self.backend == "emulator":
            self.stepper = STEPPERS["emulator"](self.net)
        elif self.backend == "torch":
            self.stepper = STEPPERS["torch"](self.art)
        if hasattr(self.stepper, "warm"):  # compile / load the kernels before the first timed window
            self.stepper.warm()
        elif self.stepper is not None:
            self.stepper.run(np.zeros((1,) + tuple(self.art.input_shape), np.uint8))
            self.stepper.reset()
        return self

    def run(self, rec: Recording) -> RecordingResult:
        sensor = rec.sensor_size if self.sensor_size is None else self.sensor_size
        mapping = self.mappings.get(tuple(sensor))
        if mapping is None:
            mapping = self.mappings[tuple(sensor)] = InputMapping.from_encoding(self.art, sensor, self.step)
        if self.stepper is not None:
            r = stream(self.stepper, mapping, rec, self.window)
            act = self.stepper.activity() if self.energy else None
        else:
            r, act = whole(self.backend, self.net, mapping, rec)
        if self.energy and act is not None:
            r.energy_pj = energy_pj(act)
            r.energy_j = r.energy_pj["bsnn_loihi"] * 1e-12
        return r


_WORKER_JOB: Optional[_Job] = None


def _worker_start(job: _Job) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job.start()


def _worker_run(rec: Recording) -> RecordingResult:
    return _WORKER_JOB.run(rec)


def _run_all(job: _Job, recs, workers: int):
    """Results in recording order; ``workers > 1`` streams recordings in that many forked processes (each its
    own stepper, one core each), reading and handing out recordings as they complete."""
    if workers <= 1:
        job.start()
        yield from (job.run(r) for r in recs)
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_start, initargs=(job,)) as pool:
        pending: deque = deque()
        for rec in recs:  # at most 2 per worker in flight: memory stays bounded by a few recordings
            pending.append(pool.submit(_worker_run, rec))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def infer(model_path: str | os.PathLike, events_source: Optional[str | os.PathLike] = None, backend: str = "emulator",
          window_us: Optional[int] = None, *, dataset: Optional[str] = None, split: str = "test",
          root: str | os.PathLike = "datasets", step_us: Optional[int] = None, limit: Optional[int] = None,
          progress: bool = False, net=None, energy: bool = True,
          sensor_size: Optional[tuple[int, int, int]] = None, workers: int = 1) -> InferResult:
    """Stream recordings through ``backend``; see the module docstring.

    ``window_us`` defaults to one network step; it must be a multiple of ``step_us``.
    ``net`` (an ``IntegerNetwork``) replaces the artifact's (tests, benchmarks); otherwise it comes from
    ``deploy.network.integer_network`` (``/hardware`` first). ``sensor_size`` (W, H, P) overrides the
    recordings' own (e.g. files that do not state it). ``energy``: account each stream's activity
    with ``neuro_agmm.energy`` (from the emulator's counters). ``workers``: recordings streamed in that many
    processes (streaming backends).
    """
    if backend not in BACKENDS:
        raise InferError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if net is None and backend not in ("torch",):
        net, art, notes = integer_network(model_path)
    else:
        art, notes = read_artifact(model_path), []
    notes = list(art.input_encoding.notes if art.input_encoding else []) + notes
    step = int(step_us) if step_us else default_step_us(art)
    window = int(window_us) if window_us else step
    if window % step:
        raise InferError(f"window {window} µs is not a multiple of the step {step} µs")
    streaming = backend in STEPPERS
    if backend == "torch":
        notes.append("torch backend: the artifact's float network (not the integer one), stepped densely")
    elif not streaming:
        notes.append(f"{backend} backend runs whole recordings (not streaming): latency is per recording")
    if backend == "torch":
        notes.append("energy: not computed for the float torch backend (no integer network)")
    elif energy:
        notes.append("energy: neuro_agmm.energy scenario bsnn_loihi (Loihi-style figures); all scenarios in JSON")
    workers = int(workers)
    if workers < 1:
        raise InferError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and not streaming:
        raise InferError(f"--workers applies to the streaming backends ({', '.join(STEPPERS)}); {backend} runs its "
                         "own processes")
    if workers > 1:
        notes.append(f"{workers} worker processes, one recording each at a time; latency is per process, the "
                     "throughput real-time factor uses the elapsed wall time")
    n, recs = iter_recordings(events_source, dataset, split, root, limit,
                              sensor_size=SensorSize(*sensor_size) if sensor_size else None)
    job = _Job(backend, net, art, step, window, sensor_size, energy)
    t0 = time.perf_counter()
    results = _run_all(job, recs, workers)
    if progress:
        from tqdm import tqdm
        results = tqdm(results, total=n, desc=f"infer {backend}", unit="rec")
    results = list(results)
    elapsed = time.perf_counter() - t0
    empty = [r.source for r in results if r.n_events == 0]
    if empty:
        notes.append(f"{len(empty)} recording(s) hold no events ({', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''}):"
                     f" their prediction is the network's answer to silence")
    return InferResult(str(model_path), backend, window, step, streaming, results, notes, workers=workers,
                       elapsed_s=elapsed)
