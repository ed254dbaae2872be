"""Exact bf16 in the binary layers fed by spikes (``--half-precision bf16``) beside float32, same model and batch.

Each round times one training step (forward + backward) of each mode, interleaved; medians and interquartile
ranges. Before timing it checks that the bf16 forward equals the float32 forward bit for bit and that the
layers feeding the bf16 layers spike. Runs on the CPU and, where one exists, on CUDA (``--device cuda``):
bf16 exists to use GPU tensor cores, so the CPU figure only says what it costs without them.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/half_precision.py               # writes docs/half_precision.md
    .venv/bin/python benchmarks/half_precision.py --device cuda --width 1 --doc docs/half_precision_gpu.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from neuro_agmm.training.binary_layers import use_half_precision  # noqa: E402
from neuro_agmm.training.models import build_model  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet19")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--time-steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--doc", default=str(ROOT / "docs" / "half_precision.md"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    m = build_model(args.arch, (3, args.size, args.size), 10, width=args.width, threshold=0.05).to(dev)
    x = torch.rand(args.time_steps, args.batch, 3, args.size, args.size, device=dev) * 10
    m.eval()
    with torch.no_grad():
        ref = m(x)
    rates = list(m.activity.values())[:-1]
    names = use_half_precision(m, "bf16")
    with torch.no_grad():
        same = torch.equal(m(x), ref)
    if not same or min(rates) <= 0.01:
        raise SystemExit(f"bf16 forward identical: {same}; firing rates {rates}")
    m.train()
    times: dict[str, list[float]] = {"float32": [], "bf16 (exact chunks)": []}
    for r in range(args.rounds):
        for mode in (list(times) if r % 2 == 0 else list(times)[::-1]):
            use_half_precision(m, "none" if mode == "float32" else "bf16")
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            m.zero_grad()
            m(x).sum().backward()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[mode].append(time.perf_counter() - t0)
    md = [f"# Exact bf16 for binary layers fed by spikes ({time.strftime('%Y-%m-%d')})", "",
          f"Command: `.venv/bin/python benchmarks/half_precision.py --device {args.device}` "
          f"({platform.machine()}, {args.threads} thread(s)). Model: {args.arch} width {args.width}, input "
          f"3×{args.size}×{args.size}, batch {args.batch}, T = {args.time_steps}; {len(names)} binary layers in bf16 "
          f"(the first layer, fed by the graded input, and the int8 readout stay float32). Forward bit-identical to "
          f"float32: {same}. Firing rates of the layers feeding them: {min(rates):.3f}–{max(rates):.3f}.", "",
          "| mode | training step (s), median | IQR (s) |", "|---|---:|---:|"]
    for mode, ts in times.items():
        a = np.asarray(ts)
        md.append(f"| {mode} | {np.median(a):.3f} | {np.percentile(a, 25):.3f}..{np.percentile(a, 75):.3f} |")
    md.append("")
    Path(args.doc).write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
