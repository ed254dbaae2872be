"""Training callbacks: how AGMM and the instrumentation plug into the trainer without editing it.

The trainer (``neuro_agmm.train``) calls these hooks in this order for every batch::

    on_batch_start -> forward -> loss.backward() -> after_backward -> optimizer.step()
    -> after_optimizer_step

``after_backward`` is where gradients may be read or modulated (AGMM); weights are
still those of the forward pass. ``after_optimizer_step`` sees the updated latent
weights (sign-flip counting). ``on_epoch_end`` returns scalar metrics that the trainer
merges into its per-epoch log; ``state_dict``/``load_state_dict`` make a callback's
state part of the checkpoint so ``--resume`` continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch


class Callback:
    """Base class: every hook is a no-op."""

    def on_fit_start(self, model: torch.nn.Module, total_epochs: int, steps_per_epoch: int) -> None:
        pass

    def on_batch_start(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        pass

    def after_backward(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        pass

    def after_optimizer_step(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        pass

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
