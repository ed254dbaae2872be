"""The identical-weights probe: each mechanism's instantaneous effect, with training dynamics taken out.

Why: differences measured over a training run mix a mechanism's direct effect on the gradients with
the network's adaptation to it (weights drift apart, the readout grows, batch norm rescales). The
probe loads **one** set of weights (a trained vanilla network) into every mechanism and feeds the
same minibatches in the same order, without stepping, and measures on the latent binary weights:

* ``gtoward`` (per-weight mean gradient signed toward zero), ``gmean_abs``, ``gvar`` (per-weight
  variance across the minibatches) and ``gsnr``, as in ``training.instrumentation``;
* ``flip_sgd``: the fraction of latent weights one plain SGD step ``w − η g_b`` would flip, averaged over
  minibatches; ``η = lr_binary / mean|g_vanilla|`` so vanilla's mean SGD step equals Adam's nominal step;
* ``flip_adam``: the same for Adam's step ``lr_binary · m̂_b / (√v̂_b + ε)`` with its moments accumulated over
  the minibatches so far (the weights are not moved), the optimizer the study trains with.

The binary learning-rate scale of a mechanism (``vanilla@x0.5``) enters both steps; AGMM callbacks act as
in training (``after_backward`` included); the forward gate starts from its initial α, k, c.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


def _latent(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    from neuro_agmm.training.agmm import find_layers

    return [m.weight for _, m in find_layers(model, "binary")]


def probe(checkpoint: Any, split: Any, base_cfg: Any, mechanisms: dict[str, dict], n_batches: int = 16,
          seed: int = 0) -> dict[str, dict[str, float]]:
    """``{mechanism: statistics}`` on the weights of ``checkpoint`` (a ``training.checkpoint.Checkpoint``).

    ``mechanisms``: name -> ``TrainConfig`` overrides; the first one is the reference for the SGD step size.
    """
    from neuro_agmm.training.agmm import make_callback
    from neuro_agmm.training.batches import seeded_batches
    from neuro_agmm.training.loop import _batch, _forward_gate
    from neuro_agmm.training.models import ModelConfig, build_from_config
    from neuro_agmm.training.optim import binary_lr

    bs = base_cfg.batch_size
    batches = [(_batch(split.train_x, idx, split.input_scale), torch.as_tensor(split.train_y[idx]))
               for idx in seeded_batches(len(split.train_y), [seed, 99], min(n_batches, len(split.train_y) // bs), bs)]
    out: dict[str, dict[str, float]] = {}
    ref_abs = None
    torch.set_num_threads(base_cfg.threads)
    for name, over in mechanisms.items():
        cfg = replace(base_cfg, **over)
        mcfg = ModelConfig.from_dict(dict(checkpoint.model_config))
        mcfg.forward_gate = _forward_gate(cfg)
        model = build_from_config(mcfg)
        missing, unexpected = model.load_state_dict(checkpoint.model, strict=False)
        if unexpected or any(".gate." not in k for k in missing):
            raise ValueError(f"probe {name}: weights do not fit (missing {missing}, unexpected {unexpected})")
        torch.manual_seed(seed)
        cbs = [make_callback(cfg)] if cfg.method == "agmm" else []
        for cb in cbs:
            cb.on_fit_start(model, 1, len(batches))
        model.train()
        latent = _latent(model)
        w = torch.cat([p.detach().reshape(-1) for p in latent]).double()
        grads = []
        for step, (x, y) in enumerate(batches):
            for cb in cbs:
                cb.on_batch_start(model, 0, step)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            for cb in cbs:
                cb.after_backward(model, 0, step)
            grads.append(torch.cat([p.grad.detach().reshape(-1) for p in latent]).double())
        g = torch.stack(grads)
        sign = torch.where(w >= 0, 1.0, -1.0).double()
        mean, var = g.mean(0), g.var(0, unbiased=False)
        sd = var.sqrt()
        ok = sd > 0
        lr = binary_lr(cfg)
        if ref_abs is None:  # the reference mechanism fixes η so that its mean SGD step is its learning rate
            ref_abs = float(g.abs().mean())
        eta = lr / ref_abs
        flip_sgd = float(np.mean([float(((w - eta * gb >= 0) != (w >= 0)).double().mean()) for gb in g]))
        m = torch.zeros_like(w)
        v = torch.zeros_like(w)
        flips_adam = []
        for b, gb in enumerate(g, 1):
            m = ADAM_BETAS[0] * m + (1 - ADAM_BETAS[0]) * gb
            v = ADAM_BETAS[1] * v + (1 - ADAM_BETAS[1]) * gb * gb
            step = lr * (m / (1 - ADAM_BETAS[0] ** b)) / ((v / (1 - ADAM_BETAS[1] ** b)).sqrt() + ADAM_EPS)
            flips_adam.append(float(((w - step >= 0) != (w >= 0)).double().mean()))
        out[name] = {"gtoward": float((g * sign).mean()), "gmean_abs": float(mean.abs().mean()),
                     "gvar": float(var.mean()), "gsnr": float((mean.abs()[ok] / sd[ok]).mean()),
                     "flip_sgd": flip_sgd, "flip_adam": float(np.mean(flips_adam)), "batches": len(batches)}
    return out
