"""Same network, same inputs on Lava, Brian2 (numpy and cython) and the NumPy emulator, in one run.

Why: the emulator is the project's fast path; this measures how much faster it is than
the reference simulators *while* checking that it is bit-exact with them on the very runs
being timed (Lava: per-sample spike counts and final readout voltages of a batched Lava run;
Brian2: full spike trains and voltages of every layer).

Reported per backend: time per inference, per time step and per synaptic operation
(SynOps counted by the emulator; Brian2 counts its own and they must match), and the
speed ratio to Lava's CPU backend. Lava's time is given twice: the ``proc.run`` time
alone and the whole job (compile + process start-up). Brian2 build/compile time is
excluded from its per-inference time (cython is warmed up once first).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/emulators.py            # writes docs/emulators.md
    .venv/bin/python benchmarks/emulators.py --batch 32 --steps 8 --no-lava --doc /tmp/e.md

Leaves out: GPU back ends; Lava's hardware back end.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import hw_models  # noqa: E402,F401  (Lava import fix)
from hw_models.backends import emulator as em  # noqa: E402
from hw_models.integer_network import IntegerNetwork  # noqa: E402
from neuro_agmm.artifact import atomic_write  # noqa: E402


def _leaky_half(net: IntegerNetwork) -> None:
    """The project's neuron settings on every hidden layer: leak 0.5 (dv 2048), current cleared (du 4095)."""
    for layer in net.layers[:-1]:
        layer.weight_exp, layer.du, layer.dv = 0, 4095, 2048
        layer.bias_mant[:] = 0


def mlp_case(rng: np.random.Generator, batch: int, steps: int) -> tuple[str, IntegerNetwork, np.ndarray]:
    """Digits-sized MLP 64-128-128-10 (8-bit first layer, binary hidden, 8-bit readout) on real digits."""
    from sklearn.datasets import load_digits

    net = em.random_network(rng, (64,), (("dense", 128), ("dense", 128), ("dense", 10)), weight_range=(-8, 8),
                            binary_hidden=True, vth_range=(20, 60), input_max=16)
    _leaky_half(net)
    net.layers[0].vth[:] = rng.integers(60, 160, net.layers[0].n_out)
    net.layers[1].vth[:] = rng.integers(2, 6, net.layers[1].n_out)
    img = load_digits().images.reshape(-1, 64).astype(np.int64)[:batch]
    x = np.repeat(img[:, None], steps, axis=1)
    return "mlp 64-128-128-10 (digits, direct input 0..16)", net, x


def conv_case(rng: np.random.Generator, batch: int, steps: int) -> tuple[str, IntegerNetwork, np.ndarray]:
    """DVS-like conv net 2x16x16 -> conv8 s2 -> conv16 s2 -> 10, sparse event-count frames."""
    net = em.random_network(rng, (2, 16, 16), (("conv", 8, 3, 2, 1), ("conv", 16, 3, 2, 1), ("dense", 10)),
                            weight_range=(-4, 8), binary_hidden=True, vth_range=(2, 6), input_max=4)
    _leaky_half(net)
    net.layers[0].vth[:] = rng.integers(4, 9, net.layers[0].n_out)
    net.layers[1].vth[:] = rng.integers(3, 7, net.layers[1].n_out)
    x = rng.poisson(0.15, (batch, steps, 2, 16, 16)).clip(0, 4).astype(np.int64)
    return "conv 2x16x16-c8s2-c16s2-10 (event frames, ~14% nonzero)", net, x


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench(name: str, net: IntegerNetwork, x: np.ndarray, args) -> tuple[list[dict], dict]:
    b, t = x.shape[:2]
    t_emu, tr = timed(lambda: em.run_batch(net, x), repeat=3)
    synops = float(sum(c.synops.sum() for c in tr.counts)) / b
    rates = [float(s.mean()) for s in tr.spikes[:-1]]
    rows = [{"backend": f"emulator (NumPy, batch {b})", "samples": b, "per_inf_s": t_emu / b, "exact": "reference"}]
    if args.big_batch > b:  # the same samples tiled: what a larger batch buys
        xb = np.concatenate([x] * (-(-args.big_batch // b)))[:args.big_batch]
        t_big, tb = timed(lambda: em.run_batch(net, xb), repeat=3)
        same = all(np.array_equal(tb.spikes[j][:b], tr.spikes[j]) for j in range(len(net.layers)))
        rows.append({"backend": f"emulator (NumPy, batch {args.big_batch})", "samples": args.big_batch,
                     "per_inf_s": t_big / args.big_batch, "exact": "yes" if same else "NO"})
    info = {"name": name, "batch": b, "steps": t, "synops": synops, "rates": rates, "paths": None}
    emu = em.Emulator(net, b)
    emu.run(x)
    info["paths"] = emu.last_paths

    # reference (plain loop) on a few samples, exactness of the emulator against it
    from hw_models.backends.reference import run_reference

    k = min(b, 4)
    t_ref, refs = timed(lambda: [run_reference(net, x[i]) for i in range(k)])
    ok = all(np.array_equal(refs[i].spikes[j], tr.spikes[j][i]) for i in range(k) for j in range(len(net.layers)))
    rows.append({"backend": "reference (NumPy loop)", "samples": k, "per_inf_s": t_ref / k,
                 "exact": "yes" if ok else "NO"})
    if not ok:
        raise SystemExit("emulator differs from the reference: not benchmarking a wrong emulator")

    from hw_models.backends.brian2 import run_brian2

    kb = min(b, args.brian2_samples)
    for target in args.brian2_targets:
        if target == "cython":
            run_brian2(net, x[0], target="cython")  # compile once (cached afterwards)
        runs = [run_brian2(net, x[i], target=target) for i in range(kb)]
        exact = all(np.array_equal(r.spikes[j], tr.spikes[j][i]) and np.array_equal(r.v[j][-1], tr.final_v[j][i])
                    for i, r in enumerate(runs) for j in range(len(net.layers)))
        counts_ok = all(r.counts[j].synops[0] == tr.counts[j].synops[i]
                        for i, r in enumerate(runs) for j in range(len(net.layers)))
        rows.append({"backend": f"Brian2 ({target})", "samples": kb,
                     "per_inf_s": float(np.mean([r.run_s for r in runs])),
                     "build_s": float(np.mean([r.build_s for r in runs])),
                     "exact": "yes" if exact and counts_ok else "NO"})

    if not args.no_lava:
        from hw_models.backends.lava.runner import run_lava_batch

        lb = min(b, args.lava_samples)
        res = run_lava_batch(net, x[:lb], timeout=600)
        sub = em.run_batch(net, x[:lb])
        exact = np.array_equal(res.readout_v, sub.final_v[-1]) and all(
            np.array_equal(res.spike_counts[j], sub.spikes[j].sum(axis=1)) for j in range(len(net.layers)))
        rows.append({"backend": "Lava fixed_pt (proc.run only)", "samples": lb, "per_inf_s": res.run_s / lb,
                     "exact": "yes" if exact else "NO", "lava": True})
        rows.append({"backend": "Lava fixed_pt (whole job)", "samples": lb, "per_inf_s": res.total_s / lb,
                     "exact": "yes" if exact else "NO"})
    for r in rows:
        r["per_step_us"] = r["per_inf_s"] / t * 1e6
        r["ns_per_synop"] = r["per_inf_s"] / max(synops, 1) * 1e9
    lava = next((r for r in rows if r.get("lava")), None)
    for r in rows:
        r["vs_lava"] = (lava["per_inf_s"] / r["per_inf_s"]) if lava else float("nan")
    return rows, info


def table(rows: list[dict]) -> str:
    lines = ["| backend | samples | time / inference | time / step | time / SynOp | speed vs Lava run | bit-exact |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['samples']} | {r['per_inf_s'] * 1e3:.3f} ms | {r['per_step_us']:.1f} µs "
                     f"| {r['ns_per_synop']:.1f} ns | {r['vs_lava']:.1f}× | {r['exact']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64, help="samples per batch (default 64)")
    p.add_argument("--steps", type=int, default=16, help="time steps per sample (default 16)")
    p.add_argument("--big-batch", type=int, default=512, help="extra emulator row with this batch (default 512)")
    p.add_argument("--brian2-samples", type=int, default=2, help="samples run in Brian2 per target (default 2)")
    p.add_argument("--brian2-targets", default="numpy,cython", help="comma list (default numpy,cython)")
    p.add_argument("--lava-samples", type=int, default=64, help="samples in the Lava batch (default 64)")
    p.add_argument("--no-lava", action="store_true", help="skip Lava")
    p.add_argument("--cases", default="mlp,conv", help="comma list of mlp,conv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--doc", default=str(ROOT / "docs" / "emulators.md"), help="Markdown output")
    args = p.parse_args(argv)
    args.brian2_targets = [s for s in args.brian2_targets.split(",") if s]
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/emulators.py " + " ".join(argv if argv else sys.argv[1:])
    rng = np.random.default_rng(args.seed)
    cases = {"mlp": mlp_case, "conv": conv_case}
    md = ["# Emulator speed: Lava vs Brian2 vs the NumPy emulator", "",
          f"Command: `{cmd.strip()}`  ",
          f"Machine: {os.cpu_count()} CPU cores (shared with other jobs), {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}  ",
          f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
          "Times per inference exclude Brian2's build/compile and (first Lava row) Lava's start-up; the second Lava "
          "row is the whole job. Bit-exact: emulator vs reference on the first 4 samples (every spike of every "
          "layer); Brian2 full spike "
          "trains, final voltages and its own SynOp counters vs the emulator; Lava per-sample spike counts and final "
          "readout voltages vs the emulator. Brian2 builds a fresh Network per sample, so its time per inference "
          "includes code-object set-up (for cython: loading the cached compiled extensions), not only simulation. "
          "The machine is shared with other jobs: compare ratios within one table, not absolute times across runs.",
          ""]
    for key in args.cases.split(","):
        name, net, x = cases[key](rng, args.batch, args.steps)
        rows, info = bench(name, net, x, args)
        head = (f"## {name}\n\nbatch {info['batch']} × T = {info['steps']}; {info['synops']:.0f} SynOps per "
                f"inference; firing rates {', '.join(f'{r:.3f}' for r in info['rates'])}; emulator paths "
                f"{info['paths']}\n")
        print(head)
        print(table(rows))
        md += [head, table(rows), ""]
    text = "\n".join(md) + "\n"
    atomic_write(args.doc, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
