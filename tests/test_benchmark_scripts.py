"""The GPU-check scripts run end to end here on the CPU at tiny sizes, so the one run on a lent GPU works."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neuro_agmm.data.cifar import load_cifar_split

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kw):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900, **kw)


def test_cifar_like_files_have_the_real_format(tmp_path):
    p = _run(["benchmarks/make_cifar_like.py", "--root", str(tmp_path), "--n-train", "50", "--n-test", "20"])
    assert p.returncode == 0, p.stderr
    folder = tmp_path / "cifar-10-batches-py"
    assert sorted(f.name for f in folder.iterdir()) == [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with open(folder / "data_batch_1", "rb") as f:  # the standard library's unpickler, as CIFAR's own page says
        d = pickle.load(f, encoding="bytes")
    assert set(d) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert d[b"data"].dtype == np.uint8 and d[b"data"].shape == (10, 3072) and len(d[b"labels"]) == 10
    split = load_cifar_split(root=str(tmp_path), time_steps=2)
    assert split.train_x.shape == (50, 2, 3, 32, 32) and split.test_x.shape == (20, 2, 3, 32, 32)


@pytest.mark.slow
def test_gpu_training_script_runs_on_the_cpu(tmp_path):
    assert _run(["benchmarks/make_cifar_like.py", "--root", str(tmp_path), "--n-train", "300",
                 "--n-test", "64"]).returncode == 0
    p = _run(["benchmarks/gpu_training.py", "--data-root", str(tmp_path), "--out", str(tmp_path / "out"),
              "--width", "0.125", "--limit-train", "128", "--loader-workers", "1", "--threads", "1",
              "--batch-size", "64", "--device", "cpu", "--doc", str(tmp_path / "gpu.md")])
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads((tmp_path / "out" / "gpu_training.json").read_text())
    assert [(r["arch"], r["method"]) for r in rows] == [("vgg11", "agmm"), ("vgg11", "vanilla"),
                                                        ("resnet19", "agmm"), ("resnet19", "vanilla")]
    assert all(r["cpu_device_agreement"] == 1.0 and r["samples_per_s"] > 0 for r in rows)
    for r in rows:  # both networks export (ResNet-19 as a residual DAG); the artifact's float model on the CPU
        assert r["artifact_error"] is None and r["artifact_test_acc_cpu"] == pytest.approx(r["test_acc_device"])
    assert "samples/s" in (tmp_path / "gpu.md").read_text()
