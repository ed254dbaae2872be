"""Checkpoints: complete round trip, RNG states, atomic and refusing NaN."""

import random

import numpy as np
import pytest
import torch

from neuro_agmm.training.checkpoint import Checkpoint, CheckpointError, capture_rng, load_checkpoint, restore_rng, \
    save_checkpoint
from neuro_agmm.training.models import build_model


def _ckpt(model, opt, **kw):
    base = dict(config={"seed": 1}, model_config=model.config.to_dict(), data_info={"dataset": "digits"},
                model=model.state_dict(), optimizer=opt.state_dict(), scheduler=None, epoch=2, step=5,
                epoch_acc={"loss": 1.5, "correct": 3, "n": 10, "seconds": 0.1}, callbacks=[{"a": 1}],
                metrics=[{"epoch": 1, "test_acc": 0.5}], rng=capture_rng())
    base.update(kw)
    return Checkpoint(**base)


def test_round_trip_and_rng(tmp_path):
    torch.manual_seed(0)
    m = build_model("mlp", (1, 8, 8), 10, hidden=(16,))
    opt = torch.optim.Adam(m.parameters())
    m(torch.rand(2, 4, 1, 8, 8)).sum().backward()
    opt.step()
    ck = _ckpt(m, opt)
    expect = (torch.rand(3), np.random.rand(3), random.random())
    save_checkpoint(tmp_path / "c.pt", ck)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back.epoch == 2 and back.step == 5 and back.callbacks == [{"a": 1}] and back.metrics == ck.metrics
    m2 = build_model("mlp", (1, 8, 8), 10, hidden=(16,))
    m2.load_state_dict(back.model)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    opt2 = torch.optim.Adam(m2.parameters())
    opt2.load_state_dict(back.optimizer)
    assert opt2.state_dict()["state"][0]["step"] == 1
    restore_rng(back.rng)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expect[0]) and np.array_equal(got[1], expect[1]) and got[2] == expect[2]


def test_refuses_nan_and_keeps_previous(tmp_path):
    m = build_model("mlp", (1, 8, 8), 10, hidden=(8,))
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, _ckpt(m, opt))
    before = path.read_bytes()
    with torch.no_grad():
        m.readout.synapse.weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(path, _ckpt(m, opt, epoch=3))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temp file left behind
    assert load_checkpoint(tmp_path).epoch == 2  # a run directory works too


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "neuro_agmm.training.checkpoint", "version": 99}, tmp_path / "v.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a neuro_agmm checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
