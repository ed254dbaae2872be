"""Optimizers of the trainer: one per parameter group kind, so the latent binary weights can use SGD beside Adam.

Why: binary-SNN work commonly trains the latent ±1 weights with SGD + momentum (cosine schedule)
while batch norm, the int8 first/last layers and the readout use Adam; and the step size of the
latent weights alone is the control any flip-reducing method must beat (issue 12). Adam's step
is invariant to a constant gradient scale, SGD's is not, so a gradient-modulation method can act
very differently under the two; the study reports both.

``binary_optimizer = "same"`` keeps one optimizer of kind ``optimizer`` with two parameter groups
(the latent weights at ``binary_lr * binary_lr_scale``) — the checkpoint format of earlier runs.
``"sgd"`` makes two optimizers (``optimizer`` for the rest, SGD with ``momentum`` for the latent
weights), stepped together; their states are saved side by side under ``{"parts": ...}``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

BINARY_OPTIMIZERS = ("same", "sgd")


def binary_parameters(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """``(latent binary weights, everything else)`` of ``model``."""
    from neuro_agmm.training.agmm import find_layers

    binary = {id(mod.weight) for _, mod in find_layers(model, "binary")}
    latent = [p for p in model.parameters() if id(p) in binary]
    rest = [p for p in model.parameters() if id(p) not in binary]
    return latent, rest


def binary_lr(cfg: Any) -> float:
    """The latent weights' learning rate: ``(binary_lr or lr) * binary_lr_scale``."""
    base = cfg.binary_lr if getattr(cfg, "binary_lr", None) is not None else cfg.lr
    return float(base) * float(cfg.binary_lr_scale)


def _make(kind: str, groups: list[dict], cfg: Any, lr: float) -> torch.optim.Optimizer:
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=cfg.weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay)
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {kind!r}")


class _Parts:
    """Named parts (optimizers or schedulers) saved and restored side by side under ``{"parts": ...}``."""

    parts: dict[str, Any]

    def state_dict(self) -> dict:
        return {"parts": {k: p.state_dict() for k, p in self.parts.items()}}

    def load_state_dict(self, state: dict) -> None:
        parts = state.get("parts") if isinstance(state, dict) else None
        if not isinstance(parts, dict) or set(parts) != set(self.parts):
            raise ValueError(f"{type(self).__name__} state holds parts {sorted(parts) if isinstance(parts, dict) else None}, "
                             f"this run has {sorted(self.parts)} (was it saved with another --binary-optimizer?)")
        for k, p in self.parts.items():
            p.load_state_dict(parts[k])


class SplitOptimizer(_Parts):
    """Several optimizers stepped as one (``step``, ``zero_grad``, ``state_dict``, ``param_groups``).

    Not a ``torch.optim.Optimizer``: schedulers are attached per part (``SplitScheduler``).
    """

    def __init__(self, parts: dict[str, torch.optim.Optimizer]) -> None:
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.parts.values() for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()


class SplitScheduler(_Parts):
    """One cosine schedule per part of a ``SplitOptimizer``."""

    def __init__(self, opt: SplitOptimizer, t_max: int) -> None:
        self.parts = {k: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=t_max) for k, o in opt.parts.items()}

    def step(self) -> None:
        for s in self.parts.values():
            s.step()


def make_optimizer(cfg: Any, model: torch.nn.Module) -> tuple[Any, Optional[Any]]:
    """``(optimizer, scheduler or None)`` per ``cfg`` (a ``TrainConfig``); see the module docstring."""
    latent, rest = binary_parameters(model)
    kind = getattr(cfg, "binary_optimizer", "same")
    if kind not in BINARY_OPTIMIZERS:
        raise ValueError(f"binary_optimizer={kind!r} is not one of {', '.join(BINARY_OPTIMIZERS)}")
    if kind == "same" or not latent:
        groups = [{"params": rest, "lr": cfg.lr}]
        if latent:
            groups.append({"params": latent, "lr": binary_lr(cfg)})
        opt = _make(cfg.optimizer, groups, cfg, cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.scheduler == "cosine" \
            else None
        return opt, sched
    parts = {"binary": _make("sgd", [{"params": latent, "lr": binary_lr(cfg)}], cfg, binary_lr(cfg))}
    if rest:
        parts = {"rest": _make(cfg.optimizer, [{"params": rest, "lr": cfg.lr}], cfg, cfg.lr), **parts}
    split = SplitOptimizer(parts)
    return split, (SplitScheduler(split, cfg.epochs) if cfg.scheduler == "cosine" else None)
