"""AGMM's *forward gate* (``--agmm-where forward``): a labelled variant, **our reading** of the public text.

Why: the public description speaks of a time-dependent factor ``α[t]`` and a sigmoid of the layer's
input statistics ``σ(E(X[t]))``. ``neuro_agmm.training.agmm`` applies them to gradients only; this module
applies them literally in the forward pass, after batch norm and before the LIF::

    I_l[t] = α_l[t] · σ(k_l · (E(x_l[t]) − c_l)) · BN(W_l x_l[t])      # per sample, per step

with ``E(x[t])`` the mean of the block's input at step ``t`` (per sample), ``α[t]`` initialised to
``γ^t`` normalised so that ``mean_t α[t] · σ(0) = 1``, and ``α``, ``k`` and ``c`` learnable (they get
gradients here, unlike in the gradient-only variants). Gated are the blocks whose synapse is binary.

Deployment: a per-sample, per-step gain is something the integer cores cannot express (their
weights, thresholds and biases are the same at every step and for every input), and a per-step
constant ``α[t]·σ(...)`` is not expressible either. What folds exactly is **one constant per layer**:
``fold_forward_gates`` freezes each gate to ``G_l`` = its mean factor over a documented number of
training batches (eval mode, ``FOLD_BATCHES``), multiplies the batch norm's ``γ`` and ``β`` by
``G_l`` (``G·(γ x̂ + β) = (Gγ) x̂ + Gβ``) and removes the gate. Export refuses a model with live gates;
the trainer folds and reports the test accuracy before and after folding (the cost of folding).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from torch import nn

FOLD_BATCHES = 8  # training batches over which a gate's mean factor is measured before folding


class ForwardGate(nn.Module):
    """``α[t] · σ(k (E(x[t]) − c))`` per sample and step; multiplies the block's (batch-normed) current."""

    def __init__(self, time_steps: int, gamma: float = 0.8, k: float = 2.0, c: float = 0.0) -> None:
        super().__init__()
        if time_steps < 1 or not 0.0 < gamma <= 1.0:
            raise ValueError(f"forward gate: time_steps={time_steps} must be >= 1 and gamma={gamma} in (0, 1]")
        a = gamma ** torch.arange(time_steps, dtype=torch.float32)
        self.alpha = nn.Parameter(a / (a.mean() * 0.5))  # mean_t α[t]·σ(0) = 1
        self.k = nn.Parameter(torch.tensor(float(k)))
        self.c = nn.Parameter(torch.tensor(float(c)))
        self.factor_sum, self.factor_n = 0.0, 0  # running sums of the factor (for logging and folding)

    def factors(self, x: torch.Tensor) -> torch.Tensor:
        """``(T, B)`` gate factors for block input ``x`` of shape ``(T, B, ...)``."""
        t, b = x.shape[:2]
        if t != self.alpha.numel():
            raise ValueError(f"forward gate trained for T={self.alpha.numel()} steps, got input with T={t}")
        e = x.reshape(t, b, -1).mean(dim=2)
        return self.alpha[:, None] * torch.sigmoid(self.k * (e - self.c))

    def forward(self, current: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        f = self.factors(x)
        self.factor_sum += float(f.detach().sum())
        self.factor_n += f.numel()
        return current * f.reshape(f.shape + (1,) * (current.dim() - 2))

    def take_mean(self) -> Optional[float]:
        """The mean factor since the last call (and reset), or None if the gate did not run."""
        m = self.factor_sum / self.factor_n if self.factor_n else None
        self.factor_sum, self.factor_n = 0.0, 0
        return m


def gate_config(time_steps: int, gamma: float, k: float, c: float) -> dict[str, float]:
    """The ``ModelConfig.forward_gate`` entry (plain values, stored in checkpoints)."""
    return {"time_steps": int(time_steps), "gamma": float(gamma), "k": float(k), "c": float(c)}


def install_forward_gates(model: nn.Module, spec: dict[str, Any]) -> list[str]:
    """Attach a ``ForwardGate`` to every spiking block with a binary synapse; returns their names."""
    names = []
    for name, block in gated_blocks(model, live=False):
        block.gate = ForwardGate(int(spec["time_steps"]), float(spec["gamma"]), float(spec["k"]), float(spec["c"]))
        names.append(name)
    if not names:
        raise ValueError("forward gate: the model has no spiking block with a binary synapse")
    return names


def gated_blocks(model: nn.Module, live: bool = True) -> list[tuple[str, nn.Module]]:
    """``(name, block)`` of the spiking blocks with a live gate (``live``) or a binary synapse (not ``live``)."""
    blocks = model.spiking_blocks() if hasattr(model, "spiking_blocks") else []
    if live:
        return [(n, b) for n, b in blocks if getattr(b, "gate", None) is not None]
    return [(n, b) for n, b in blocks if getattr(b.synapse, "precision", None) == "binary"]


@torch.no_grad()
def fold_forward_gates(model: nn.Module, batches: Iterable[torch.Tensor]) -> dict[str, float]:
    """Freeze every live gate to its mean factor on ``batches`` (eval mode) and fold it into batch norm.

    Returns ``{block name: G}``. Raises ``ValueError`` for a gated block without batch norm (nothing to fold
    into: binary weights cannot carry a scale) or when no batch was given.
    """
    gated = gated_blocks(model)
    if not gated:
        return {}
    was = model.training
    model.eval()
    for _, b in gated:
        b.gate.take_mean()
    n = 0
    device = next(model.parameters()).device
    for x in batches:
        model(x.to(device))
        n += 1
    model.train(was)
    if n == 0:
        raise ValueError("fold_forward_gates: no batches to measure the gate factors on")
    out = {}
    for name, b in gated:
        if b.bn is None:
            raise ValueError(f"forward gate of {name!r}: the block has no batch norm to fold the gate into")
        g = b.gate.take_mean()
        b.bn.weight.mul_(g)
        b.bn.bias.mul_(g)
        b.gate = None
        out[name] = float(g)
    if getattr(model, "config", None) is not None:
        model.config.forward_gate = None
    return out
