"""Data-parallel helpers: sharding by rank, and 2 real gloo workers under torchrun staying in sync."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import neuro_agmm.training.agmm  # noqa: F401  (imported here so forked workers inherit them instead of importing)
import neuro_agmm.training.instrumentation  # noqa: F401
import neuro_agmm.training.models  # noqa: F401
from neuro_agmm.artifact import read_artifact
from neuro_agmm.training.distributed import (DistEnv, allreduce_gradients, check_in_sync, init_from_env, local_batch_size,
                                    shard_indices)

ROOT = Path(__file__).resolve().parents[3]


def test_shards_cover_the_epoch_once_with_equal_lengths():
    n, world = 103, 4
    shards = [shard_indices(n, DistEnv(rank=r, world_size=world), seed=3, epoch=1) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == 26
    allidx = np.concatenate(shards)
    assert set(allidx.tolist()) == set(range(n))  # every sample, the padding repeats only 1 of them
    assert len(allidx) - n == 1
    # the same permutation on every rank, a different one per epoch
    assert np.array_equal(shard_indices(n, DistEnv(0, world), 3, 1), shards[0])
    assert not np.array_equal(shard_indices(n, DistEnv(0, world), 3, 2), shards[0])
    assert np.array_equal(np.sort(shard_indices(10, DistEnv(), 0, 0)), np.arange(10))
    assert local_batch_size(64, DistEnv(0, 2)) == 32
    with pytest.raises(ValueError):
        local_batch_size(63, DistEnv(0, 2))


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    env = init_from_env()
    assert env == DistEnv() and not env.distributed
    lin = torch.nn.Linear(2, 2)
    lin(torch.ones(1, 2)).sum().backward()
    g = lin.weight.grad.clone()
    allreduce_gradients(lin, env)
    assert torch.equal(lin.weight.grad, g) and check_in_sync(lin, env) == 0.0


def _forked_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One gloo rank (forked: inherits the imported modules, so it starts in milliseconds)."""
    import torch.distributed as dist

    from neuro_agmm.training.agmm import AGMM
    from neuro_agmm.training.distributed import (allreduce_gradients, broadcast_parameters, env_of_current_group, is_main,
                                        sync_buffers)
    from neuro_agmm.training.instrumentation import InstrumentationCallback
    from neuro_agmm.training.models import build_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    env = env_of_current_group()
    torch.manual_seed(rank)  # different init per rank on purpose
    model = build_model("mlp", (6,), 3, hidden=(8, 8))
    broadcast_parameters(model, env)
    agmm, inst = AGMM(), InstrumentationCallback()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    data = torch.rand(12, 4, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(12) % 3
    res = {}
    for cbs_on in ("sync", "drift"):
        for c in (agmm, inst):
            c.on_fit_start(model, 1, 4)
        for step in range(4):
            sel = shard_indices(12, env, seed=1, epoch=step)[:3]
            for c in (agmm, inst):
                c.on_batch_start(model, 0, step)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(data[sel].transpose(0, 1)), labels[sel]).backward()
            if cbs_on == "sync":
                allreduce_gradients(model, env)
            for c in (agmm, inst):
                c.after_backward(model, 0, step)
            opt.step()
            for c in (agmm, inst):
                c.after_optimizer_step(model, 0, step)
        if cbs_on == "sync":
            sync_buffers(model, env)
        inst.on_epoch_end(model, 0)
        agmm.on_epoch_end(model, 0)
        res[cbs_on] = check_in_sync(model, env)
    res["main"] = is_main(env)
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
    dist.destroy_process_group()


def test_forked_gloo_ranks_stay_in_sync_only_with_allreduce(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_forked_worker, args=(r, 2, str(tmp_path / "init"), str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reps = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["sync"] for r in reps] == [0.0, 0.0]  # identical parameters and BN buffers after 4 AGMM steps
    assert all(r["drift"] > 1e-4 for r in reps)  # and the check can fail: without averaging they drift
    assert [r["main"] for r in reps] == [True, False]


@pytest.mark.slow
def test_two_gloo_workers_under_torchrun_stay_in_sync_and_write_one_artifact(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "neuro_agmm.training.distributed",
           "--out", str(tmp_path), "--steps", "8", "--method", "agmm", "--control-steps", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reps = [json.loads((tmp_path / f"sync_rank{r}.json").read_text()) for r in range(2)]
    for r, rep in enumerate(reps):
        assert rep["rank"] == r and rep["world_size"] == 2 and rep["backend"] == "gloo" and rep["steps"] == 8
        assert rep["max_param_diff"] == 0.0  # identical parameters and BN buffers after 8 AGMM steps
        assert rep["max_param_diff_without_allreduce"] > 1e-4  # the check can fail: without averaging they drift
    assert reps[0]["flip_mean"] == reps[1]["flip_mean"]
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["model.h5"]  # rank 0 alone wrote it
    art = read_artifact(tmp_path / "model.h5")
    assert [l.precision for l in art.layers] == ["int8", "binary", "int8"]
    assert art.provenance["world_size"] == 2


@pytest.mark.slow
def test_trainer_under_torchrun_writes_one_artifact_and_stays_in_sync(tmp_path):
    """``torchrun --nproc_per_node 2 -m neuro_agmm.train --distributed``: needs the trainer's --distributed flag."""
    from neuro_agmm.training.loop import TrainConfig

    if "distributed" not in TrainConfig.__dataclass_fields__:
        pytest.skip("neuro_agmm.training.loop has no --distributed option yet (see neuro_agmm/distributed.py)")
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "run"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "neuro_agmm.train", "--distributed",
           "--method", "agmm", "--epochs", "2", "--hidden", "16", "16", "--limit-train", "128", "--limit-test", "40",
           "--batch-size", "32", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.h5")) == ["model.h5"]
    read_artifact(out / "model.h5")
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics) == 2 and "flip/mean" in metrics[-1]
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
