"""Train a BSNN (or its full-precision baseline) and export it: ``train(cfg)`` and ``python -m neuro_agmm.train``.

Why: one trainer for every method (``fp`` = float weights, ``vanilla`` = binary weights with
the straight-through estimator, ``agmm`` = vanilla + the AGMM callback of ``neuro_agmm.agmm``),
so the methods differ only where they should. The trainer

* is deterministic given the seed: the model is initialised from ``torch.manual_seed(seed)``,
  the data order of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation``, and
  ``torch.use_deterministic_algorithms(True)`` is on; same seed and thread count => identical
  weights => identical artifact weight bytes;
* runs data-parallel with ``--distributed`` under torchrun (``neuro_agmm.training.distributed``: each rank
  takes every world-th sample of the same permutation, gradients are averaged after backward
  and before the callbacks' ``after_backward``, batch-norm statistics averaged at epoch end;
  ``--batch-size`` is the global batch; rank 0 alone writes files);
* writes a checkpoint atomically at every epoch end and every ``checkpoint_every`` optimizer
  steps; ``--resume RUN_DIR`` continues from the last one (mid-epoch included: the epoch's
  permutation is recomputed and the done batches skipped) and ends with the same weights as
  an uninterrupted run;
* stops on a non-finite loss before the optimizer step (``TrainingDiverged`` names epoch and
  step), so no checkpoint ever holds NaN weights;
* logs per-epoch metrics (``metrics.json``, ``metrics.csv``), and at the end writes the
  artifact ``model.h5`` (``neuro_agmm.export``) and ``summary.json``.

Callback order per batch (``neuro_agmm.callbacks``): ``on_batch_start`` -> forward ->
``backward`` -> ``after_backward`` -> ``optimizer.step`` -> ``after_optimizer_step``; ``epoch``
and ``step`` passed to hooks are 0-based (epoch index, batch index within the epoch). The list
is ``[AGMM (method agmm)] + user callbacks + [instrumentation (unless --no-instrument)]``.

Left out: data augmentation, mixed precision, GPU placement of the model (CPU only here).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from neuro_agmm.artifact import ArtifactError, atomic_write
from neuro_agmm.training.callbacks import Callback
from neuro_agmm.training.batches import EpochBatches, iterate, seeded_batches, to_float
from neuro_agmm.training.optim import make_optimizer
from neuro_agmm.training.checkpoint import CHECKPOINT_NAME, Checkpoint, CheckpointError, capture_rng, load_checkpoint, \
    restore_rng, save_checkpoint

METHODS = ("fp", "vanilla", "agmm")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "none")
# Testing aid: SIGKILL this process right after the given global optimizer step (simulates a crash).
_KILL_ENV = "NEURO_AGMM_SIGKILL_AFTER_STEP"


@dataclass
class TrainConfig:
    """All knobs of one training run (CLI flags map 1:1, ``-`` for ``_``)."""

    dataset: str = "digits"
    data_root: str = "datasets"
    arch: str = "mlp"
    method: str = "vanilla"  # fp | vanilla | agmm
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    binary_lr_scale: float = 1.0  # the latent binary weights' learning rate is (binary_lr or lr) * this
    binary_optimizer: str = "same"  # "same" (optimizer above) | "sgd" (SGD + momentum for the latent weights only)
    binary_lr: Optional[float] = None  # the latent weights' base learning rate (None: lr)
    scheduler: str = "cosine"  # cosine annealing over the epochs, or none
    time_steps: int = 4
    encoding: str = "direct"
    seed: int = 0
    out: Optional[str] = None  # run directory; default runs/<dataset>-<arch>-<method>-s<seed>
    threads: int = 1
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps (0: epoch ends only)
    first_last: str = "int8"
    leak: float = 0.5
    threshold: float = 1.0
    batch_norm: bool = True
    surrogate: str = "super"
    hidden: Optional[list[int]] = None  # mlp hidden sizes
    width: float = 1.0  # conv channel multiplier
    instrument: bool = True
    progress: bool = True
    limit_train: int = 0  # use only the first N training samples (0: all); smoke tests
    limit_test: int = 0
    eval_batch_size: int = 256
    device: str = "auto"  # cpu | cuda | cuda:N | auto (CUDA when present); see neuro_agmm.training.device
    loader_workers: int = 0  # DataLoader worker processes for training batches (0: built in this process)
    augment: str = "none"  # none | crop-flip (image-shaped inputs; see neuro_agmm.training.batches)
    bn_recalibrate: int = 16  # batches to re-estimate batch-norm running statistics on before each evaluation (0: off)
    half_precision: str = "none"  # none | bf16: binary layers fed by spikes compute in bf16, exactly (binary_layers)
    # AGMM knobs, read by neuro_agmm.agmm.config_from (None: AGMM's default)
    agmm_where: Optional[str] = None
    agmm_alpha: Optional[str] = None
    agmm_gamma: Optional[float] = None
    agmm_k: Optional[float] = None
    agmm_c: Optional[float] = None
    agmm_adaptive: Optional[bool] = None
    agmm_momentum: Optional[float] = None
    agmm_normalize: Optional[bool] = None
    agmm_anneal: Optional[float] = None
    agmm_layers: Optional[str] = None
    agmm_renorm: Optional[bool] = None
    agmm_brake: Optional[float] = None
    distributed: bool = False  # data-parallel over torch.distributed (launch with torchrun); see distributed.py

    def run_dir(self) -> Path:
        return Path(self.out) if self.out else Path("runs") / f"{self.dataset}-{self.arch}-{self.method}-s{self.seed}"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        from neuro_agmm.data import DATASETS
        from neuro_agmm.training.models import ARCHS
        choices = {"dataset": DATASETS, "arch": ARCHS, "method": METHODS, "optimizer": OPTIMIZERS,
                   "scheduler": SCHEDULERS, "first_last": ("int8", "binary")}
        for k, allowed in choices.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"{k}={getattr(self, k)!r} is not one of {', '.join(allowed)}")
        for k in ("epochs", "batch_size", "time_steps", "threads", "eval_batch_size"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        for k in ("checkpoint_every", "limit_train", "limit_test", "bn_recalibrate", "loader_workers"):
            if int(getattr(self, k)) < 0:
                raise ValueError(f"{k} must be >= 0, got {getattr(self, k)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr}")
        for k in ("binary_lr_scale", "binary_lr"):
            v = getattr(self, k)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{k} must be a positive finite number, got {v}")
        from neuro_agmm.training.batches import AUGMENTS
        from neuro_agmm.training.optim import BINARY_OPTIMIZERS
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment={self.augment!r} is not one of {', '.join(AUGMENTS)}")
        from neuro_agmm.training.device import check_name
        check_name(self.device)
        if self.binary_optimizer not in BINARY_OPTIMIZERS:
            raise ValueError(f"binary_optimizer={self.binary_optimizer!r} is not one of {', '.join(BINARY_OPTIMIZERS)}")
        if not 0.0 <= self.leak < 1.0:
            raise ValueError(f"leak must be in [0, 1), got {self.leak}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown config key(s): {', '.join(bad)}")
        return cls(**d)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: list[dict]  # one dict per epoch
    summary: dict
    artifact_path: Optional[Path]
    model: Any = None  # the trained torch model (eval mode)

    @property
    def final(self) -> dict:
        return self.metrics[-1] if self.metrics else {}


class TrainingDiverged(RuntimeError):
    """The loss became NaN/inf; the message names epoch (1-based) and step (0-based)."""


# --- helpers ---------------------------------------------------------------------------------

def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda tmp: tmp.write_text(text + "\n"))


def _write_metrics(run_dir: Path, metrics: list[dict]) -> None:
    _write_json(run_dir / "metrics.json", metrics)
    cols: list[str] = []
    for m in metrics:
        cols += [k for k in m if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for m in metrics:
        w.writerow(m)
    atomic_write(run_dir / "metrics.csv", lambda tmp: tmp.write_text(buf.getvalue()))


def _batch(x_int: np.ndarray, idx: np.ndarray, scale: float) -> torch.Tensor:
    """Integer samples ``x_int[idx]`` (B, T, ...) -> float ``(T, B, ...)`` times ``scale``."""
    return to_float(x_int[idx], scale)


def _forward_gate(cfg: TrainConfig) -> Optional[dict]:
    """``ModelConfig.forward_gate`` for ``--method agmm --agmm-where forward``, else None."""
    from neuro_agmm.training.agmm import config_from
    from neuro_agmm.training.forward_gate import gate_config

    if cfg.method != "agmm":
        return None
    a = config_from(cfg)
    return gate_config(cfg.time_steps, a.gamma, a.k, a.c) if a.where == "forward" else None


def _default_callbacks(cfg: TrainConfig, user: list[Callback]) -> list[Callback]:
    cbs: list[Callback] = []
    if cfg.method == "agmm":
        from neuro_agmm.training.agmm import make_callback

        cbs.append(make_callback(cfg))
    cbs += list(user)
    if cfg.instrument and cfg.method != "fp":
        from neuro_agmm.training.instrumentation import InstrumentationCallback

        cbs.append(InstrumentationCallback())
    return cbs


@torch.no_grad()
def evaluate(model: torch.nn.Module, x_int: np.ndarray, y: np.ndarray, scale: float,
             batch_size: int = 256) -> tuple[float, float, dict[str, float]]:
    """``(accuracy, mean cross-entropy, mean firing rate per spiking layer)`` of ``model`` in eval mode
    on integer inputs (N, T, ...)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    correct, loss_sum, rates = 0, 0.0, {}
    for i in range(0, len(y), batch_size):
        idx = np.arange(i, min(i + batch_size, len(y)))
        logits = model(_batch(x_int, idx, scale).to(device))
        yt = torch.as_tensor(y[idx]).to(device)
        loss_sum += float(F.cross_entropy(logits, yt, reduction="sum"))
        correct += int((logits.argmax(1) == yt).sum())
        for k, v in getattr(model, "activity", {}).items():
            rates[k] = rates.get(k, 0.0) + v * len(idx)
    model.train(was)
    n = max(1, len(y))
    return correct / n, loss_sum / n, {k: v / n for k, v in rates.items()}


def _steps(n: int, batch_size: int) -> int:
    """Batches per epoch; a last batch of a single sample is dropped (batch norm needs 2)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


def _fold_gates(model: torch.nn.Module, cfg: TrainConfig, train_x: np.ndarray, scale: float,
                test: tuple[np.ndarray, np.ndarray]) -> dict:
    """Fold AGMM's forward gates (if any) into batch norm before export; the accuracy before and after."""
    from neuro_agmm.training.forward_gate import FOLD_BATCHES, fold_forward_gates, gated_blocks

    if not gated_blocks(model):
        return {}
    gated_acc = evaluate(model, *test, scale, cfg.eval_batch_size)[0]
    n = min(FOLD_BATCHES, _steps(len(train_x), cfg.batch_size))
    batches = [_batch(train_x, idx, scale) for idx in seeded_batches(len(train_x), [cfg.seed, 0], n, cfg.batch_size)]
    factors = fold_forward_gates(model, batches)
    folded_acc = evaluate(model, *test, scale, cfg.eval_batch_size)[0]
    print(f"forward gate folded into batch norm ({len(batches)} training batches): test {gated_acc:.4f} gated -> "
          f"{folded_acc:.4f} folded", file=sys.stderr, flush=True)
    return {"factors": factors, "fold_batches": len(batches), "gated_test_acc": gated_acc,
            "folded_test_acc": folded_acc, "fold_cost": gated_acc - folded_acc}


@torch.no_grad()
def recalibrate_batch_norm(model: torch.nn.Module, batches: list[torch.Tensor]) -> int:
    """Re-estimate every batch norm's running statistics as the plain average over ``batches`` with the
    current weights (training-mode forward, no gradients); returns the number of batch norms reset.

    Why: running statistics are an exponential average over an epoch in which the binary weights kept
    flipping, so they lag the weights the network ends with, and the eval-mode (deployed) network can be
    at chance while training-mode accuracy is high. Parameters, the optimizer and every RNG are untouched.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats]
    if not bns or not batches:
        return 0
    was = model.training
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: every batch counts the same
    model.train()
    device = next(model.parameters()).device
    for x in batches:
        model(x.to(device))
    for bn, mom in zip(bns, saved):
        bn.momentum = mom
    model.train(was)
    return len(bns)


def _recalibration_batches(cfg: TrainConfig, train_x: np.ndarray, idx_pool: np.ndarray, scale: float,
                           epoch: int, batch_size: int) -> list[torch.Tensor]:
    """``cfg.bn_recalibrate`` training batches of this rank's samples, drawn by their own seeded generator."""
    if cfg.bn_recalibrate <= 0 or len(idx_pool) < 2:
        return []
    n = min(cfg.bn_recalibrate, max(1, len(idx_pool) // batch_size))
    return [_batch(train_x, idx, scale) for idx in seeded_batches(idx_pool, [cfg.seed, 0xB7, epoch], n, batch_size)]


# --- the trainer -----------------------------------------------------------------------------

def train(cfg: TrainConfig, callbacks: Optional[list[Callback]] = None, resume: bool = False,
          split: Any = None) -> TrainResult:
    """Train per ``cfg``; with ``resume=True`` continue the run in ``cfg.run_dir()`` from its checkpoint.

    ``split``: an already loaded ``DatasetSplit`` (else ``load_dataset`` per ``cfg``).
    Raises ``ValueError`` (bad config), ``CheckpointError``, ``TrainingDiverged``, ``RunDirError`` (the
    run directory is in use by another training, or a write failed, e.g. a full disk).
    """
    from contextlib import nullcontext

    from neuro_agmm.training.run_dir import RunLock, device_failure

    cfg.validate()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    writer = not cfg.distributed or int(os.environ.get("RANK", "0")) == 0  # only rank 0 writes the run directory
    try:
        with RunLock(cfg.run_dir()) if writer else nullcontext():  # a second writer is refused (RunDirError)
            try:
                return _train(cfg, callbacks, resume, split)
            except (OSError, RuntimeError) as e:  # a full or read-only device: one line, checkpoint kept
                clear = device_failure(cfg.run_dir(), e)
                if clear is None:
                    raise
                raise clear from e
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _train(cfg: TrainConfig, callbacks: Optional[list[Callback]], resume: bool, split: Any) -> TrainResult:
    from neuro_agmm.data import load_dataset
    from neuro_agmm.training.export import data_info, evaluate_artifact, export_artifact, weight_storage
    from neuro_agmm.training.models import ModelConfig, build_from_config
    from neuro_agmm.training import distributed as D

    env = D.init_from_env() if cfg.distributed else D.DistEnv()
    main_rank = D.is_main(env)
    local_bs = D.local_batch_size(cfg.batch_size, env)
    run_dir = cfg.run_dir()
    ckpt_path = run_dir / CHECKPOINT_NAME
    ck: Optional[Checkpoint] = None
    if resume:
        ck = load_checkpoint(ckpt_path)
    elif ckpt_path.exists():  # every rank checks (a shared run directory), so none waits for the others
        raise ValueError(f"{run_dir} already holds a checkpoint; use --resume {run_dir} or another --out")
    from neuro_agmm.training import device as devices

    device = devices.resolve_device(cfg.device, env.device)
    devices.prepare(device)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=devices.deterministic_warn_only(device))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)

    if split is None:
        split = load_dataset(cfg.dataset, root=cfg.data_root, time_steps=cfg.time_steps, encoding=cfg.encoding,
                             seed=cfg.seed)
    train_x, train_y, test_x, test_y = split.train_x, split.train_y, split.test_x, split.test_y
    if cfg.limit_train:
        train_x, train_y = train_x[:cfg.limit_train], train_y[:cfg.limit_train]
    if cfg.limit_test:
        test_x, test_y = test_x[:cfg.limit_test], test_y[:cfg.limit_test]
    info = data_info(split)
    mcfg = ModelConfig(arch=cfg.arch, input_shape=tuple(split.input_shape), n_classes=split.n_classes,
                       precision="fp" if cfg.method == "fp" else "binary", first_last=cfg.first_last, leak=cfg.leak,
                       threshold=cfg.threshold, batch_norm=cfg.batch_norm, surrogate=cfg.surrogate,
                       hidden=tuple(cfg.hidden) if cfg.hidden else None, width=cfg.width,
                       forward_gate=_forward_gate(cfg))
    model = build_from_config(mcfg).to(device)
    if cfg.half_precision != "none":  # the forward stays bit-identical; only the backward is rounded
        from neuro_agmm.training.binary_layers import use_half_precision

        use_half_precision(model, cfg.half_precision)
    D.broadcast_parameters(model, env)
    opt, sched = make_optimizer(cfg, model)
    cbs = _default_callbacks(cfg, callbacks or [])

    n_train = len(train_y)
    steps_per_epoch = _steps(len(D.shard_indices(n_train, env, cfg.seed, 0)), local_bs)
    if steps_per_epoch < 1:
        raise ValueError(f"{cfg.dataset}: {n_train} training samples are too few for one batch")
    metrics: list[dict] = []
    start_epoch, start_step, acc = 0, 0, {"loss": 0.0, "correct": 0, "n": 0, "seconds": 0.0}
    if ck is not None:
        model.load_state_dict(ck.model)
        opt.load_state_dict(ck.optimizer)
        if sched is not None and ck.scheduler is not None:
            sched.load_state_dict(ck.scheduler)
        if len(ck.callbacks) != len(cbs):
            raise CheckpointError(f"{ckpt_path}: holds {len(ck.callbacks)} callback states, this run has {len(cbs)}")
        for cb, st in zip(cbs, ck.callbacks):
            cb.load_state_dict(st)
        metrics = list(ck.metrics)
        start_epoch, start_step = ck.epoch, ck.step
        if main_rank:  # the checkpoint holds the global epoch sums; other ranks restart theirs from 0
            acc = dict(ck.epoch_acc) or acc
        restore_rng(ck.rng)
    elif main_rank:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(run_dir / "config.json", asdict(cfg))

    def global_acc() -> None:
        """Sum the epoch's running sums over ranks into rank 0 (others restart from 0)."""
        if env.distributed:
            tot = D.all_reduce_sum([acc["loss"], acc["correct"], acc["n"]], env)
            acc["loss"], acc["correct"], acc["n"] = (tot[0], int(tot[1]), int(tot[2])) if main_rank else (0.0, 0, 0)

    def checkpoint(epoch: int, step: int) -> None:
        for name, p in model.named_parameters():
            if not torch.isfinite(p).all():
                e, st = (epoch, step - 1) if step > 0 else (epoch - 1, steps_per_epoch - 1)
                raise TrainingDiverged(f"parameter {name} became NaN/inf by epoch {e + 1}, step {st}; the last "
                                       f"good checkpoint is kept ({ckpt_path if ckpt_path.exists() else 'none'})")
        global_acc()
        if not main_rank:
            return
        save_checkpoint(ckpt_path, Checkpoint(
            config=asdict(cfg), model_config=mcfg.to_dict(), data_info=info, model=model.state_dict(),
            optimizer=opt.state_dict(), scheduler=sched.state_dict() if sched is not None else None,
            epoch=epoch, step=step, epoch_acc=dict(acc), callbacks=[cb.state_dict() for cb in cbs],
            metrics=list(metrics), rng=capture_rng()))

    kill_after = int(os.environ.get(_KILL_ENV, "0") or 0)
    for cb in cbs:
        cb.on_fit_start(model, cfg.epochs, steps_per_epoch)
    from tqdm import tqdm

    t_fit = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        order = D.shard_indices(n_train, env, cfg.seed, epoch)  # world 1: the seeded permutation
        t0 = time.perf_counter()
        bar = tqdm(range(start_step, steps_per_epoch), total=steps_per_epoch, initial=start_step,
                   desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and main_rank and sys.stderr.isatty()), leave=False,
                   file=sys.stderr)
        batches = iterate(EpochBatches(train_x, train_y, order, local_bs, steps_per_epoch, split.input_scale,
                                       cfg.augment, cfg.seed, epoch), start_step, cfg.loader_workers,
                          pin_memory=device.type == "cuda")
        for step, (x, y) in zip(bar, batches):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            for cb in cbs:
                cb.on_batch_start(model, epoch, step)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            bad = not bool(torch.isfinite(loss))
            if env.distributed:  # every rank must stop together
                bad = D.all_reduce_sum([float(bad)], env)[0] > 0
            if bad:
                last = ckpt_path if ckpt_path.exists() else "none"
                raise TrainingDiverged(f"loss is {float(loss.detach())} at epoch {epoch + 1}, step {step}; stopped "
                                       f"before the optimizer step (last good checkpoint: {last})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            D.allreduce_gradients(model, env)
            for cb in cbs:
                cb.after_backward(model, epoch, step)
            opt.step()
            for cb in cbs:
                cb.after_optimizer_step(model, epoch, step)
            acc["loss"] += float(loss.detach()) * len(y)
            acc["correct"] += int((logits.detach().argmax(1) == y).sum())
            acc["n"] += len(y)
            if cfg.progress:
                bar.set_postfix(loss=f"{acc['loss'] / acc['n']:.3f}", acc=f"{acc['correct'] / acc['n']:.3f}")
            global_step = epoch * steps_per_epoch + step + 1
            if cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                acc["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint(epoch, step + 1)
            if kill_after and global_step == kill_after and main_rank:
                os.kill(os.getpid(), signal.SIGKILL)
        bar.close()
        start_step = 0
        lr = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        acc["seconds"] += time.perf_counter() - t0
        recalibrate_batch_norm(model, _recalibration_batches(cfg, train_x, order, split.input_scale, epoch, local_bs))
        D.sync_buffers(model, env)
        global_acc()
        test_acc, test_loss, test_rates = evaluate(model, test_x, test_y, split.input_scale, cfg.eval_batch_size)
        m = {"epoch": epoch + 1, "train_loss": acc["loss"] / max(1, acc["n"]),
             "train_acc": acc["correct"] / max(1, acc["n"]), "test_acc": test_acc, "test_loss": test_loss,
             "lr": lr, "seconds": acc["seconds"], "samples_per_s": acc["n"] / max(acc["seconds"], 1e-9)}
        m.update({f"test_rate/{k}": v for k, v in test_rates.items()})
        if getattr(split, "val_x", None) is not None:  # the split for choices; test numbers only report
            m["val_acc"], m["val_loss"], _ = evaluate(model, split.val_x, split.val_y, split.input_scale,
                                                      cfg.eval_batch_size)
        for cb in cbs:
            for k, v in (cb.on_epoch_end(model, epoch) or {}).items():
                m[k] = float(v)
        metrics.append(m)
        acc = {"loss": 0.0, "correct": 0, "n": 0, "seconds": 0.0}
        checkpoint(epoch + 1, 0)
        if main_rank:
            _write_metrics(run_dir, metrics)
        if main_rank:  # always, so a log without progress bars still shows every epoch
            print(f"epoch {epoch + 1}/{cfg.epochs} loss {m['train_loss']:.4f} train {m['train_acc']:.4f} "
                  f"test {test_acc:.4f} ({m['seconds']:.1f}s)", file=sys.stderr, flush=True)

    model.cpu().eval()  # export and everything after it work on the CPU copy
    if not main_rank:  # rank 0 alone writes the results
        D.barrier(env)
        return TrainResult(run_dir=run_dir, metrics=metrics, summary={}, artifact_path=None, model=model)
    _write_metrics(run_dir, metrics)  # also after a resume that found the epochs already done
    final = metrics[-1] if metrics else {}
    art_path: Optional[Path] = run_dir / "model.h5"
    summary: dict = {"config": asdict(cfg), "data": info, "epochs_done": len(metrics), "final": final,
                     "best_test_acc": max((m["test_acc"] for m in metrics), default=None),
                     "train_seconds": sum(m["seconds"] for m in metrics),
                     "wall_seconds_this_process": time.perf_counter() - t_fit,
                     "n_parameters": sum(p.numel() for p in model.parameters()), "device": str(device)}
    gate = _fold_gates(model, cfg, train_x, split.input_scale, (test_x, test_y))
    if gate:
        summary["forward_gate"] = gate
        final = dict(final, test_acc=gate["folded_test_acc"])
        summary["final"] = final
    try:
        art = export_artifact(model, split, cfg, final, art_path)
        summary["artifact"] = str(art_path)
        summary["artifact_test_acc"] = evaluate_artifact(art, SimpleNamespace(test_x=test_x, test_y=test_y),
                                                         cfg.eval_batch_size)
        summary["weight_storage"] = weight_storage(art)
    except ArtifactError as e:  # e.g. resnet19 (residual graph)
        art_path = None
        summary["artifact"] = None
        summary["artifact_error"] = str(e)
    summary["world_size"] = env.world_size
    _write_json(run_dir / "summary.json", summary)
    D.barrier(env)
    return TrainResult(run_dir=run_dir, metrics=metrics, summary=summary, artifact_path=art_path, model=model)
