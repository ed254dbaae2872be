"""Streaming inference in real time: a DVS128-sized conv network, 1 ms steps, Poisson streams, one core.

Why: ``neuro_agmm.infer`` claims event-driven streaming; this measures whether one CPU core keeps up
with a DVS128 sensor, side by side with the obvious alternative (the same network stepped densely in
torch), in one run, interleaved, one thread each:

* ``emulator`` — ``streaming.steppers.EmulatorStepper``: the bit-exact integer network on the compiled
  emulator kernel, state carried window to window, counters only (no spike trains kept);
* ``torch`` — ``streaming.steppers.TorchFloatStepper``: the artifact's float network stepped densely in
  torch with carried state.

Workload: a conv net 2x128x128 -> conv 8 (3x3, stride 2) -> conv 16 (3x3, stride 2) -> dense 10 (49,162
neurons), quantized from an artifact whose scales are chosen so that both conv layers spike at a
realistic rate at 2e6 events/s (the table reports every layer's firing rate at every input rate: the
previous benchmark network never spiked). Poisson streams at 2e4, 2e5 and 2e6 events/s (uniform over
pixels and polarities), 1 ms steps, windows of 1 and 10 steps. Real-time factor (RTF) = stream time /
wall time (> 1 keeps up); latency = wall time from a window's last event to its prediction (binning +
network). A 20 s stream at 2e5 events/s checks that a window's cost does not grow with the recording's
length (first vs last second). The CLI row runs ``python -m neuro_agmm.infer`` on a 2e6 events/s file.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming.py`` (writes ``docs/streaming.md``);
``--quick`` for shorter streams.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hw_models.backends import compiled  # noqa: E402
from hw_models.mapping.quantizer import quantize  # noqa: E402
from neuro_agmm.artifact import LayerSpec, ModelArtifact, atomic_write, write_artifact  # noqa: E402
from neuro_agmm.events.types import SensorSize, make_events, sort_by_time  # noqa: E402
from neuro_agmm.streaming.run import InputMapping, Recording, stream  # noqa: E402
from neuro_agmm.streaming.steppers import EmulatorStepper, TorchFloatStepper  # noqa: E402

SENSOR = SensorSize(128, 128, 2)
STEP_US = 1000
RATES = (2e4, 2e5, 2e6)


def conv_conv_dense(in_shape, conv0, conv1, n_classes: int, scales: tuple[float, float], seed: int = 0
                    ) -> ModelArtifact:
    """An event-frame artifact: int8 conv, binary conv, int8 dense readout; ``conv*`` = ``(C_out, k, stride)``
    (padding ``k // 2``), leak 0.5, random weights (60 % / 40 % positive in the first two layers)."""
    rng = np.random.default_rng(seed)
    lif = dict(leak=0.5, threshold=1.0, input_gain=0.5)
    layers, shape = [], tuple(in_shape)
    for name, (c, k, st), prec, scale in (("conv0", conv0, "int8", scales[0]), ("conv1", conv1, "binary", scales[1])):
        w = (rng.integers(-64, 128, (c, shape[0], k, k)).astype(np.float32) if prec == "int8"
             else np.where(rng.random((c, shape[0], k, k)) < 0.4, -1.0, 1.0))
        out = (c, -(-shape[1] // st), -(-shape[2] // st))
        layers.append(LayerSpec(name, "conv", prec, w, np.full(c, scale), np.zeros(c), shape, out, stride=(st, st),
                                padding=(k // 2, k // 2), **lif))
        shape = out
    n = int(np.prod(shape))
    layers.append(LayerSpec("out", "dense", "int8", rng.integers(-127, 128, (n_classes, n)).astype(np.float32),
                            np.full(n_classes, 0.01), np.zeros(n_classes), (n,), (n_classes,), leak=1.0, threshold=1.0,
                            input_gain=1.0, spiking=False))
    return ModelArtifact(layers, tuple(in_shape), 1 / 15, 15, 1000, "events", provenance={"dataset": "synthetic"})


def dvs128_artifact(seed: int = 0) -> ModelArtifact:
    """Full resolution; scales 0.2 / 0.25 make conv0 and conv1 spike at ~11 % / ~7 % at 2e6 events/s."""
    return conv_conv_dense((2, 128, 128), (8, 3, 2), (16, 3, 2), 10, (0.2, 0.25), seed)


def dvs128_pooled_artifact(seed: int = 0) -> ModelArtifact:
    """The DVS Gesture topology of SLAYER / lava-dl's examples: 4x4 sum pooling of the 128x128 sensor (done by
    the binning's downsample, as a pooling core would), conv 16 (5x5), conv 32 (3x3 s2), dense 11. Scales
    0.009 / 0.12 give ~15 % / ~9 % firing at 2e6 events/s."""
    return conv_conv_dense((2, 32, 32), (16, 5, 1), (32, 3, 2), 11, (0.009, 0.12), seed)


NETWORKS = {
    "full resolution: 2x128x128 -> conv 8 (3x3 s2) -> conv 16 (3x3 s2) -> dense 10": dvs128_artifact,
    "pooled 4x4 (SLAYER DVS Gesture style): 2x32x32 -> conv 16 (5x5) -> conv 32 (3x3 s2) -> dense 11":
        dvs128_pooled_artifact,
}


def poisson_stream(rate_ev_s: float, duration_us: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_ev_s * duration_us / 1e6)
    return sort_by_time(make_events(rng.integers(0, SENSOR.W, n), rng.integers(0, SENSOR.H, n),
                                    rng.integers(0, duration_us, n), rng.integers(0, 2, n)))


def measure(stepper, mapping: InputMapping, rec: Recording, window_us: int) -> dict:
    r = stream(stepper, mapping, rec, window_us)
    lat = np.array([w.latency_s for w in r.windows])
    per_layer = r.counts.get("per_layer") or []
    rates = [c["spikes"] / c["neuron_updates"] for c in per_layer[:-1]] if per_layer else []
    return {"rtf": r.duration_us / 1e6 / r.wall_s, "lat_mean_ms": lat.mean() * 1e3,
            "lat_p99_ms": np.percentile(lat, 99) * 1e3, "events_per_s": r.n_events / r.wall_s, "rates": rates,
            "synops_per_step": (r.counts.get("synops") or 0) / max(1, r.n_steps), "lat": lat}


def median_of(runs: list[dict]) -> dict:
    out = {k: float(np.median([r[k] for r in runs])) for k in ("rtf", "lat_mean_ms", "lat_p99_ms", "events_per_s",
                                                               "synops_per_step")}
    out["rtf_range"] = (min(r["rtf"] for r in runs), max(r["rtf"] for r in runs))
    out["rates"] = runs[0]["rates"]
    return out


def cli_row(art: ModelArtifact, duration_us: int) -> tuple[str, str]:
    """``python -m neuro_agmm.infer`` on a 2e6 events/s DVS128 stream written as an event file (``.npz``)."""
    from neuro_agmm.events.h5npz import write_event_file

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "dvs128.h5"
        write_artifact(art, model)
        write_event_file(Path(tmp) / "stream.npz", poisson_stream(2e6, duration_us, 7), SENSOR)
        cmd = [sys.executable, "-m", "neuro_agmm.infer", str(model), "--events", str(Path(tmp) / "stream.npz"),
               "--step-us", str(STEP_US), "--no-progress"]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
        shown = "python -m neuro_agmm.infer dvs128.h5 --events stream.npz --step-us 1000"
        return shown, (out.stdout + out.stderr).strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter streams, fewer repeats (smoke test)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "streaming.md"))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    if not compiled.HAVE_NUMBA:
        print("note: numba is not installed: the emulator runs its NumPy engine")
    load_before = os.getloadavg()[0]
    dur = 300_000 if args.quick else 1_000_000
    repeats = 3 if args.quick else 5
    sections = []
    for title, make in NETWORKS.items():
        art = make()
        net, _ = quantize(art, time_steps=1000)
        emu, tst = EmulatorStepper(net), TorchFloatStepper(art)
        mapping = InputMapping.fit(SENSOR, tuple(art.input_shape), 15, STEP_US)
        # warm up (numba's first call compiles or loads its cache)
        warm = Recording("warm", poisson_stream(2e5, 20_000, 99), SENSOR, None, 0, 20_000)
        stream(emu, mapping, warm, STEP_US)
        stream(tst, mapping, warm, STEP_US)
        rows = []
        for rate in RATES:
            rec = Recording(f"poisson {rate:.0e}", poisson_stream(rate, dur, 1), SENSOR, None, 0, dur)
            for window_steps in (1, 10):
                w = window_steps * STEP_US
                runs = {"emulator": [], "torch": []}
                for r in range(repeats):  # interleaved: emulator, torch, then torch, emulator, ...
                    order = (("emulator", emu), ("torch", tst)) if r % 2 == 0 else (("torch", tst), ("emulator", emu))
                    for name, st in order:
                        if name == "torch" and r >= 3:
                            continue  # torch is slow and steady: three repeats keep the run short
                        runs[name].append(measure(st, mapping, rec, w))
                rows.append((rate, w, median_of(runs["emulator"]), median_of(runs["torch"]), len(runs["emulator"]),
                             len(runs["torch"])))
                print(f"{title[:20]} rate {rate:.0e} window {w} µs: emulator RTF {rows[-1][2]['rtf']:.2f}, torch RTF "
                      f"{rows[-1][3]['rtf']:.2f}, rates {rows[-1][2]['rates']}", flush=True)
        # the cost of a window does not depend on how far into the recording it is
        long_dur = 5_000_000 if args.quick else 20_000_000
        long = Recording("long", poisson_stream(2e5, long_dur, 3), SENSOR, None, 0, long_dur)
        lat = measure(emu, mapping, long, STEP_US)["lat"]
        shown, cli_out = cli_row(art, 1_000_000 if not args.quick else 300_000)
        sections.append((title, net, rows, long_dur, lat[:1000], lat[-1000:], shown, cli_out))

    import threadpoolctl
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
            for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    lines = ["# Streaming inference: DVS128 in real time on one core", "",
             "Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/streaming.py" + (" --quick" if args.quick else "")
             + "`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other jobs, one thread per "
             f"backend; Python {platform.python_version()}, torch {torch.__version__}, numba "
             f"{getattr(compiled.numba, '__version__', 'absent')}, NumPy BLAS {', '.join(blas) or 'n/a'}  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average (1 min) {load_before:.1f} "
             f"at the start, {os.getloadavg()[0]:.1f} at the end.", "",
             "Streams: Poisson, uniform over pixels and polarities of a 128x128x2 sensor, "
             f"{dur / 1e6:g} s each, 1 ms steps, leak 0.5 per step, networks quantized with "
             "`hw_models.mapping.quantizer.quantize` (`dvs128_artifact`, `dvs128_pooled_artifact` in this script). "
             "`emulator` = compiled bit-exact integer kernel (`hw_models.backends.compiled`) through "
             "`EmulatorStepper`; `torch` = the same artifact's float network stepped densely (`TorchFloatStepper`). "
             "Medians over interleaved repeats (n per cell: emulator / torch); RTF range = min..max over the "
             "repeats. RTF = stream time / wall time (> 1 keeps up); latency = a window's last event to its "
             "prediction."]
    for title, net, rows, long_dur, first, last, shown, cli_out in sections:
        lines += ["", f"## {title}", "", f"{sum(l.n_out for l in net.layers)} neurons.", "",
                  "| input rate | window | firing rate conv0 / conv1 | SynOps per step | emulator RTF (range) | "
                  "emulator latency mean / p99 (ms) | torch RTF | torch latency mean / p99 (ms) | emulator / torch | n |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for rate, w, e, t, ne, nt in rows:
            lines.append(f"| {rate:.0e} ev/s | {w // 1000} ms | {e['rates'][0]:.2%} / {e['rates'][1]:.2%} | "
                         f"{e['synops_per_step']:.3g} | {e['rtf']:.2f} ({e['rtf_range'][0]:.2f}..{e['rtf_range'][1]:.2f})"
                         f" | {e['lat_mean_ms']:.3f} / {e['lat_p99_ms']:.3f} | {t['rtf']:.2f} | {t['lat_mean_ms']:.3f} / "
                         f"{t['lat_p99_ms']:.3f} | {e['rtf'] / t['rtf']:.1f}x | {ne} / {nt} |")
        top = {w: e["rtf"] for rate, w, e, _, _, _ in rows if rate == max(RATES)}
        verdict = "met" if top.get(STEP_US, 0) >= 3 else "not met"
        lines += ["", f"Real time with margin (RTF >= 3 at {max(RATES):.0e} ev/s, 1 ms windows): **{verdict}** "
                  f"(RTF {top.get(STEP_US, float('nan')):.2f}; {top.get(10 * STEP_US, float('nan')):.2f} with "
                  "10 ms windows)."]
        lines += ["", f"Window cost against position in a {long_dur / 1e6:g} s stream at 2e5 ev/s (1 ms windows): "
                  f"first 1000 windows mean {first.mean() * 1e3:.3f} ms (p99 {np.percentile(first, 99) * 1e3:.3f}), "
                  f"last 1000 mean {last.mean() * 1e3:.3f} ms (p99 {np.percentile(last, 99) * 1e3:.3f}).",
                  "", f"Through the CLI (`{shown}`, 2e6 ev/s):", "", "```", cli_out, "```"]
    lines += ["", "Reading: every neuron is updated every step (as Loihi-style time-stepped cores do), so at low "
              "input rates the neuron update bounds the rate; at 2e6 ev/s the synaptic work dominates. Each window "
              "is one compiled call (`compiled.CompiledRun.advance_events`: binning and every layer); conv1 is "
              "binary and fed by spikes, so at that rate it runs as popcounts of bit planes (`_conv_bitplane`), "
              "and conv0 scatters its taps. A profile of the full-resolution stream at 2e6 ev/s (perf, one core) "
              "put about a fifth of the time in each of the LIF updates and the bit-plane conv, an eighth in "
              "conv0's scatter and a tenth in Python; the kernel's in-place work is bound by the cache (its "
              "isolated parts run about 1.5x faster than inside the stream). Windows of 10 steps run layer by "
              "layer over the window (weights stay in cache, which serves big dense layers), so on these small-"
              "weight conv nets they gain little over 1 ms windows. Each window costs one binary search in the "
              "recording's time-sorted records plus the binning of its own events, so its cost does not grow with "
              "the recording."]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
