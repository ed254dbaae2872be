"""Data pipelines at dataset scale: one epoch of training batches from disk, time and peak memory (issue 13).

Why: CIFAR-10 and the event datasets must stream from disk with bounded memory. This writes data of the real
size and format and times what a training epoch asks of the pipeline (every batch of the seeded permutation,
built in process or by loader workers, with and without augmentation), each configuration in a fresh child
process so its peak resident memory is its own:

* CIFAR-10: the five python-pickle batches + test batch at full size (``make_cifar_like.py``, 50,000 + 10,000
  images), read by our restricted unpickler, encoded for T = 4 (``direct``: one frame broadcast over the steps);
* event caches of DVS Gesture's size (1,176 train / 288 test recordings) and CIFAR10-DVS's (9,000 / 1,000),
  binned as training uses them by default (T = 16, 128×128 sensors downsampled ×4 to 2 × 32 × 32), written as the
  v2 cache (memory-mapped ``.npy``) that ``load_event_split`` opens; raw-recording binning is not timed here.

Usage::

    .venv/bin/python benchmarks/data_pipeline.py --root /tmp/pipeline      # writes docs/data_pipeline.md
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from neuro_agmm.artifact import atomic_write  # noqa: E402

EVENT_SIZES = {"dvsgesture": (1176, 288, 11), "cifar10dvs": (9000, 1000, 10)}  # train, test, classes
FRAME = (16, 2, 32, 32)  # T = 16; 128×128 downsampled ×4 (the loaders' default)


def make_event_cache(name: str, root: Path) -> Path:
    """A v2 event cache of ``name``'s size: sparse random counts written straight into memory-mapped files."""
    from neuro_agmm.data.event_datasets import DEFAULT_DOWNSAMPLE, BinningConfig, cache_path

    path = cache_path(name, root, BinningConfig(FRAME[0], downsample=DEFAULT_DOWNSAMPLE[name]))
    if (path / "info.json").exists():
        return path
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n_train, n_test, n_classes = EVENT_SIZES[name]
    for split, n in (("train", n_train), ("test", n_test)):
        x = np.lib.format.open_memmap(path / f"{split}_x.npy", mode="w+", dtype=np.uint8, shape=(n, *FRAME))
        for i in range(n):  # ~10 % of pixels active per step, counts 1..15
            frame = np.zeros(FRAME, np.uint8)
            idx = rng.integers(0, frame.size, frame.size // 10)
            frame.reshape(-1)[idx] = rng.integers(1, 16, idx.size)
            x[i] = frame
        x.flush()
        np.save(path / f"{split}_y.npy", (np.arange(n) % n_classes).astype(np.int64))
    (path / "info.json").write_text(json.dumps({"n_nonzero_counts": 1, "n_clipped_counts": 0, "events": 0,
                                                "skipped": {}, "synthetic": True}))
    return path


def child(args: list[str]) -> dict:
    """Run one configuration in a fresh process; returns its JSON line."""
    p = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_child(dataset: str, root: str, workers: int, augment: str, batch_size: int) -> None:
    from neuro_agmm.data import load_dataset
    from neuro_agmm.training.batches import EpochBatches, iterate

    t0 = time.perf_counter()
    kw = {"time_steps": 4} if dataset == "cifar10" else {"time_steps": FRAME[0]}
    split = load_dataset(dataset, root=root, **kw)
    t_load = time.perf_counter() - t0
    order = np.random.default_rng([0, 0]).permutation(len(split.train_y))
    steps = len(order) // batch_size
    t1 = time.perf_counter()
    n = 0
    for x, y in iterate(EpochBatches(split.train_x, split.train_y, order, batch_size, steps, split.input_scale,
                                     augment, 0, 0), 0, workers):
        n += len(y)
    t_epoch = time.perf_counter() - t1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    anon = int(status.get("RssAnon", "0 kB").split()[0]) / 1024  # private memory now (mapped file pages excluded)
    # stored bytes: a direct-encoded frame set is one frame broadcast over T (stride 0), not T copies
    frames = sum(x[:, 0].nbytes if x.strides[1] == 0 else x.nbytes for x in (split.train_x, split.test_x))
    print(json.dumps({"dataset": dataset, "workers": workers, "augment": augment, "samples": n,
                      "load_s": t_load, "epoch_s": t_epoch, "samples_per_s": n / t_epoch, "peak_rss_mib": rss, "anon_mib": anon,
                      "frames_mib": frames / 2**20, "memmap": memory_mapped(split.train_x)}))


def memory_mapped(a) -> bool:
    """Whether ``a`` or an array it views (a direct encoding's broadcast view) is a memory-mapped file."""
    while isinstance(a, np.ndarray):
        if isinstance(a, np.memmap):
            return True
        a = a.base
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/neuro_agmm_pipeline")
    ap.add_argument("--doc", default=str(ROOT / "docs" / "data_pipeline.md"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--child", nargs=4, metavar=("DATASET", "WORKERS", "AUGMENT", "BATCH"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        run_child(a.child[0], a.root, int(a.child[1]), a.child[2], int(a.child[3]))
        return 0
    root = Path(a.root)
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_cifar_like.py"), "--root", str(root)], check=True)
    for name in EVENT_SIZES:
        make_event_cache(name, root)
    from neuro_agmm.data.cifar import cache_path, load_cifar_split
    t0 = time.perf_counter()
    cifar_cache = cache_path(root / "cifar-10-batches-py", "cifar10")
    built = not (cifar_cache / "info.json").exists()
    load_cifar_split("cifar10", root=root, time_steps=1)  # builds the image cache once (untimed below)
    t_build = time.perf_counter() - t0
    rows = []
    for dataset in ("cifar10", "dvsgesture", "cifar10dvs"):
        for workers, augment in ((0, "none"), (2, "none"), (0, "crop-flip"), (2, "crop-flip")):
            r = child([dataset, str(workers), augment, str(a.batch_size)])
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    lines = ["# Data pipelines at dataset scale: one epoch of training batches", "",
             f"Command: `.venv/bin/python benchmarks/data_pipeline.py --root {a.root}` (Python "
             f"{platform.python_version()}, 2 shared CPU cores; each row a fresh process). Batch {a.batch_size}; "
             "*load* = reading the files into the split (CIFAR: opening its memory-mapped image cache, built from the pickles on the first load of a fresh root; events: opening the "
             "memory-mapped cache and checking its value range); *epoch* = building every training batch of one "
             "seeded permutation (float (T, B, ...) tensors), no training.", "",
             "*Peak RSS* counts the pages of a memory-mapped cache an epoch touched (file-backed, reclaimable); "
             "*private* is the process's anonymous memory after the epoch (Python, torch, arrays read into memory).",
             "", f"CIFAR-10's image cache (`{cifar_cache.name}`, decoded once from the pickles, "
             f"{sum(f.stat().st_size for f in cifar_cache.glob('*.npy')) / 2**20:.0f} MiB): "
             + (f"built in {t_build:.1f} s before the rows below." if built else
                f"already there (opening it took {t_build:.2f} s)."),
             "",
             "| data | workers | augment | samples | load s | epoch s | samples/s | peak RSS MiB | private MiB | "
             "frames stored MiB | memory-mapped |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['workers']} | {r['augment']} | {r['samples']:,} | {r['load_s']:.1f} | "
                     f"{r['epoch_s']:.1f} | {r['samples_per_s']:,.0f} | {r['peak_rss_mib']:,.0f} | {r['anon_mib']:,.0f} | "
                     f"{r['frames_mib']:,.0f} | {'yes' if r['memmap'] else 'no'} |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(a.doc), lambda p: p.write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
