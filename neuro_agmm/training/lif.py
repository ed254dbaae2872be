"""LIF neurons for training: Norse's box LIF as a discrete leaky integrator, plus the readout integrator.

Why this module exists: the artifact (``neuro_agmm.artifact``) defines a spiking neuron as
``v[t] = leak * v[t-1] + input_gain * I[t]``, spike when ``v[t] > threshold``, hard reset to 0,
with ``input_gain = 1 - leak``. Norse's ``lif_box_feed_forward_step`` integrates
``v <- v + dt * tau_mem_inv * ((v_leak - v) + I)``; with ``v_leak = 0``, ``v_reset = 0`` and
``dt * tau_mem_inv = 1 - leak`` (we use ``dt = 1``, ``tau_mem_inv = 1 - leak``) that is the same
neuron. The exact float operations performed (float32, per element) are::

    v_dec = v + (1 - leak) * (I - v)          # == leak*v + (1-leak)*I up to float rounding
    z     = heaviside(v_dec - threshold)       # 1 where v_dec > threshold (strict), else 0
    v     = (1 - z) * v_dec + z * 0            # hard reset to 0

The backward pass replaces d z / d v by a surrogate (Norse's ``threshold(method, alpha)``;
default SuperSpike ``1 / (|v - threshold| + 1)^2``).

The readout is not spiking: ``v[t] = v[t-1] + I[t]`` (leak 1, input_gain 1) and the model's
logits are ``v[T-1] / T``. Leak 1 cannot be expressed as a Norse box LIF (``tau_mem_inv = 0``
would discard the input), hence the separate function.

Left out: recurrent connections, refractory periods, synaptic current dynamics (the current
is instantaneous, matching ``du = 4095`` on the core), and learnable leaks or thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step

DEFAULT_LEAK = 0.5
DEFAULT_THRESHOLD = 1.0


@dataclass(frozen=True)
class LIFConfig:
    """Neuron parameters of one spiking population (floats, dimensionless)."""

    leak: float = DEFAULT_LEAK  # fraction of v kept per step, in [0, 1)
    threshold: float = DEFAULT_THRESHOLD  # spike when v > threshold
    surrogate: str = "super"  # Norse threshold method: super, triangle, tanh, circ, heavi_erfc
    alpha: float = 100.0  # surrogate sharpness (unused by "super")

    def __post_init__(self) -> None:
        if not 0.0 <= self.leak < 1.0:
            raise ValueError(f"leak must be in [0, 1) for a spiking LIF, got {self.leak}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")

    @property
    def input_gain(self) -> float:
        """Gain on the input current: ``1 - leak`` (recorded in the artifact)."""
        return 1.0 - self.leak

    def norse_parameters(self) -> LIFBoxParameters:
        """Norse parameters for ``dt = 1``: ``tau_mem_inv = 1 - leak``, ``v_leak = v_reset = 0``."""
        return LIFBoxParameters(tau_mem_inv=torch.as_tensor(1.0 - self.leak), v_leak=torch.as_tensor(0.0),
                                v_th=torch.as_tensor(self.threshold), v_reset=torch.as_tensor(0.0),
                                method=self.surrogate, alpha=torch.as_tensor(self.alpha))


def lif_step(current: torch.Tensor, v: torch.Tensor, params: LIFBoxParameters) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the box LIF (``dt = 1``): returns ``(spikes, v_new)``, same shape as ``current``."""
    z, state = lif_box_feed_forward_step(current, LIFBoxFeedForwardState(v=v), params, dt=1.0)
    return z, state.v


def lif_sequence(currents: torch.Tensor, cfg: LIFConfig) -> torch.Tensor:
    """Run the LIF over ``currents`` of shape ``(T, B, ...)`` from ``v = 0``; returns 0/1 spikes, same shape."""
    params = cfg.norse_parameters()
    v = torch.zeros_like(currents[0])
    out = []
    for t in range(currents.shape[0]):
        z, v = lif_step(currents[t], v, params)
        out.append(z)
    return torch.stack(out)


def readout_sequence(currents: torch.Tensor) -> torch.Tensor:
    """Non-spiking integrator (leak 1, gain 1) over ``(T, B, n)``: returns ``v[T-1] = sum_t I[t]`` (B, n).

    Accumulates step by step in time order (``v = v + I[t]``), the same order as the hardware.
    """
    v = torch.zeros_like(currents[0])
    for t in range(currents.shape[0]):
        v = v + currents[t]
    return v


class LIF(torch.nn.Module):
    """Thin module over ``lif_sequence``: holds the (fixed) neuron parameters."""

    def __init__(self, leak: float = DEFAULT_LEAK, threshold: float = DEFAULT_THRESHOLD,
                 surrogate: str = "super", alpha: float = 100.0) -> None:
        super().__init__()
        self.cfg = LIFConfig(leak=leak, threshold=threshold, surrogate=surrogate, alpha=alpha)

    def forward(self, currents: torch.Tensor) -> torch.Tensor:
        return lif_sequence(currents, self.cfg)

    def extra_repr(self) -> str:
        return f"leak={self.cfg.leak}, threshold={self.cfg.threshold}, surrogate={self.cfg.surrogate!r}"
