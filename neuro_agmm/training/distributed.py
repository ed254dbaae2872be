"""Data-parallel training helpers over ``torch.distributed`` (torchrun; gloo on CPU, NCCL on GPU).

Why: one machine's cores are not enough for the larger models; the same trainer must run
on several processes (or machines) that each see a shard of the batch and keep identical
weights. The pieces, all no-ops in a single process so the trainer can call them always:

* ``init_from_env()``: joins the process group torchrun describes (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) and returns a ``DistEnv``;
* ``shard_indices()``: every rank draws the same seeded permutation and takes every
  ``world``-th index, padded so all ranks run the same number of steps (a
  ``DistributedSampler`` for plain NumPy arrays);
* ``broadcast_parameters()``: rank 0's initial weights (and buffers) to everyone;
* ``allreduce_gradients()``: average the gradients after ``loss.backward()`` (one flat
  bucket per dtype; BN running statistics are buffers and are averaged by ``sync_buffers``
  at epoch end);
* ``check_in_sync()``: the maximum difference of every parameter from rank 0's — the
  test that ranks have not drifted;
* ``is_main()`` / ``barrier()`` / ``all_reduce_sum()``: rank-0-only writing of
  checkpoints, artifacts and logs, and the global metric sums.

We average gradients by hand instead of wrapping in ``DistributedDataParallel`` so the
trainer's callbacks (AGMM hooks, instrumentation) see the plain model, and the order
"backward → all-reduce → after_backward" is explicit. Left out: gradient bucketing overlap
with backward (DDP's speed trick), multi-node launch scripts, elastic restarts.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size``; ``device`` to put the model on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process job (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(backend: Optional[str] = None, timeout_s: float = 300.0) -> DistEnv:
    """Join the process group from torchrun's environment variables; single-process ``DistEnv`` otherwise.

    ``backend``: ``"gloo"`` (CPU) or ``"nccl"`` (GPU); default: nccl when CUDA is available, else gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    device = "cpu"
    if backend == "nccl":
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, backend=backend,
                   device=device)


def env_of_current_group() -> DistEnv:
    """``DistEnv`` of an already-initialised process group (e.g. one started by ``mp.spawn``)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    backend = dist.get_backend()
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())), backend=str(backend),
                   device="cpu" if backend == "gloo" else f"cuda:{torch.cuda.current_device()}")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main(env: Optional[DistEnv] = None) -> bool:
    """Rank 0 (or no process group): the one process that writes files."""
    if env is not None:
        return env.rank == 0
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def shard_indices(n: int, env: DistEnv, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """This rank's sample indices for one epoch: the same permutation on every rank, every ``world``-th.

    The permutation is padded by wrapping around to a multiple of ``world_size`` so every rank
    gets ``ceil(n / world)`` indices and runs the same number of steps (collectives stay matched).
    With ``world_size == 1`` this is just the (shuffled) index list.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    w = env.world_size
    per = -(-n // w)
    if per * w > n:
        order = np.concatenate([order, order[: per * w - n]])
    return order[env.rank::w]


def local_batch_size(global_batch: int, env: DistEnv) -> int:
    """Per-rank batch so that ``world * local == global`` (raises if it does not divide)."""
    if global_batch % env.world_size:
        raise ValueError(f"batch size {global_batch} is not divisible by world size {env.world_size}")
    return global_batch // env.world_size


def broadcast_parameters(model: torch.nn.Module, env: DistEnv, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (call once after building the model)."""
    if not env.distributed:
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=src)


def allreduce_gradients(model: torch.nn.Module, env: DistEnv) -> None:
    """Average ``.grad`` over ranks (call right after ``loss.backward()``, before any callback reads grads).

    Parameters without a gradient on this rank contribute zeros, so every rank sends the same
    buckets (a parameter unused on one rank must not deadlock the others).
    """
    if not env.distributed:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
    for p in params:
        by_dtype.setdefault(p.dtype, []).append(p)
    for ps in by_dtype.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in ps])
        dist.all_reduce(flat)
        flat /= env.world_size
        off = 0
        for p in ps:
            n = p.numel()
            g = flat[off:off + n].view_as(p)
            if p.grad is None:
                p.grad = g.clone()
            else:
                p.grad.copy_(g)
            off += n


def sync_buffers(model: torch.nn.Module, env: DistEnv) -> None:
    """Average floating-point buffers (batch-norm running mean/var) over ranks; integer buffers from rank 0."""
    if not env.distributed:
        return
    with torch.no_grad():
        for b in model.buffers():
            if b.is_floating_point():
                dist.all_reduce(b)
                b /= env.world_size
            else:
                dist.broadcast(b, src=0)


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64), e.g. ``[loss_sum, correct, n]`` of an epoch."""
    if not env.distributed:
        return [float(v) for v in values]
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return [float(v) for v in t]


def check_in_sync(model: torch.nn.Module, env: DistEnv) -> float:
    """Largest ``|p - p_rank0|`` over all parameters and buffers, identical on every rank (0.0 = in sync)."""
    if not env.distributed:
        return 0.0
    worst = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            ref = t.detach().clone()
            dist.broadcast(ref, src=0)
            if t.is_floating_point():
                d = (t.detach().double() - ref.double()).abs().max() if t.numel() else torch.zeros(())
            else:
                d = (t.detach() != ref).any().double()
            worst = torch.maximum(worst, d.to(torch.float64).cpu())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


# --- a standalone data-parallel check (``torchrun --nproc_per_node 2 -m neuro_agmm.training.distributed``) ----------

def _sync_check(out_dir: str, steps: int, allreduce: bool, seed: int, method: str, control_steps: int = 0) -> dict:
    """Train a tiny BSNN MLP data-parallel on random graded spikes; return this rank's sync report."""
    import json
    from pathlib import Path

    from neuro_agmm.training.agmm import AGMM
    from neuro_agmm.artifact import atomic_write, write_artifact
    from neuro_agmm.training.export import model_to_artifact
    from neuro_agmm.training.instrumentation import InstrumentationCallback
    from neuro_agmm.training.models import build_model

    torch.set_num_threads(1)
    env = init_from_env()
    T, n_in, n_cls, n, global_batch = 4, 16, 4, 96, 16
    torch.manual_seed(seed + 1000 * env.rank)  # different init per rank: broadcast_parameters must fix it
    model = build_model("mlp", (n_in,), n_cls, precision="binary", hidden=(12, 10))
    broadcast_parameters(model, env)
    rng = np.random.default_rng(seed)  # the same data set on every rank; each rank reads its shard
    x_all = rng.integers(0, 5, size=(n, T, n_in)).astype(np.float32) / 4
    y_all = rng.integers(0, n_cls, size=n)
    callbacks = ([AGMM()] if method == "agmm" else []) + [InstrumentationCallback()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    local = local_batch_size(global_batch, env)
    idx = shard_indices(n, env, seed, 0)
    per_epoch = len(idx) // local
    for cb in callbacks:
        cb.on_fit_start(model, 1, per_epoch)
    metrics: dict = {}
    model.train()

    def run(n_steps: int, reduce: bool, epoch0: int) -> int:
        step, epoch = 0, epoch0
        while step < n_steps:
            idx = shard_indices(n, env, seed, epoch)
            for b in range(per_epoch):
                if step >= n_steps:
                    break
                sel = idx[b * local:(b + 1) * local]
                x = torch.from_numpy(x_all[sel]).transpose(0, 1)  # (T, B, n_in)
                y = torch.from_numpy(y_all[sel])
                for cb in callbacks:
                    cb.on_batch_start(model, epoch, b)
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                if reduce:
                    allreduce_gradients(model, env)
                for cb in callbacks:
                    cb.after_backward(model, epoch, b)
                opt.step()
                for cb in callbacks:
                    cb.after_optimizer_step(model, epoch, b)
                step += 1
            if reduce:
                sync_buffers(model, env)
            for cb in callbacks:
                metrics.update(cb.on_epoch_end(model, epoch))
            epoch += 1
        return epoch

    epochs = run(steps, allreduce, 0)
    step = steps
    diff = check_in_sync(model, env)
    report = {"rank": env.rank, "world_size": env.world_size, "steps": step, "max_param_diff": diff,
              "flip_mean": metrics.get("flip/mean"), "backend": env.backend}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if control_steps:
        # negative control: a few more steps WITHOUT gradient averaging must make the ranks drift
        run(control_steps, False, epochs)
        report["max_param_diff_without_allreduce"] = check_in_sync(model, env)
        model.load_state_dict(state)
    out = Path(out_dir)
    if is_main(env):
        art = model_to_artifact(model, {"input_shape": [n_in], "input_scale": 0.25, "input_max": 4,
                                        "time_steps": T, "encoding": "direct", "dataset": "random"},
                                {"method": method, "seed": seed, "world_size": env.world_size})
        write_artifact(art, out / "model.h5")
    text = json.dumps(report, sort_keys=True)
    atomic_write(out / f"sync_rank{env.rank}.json", lambda p: p.write_text(text))
    barrier(env)
    shutdown()
    return report


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m neuro_agmm.training.distributed",
                                 description="Data-parallel sync check: run under torchrun, e.g. "
                                             "`torchrun --nproc_per_node 2 -m neuro_agmm.training.distributed --out DIR`. "
                                             "Trains a tiny BSNN on random data, checks that all ranks hold "
                                             "identical parameters, and writes one artifact from rank 0.")
    ap.add_argument("--out", required=True, help="folder for model.h5 and sync_rank<r>.json")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", choices=("vanilla", "agmm"), default="agmm")
    ap.add_argument("--no-allreduce", action="store_true", help="skip gradient averaging (the ranks must drift)")
    ap.add_argument("--control-steps", type=int, default=0,
                    help="afterwards, run this many steps without averaging and report the drift")
    a = ap.parse_args(argv)
    if a.steps < 1:
        print("error: --steps must be >= 1", file=sys.stderr)
        return 2
    rep = _sync_check(a.out, a.steps, not a.no_allreduce, a.seed, a.method, a.control_steps)
    print(f"rank {rep['rank']}/{rep['world_size']}: {rep['steps']} steps, max |param - rank0| = "
          f"{rep['max_param_diff']:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
