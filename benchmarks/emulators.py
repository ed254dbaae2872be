"""The emulator beside the obvious alternatives, on the same network, inputs and batch size, in one run.

Contenders (one thread each, ``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``):

* ``emulator (compiled)`` — ``hw_models.backends.emulator.run_batch(kernel="compiled")``: the bit-exact
  integer network on the numba kernel (``hw_models.backends.compiled``);
* ``emulator (NumPy engine)`` — the same with ``kernel="numpy"`` (the fallback without numba);
* ``plain torch`` — the same network in float (weights ``mantissa * 2**weight_exp``, the same LIF update
  ``u = ku/4096 u + 64 a``, ``v = kv/4096 v + u + bias``, spike ``v > vth * 64``, reset), dense: every
  layer's products for all steps at once, then the LIF loop over time (the fastest plain-torch form);
* ``Norse`` — ``norse.torch.LIFBoxCell`` stepping the hidden layers (the readout integrates in torch),
  ``torch.nn.functional`` products: how a Norse user would run it;
* ``Lava fixed_pt`` (batch 1) — ``hw_models.backends.lava.runner.run_lava``: ``proc.run`` time and the whole job;
* ``Brian2`` (batch 1, cython target) — ``run_brian2``: simulation time only; building and compiling the
  network (``build_s``) is excluded and reported separately.

Timing: rounds interleave the contenders (order rotated each round); medians and the interquartile
range over rounds; batch 1 against batch 1 (each round a different sample), batch 64 against batch 64.
Checks on the very runs timed: the compiled emulator equals the reference (spikes, v, u) on two samples
and the NumPy engine on the whole batch (spikes, counts); Lava and Brian2 equal the emulator on their
samples; every hidden layer spikes (firing rates in the table) or the benchmark stops.

Also: the cost growth of the compiled emulator with width, T, batch and input sparsity, and the
scaling of ``workers`` (threads of the compiled kernel; processes of ``infer``) from 1 to 2.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/emulators.py          # writes docs/emulators.md
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/emulators.py --quick --doc /tmp/e.md
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402

import hw_models  # noqa: E402,F401  (Lava import fix)
from hw_models import core_spec  # noqa: E402
from hw_models.backends import compiled, emulator as em  # noqa: E402
from hw_models.backends.reference import run_reference  # noqa: E402
from hw_models.integer_network import IntegerNetwork  # noqa: E402
from neuro_agmm.artifact import atomic_write  # noqa: E402


# --- the networks ----------------------------------------------------------------------------------
def _project_neurons(net: IntegerNetwork) -> IntegerNetwork:
    """The project's hidden neurons: leak 0.5 (dv 2048), current cleared each step (du 4095), no bias."""
    for layer in net.layers[:-1]:
        layer.weight_exp, layer.du, layer.dv = 0, 4095, 2048
        layer.bias_mant = np.zeros_like(layer.bias_mant)
    return net


def digits_case(rng, batch: int):
    from sklearn.datasets import load_digits

    net = em.random_network(rng, (64,), (("dense", 256), ("dense", 256), ("dense", 10)), weight_range=(-8, 8),
                            binary_hidden=True, input_max=16)
    _project_neurons(net)
    net.layers[0].vth = rng.integers(60, 160, 256).astype(np.int32)
    net.layers[1].vth = rng.integers(2, 6, 256).astype(np.int32)
    img = load_digits().images.reshape(-1, 64).astype(np.int64)
    return net, lambda n, i0=0: np.repeat(img[i0:i0 + n, None], 8, axis=1)


def mlp784_case(rng, batch: int, hidden: int = 1024, steps: int = 16, density: float = 0.05):
    net = em.random_network(rng, (784,), (("dense", hidden), ("dense", hidden), ("dense", 10)), weight_range=(-8, 8),
                            binary_hidden=True, input_max=1)
    _project_neurons(net)
    net.layers[0].vth = rng.integers(2, 8, hidden).astype(np.int32)
    net.layers[1].vth = rng.integers(int(hidden ** 0.5 / 5) + 2, int(hidden ** 0.5 / 2) + 8, hidden).astype(np.int32)
    gen = np.random.default_rng(1)
    return net, lambda n, i0=0: (gen.random((n, steps, 784)) < density).astype(np.uint8)


def conv_case(rng, batch: int):
    net = em.random_network(rng, (2, 32, 32), (("conv", 16, 3, 2, 1), ("conv", 32, 3, 2, 1), ("dense", 10)),
                            weight_range=(-4, 8), binary_hidden=True, input_max=4)
    _project_neurons(net)
    net.layers[0].vth = rng.integers(2, 6, net.layers[0].n_out).astype(np.int32)
    net.layers[1].vth = rng.integers(3, 8, net.layers[1].n_out).astype(np.int32)
    gen = np.random.default_rng(2)
    return net, lambda n, i0=0: gen.poisson(0.1, (n, 16, 2, 32, 32)).clip(0, 4).astype(np.uint8)


CASES = {
    "digits MLP 64-256-256-10, T = 8, real digits (graded 0..16)": digits_case,
    "MLP 784-1024-1024-10, T = 16, 5 % active binary inputs": mlp784_case,
    "conv 2x32x32 -> c16 s2 -> c32 s2 -> 10, T = 16, event counts (~10 % nonzero)": conv_case,
}


# --- float twins ---------------------------------------------------------------------------------------
def _float_layers(net: IntegerNetwork):
    import torch

    out = []
    for l in net.layers:
        w = torch.tensor(np.asarray(l.weight_mant, np.float32) * 2.0 ** l.weight_exp)
        out.append((l, w, torch.tensor(np.asarray(l.bias, np.float32)),
                    torch.tensor(core_spec.scaled_threshold(l.vth).astype(np.float32)),
                    core_spec.current_decay_factor(l.du) / 4096, core_spec.voltage_decay_factor(l.dv) / 4096))
    return out


def _products(l, w, h, t, b):
    import torch.nn.functional as F

    flat = h.reshape((t * b,) + tuple(l.in_shape))
    if l.kind == "dense":
        a = flat.reshape(t * b, -1) @ w.T
    else:
        a = F.conv2d(flat, w, stride=tuple(l.stride), padding=tuple(l.padding)).reshape(t * b, -1)
    return (a * 64).reshape(t, b, -1)


def torch_twin(net: IntegerNetwork):
    """Plain dense torch: every layer's products for all steps at once (a residual layer adds its shortcut
    blocks' products from their source nodes), then the LIF loop over time."""
    import torch

    layers = _float_layers(net)
    shortcuts = [[(sc, torch.tensor(np.asarray(sc.weight_mant, np.float32) * 2.0 ** sc.weight_exp))
                  for sc in l.shortcuts] for l in net.layers]

    def run(x: np.ndarray):
        b, t = x.shape[:2]
        with torch.no_grad():
            h = torch.as_tensor(np.ascontiguousarray(np.swapaxes(x, 0, 1)), dtype=torch.float32)
            nodes, rates = [h], []
            for (l, w, bias, vth, ku, kv), scs in zip(layers, shortcuts):
                a = _products(l, w, h, t, b)
                for sc, ws in scs:
                    a = a + _products(sc, ws, nodes[sc.source + 1], t, b)
                u = torch.zeros(b, l.n_out)
                v = torch.zeros(b, l.n_out)
                out = torch.empty(t, b, l.n_out)
                for s in range(t):
                    u = ku * u + a[s]
                    v = kv * v + u + bias
                    spk = v > vth
                    v = v.masked_fill(spk, 0.0)
                    out[s] = spk
                rates.append(float(out.mean()))
                h = out
                nodes.append(out)
        return v.argmax(1).numpy(), rates
    return run


def norse_twin(net: IntegerNetwork):
    """Norse: ``LIFBoxCell`` per hidden layer and step (``v <- v + 0.5 (-v + 2 i)`` = leak 0.5 with input ``i``),
    ``torch.nn.functional`` products per step; the non-spiking readout integrates ``v += i`` in torch."""
    import torch
    from norse.torch import LIFBoxCell, LIFBoxParameters

    layers = _float_layers(net)
    cells = []
    for l, w, bias, vth, ku, kv in layers[:-1]:
        if ku != 0 or kv != 0.5:
            raise ValueError("the Norse twin expects the project's neurons (du 4095, dv 2048)")
        cells.append(LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_leak=torch.tensor(0.0),
                                                 v_th=vth, v_reset=torch.tensor(0.0)), dt=0.001))

    def run(x: np.ndarray):
        b, t = x.shape[:2]
        with torch.no_grad():
            xs = torch.as_tensor(np.ascontiguousarray(np.swapaxes(x, 0, 1)), dtype=torch.float32)
            states = [None] * len(cells)
            lr, wr, biasr = layers[-1][0], layers[-1][1], layers[-1][2]
            v_out = torch.zeros(b, lr.n_out)
            spikes = [0.0] * len(cells)
            for s in range(t):
                h = xs[s]
                for k, cell in enumerate(cells):
                    l, w = layers[k][0], layers[k][1]
                    i = _products(l, w, h, 1, b)[0] + layers[k][2]
                    h, states[k] = cell(2 * i, states[k])
                    spikes[k] += float(h.sum())
                v_out = v_out + _products(lr, wr, h, 1, b)[0] + biasr
        rates = [sp / (t * b * layers[k][0].n_out) for k, sp in enumerate(spikes)]
        return v_out.argmax(1).numpy(), rates
    return run


# --- timing ---------------------------------------------------------------------------------------------
def interleaved(contenders: dict, make_input, rounds: int) -> dict:
    """``{name: [seconds per call]}``; each round runs every contender once (order rotated) on one input."""
    times = {k: [] for k in contenders}
    names = list(contenders)
    for r in range(rounds):
        x = make_input(r)
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            contenders[name](x)
            times[name].append(time.perf_counter() - t0)
    return times


def stats(ts: list[float], per: int) -> tuple[float, float, float]:
    a = np.asarray(ts) / per
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def fmt_ms(v: float) -> str:
    return f"{v * 1e3:.3f}"


def check_exact(net, x, tr) -> None:
    for i in range(min(2, len(x))):
        ref = run_reference(net, x[i])
        for k in range(len(net.layers)):
            if not (np.array_equal(ref.spikes[k], tr.spikes[k][i]) and np.array_equal(ref.v[k], tr.v[k][i])
                    and np.array_equal(ref.u[k], tr.u[k][i])):
                raise SystemExit(f"compiled emulator differs from the reference (sample {i}, layer {k})")


def bench_case(title, make, args, md):
    rng = np.random.default_rng(args.seed)
    net, gen = make(rng, 64)
    rows = []
    for batch in (1, 64):
        xs = [gen(batch, i0=i * batch) for i in range(4)]
        # correctness and spiking on the inputs that are timed
        tr = em.run_batch(net, xs[0], record_v=True, kernel="compiled")
        check_exact(net, xs[0], tr)
        tn = em.run_batch(net, xs[0], kernel="numpy")
        if not all(np.array_equal(a, b) for a, b in zip(tr.spikes, tn.spikes)) or \
                [c.total() for c in tr.counts] != [c.total() for c in tn.counts]:
            raise SystemExit("compiled kernel and NumPy engine disagree")
        rates = [float(s.mean()) for s in tr.spikes[:-1]]
        if min(rates) <= 0:
            raise SystemExit(f"{title}: a hidden layer never spikes ({rates}); not a benchmark of anything")
        tw, nw = torch_twin(net), norse_twin(net)
        t_rates, n_rates = tw(xs[0])[1], nw(xs[0])[1]
        contenders = {"emulator (compiled)": lambda x: em.run_batch(net, x, kernel="compiled"),
                      "emulator (NumPy engine)": lambda x: em.run_batch(net, x, kernel="numpy"),
                      "plain torch (float, dense)": tw, "Norse (LIFBoxCell)": nw}
        rounds = args.rounds if batch == 1 else max(5, args.rounds // 2)
        times = interleaved(contenders, lambda r: xs[r % len(xs)], rounds)
        med_torch = stats(times["plain torch (float, dense)"], batch)[0]
        for name, ts in times.items():
            m, lo, hi = stats(ts, batch)
            note = {"plain torch (float, dense)": f"float twin; firing {', '.join(f'{r:.3f}' for r in t_rates)}",
                    "Norse (LIFBoxCell)": f"float twin; firing {', '.join(f'{r:.3f}' for r in n_rates)}",
                    "emulator (compiled)": "bit-exact vs reference (2 samples: spikes, v, u)",
                    "emulator (NumPy engine)": "equal to the compiled kernel (spikes, counts)"}[name]
            rows.append((batch, name, m, lo, hi, med_torch / m, note))
        if batch == 1:
            rows += slow_backends(net, gen, args, med_torch)
    synops = float(sum(c.synops.sum() for c in tr.counts)) / tr.counts[0].synops.size
    head = (f"## {title}\n\n{sum(l.n_out for l in net.layers)} neurons; emulator firing rates "
            f"{', '.join(f'{r:.3f}' for r in rates)} (hidden layers); {synops:.3g} SynOps per inference.\n")
    lines = ["| batch | backend | time / inference (ms), median | IQR (ms) | plain torch time / this | checks, notes |",
             "|---:|---|---:|---:|---:|---|"]
    for batch, name, m, lo, hi, ratio, note in rows:
        lines.append(f"| {batch} | {name} | {fmt_ms(m)} | {fmt_ms(lo)}..{fmt_ms(hi)} | {ratio:.2f} | {note} |")
    print(head + "\n".join(lines), flush=True)
    md += [head, *lines, ""]


def slow_backends(net, gen, args, med_torch):
    """Lava and Brian2 at batch 1 on a few samples, checked against the emulator."""
    rows = []
    if not args.no_brian2:
        from hw_models.backends.brian2 import run_brian2

        run_brian2(net, gen(1)[0], target="cython")  # compile once (cached afterwards)
        res = []
        for i in range(args.slow_samples):
            x = gen(1, i0=i)
            r = run_brian2(net, x[0], target="cython")
            e = em.run_batch(net, x)
            if not all(np.array_equal(r.spikes[k], e.spikes[k][0]) for k in range(len(net.layers))):
                raise SystemExit("Brian2 differs from the emulator")
            res.append((r.run_s, r.build_s))
        m = float(np.median([a for a, _ in res]))
        rows.append((1, "Brian2 (cython; build excluded)", m, min(a for a, _ in res), max(a for a, _ in res),
                     med_torch / m, f"spike trains = emulator; build + compile {np.median([b for _, b in res]):.2f} s "
                                    f"per sample, excluded; n = {len(res)} (range shown)"))
    if not args.no_lava:
        from hw_models.backends.lava.runner import run_lava_batch

        res = []
        for i in range(args.slow_samples):
            x = gen(1, i0=i)
            r = run_lava_batch(net, x, timeout=600)
            e = em.run_batch(net, x)
            if not np.array_equal(r.readout_v, e.final_v[-1]):
                raise SystemExit("Lava differs from the emulator")
            res.append((r.run_s, r.total_s))
        for j, label in ((0, "Lava fixed_pt (proc.run)"), (1, "Lava fixed_pt (whole job)")):
            v = [p[j] for p in res]
            rows.append((1, label, float(np.median(v)), min(v), max(v), med_torch / float(np.median(v)),
                         f"readout v and spike counts = emulator; n = {len(res)} (range shown)"))
    return rows


def growth(args, md):
    """Compiled emulator cost against width, T, batch and input sparsity (784-H-H-10 MLP)."""
    lines = ["| varied | value | time / inference (ms) | SynOps / inference | ns / SynOp |", "|---|---|---:|---:|---:|"]
    base = dict(hidden=1024, steps=16, density=0.05)
    grid = [("hidden width", "hidden", (256, 1024, 2048)), ("time steps T", "steps", (4, 16, 64)),
            ("input density", "density", (0.01, 0.05, 0.2))]
    for label, key, values in grid:
        for val in values:
            kw = dict(base, **{key: val})
            net, gen = mlp784_case(np.random.default_rng(args.seed), 1, **kw)
            x = gen(64)
            em.run_batch(net, x[:1])
            ts = interleaved({"e": lambda xx: em.run_batch(net, xx)}, lambda r: x[r % 64:r % 64 + 1], 15)["e"]
            tr = em.run_batch(net, x[:1])
            syn = float(sum(c.synops.sum() for c in tr.counts))
            m = float(np.median(ts))
            lines.append(f"| {label} | {val} | {fmt_ms(m)} | {syn:.3g} | {m / max(syn, 1) * 1e9:.2f} |")
    net, gen = mlp784_case(np.random.default_rng(args.seed), 1)
    x = gen(256)
    for b in (1, 8, 64, 256):
        em.run_batch(net, x[:b])
        ts = interleaved({"e": lambda xx: em.run_batch(net, xx)}, lambda r: x[:b], 7)["e"]
        tr = em.run_batch(net, x[:b])
        syn = float(sum(c.synops.sum() for c in tr.counts)) / b
        m = float(np.median(ts)) / b
        lines.append(f"| batch | {b} | {fmt_ms(m)} | {syn:.3g} | {m / max(syn, 1) * 1e9:.2f} |")
    print("\n".join(lines), flush=True)
    md += ["## Cost growth of the compiled emulator (784-H-H-10 MLP, base H = 1024, T = 16, 5 % active; batch 1 "
           "unless varied; medians of 15 calls, 7 for batch)", "", *lines, ""]


def workers(args, md):
    """Workers from 1 to 2: compiled-kernel threads over a batch; infer processes over recordings."""
    net, gen = mlp784_case(np.random.default_rng(args.seed), 64)
    x = gen(128)
    em.run_batch(net, x, workers=2)
    times = interleaved({1: lambda xx: em.run_batch(net, xx, workers=1), 2: lambda xx: em.run_batch(net, xx, workers=2)},
                        lambda r: x, 7)
    m1, m2 = np.median(times[1]), np.median(times[2])
    lines = ["| job | 1 worker | 2 workers | speed-up |", "|---|---:|---:|---:|",
             f"| emulator, MLP 784-1024-1024-10, batch 128 (threads) | {m1 * 1e3:.1f} ms | {m2 * 1e3:.1f} ms | "
             f"{m1 / m2:.2f}x |"]
    import tempfile

    from neuro_agmm.artifact import write_artifact
    from neuro_agmm.events.h5npz import write_event_file
    from neuro_agmm.streaming.run import infer
    from streaming import SENSOR, dvs128_artifact, poisson_stream

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dvs128.h5"
        write_artifact(dvs128_artifact(), path)
        for i in range(args.infer_recordings):
            write_event_file(Path(tmp) / "rec" / f"{i:03d}.npz", poisson_stream(2e6, 300_000, 10 + i), SENSOR)
        el = {}
        for w in (1, 2, 1, 2):
            res = infer(path, Path(tmp) / "rec", step_us=1000, workers=w)
            el.setdefault(w, []).append(res.elapsed_s)
        e1, e2 = np.median(el[1]), np.median(el[2])
        lines.append(f"| infer, {args.infer_recordings} DVS128 recordings of 0.3 s at 2e6 ev/s, 1 ms steps "
                     f"(processes) | {e1:.2f} s | {e2:.2f} s | {e1 / e2:.2f}x |")
    print("\n".join(lines), flush=True)
    md += ["## Workers: 1 to 2 (this machine has 2 cores, shared)", "", *lines, ""]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds at batch 1 (default 15; half at 64)")
    p.add_argument("--slow-samples", type=int, default=3, help="samples run in Lava and Brian2 (default 3)")
    p.add_argument("--infer-recordings", type=int, default=8, help="DVS128 recordings for the infer workers row")
    p.add_argument("--no-lava", action="store_true")
    p.add_argument("--no-brian2", action="store_true")
    p.add_argument("--quick", action="store_true", help="fewer rounds and samples (smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--doc", default=str(ROOT / "docs" / "emulators.md"), help="Markdown output")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.slow_samples, args.infer_recordings = 5, 1, 4
    import threadpoolctl
    import torch

    torch.set_num_threads(1)
    blas = [f"{i.get('internal_api')} {i.get('version')} kernel {i.get('architecture')} ({i.get('prefix')})"
            for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/emulators.py " + " ".join(argv if argv else sys.argv[1:])
    md = ["# The emulator beside plain torch, Norse, Lava and Brian2", "",
          f"Command: `{cmd.strip()}`  ",
          f"Machine: {os.cpu_count()} CPU cores (shared with other jobs), {platform.machine()}, Python "
          f"{platform.python_version()}, torch {torch.__version__}, numba "
          f"{getattr(compiled.numba, '__version__', 'absent')}, one thread per contender  ",
          f"BLAS: {'; '.join(blas)}. NumPy's OpenBLAS picks its kernel by CPU (the 'kernel' above); the compiled "
          "emulator does not use BLAS.  ",
          f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}", "",
          "Rounds interleave the contenders (order rotated each round), so drifting machine load hits all of "
          "them alike; medians and interquartile ranges over rounds (Lava, Brian2: median and range over their "
          "samples). 'plain torch time / this' > 1 means faster than plain torch. torch and Norse run the float "
          "twin of the integer network (same weights, decays and thresholds; no integer truncation), so their "
          "firing rates are close to, not equal to, the emulator's.", ""]
    for title, make in CASES.items():
        bench_case(title, make, args, md)
    growth(args, md)
    workers(args, md)
    text = "\n".join(md) + "\n"
    atomic_write(args.doc, lambda tmp: Path(tmp).write_text(text))
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
