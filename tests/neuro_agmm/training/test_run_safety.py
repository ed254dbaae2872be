"""Run directories: one writer at a time, no stale temporaries, a full disk reported in one line with the last
checkpoint kept, and no code executed from an untrusted checkpoint or CIFAR pickle."""

import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from neuro_agmm.data.cifar import CifarFormatError, read_batch
from neuro_agmm.training import checkpoint as ckpt_mod
from neuro_agmm.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from neuro_agmm.training.loop import TrainConfig, train
from neuro_agmm.training.run_dir import RunDirError

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(dataset="digits", arch="mlp", hidden=[16], epochs=1, batch_size=64, time_steps=2, limit_train=128,
            limit_test=60, progress=False)
HOLDER = ("import sys, time; from neuro_agmm.training.run_dir import RunLock\n"
          "with RunLock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")


def test_a_second_writer_is_refused_until_the_first_dies(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"in use by process {holder.pid}"):
            train(TrainConfig(**TINY, out=str(run)))
        assert not (run / "checkpoint.pt").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    (run / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # an interrupted write's leftover
    res = train(TrainConfig(**TINY, out=str(run)))  # the kernel released the dead writer's lock
    assert res.artifact_path.exists() and not list(run.glob(".*.tmp"))


def test_full_disk_gives_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    res = train(TrainConfig(**TINY, out=str(tmp_path / "run")))
    path = res.run_dir / "checkpoint.pt"
    good = load_checkpoint(path)
    before = path.read_bytes()

    def full_disk(obj, f, *a, **kw):  # fault injection: the device is full mid-write
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(RunDirError, match="no space left on the device; the last complete file there is kept"):
        save_checkpoint(path, good)
    assert path.read_bytes() == before and not list(res.run_dir.glob(".*.tmp"))


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_untrusted_checkpoint_and_cifar_pickle_run_no_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Payload()
    evil.marker = marker
    with open(tmp_path / "checkpoint.pt", "wb") as f:
        torch.save({"format": "neuro_agmm.training.checkpoint", "version": 1, "model": evil}, f)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [evil]}, f)
    with pytest.raises(CifarFormatError, match=r"refers to posix\.system"):
        read_batch(tmp_path / "data_batch_1")
    time.sleep(0.1)
    assert not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_values(tmp_path):
    res = train(TrainConfig(**TINY, out=str(tmp_path / "run")))
    raw = torch.load(res.run_dir / "checkpoint.pt", weights_only=True)  # would raise on any other object
    assert raw["rng"]["numpy"]["keys"].dtype == torch.int64
    state = np.random.get_state()
    ckpt_mod.restore_rng(raw["rng"])
    np.random.set_state(state)


def test_full_disk_on_any_run_file_is_one_clear_error(tmp_path, monkeypatch):
    from neuro_agmm.training import loop

    def full(path, obj):  # fault injection: the metrics file cannot be written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(loop, "_write_json", full)
    with pytest.raises(RunDirError, match="no space left on the device"):
        train(TrainConfig(**TINY, out=str(tmp_path / "run")))
