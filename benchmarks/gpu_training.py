"""VGG-11 and ResNet-19 BSNNs (AGMM and vanilla), one epoch each on CIFAR-format data: throughput, memory,
and the agreement of the trained network on the CPU with its GPU self (issue 13, item 6).

Why: the paper's networks are trained on GPUs; this is the check a lent GPU machine runs in one go
(about 8 minutes on one H200 at the default sizes, prepared so that it runs once). It also runs on the
CPU at small sizes, which is how it is tested here. Per run it records training samples/s, peak GPU
memory, the test accuracy on the device, the same network's predictions after ``.cpu()`` compared with
the device's (agreement over the test split), and the exported artifact's accuracy evaluated on the CPU
(both networks export; ResNet-19 as a residual DAG, artifact format 3).

Usage (on the GPU machine)::

    python benchmarks/make_cifar_like.py --root /tmp/cifar
    python benchmarks/gpu_training.py --data-root /tmp/cifar --out /tmp/gpu --doc docs/gpu_training.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from neuro_agmm.artifact import atomic_write  # noqa: E402
from neuro_agmm.training.export import predict  # noqa: E402
from neuro_agmm.training.loop import TrainConfig, train  # noqa: E402


def run(arch: str, method: str, a: argparse.Namespace, split) -> dict:
    cfg = TrainConfig(dataset="cifar10", data_root=a.data_root, arch=arch, method=method, epochs=a.epochs,
                      batch_size=a.batch_size, time_steps=a.time_steps, width=a.width, device=a.device,
                      loader_workers=a.loader_workers, augment="crop-flip", limit_train=a.limit_train,
                      limit_test=a.limit_test, threads=a.threads, progress=False, half_precision=a.half_precision,
                      out=str(Path(a.out) / f"{arch}-{method}"))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train(cfg, split=split)
    wall = time.perf_counter() - t0
    dev = res.summary["device"]
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.startswith("cuda") else float("nan")
    test_x = split.test_x[:a.limit_test] if a.limit_test else split.test_x
    on_dev = predict(res.model.to(dev), test_x, split.input_scale)
    on_cpu = predict(res.model.cpu(), test_x, split.input_scale)
    m = res.final
    return {"arch": arch, "method": method, "device": dev, "epochs": a.epochs, "samples_per_s": m["samples_per_s"], "epoch_seconds": m["seconds"], "wall_seconds": wall,
            "peak_gpu_mib": peak, "test_acc_device": m["test_acc"], "cpu_device_agreement": float((on_dev == on_cpu).mean()),
            "artifact_test_acc_cpu": res.summary.get("artifact_test_acc"),
            "artifact_error": res.summary.get("artifact_error"), "n_parameters": res.summary["n_parameters"],
            "firing_rate": m.get("rate/mean")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--out", default="runs/gpu_training")
    ap.add_argument("--doc", default=None)
    ap.add_argument("--archs", nargs="+", default=["vgg11", "resnet19"])
    ap.add_argument("--methods", nargs="+", default=["agmm", "vanilla"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--time-steps", type=int, default=4)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--loader-workers", type=int, default=4)
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--limit-test", type=int, default=0)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--half-precision", choices=("none", "bf16"), default="none",
                    help="bf16: exact chunked bfloat16 products in the binary layers fed by spikes (a second run "
                         "with it measures what it gains on the GPU)")
    a = ap.parse_args(argv)
    from neuro_agmm.data import load_dataset

    split = load_dataset("cifar10", root=a.data_root, time_steps=a.time_steps)
    rows = []
    for arch in a.archs:
        for method in a.methods:
            r = run(arch, method, a, split)
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = ["# BSNN training on CIFAR-format data: throughput, memory, CPU/GPU agreement", "",
             f"Command: `python benchmarks/gpu_training.py {' '.join(sys.argv[1:] if argv is None else argv)}`; "
             f"torch {torch.__version__}, GPU: {gpu}, {platform.machine()}. Data: synthetic CIFAR-10-format files "
             "(`benchmarks/make_cifar_like.py`), crop-flip augmentation, AGMM = our reconstruction.", "",
             "| arch | method | device | samples/s | epoch s | peak GPU MiB | test acc (device) | CPU = device "
             "predictions | artifact acc on CPU |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        art = f"{r['artifact_test_acc_cpu']:.4f}" if r["artifact_test_acc_cpu"] is not None else \
            f"not exported: {str(r['artifact_error'])[:60]}"
        lines.append(f"| {r['arch']} | {r['method']} | {r['device']} | {r['samples_per_s']:.0f} | "
                     f"{r['epoch_seconds']:.1f} | {r['peak_gpu_mib']:.0f} | {r['test_acc_device']:.4f} | "
                     f"{100 * r['cpu_device_agreement']:.2f} % | {art} |")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    text = json.dumps(rows, indent=1)
    atomic_write(Path(a.out) / "gpu_training.json", lambda p: p.write_text(text + "\n"))
    if a.doc:
        atomic_write(Path(a.doc), lambda p: p.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
