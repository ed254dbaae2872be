"""ResNet-19 BSNN through the CLIs, end to end, on CIFAR-format files this script writes (issue 13, item 3).

Steps (each one the command a user would type, run as a subprocess and timed):

1. ``benchmarks/make_cifar_like.py`` writes ``cifar-10-batches-py`` (class-dependent gradients + noise);
2. ``python -m neuro_agmm.train --arch resnet19 --width W`` trains a BSNN (AGMM by default);
3. ``python -m neuro_agmm.map --to lava`` quantizes the residual DAG, places it and runs Lava bit-accurately;
4. ``python -m neuro_agmm.crosscheck`` compares the emulator, Lava (and Brian2 at small widths) with the reference;
5. ``python -m neuro_agmm.map --to nir`` and ``--to netx`` (the first exports, the second refuses);
6. ``python -m neuro_agmm.report`` counts SynOps and energy per inference.

Writes the commands, their key output lines and wall times to ``--doc`` (default ``docs/resnet_pipeline.md``).

Usage::

    .venv/bin/python benchmarks/resnet_pipeline.py                      # width 1/16, ~4 min on 2 cores
    .venv/bin/python benchmarks/resnet_pipeline.py --width 0.03125 --brian2
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _run(cmd: list[str], log: list[str]) -> tuple[str, float]:
    shown = " ".join(c if " " not in c else repr(c) for c in cmd).replace(PY, "python")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    print(f"[{dt:6.1f} s] {shown}", flush=True)
    log.append(f"$ {shown}    # {dt:.1f} s, exit {p.returncode}")
    if p.returncode != 0:
        print((p.stdout + p.stderr)[-1500:], flush=True)
    return p.stdout + p.stderr, dt if p.returncode == 0 or "--to netx" in shown else -1.0


def _lines(out: str, *keys: str) -> list[str]:
    return [line.rstrip() for line in out.splitlines() if any(k in line for k in keys)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=float, default=0.0625, help="channel multiplier (default 1/16: 8, 16, 32 ch)")
    ap.add_argument("--n-train", type=int, default=1024)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--time-steps", type=int, default=2)
    ap.add_argument("--samples", type=int, default=16, help="test samples for map (Lava) and the energy report")
    ap.add_argument("--chips", type=int, default=4, help="Loihi 2 chips for the placement (default 4)")
    ap.add_argument("--brian2", action="store_true", help="also cross-check in Brian2 (slow above width 1/32)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "resnet_pipeline.md"))
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="resnet_pipeline_"))
    data, run = work / "data", work / "run"
    log: list[str] = []
    results: dict = {}
    out, _ = _run([PY, "benchmarks/make_cifar_like.py", "--root", str(data), "--n-train", str(args.n_train),
                   "--n-test", str(args.n_test)], log)
    out, results["train_s"] = _run([PY, "-m", "neuro_agmm.train", "--dataset", "cifar10", "--data-root", str(data),
                                    "--arch", "resnet19", "--width", str(args.width), "--epochs", str(args.epochs),
                                    "--batch-size", "32", "-T", str(args.time_steps), "--out", str(run),
                                    "--threads", str(args.threads), "--device", "cpu", "--no-progress"], log)
    results["train"] = _lines(out, "epoch", "done:")
    art = str(run / "model.h5")
    out, results["map_s"] = _run([PY, "-m", "neuro_agmm.map", art, "--to", "lava", "--samples", str(args.samples),
                                  "--core", "loihi2", "--chips", str(args.chips), "--data-root", str(data),
                                  "--no-progress", "--out", str(work / "map")], log)
    results["map"] = _lines(out, "shortcut exp", "accuracy", "agreement", "Lava vs", "placement on", "cores used")
    backends = "emulator,lava" + (",brian2" if args.brian2 else "")
    out, results["crosscheck_s"] = _run([PY, "-m", "neuro_agmm.crosscheck", art, "--samples", "2", "--lava-samples",
                                         "1", "--backends", backends, "--data-root", str(data),
                                         "--out", str(work / "cc.json")], log)
    results["crosscheck"] = _lines(out, "predictions differing", "TOTAL")
    out, results["nir_s"] = _run([PY, "-m", "neuro_agmm.map", art, "--to", "nir", "--out", str(work / "r.nir"),
                                  "--no-progress"], log)
    results["nir"] = _lines(out, "wrote", "nir")[:3]
    out, _ = _run([PY, "-m", "neuro_agmm.map", art, "--to", "netx", "--out", str(work / "r.netx.h5"),
                   "--no-progress"], log)
    results["netx"] = _lines(out, "residual")[:1]
    out, results["report_s"] = _run([PY, "-m", "neuro_agmm.report", art, "--samples", str(args.samples),
                                     "--data-root", str(data), "--out", str(work / "energy")], log)
    results["report"] = _lines(out, "activity per inference", "loihi ")[:3]
    mapped = json.loads((work / "map" / "map.json").read_text())
    doc = [f"# ResNet-19 BSNN through the CLIs ({time.strftime('%Y-%m-%d')})", "",
           f"Command: `.venv/bin/python benchmarks/resnet_pipeline.py --width {args.width}"
           f"{' --brian2' if args.brian2 else ''}` on {platform.machine()}, "
           f"{args.threads} torch threads, CPU only. Data: {args.n_train} + {args.n_test} CIFAR-format images "
           f"written by `benchmarks/make_cifar_like.py` (class-dependent gradients + noise, not natural images).", "",
           "ResNet-19 as in tdBN (stem, 3+3+2 basic blocks, fc, readout) at width "
           f"{args.width:g}: each block is two artifact nodes, the second with its shortcut (identity: a 1×1 int8 "
           "conv of identity codes; downsampling: a 1×1 stride-2 binary conv + BN), core_spec rule 1b.", "",
           "| step | wall time |", "|---|---|"]
    for k in ("train", "map", "crosscheck", "nir", "report"):
        doc.append(f"| {k} | {results[k + '_s']:.1f} s |" if results[k + "_s"] >= 0 else f"| {k} | failed |")
    agree = mapped["spike_agreement"]
    doc += ["", f"Lava mismatches against the reference: **{mapped['lava_mismatches']}** of {mapped['n_samples']} "
            f"samples; {mapped['n_cores']} Loihi 2 cores on {mapped['n_chips']} chip(s).", "",
            f"Float → integer (the quantizer's cost, not a backend disagreement): accuracy "
            f"{100 * mapped['float_accuracy']:.2f} % → {100 * mapped['integer_accuracy']:.2f} % (Lava "
            f"{100 * mapped['lava_accuracy']:.2f} %), prediction agreement float vs Lava "
            f"{100 * mapped['prediction_agreement_float_lava']:.2f} % on {mapped['n_samples']} samples; spike "
            f"agreement per layer falls from {100 * agree[0]:.2f} % (stem) to {100 * min(agree):.2f} % (lowest) over "
            f"{len(agree)} spiking layers: a spike flipped by threshold, bias or shortcut-mantissa rounding changes "
            f"every later layer's input. Accuracies are on synthetic gradient images after {args.epochs} short "
            f"epochs; they show the pipeline works, not CIFAR-10 accuracy.", "", "## Output", "",
            "```"] + log + [""]
    for k in ("train", "map", "crosscheck", "nir", "netx", "report"):
        doc += [f"[{k}]"] + results[k]
    doc += ["```", ""]
    Path(args.doc).write_text("\n".join(doc))
    print(f"wrote {args.doc}")
    return 0 if mapped["lava_mismatches"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
