"""Device choice, loader workers and augmentation: same batches wherever they are built; CUDA where it exists."""

import numpy as np
import pytest
import torch

from neuro_agmm.training.batches import EpochBatches, crop_flip, iterate
from neuro_agmm.training.device import resolve_device
from neuro_agmm.training.loop import TrainConfig, train
from neuro_agmm.train import main

TINY = dict(dataset="digits", arch="convnet", width=0.25, epochs=2, time_steps=2, limit_train=256, limit_test=120,
            progress=False)


def test_auto_is_cpu_without_cuda_and_cuda_is_refused_clearly(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal is for machines without it")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available here"):
        resolve_device("cuda")
    assert main(["--device", "cuda", "--epochs", "1", "--no-progress"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_loader_workers_serve_the_same_batches_and_the_same_weights(tmp_path):
    x = np.random.default_rng(0).integers(0, 16, (50, 2, 1, 8, 8))
    y = np.arange(50) % 10
    order = np.random.default_rng(1).permutation(50)
    b = EpochBatches(x, y, order, 8, 6, 0.5, augment="crop-flip", seed=3, epoch=1)
    here = list(iterate(b, start=2))
    there = list(iterate(b, start=2, workers=2))
    assert len(here) == len(there) == 4
    for (xa, ya), (xb, yb) in zip(here, there):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    a = train(TrainConfig(**TINY, out=str(tmp_path / "w0")))
    w = train(TrainConfig(**TINY, loader_workers=2, out=str(tmp_path / "w2")))
    for (n, p), (_, q) in zip(a.model.state_dict().items(), w.model.state_dict().items()):
        assert torch.equal(p, q), n


def test_crop_flip_moves_pixels_and_keeps_every_step_aligned():
    x = np.zeros((64, 3, 2, 8, 8), np.int16)
    x[:, :, :, 3, 1] = np.arange(1, 4)[None, :, None]  # one lit pixel, a different level per step
    out = crop_flip(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    lit = [np.argwhere(out[i, 0, 0]) for i in range(64)]
    assert all(len(p) <= 1 for p in lit)  # a pixel is moved (or cropped away), never duplicated
    moved = {tuple(p[0]) for p in lit if len(p)}
    assert len(moved) > 5 and any(c > 4 for _, c in moved)  # shifted and flipped positions occur
    for i in range(64):  # the same crop and flip at every time step: step t keeps its level t+1
        for t in range(3):
            assert set(np.unique(out[i, t])) <= {0, t + 1}
            assert np.array_equal(out[i, t] > 0, out[i, 0] > 0)
    with pytest.raises(ValueError, match="image-shaped"):
        crop_flip(np.zeros((2, 3, 64)), np.random.default_rng(0))


def test_augmented_training_is_reproducible_and_differs_from_plain(tmp_path):
    a = train(TrainConfig(**TINY, augment="crop-flip", out=str(tmp_path / "a")))
    b = train(TrainConfig(**TINY, augment="crop-flip", out=str(tmp_path / "b")))
    c = train(TrainConfig(**TINY, out=str(tmp_path / "c")))
    pa, pb, pc = (dict(r.model.named_parameters()) for r in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_training_exports_an_artifact_that_agrees_with_the_cpu(tmp_path):
    cfg = dict(TINY, arch="mlp", hidden=[64, 64], method="agmm")
    gpu = train(TrainConfig(**cfg, device="cuda", out=str(tmp_path / "gpu")))
    cpu = train(TrainConfig(**cfg, device="cpu", out=str(tmp_path / "cpu")))
    assert gpu.summary["device"].startswith("cuda") and cpu.summary["device"] == "cpu"
    # the artifact of the GPU run, evaluated on the CPU, agrees with the GPU model's own test accuracy
    assert gpu.summary["artifact_test_acc"] == pytest.approx(gpu.final["test_acc"], abs=1 / 120)
    assert abs(gpu.final["test_acc"] - cpu.final["test_acc"]) < 0.1
    assert next(gpu.model.parameters()).device.type == "cpu"  # .cpu() at export
