"""AGMM — Adaptive Gradient Modulation Mechanism: **our reconstruction**, not the paper's equations.

Why this module exists: Liang et al. (AAAI 2025, arXiv 2502.14344) report that binary SNNs
train badly because the latent weights flip sign too often, that the flip frequency is
driven by the mean and variance of the weight gradients, and that AGMM reduces flips "by
adaptively adjusting the gradients during the learning process" through a time-dependent
factor ``α[t]`` and a sigmoid modulation ``σ(E(X[t]))`` of a layer's input statistics
``X[t]``. The paper's full text was not available to us; the equations below are ours,
built from those public statements only (see ``docs/agmm.md``).

What we compute (per binary layer ``l``, per batch, per SNN time step ``t = 0..T-1``)::

    E_t     = mean(X_l[t])                          # input statistic: mean input activity at step t
    c_l,s_l = running mean / std of E_t             # adaptive centre and spread (EMA over batches)
    g_t     = σ(k · (E_t − c_l) / s_l)              # sigmoid modulation
    α[t]    = γ^t (exp) | 1 (const) | (t+1)/T (linear)
    m_t     = a(p) · α[t] · g_t / Z                 # Z = mean_t(α[t]) · σ(0) if normalize else 1
    a(p)    = 1 − anneal · p                        # p = training progress in [0, 1]

and the latent-weight gradient becomes ``∂L/∂W ← Σ_t m_t · ∂L_t/∂W`` where ``∂L_t/∂W`` is the
contribution of time step ``t`` (``g[t]ᵀ x[t]`` for a dense layer). Where it acts is the
selectable ``where``:

* ``"weight"``  per-step factor on the layer's own parameter gradients only: the gradient
  arriving at the layer output at step ``t`` is multiplied by ``m_t`` and the gradient leaving
  through the layer input is divided by ``m_t`` again, so earlier layers see the unmodulated
  gradient (exact up to float rounding);
* ``"output"``  per-step factor on the gradient of the layer output (a gradient gate placed
  after the binary layer, so upstream layers are modulated too);
* ``"layer"``   one factor per layer, ``mean_t m_t``, multiplied onto ``weight.grad`` after
  ``backward`` (cheapest; no per-step weighting);
* ``"forward"`` not a gradient factor: the literal forward gate of ``neuro_agmm.training.forward_gate``
  (``α[t]·σ(k(E(x[t]) − c))`` times the batch-normed current, learnable α, k, c), built into the
  model by the trainer; this callback then only logs the gates (``agmm/gate/<layer>``, ``agmm/k/…``,
  ``agmm/c/…``). Changes the forward pass, so the export folds it first (see that module).

Variants aimed at fewer flips / lower gradient variance (``docs/agmm_variants_flips.md``;
all off by default, selectable, and still gradient-only)::

    damp    k < 0:  g_t = σ(−|k| (E_t − c)/s)       # high-activity steps get the *smaller* factor
    renorm  m_t = a(p) · α[t] g_t / mean_s(α[s] g_s)   # per batch: factors average exactly a(p),
                                                       # a pure re-weighting across steps (replaces Z)
    brake   ∂L/∂W_ij ← ψ_ij · ∂L/∂W_ij,  ψ_ij = ψ0 + (1 − ψ0)(2σ(|W_ij|/τ) − 1),
            τ = brake · mean|W|, ψ0 = 0.1              # OUR addition, not in the public description:
                                                       # latent weights near 0 get smaller steps

``damp`` is only a sign of ``k`` (no new code path). ``brake`` acts on the binary layers'
latent-weight gradients after ``backward`` (after the α[t]·σ(E) factor), for any ``where``.
Measured (digits MLP, seeds 0–2): ``damp`` cuts flips by 27–37 % vs vanilla but costs 0.2–0.5
accuracy points vs vanilla (about 1 point vs the default); ``renorm`` and ``brake`` do not
reduce flips. So the default stays ``k = +2`` without ``renorm``/``brake``.

Everything acts on gradients only: forward values are bit-identical with and without AGMM,
so the exported artifact is the same pure BSNN (nothing to fold). A learnable ``k``/``c``
is *not* offered for them on purpose: since the forward pass does not depend on them, the loss
has zero gradient with respect to them. The one variant that changes the forward pass, and so
learns its ``α``, ``k``, ``c``, is ``where="forward"`` (``forward_gate``). Left out: the paper's
exact equations and constants.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator, Optional

import torch

from neuro_agmm.training.callbacks import Callback

WHERE = ("weight", "output", "layer", "forward")
ALPHA = ("exp", "const", "linear")


@dataclass
class AGMMConfig:
    """Knobs of the reconstruction. Defaults are the variant the measurements in docs/agmm.md chose."""

    where: str = "output"  # "weight" | "output" | "layer" (see module docstring)
    alpha: str = "exp"  # α[t] schedule over SNN time steps: "exp" (γ^t), "const", "linear" ((t+1)/T)
    gamma: float = 0.8  # decay of the "exp" schedule
    k: float = 2.0  # sigmoid slope
    c: float = 0.0  # sigmoid centre (used when adaptive=False)
    adaptive: bool = True  # centre/spread from running mean/std of E_t (per layer)
    momentum: float = 0.9  # EMA momentum of the running statistics
    normalize: bool = True  # divide by mean_t α[t]·σ(0) so a typical step has factor ~1
    anneal: float = 0.0  # a(p) = 1 - anneal * training progress
    time_steps: Optional[int] = None  # T; needed when the layer is called once per time step
    layout: str = "auto"  # "auto" | "sequence" (T, B, ...) | "step" (one call per step) | "flat" (T*B, ...)
    layers: str = "binary"  # "binary" layers only, or "all" layers with a weight (incl. int8/float)
    renorm: bool = False  # per batch: divide m_t by mean_t(α[t]·g_t) (replaces Z; needs the whole sequence)
    brake: float = 0.0  # > 0: scale W.grad by ψ(|W|) with τ = brake·mean|W| (our addition; 0 = off)

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise ValueError(f"AGMM where={self.where!r}: expected one of {WHERE}")
        if self.alpha not in ALPHA:
            raise ValueError(f"AGMM alpha={self.alpha!r}: expected one of {ALPHA}")
        if self.layout not in ("auto", "sequence", "step", "flat"):
            raise ValueError(f"AGMM layout={self.layout!r}: expected auto|sequence|step|flat")
        if self.layers not in ("binary", "all"):
            raise ValueError(f"AGMM layers={self.layers!r}: expected binary|all")
        if not (0.0 < self.gamma <= 1.0):
            raise ValueError(f"AGMM gamma={self.gamma}: must be in (0, 1]")
        if not (0.0 <= self.anneal < 1.0):
            raise ValueError(f"AGMM anneal={self.anneal}: must be in [0, 1)")
        if not (self.brake >= 0.0 and math.isfinite(self.brake)):
            raise ValueError(f"AGMM brake={self.brake}: must be >= 0 (0 = off)")
        if self.renorm and self.layout == "step":
            raise ValueError("AGMM renorm=True needs all T steps of a batch at once (layout flat/sequence/auto)")


def alpha_schedule(kind: str, time_steps: int, gamma: float = 0.8) -> torch.Tensor:
    """``α[t]`` for ``t = 0..T-1`` (float32, shape (T,))."""
    t = torch.arange(time_steps, dtype=torch.float32)
    if kind == "exp":
        return gamma ** t
    if kind == "const":
        return torch.ones(time_steps)
    if kind == "linear":
        return (t + 1) / time_steps
    raise ValueError(f"unknown alpha schedule {kind!r}")


def modulation_factors(stats: torch.Tensor, alpha: torch.Tensor, k: float, centre: float, spread: float,
                       normalize: bool, anneal_factor: float = 1.0, renorm: bool = False) -> torch.Tensor:
    """``m_t = a · α[t] · σ(k (E_t − c) / s) / Z`` for statistics ``stats`` (shape (T,)). Pure function.

    ``renorm``: ``Z = mean_t(α[t] · σ(...))`` of these very steps instead, so ``mean_t m_t = a`` exactly.
    """
    g = torch.sigmoid(k * (stats - centre) / spread)
    m = anneal_factor * alpha * g
    if renorm:
        m = m / (alpha * g).mean().clamp_min(1e-12)
    elif normalize:
        m = m / (alpha.mean() * 0.5)
    return m.clamp_min(1e-6)


BRAKE_FLOOR = 0.1  # ψ0: the smallest factor the brake gives (a weight at exactly 0 still moves)


def brake_factors(w: torch.Tensor, rho: float, floor: float = BRAKE_FLOOR) -> torch.Tensor:
    """``ψ = ψ0 + (1 − ψ0)(2σ(|w|/τ) − 1)`` with ``τ = rho · mean|w|`` (our addition). Pure function.

    1 for ``|w| ≫ τ``, ``ψ0`` at ``w = 0``: latent weights about to change sign take smaller steps.
    """
    a = w.detach().abs()
    tau = (rho * a.mean()).clamp_min(1e-12)
    return floor + (1.0 - floor) * (2.0 * torch.sigmoid(a / tau) - 1.0)


class _ScaleGrad(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``factor`` (broadcast)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(factor)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (factor,) = ctx.saved_tensors
        return grad * factor, None


def scale_grad(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``x`` unchanged; its gradient multiplied by ``factor`` (broadcastable to ``x``)."""
    return _ScaleGrad.apply(x, factor.to(dtype=x.dtype, device=x.device))


def find_layers(model: torch.nn.Module, which: str = "binary") -> Iterator[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of the layers AGMM/instrumentation act on.

    A binary layer is a module with ``precision == "binary"`` and a ``weight`` parameter (the
    convention of ``neuro_agmm.binary_layers``); ``which="all"`` adds every module with a
    ``precision`` attribute and a weight parameter.
    """
    for name, mod in model.named_modules():
        w = getattr(mod, "weight", None)
        prec = getattr(mod, "precision", None)
        if not isinstance(w, torch.nn.Parameter) or prec is None:
            continue
        if which == "binary" and prec != "binary":
            continue
        yield name, mod


def _dist_world() -> int:
    return torch.distributed.get_world_size() if (torch.distributed.is_available()
                                                  and torch.distributed.is_initialized()) else 1


class _LayerState:
    """Running statistics and per-batch bookkeeping of one layer."""

    def __init__(self, name: str, module: torch.nn.Module) -> None:
        self.name, self.module = name, module
        self.run_mean: Optional[float] = None
        self.run_var: float = 1.0
        self.t = 0  # time-step counter for layout "step"
        self.pending: Optional[torch.Tensor] = None  # factor to apply in the forward hook
        self.batch_factors: list[torch.Tensor] = []  # m_t of this batch (for where="layer" and logging)
        self.sum_m = 0.0
        self.n_m = 0


class AGMM(Callback):
    """The AGMM training callback: installs forward hooks on the binary layers at ``on_fit_start``.

    Construct with an ``AGMMConfig`` or keyword arguments (``AGMM(where="layer", k=4.0)``).
    Metrics per epoch: ``agmm/m/<layer>`` (mean modulation factor) and ``agmm/centre/<layer>``.
    """

    def __init__(self, config: Optional[AGMMConfig] = None, **kwargs: Any) -> None:
        if config is not None and kwargs:
            raise TypeError("give either an AGMMConfig or keyword arguments, not both")
        self.config = config or AGMMConfig(**kwargs)
        self._layers: list[_LayerState] = []
        self._gates: list[tuple[str, torch.nn.Module]] = []  # where="forward": the model's gated blocks
        self._handles: list[Any] = []
        self._total_steps = 1
        self.global_step = 0
        self._saved_running: dict[str, tuple[Optional[float], float]] = {}
        self._saved_sums: dict[str, tuple[float, int]] = {}
        self._root_tb: Optional[tuple[int, int]] = None  # (T, B) of the model's last training input
        self._alpha_cache: Optional[tuple[tuple, torch.Tensor]] = None

    # --- hooks ---------------------------------------------------------------------------------
    def on_fit_start(self, model: torch.nn.Module, total_epochs: int, steps_per_epoch: int) -> None:
        self.remove()
        if self.config.where == "forward":
            from neuro_agmm.training.forward_gate import gated_blocks
            self._gates = gated_blocks(model)
            if not self._gates:
                raise ValueError("AGMM where='forward': the model has no forward gates (build it with "
                                 "ModelConfig.forward_gate, as the trainer does for --agmm-where forward)")
            return
        self._total_steps = max(1, int(total_epochs) * int(steps_per_epoch))
        self._handles.append(model.register_forward_pre_hook(self._root_hook))
        for name, mod in find_layers(model, self.config.layers):
            st = _LayerState(name, mod)
            if name in self._saved_running:
                st.run_mean, st.run_var = self._saved_running[name]
            if name in self._saved_sums:  # mid-epoch resume: continue this epoch's logging sums
                st.sum_m, st.n_m = self._saved_sums.pop(name)
            self._layers.append(st)
            self._handles.append(mod.register_forward_pre_hook(self._make_pre_hook(st)))
            if self.config.where != "layer":
                self._handles.append(mod.register_forward_hook(self._make_post_hook(st)))
        if not self._layers:
            raise ValueError("AGMM: the model has no binary layers (modules with precision='binary' and a weight)")

    def remove(self) -> None:
        """Detach all hooks (the model then trains exactly as vanilla)."""
        for h in self._handles:
            h.remove()
        self._handles, self._layers = [], []

    def on_batch_start(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        for st in self._layers:
            st.t = 0
            st.batch_factors = []

    def after_backward(self, model: torch.nn.Module, epoch: int, step: int) -> None:
        cfg = self.config
        for st in self._layers:
            w = st.module.weight
            if cfg.brake > 0 and w.grad is not None:
                # ψ depends on W only, the same on every rank (gradients are already averaged): no sync needed
                w.grad.mul_(brake_factors(w, cfg.brake).to(w.grad.dtype))
            if not st.batch_factors:
                continue
            m = torch.cat([f.reshape(-1) for f in st.batch_factors]).mean()
            if cfg.where == "layer":
                if _dist_world() > 1:  # every rank must apply the same factor to the averaged gradient
                    torch.distributed.all_reduce(m)
                    m = m / _dist_world()
                for p in (st.module.weight,):
                    if p.grad is not None:
                        p.grad.mul_(m.to(p.grad.dtype))
            st.sum_m += float(m)
            st.n_m += 1
            st.t = 0
            st.batch_factors = []
        self.global_step += 1

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> dict[str, float]:
        self._sync_running()
        out: dict[str, float] = {}
        for name, block in self._gates:
            g = block.gate
            mean = g.take_mean()  # over this epoch's training batches and the evaluation after it
            if mean is not None:
                out[f"agmm/gate/{name}"] = mean
            out[f"agmm/k/{name}"], out[f"agmm/c/{name}"] = float(g.k.detach()), float(g.c.detach())
        for st in self._layers:
            if st.n_m:
                out[f"agmm/m/{st.name}"] = st.sum_m / st.n_m
            if st.run_mean is not None:
                out[f"agmm/centre/{st.name}"] = float(st.run_mean)
            st.sum_m, st.n_m = 0.0, 0
        return out

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        running = {st.name: (st.run_mean, st.run_var) for st in self._layers} or dict(self._saved_running)
        sums = {st.name: (st.sum_m, st.n_m) for st in self._layers}
        return {"config": asdict(self.config), "global_step": self.global_step, "running": running, "sums": sums}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_step = int(state.get("global_step", 0))
        self._saved_running = {k: (None if v[0] is None else float(v[0]), float(v[1]))
                               for k, v in state.get("running", {}).items()}
        self._saved_sums = {k: (float(v[0]), int(v[1])) for k, v in state.get("sums", {}).items()}
        for st in self._layers:
            if st.name in self._saved_running:
                st.run_mean, st.run_var = self._saved_running[st.name]
            if st.name in self._saved_sums:
                st.sum_m, st.n_m = self._saved_sums.pop(st.name)

    # --- internals -----------------------------------------------------------------------------
    def _active(self, module: torch.nn.Module) -> bool:
        return module.training and torch.is_grad_enabled()

    def _root_hook(self, module: torch.nn.Module, args: tuple) -> None:
        """The model's input is (T, B, ...) by contract: remember T and B to recognise flat layer inputs."""
        if args and isinstance(args[0], torch.Tensor) and args[0].dim() >= 2 and self._active(module):
            self._root_tb = (int(args[0].shape[0]), int(args[0].shape[1]))

    def _flat_steps(self) -> Optional[int]:
        """T: from the config, else from the model's input (T, B, ...)."""
        if self.config.time_steps is not None:
            return self.config.time_steps
        return self._root_tb[0] if self._root_tb is not None else None

    def _split(self, module: torch.nn.Module, x: torch.Tensor) -> tuple[str, torch.Tensor]:
        """Layout of the input and its per-step statistics E_t (shape (T,) or (1,) for one step).

        ``auto``: (T, B, ...) when the input has one more dim than a per-step input of this
        layer; (T*B, ...) when its first dim is T*B of the model's input (T, B, ...) (the way
        ``neuro_agmm.models`` calls its synapses); else one call per time step.
        """
        cfg = self.config
        layout = cfg.layout
        per_step_ndim = module.weight.dim()  # linear: (B, F) per step; conv: (B, C, H, W) per step
        if layout == "auto":
            tb = self._root_tb
            if x.dim() == per_step_ndim + 1:
                layout = "sequence"
            elif tb is not None and tb[0] > 1 and x.shape[0] == tb[0] * tb[1]:
                layout = "flat"
            else:
                layout = "step"
        xd = x.detach()
        if layout == "sequence":
            return layout, xd.float().reshape(xd.shape[0], -1).mean(dim=1)
        if layout == "flat":
            T = self._flat_steps()
            if T is None or x.shape[0] % T:
                raise ValueError(f"AGMM layout='flat': input rows {x.shape[0]} are not T*B for T={T}")
            return layout, xd.float().reshape(T, -1).mean(dim=1)
        return layout, xd.float().mean().reshape(1)

    def _factors(self, st: _LayerState, stats: torch.Tensor, t0: int, T: int) -> torch.Tensor:
        cfg = self.config
        if cfg.adaptive:
            # update the running centre/spread with this batch's statistics, then use them
            bm, bv = float(stats.mean()), float(stats.var(unbiased=False)) if stats.numel() > 1 else 0.0
            if st.run_mean is None:
                st.run_mean, st.run_var = bm, max(bv, 1e-4)
            else:
                mom = cfg.momentum
                # spread across steps plus drift across batches
                st.run_var = mom * st.run_var + (1 - mom) * (bv + (bm - st.run_mean) ** 2)
                st.run_mean = mom * st.run_mean + (1 - mom) * bm
            centre, spread = st.run_mean, math.sqrt(st.run_var) + 1e-3
        else:
            centre, spread = cfg.c, 1.0
        key = (cfg.alpha, T, cfg.gamma, stats.device)
        if self._alpha_cache is None or self._alpha_cache[0] != key:
            self._alpha_cache = (key, alpha_schedule(cfg.alpha, T, cfg.gamma).to(stats.device))
        alpha_all = self._alpha_cache[1]
        alpha = alpha_all[t0:t0 + stats.numel()]
        progress = min(1.0, self.global_step / self._total_steps)
        a = 1.0 - cfg.anneal * progress
        if cfg.renorm:  # the whole sequence is here (checked): normalise over this batch's steps
            return modulation_factors(stats, alpha, cfg.k, centre, spread, normalize=False, anneal_factor=a,
                                      renorm=True)
        m = modulation_factors(stats, alpha, cfg.k, centre, spread, normalize=False, anneal_factor=a)
        if cfg.normalize:
            m = m / (alpha_all.mean() * 0.5)
        return m

    def _make_pre_hook(self, st: _LayerState):
        def pre_hook(module: torch.nn.Module, args: tuple):
            if not args or not isinstance(args[0], torch.Tensor) or not self._active(module):
                st.pending = None
                return None
            x = args[0]
            layout, stats = self._split(module, x)
            if layout == "step":
                if self.config.renorm:
                    raise ValueError(f"AGMM renorm=True: layer {st.name!r} is called once per time step; "
                                     "renorm needs all T steps at once")
                T = self._flat_steps()
                if T is None:
                    if self.config.alpha == "exp" and not self.config.normalize:
                        T = st.t + 1
                    else:
                        raise ValueError("AGMM: the layer is called once per time step; set time_steps=T")
                if st.t >= T:
                    raise ValueError(f"AGMM: layer {st.name!r} called {st.t + 1} times in one batch but "
                                     f"time_steps={T}")
                m = self._factors(st, stats, st.t, T)
                st.t += 1
                shape = (1,) * x.dim()
            else:
                T = stats.numel()
                m = self._factors(st, stats, 0, T)
                if layout == "sequence":
                    shape = (T,) + (1,) * (x.dim() - 1)
                else:  # flat: (T*B, ...) -> repeat each step's factor over its batch rows
                    m_rows = m.repeat_interleave(x.shape[0] // T)
                    st.batch_factors.append(m)
                    st.pending = m_rows.reshape((x.shape[0],) + (1,) * (x.dim() - 1))
                    return self._wrap_input(x, st.pending, args)
            st.batch_factors.append(m)
            st.pending = m.reshape(shape)
            return self._wrap_input(x, st.pending, args)
        return pre_hook

    def _wrap_input(self, x: torch.Tensor, factor: torch.Tensor, args: tuple):
        if self.config.where != "weight" or not x.requires_grad:
            return None
        return (scale_grad(x, 1.0 / factor),) + tuple(args[1:])

    def _make_post_hook(self, st: _LayerState):
        def post_hook(module: torch.nn.Module, args: tuple, out: Any):
            factor, st.pending = st.pending, None
            if factor is None or not isinstance(out, torch.Tensor) or not out.requires_grad:
                return None
            return scale_grad(out, factor)
        return post_hook

    def _sync_running(self) -> None:
        """Average the running statistics across ranks (distributed training) once per epoch."""
        if _dist_world() <= 1:
            return
        for st in self._layers:
            if st.run_mean is None:
                continue
            v = torch.tensor([st.run_mean, st.run_var], dtype=torch.float64)
            torch.distributed.all_reduce(v)
            v /= _dist_world()
            st.run_mean, st.run_var = float(v[0]), float(v[1])


def config_from(cfg: Any) -> AGMMConfig:
    """``AGMMConfig`` from a trainer config: reads ``agmm_<field>`` attributes (and ``time_steps``/``T``).

    ``agmm_variant`` is accepted as an alias of ``agmm_where``. Unknown/missing attributes keep defaults.
    """
    kwargs: dict[str, Any] = {}
    for f in fields(AGMMConfig):
        v = getattr(cfg, f"agmm_{f.name}", None)
        if v is not None:
            kwargs[f.name] = v
    variant = getattr(cfg, "agmm_variant", None)
    if variant is not None and "where" not in kwargs:
        kwargs["where"] = variant
    if "time_steps" not in kwargs:
        for attr in ("time_steps", "T"):
            v = getattr(cfg, attr, None)
            if isinstance(v, int) and v > 0:
                kwargs["time_steps"] = v
                break
    return AGMMConfig(**kwargs)


def make_callback(cfg: Any = None, **overrides: Any) -> AGMM:
    """The trainer's entry point: ``AGMM`` configured from ``cfg`` (H1's TrainConfig), then ``overrides``."""
    base = asdict(config_from(cfg)) if cfg is not None else {}
    base.update(overrides)
    return AGMM(AGMMConfig(**base))
