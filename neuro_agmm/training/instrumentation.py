"""Sign-flip and gradient instrumentation of binary layers, for AGMM-vs-vanilla comparisons.

Why: AGMM's claim is about *sign flips* of latent weights and the *mean and variance* of
their gradients; these are the numbers that show whether it does what it says. This
module measures them during training (``InstrumentationCallback``) and, independently of
any logging, from two saved checkpoints or artifacts (``flip_ratio_between``), so a
checker can recompute flips without trusting the training log.

Definitions (per binary layer, sign taken as ``w >= 0`` → +1, else −1):

* ``flip/<layer>``: fraction of the layer's latent weights whose sign changed in one
  optimizer update, averaged over the epoch's updates; ``flip/mean`` the same over all
  binary weights together (weights counted equally);
* ``flip_epoch/<layer>``: fraction whose sign differs from the sign at the previous
  epoch end (at fit start for the first epoch); ``flip_epoch/mean`` likewise;
* ``grad_mean/<layer>``, ``grad_absmean/<layer>``, ``grad_var/<layer>``: mean, mean
  absolute value and variance over the layer's latent-weight gradient elements, read
  after ``after_backward`` (i.e. after AGMM's modulation when AGMM is registered before
  this callback), averaged over the epoch's updates; ``/mean`` aggregates over layers;
  These two are the spread *across a layer's weights within one batch* — not what the flip
  argument is about; the per-weight statistics below are;
* per-weight statistics across the epoch's minibatches (``n`` updates, gradient ``g_b`` of
  weight ``i`` in update ``b``, latent weight ``w``):
  ``gtoward/<layer>`` = mean_i (1/n) Σ_b g_b,i · sign(w_i) — the mean gradient *signed toward
  zero* (positive: the descent step ``−η g`` moves the weight toward a flip);
  ``gmean_abs/<layer>`` = mean_i |(1/n) Σ_b g_b,i|; ``gvar/<layer>`` = mean_i of the variance of
  ``g_b,i`` over b; ``gsnr/<layer>`` = mean_i |mean_b g_b,i| / std_b g_b,i (signal-to-noise);
* ``dw/<layer>``: E|Δw| — mean absolute change of a latent weight per update;
  ``pw0/<layer>``: density of latent weights at 0 at the epoch end,
  #{|w| < h} / (2h · n) with ``h = PW0_BAND · mean|w|``; ``flip_pred/<layer>`` = pw0 · dw,
  the flips per update of a random walk over a density flat near 0: the weights within E|Δw|
  of zero (mass 2 · p_w(0) · E|Δw|) flip when they step toward it (probability ½). A ratio
  flips / flip_pred above 1 means steps near zero point toward zero more often than not;
* ``rate/<layer>``: firing rate of each spiking layer from ``model.activity`` (mean over
  the epoch's training batches); ``rate/mean``;
* ``synops/<block>``: synaptic operations per sample and inference of each spiking block on
  the training batches, ``T · density(input) · prod(out_shape) · fan_in`` (exact for dense
  layers; for convolutions it counts every kernel tap, padding borders included).

Leaves out: per-weight histories (memory), and anything about non-binary layers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch

from neuro_agmm.training.agmm import find_layers
from neuro_agmm.artifact import atomic_write
from neuro_agmm.training.callbacks import Callback


PW0_BAND = 0.05  # half-width of the band around 0 used for the weight density p_w(0), in units of mean|w|


def _signs(w: torch.Tensor) -> torch.Tensor:
    return w.detach() >= 0


def weight_density_at_zero(w: torch.Tensor, band: float = PW0_BAND) -> float:
    """``p_w(0)``: the fraction of weights with ``|w| < h``, per unit of ``w``, ``h = band · mean|w|``."""
    a = w.detach().abs().double()
    h = float(band * a.mean())
    return float((a < h).double().mean()) / (2 * h) if h > 0 else float("inf")


def block_synops(block: torch.nn.Module) -> Optional[float]:
    """Synaptic operations per sample of one forward of a spiking block, from its ``last_input``."""
    x = getattr(block, "last_input", None)
    w = getattr(getattr(block, "synapse", None), "weight", None)
    if x is None or w is None:
        return None
    fan_in = w[0].numel()
    t = x.shape[0]
    return t * float(x.float().mean()) * float(np.prod(block.out_shape)) * fan_in


class InstrumentationCallback(Callback):
    """Per-epoch flip / gradient / firing-rate metrics of the binary layers.

    Args:
        per_step: also keep one record per optimizer update in ``self.step_records``
            (keys ``epoch, step, flip/<layer>, grad_mean/<layer>, grad_var/<layer>``).
        step_log_path: if given (with ``per_step``), the step records are written there as
            JSON lines (atomically) at every epoch end.
        layers: ``"binary"`` (default) or ``"all"`` (every module with ``precision`` and a weight).

    Register it *after* AGMM in the trainer's callback list so the gradient statistics are
    the modulated ones. ``InstrumentationCallback()`` with no arguments is the usual use.
    """

    def __init__(self, per_step: bool = False, step_log_path: Optional[str | os.PathLike] = None,
                 layers: str = "binary") -> None:
        self.per_step = per_step
        self.step_log_path = Path(step_log_path) if step_log_path is not None else None
        self.layers = layers
        self.step_records: list[dict[str, float]] = []
        self._mods: list[tuple[str, torch.nn.Module]] = []
        self._before: dict[str, torch.Tensor] = {}
        self._epoch_ref: dict[str, torch.Tensor] = {}
        self._reset_acc()

    def _reset_acc(self) -> None:
        self._flips: dict[str, float] = {}
        self._n_updates = 0
        self._gsum: dict[str, list[float]] = {}  # name -> [mean, absmean, var] sums
        self._n_grads = 0
        self._rates: dict[str, float] = {}
        self._n_rates = 0
        self._pw: dict[str, dict[str, torch.Tensor]] = {}  # per-weight sums over updates: g, g², g·sign(w)
        self._dw: dict[str, float] = {}
        self._synops: dict[str, float] = {}

    def on_fit_start(self, model: torch.nn.Module, total_epochs: int, steps_per_epoch: int) -> None:
        self._mods = list(find_layers(model, self.layers))
        if not self._epoch_ref:  # a resumed run keeps the reference loaded from its state
            self._epoch_ref = {n: _signs(m.weight).clone() for n, m in self._mods}
        self._reset_acc()
        self._apply_restored()  # a resumed run continues the interrupted epoch's sums
        self._restored_acc = None
        if self._mods:  # restored states come from the CPU; the sums live where the weights do
            dev = self._mods[0][1].weight.device
            self._epoch_ref = {n: t.to(dev) for n, t in self._epoch_ref.items()}
            self._pw = {k: {kk: t.to(dev) for kk, t in v.items()} for k, v in self._pw.items()}

    def after_backward(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        rec: dict[str, float] = {}
        have = False
        for name, mod in self._mods:
            self._before[name] = mod.weight.detach().clone()
            g = mod.weight.grad
            if g is None:
                continue
            g = g.detach().double()
            sums = self._pw.setdefault(name, {k: torch.zeros_like(g) for k in ("g", "g2", "gt")})
            sums["g"] += g
            sums["g2"] += g * g
            sums["gt"] += g * torch.where(mod.weight.detach() >= 0, 1.0, -1.0).double()
            s = [float(g.mean()), float(g.abs().mean()), float(g.var(unbiased=False))]
            acc = self._gsum.setdefault(name, [0.0, 0.0, 0.0])
            for i in range(3):
                acc[i] += s[i]
            have = True
            if self.per_step:
                rec[f"grad_mean/{name}"], rec[f"grad_var/{name}"] = s[0], s[2]
        if have:
            self._n_grads += 1
        self._pending_rec = rec
        act = getattr(model, "activity", None)
        if isinstance(act, Mapping) and act:
            for k, v in act.items():
                self._rates[k] = self._rates.get(k, 0.0) + float(v)
            self._n_rates += 1
        if hasattr(model, "spiking_blocks"):
            for bname, block in model.spiking_blocks():
                so = block_synops(block)
                if so is not None:
                    self._synops[bname] = self._synops.get(bname, 0.0) + so

    def after_optimizer_step(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        rec = getattr(self, "_pending_rec", {})
        for name, mod in self._mods:
            before = self._before.get(name)
            if before is None:
                continue
            r = float((_signs(mod.weight) != (before >= 0)).float().mean())
            self._dw[name] = self._dw.get(name, 0.0) + float((mod.weight.detach() - before).abs().mean())
            self._flips[name] = self._flips.get(name, 0.0) + r
            if self.per_step:
                rec[f"flip/{name}"] = r
        self._n_updates += 1
        self._before = {}
        if self.per_step:
            self.step_records.append({"epoch": float(epoch), "step": float(step), **rec})

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> dict[str, float]:
        out: dict[str, float] = {}
        sizes = {n: m.weight.numel() for n, m in self._mods}
        total = sum(sizes.values()) or 1
        if self._n_updates:
            for n in sizes:
                out[f"flip/{n}"] = self._flips.get(n, 0.0) / self._n_updates
            out["flip/mean"] = sum(out[f"flip/{n}"] * sizes[n] for n in sizes) / total
        ep_flips = 0.0
        for n, m in self._mods:
            now = _signs(m.weight)
            ref = self._epoch_ref.get(n)
            if ref is not None and ref.shape == now.shape:
                r = float((now != ref).float().mean())
                out[f"flip_epoch/{n}"] = r
                ep_flips += r * sizes[n]
            self._epoch_ref[n] = now.clone()
        if self._mods:
            out["flip_epoch/mean"] = ep_flips / total
        if self._n_grads:
            for key, i in (("grad_mean", 0), ("grad_absmean", 1), ("grad_var", 2)):
                vals = [self._gsum[n][i] / self._n_grads for n in self._gsum]
                for n in self._gsum:
                    out[f"{key}/{n}"] = self._gsum[n][i] / self._n_grads
                if vals:
                    out[f"{key}/mean"] = float(np.mean(vals))
        if self._n_rates:
            for k, v in self._rates.items():
                out[f"rate/{k}"] = v / self._n_rates
            out["rate/mean"] = float(np.mean([v / self._n_rates for v in self._rates.values()]))
            for k, v in self._synops.items():
                out[f"synops/{k}"] = v / self._n_rates
        out.update(self._per_weight_stats())
        if self.per_step and self.step_log_path is not None:
            lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.step_records)
            atomic_write(self.step_log_path, lambda p: p.write_text(lines))
        self._reset_acc()
        return out

    def _per_weight_stats(self) -> dict[str, float]:
        """The per-weight gradient statistics, E|Δw|, p_w(0) and the flip prediction of this epoch."""
        out: dict[str, float] = {}
        n, mods = self._n_grads, dict(self._mods)
        for name, sums in self._pw.items():
            if not n:
                break
            mean = sums["g"] / n
            var = (sums["g2"] / n - mean * mean).clamp_min(0.0)
            out[f"gtoward/{name}"] = float((sums["gt"] / n).mean())
            out[f"gmean_abs/{name}"] = float(mean.abs().mean())
            out[f"gvar/{name}"] = float(var.mean())
            sd = var.sqrt()
            ok = sd > 0
            out[f"gsnr/{name}"] = float((mean.abs()[ok] / sd[ok]).mean()) if bool(ok.any()) else float("nan")
        for name, mod in self._mods:
            pw0 = weight_density_at_zero(mod.weight)
            out[f"pw0/{name}"] = pw0
            if self._n_updates and name in self._dw:
                out[f"dw/{name}"] = self._dw[name] / self._n_updates
                out[f"flip_pred/{name}"] = pw0 * out[f"dw/{name}"]
        sizes = {nm: m.weight.numel() for nm, m in mods.items()}
        for key in ("gtoward", "gmean_abs", "gvar", "gsnr", "pw0", "dw", "flip_pred"):
            have = [nm for nm in sizes if f"{key}/{nm}" in out]
            if have:
                out[f"{key}/mean"] = sum(out[f"{key}/{nm}"] * sizes[nm] for nm in have) / sum(sizes[nm] for nm in have)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Epoch-start signs and the running sums of the current epoch (a mid-epoch resume continues exactly)."""
        return {"epoch_ref": {n: t.cpu().clone() for n, t in self._epoch_ref.items()},
                "acc": {"flips": dict(self._flips), "n_updates": self._n_updates,
                        "gsum": {k: list(v) for k, v in self._gsum.items()}, "n_grads": self._n_grads,
                        "rates": dict(self._rates), "n_rates": self._n_rates,
                        "pw": {k: {kk: t.cpu().clone() for kk, t in v.items()} for k, v in self._pw.items()},
                        "dw": dict(self._dw), "synops": dict(self._synops)},
                "step_records": list(self.step_records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch_ref = {n: torch.as_tensor(t).bool() for n, t in state.get("epoch_ref", {}).items()}
        self._restored_acc = state.get("acc")
        self.step_records = list(state.get("step_records", []))
        self._apply_restored()

    def _apply_restored(self) -> None:
        acc = getattr(self, "_restored_acc", None)
        if not acc:
            return
        self._flips, self._n_updates = dict(acc["flips"]), int(acc["n_updates"])
        self._gsum, self._n_grads = {k: list(v) for k, v in acc["gsum"].items()}, int(acc["n_grads"])
        self._rates, self._n_rates = dict(acc["rates"]), int(acc["n_rates"])
        self._pw = {k: {kk: torch.as_tensor(t).double().clone() for kk, t in v.items()}
                    for k, v in acc.get("pw", {}).items()}
        self._dw, self._synops = dict(acc.get("dw", {})), dict(acc.get("synops", {}))


# --- flips from saved files -------------------------------------------------------------------

def _binary_names_of_checkpoint(ck: Mapping) -> Optional[list[str]]:
    """``<layer>.weight`` keys of the binary layers of a neuro_agmm checkpoint (rebuilt from its model_config)."""
    mc = ck.get("model_config")
    if not isinstance(mc, Mapping):
        return None
    try:
        from neuro_agmm.training.models import ModelConfig, build_from_config
        model = build_from_config(ModelConfig.from_dict(dict(mc)))
    except Exception:  # noqa: BLE001 — an unknown/older model config: fall back to all weights
        return None
    return [f"{n}.weight" for n, _ in find_layers(model, "binary")]


def _load_weights(src: Any) -> tuple[dict[str, np.ndarray], Optional[list[str]]]:
    """(name -> latent or ±1 weight array, binary names if known) from a state dict, checkpoint or artifact."""
    binary: Optional[list[str]] = None
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if path.is_dir():
            path = path / "checkpoint.pt"
        if path.suffix in (".h5", ".hdf5"):
            from neuro_agmm.artifact import read_artifact
            art = read_artifact(path)
            w = {l.name: np.asarray(l.weight) for l in art.layers if l.precision == "binary"}
            return w, list(w)
        src = torch.load(path, map_location="cpu", weights_only=True)  # never runs code from the file
    if isinstance(src, torch.nn.Module):
        binary = [f"{n}.weight" for n, _ in find_layers(src, "binary")] or None
        src = src.state_dict()
    if isinstance(src, Mapping):
        binary = binary or _binary_names_of_checkpoint(src)
        for key in ("model", "model_state", "state_dict", "model_state_dict"):
            if key in src and isinstance(src[key], Mapping):
                src = src[key]
                break
        out = {}
        for k, v in src.items():
            if isinstance(v, torch.Tensor):
                out[k] = v.detach().cpu().numpy()
            elif isinstance(v, np.ndarray):
                out[k] = v
        return out, binary
    raise TypeError(f"flip_ratio_between: cannot read weights from {type(src).__name__}")


def flip_ratio_between(state_a: Any, state_b: Any, names: Optional[Iterable[str]] = None) -> dict[str, float]:
    """Fraction of weights whose sign differs between two saved states, per tensor and overall.

    ``state_a``/``state_b``: state dicts, ``nn.Module``s, checkpoint files or run directories
    (``checkpoint.pt`` of ``neuro_agmm.train``; a dict holding the state under
    ``model``/``model_state``/``state_dict`` is unwrapped) or artifact paths (``.h5``).
    ``names``: the tensors to compare; default: the binary layers' latent weights when they
    can be told (artifacts, modules, neuro_agmm checkpoints with ``model_config``), else every
    ``*.weight`` with >= 2 dims. Sign is ``w >= 0`` (the artifact stores ±1, the same rule).
    Returns ``{name: ratio, ..., "mean": ratio over all compared weights}``.
    """
    (a, bin_a), (b, bin_b) = _load_weights(state_a), _load_weights(state_b)
    if names is None:
        names = bin_a or bin_b or [k for k, v in a.items() if (k.endswith(".weight") or "." not in k) and v.ndim >= 2]
    names = list(names)
    if not names:
        raise ValueError("flip_ratio_between: no weight tensors to compare")
    out: dict[str, float] = {}
    flipped = total = 0
    for n in names:
        if n not in a or n not in b:
            raise KeyError(f"flip_ratio_between: {n!r} missing in {'first' if n not in a else 'second'} state")
        if a[n].shape != b[n].shape:
            raise ValueError(f"flip_ratio_between: {n!r} has shape {a[n].shape} vs {b[n].shape}")
        d = int(np.count_nonzero((a[n] >= 0) != (b[n] >= 0)))
        out[n] = d / a[n].size
        flipped += d
        total += a[n].size
    out["mean"] = flipped / total
    return out
