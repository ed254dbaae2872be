"""Residual networks: the emulator's DAG path beside plain torch on the same network, inputs and batch size.

The compiled kernel runs chains only, so a residual network runs on the emulator's NumPy engine (``kernel="auto"``
falls back). This measures what that costs against the obvious alternative, ``benchmarks/emulators.py``'s plain
dense torch twin of the same integer network (weights ``mantissa * 2**weight_exp`` per block, shortcut products
added; float, not bit-exact), one thread each, interleaved rounds, medians
and interquartile ranges, batch 1 against batch 1 and batch 16 against batch 16.

Checks on the timed inputs: the emulator equals the reference (spikes, v, u) on one sample, every hidden layer
spikes (firing rates printed for both contenders), and the twin's predictions are compared with the emulator's.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/residual_speed.py      # writes docs/residual_speed.md
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

from emulators import interleaved, stats, torch_twin  # noqa: E402
from hw_models.backends import emulator as em  # noqa: E402
from hw_models.backends.reference import run_reference  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--size", type=int, default=32, help="input height and width (2 polarity channels)")
    ap.add_argument("--time-steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--doc", default=str(ROOT / "docs" / "residual_speed.md"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    net = em.random_residual_network(rng, input_shape=(2, args.size, args.size), channels=args.channels)

    def gen(batch: int, r: int) -> np.ndarray:
        g = np.random.default_rng(1000 + r)
        return g.integers(0, 4, size=(batch, args.time_steps, 2, args.size, args.size)) * \
            (g.random((batch, args.time_steps, 2, args.size, args.size)) < 0.3)

    twin = torch_twin(net)  # emulators.py's plain torch twin, which adds the shortcut products
    md = [f"# Residual networks: emulator (NumPy engine) beside plain torch ({time.strftime('%Y-%m-%d')})", "",
          f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/residual_speed.py` on {platform.machine()}, "
          f"one thread each. Network: `random_residual_network` with input 2×{args.size}×{args.size}, "
          f"{args.channels} channels (stem, two residual blocks with a from-input, an identity-like and a stride-2 "
          f"shortcut, dense readout), {sum(l.n_out for l in net.layers)} neurons, T = {args.time_steps}, inputs "
          f"0–3 events per pixel and step at 30 % density.", ""]
    for batch in (1, 16):
        xs = [gen(batch, r) for r in range(4)]
        tr = em.run_batch(net, xs[0], record_v=True)
        ref = run_reference(net, xs[0][0])
        for k in range(len(net.layers)):
            if not (np.array_equal(ref.spikes[k], tr.spikes[k][0]) and np.array_equal(ref.v[k], tr.v[k][0])
                    and np.array_equal(ref.u[k], tr.u[k][0])):
                raise SystemExit(f"emulator differs from the reference (layer {k})")
        rates = [float(s.mean()) for s in tr.spikes[:-1]]
        if min(rates) <= 0:
            raise SystemExit(f"a hidden layer never spikes ({rates})")
        t_pred, t_rates = twin(xs[0])
        agree = float(np.mean(t_pred == tr.predictions))
        times = interleaved({"emulator (NumPy engine, bit-exact)": lambda x: em.run_batch(net, x),
                             "plain torch twin (float)": twin}, lambda r: xs[r % len(xs)], args.rounds)
        med_t = stats(times["plain torch twin (float)"], batch)[0]
        md += [f"## batch {batch}", "",
               f"Firing rates, emulator: {', '.join(f'{r:.3f}' for r in rates)}; torch twin: "
               f"{', '.join(f'{r:.3f}' for r in t_rates[:-1])}; twin predictions equal to the emulator's on "
               f"{100 * agree:.0f} % of the batch (the twin's float decays do not truncate). Emulator equal to "
               f"the reference on sample 0 (spikes, v, u).", "",
               "| contender | ms / inference, median | IQR (ms) | torch time / this |", "|---|---:|---:|---:|"]
        for name, ts in times.items():
            m, lo, hi = stats(ts, batch)
            md.append(f"| {name} | {m * 1e3:.2f} | {lo * 1e3:.2f}..{hi * 1e3:.2f} | {med_t / m:.2f} |")
        md.append("")
        print("\n".join(md[-8:]), flush=True)
    Path(args.doc).write_text("\n".join(md) + "\n")
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
