"""Quantizer: a float ``ModelArtifact`` -> an ``IntegerNetwork`` for Loihi-style cores.

Why: the artifact stores ±1 (or int8) weights with per-channel scales, biases, batch
norm and float neuron parameters; a core stores integer mantissas, one weight exponent
per layer, per-neuron threshold and bias registers and 12-bit decays. This module folds
the float parameters into those registers and reports what the rounding costs.

The rule (per layer, per output neuron ``o``; ``core_spec`` gives the integer dynamics)
----------------------------------------------------------------------------------------
``LayerSpec.folded_affine()`` gives ``input_gain * I = a_o * z + c_o``. For the first layer
``a_o`` also absorbs ``input_scale`` (``z`` is then computed on the integer input levels).
With ``du = 4095`` the current is cleared each step, so the core computes
``v_int[t] = decay(v_int[t-1], dv) + (z * 2**k << 6) + bias``; the float neuron computes
``v[t] = leak * v[t-1] + a_o * z + c_o``. They coincide (up to rounding) under
``v_int = v * 2**(k+6) / a_o``, which gives

* weights: ``weight_mant = W`` (±1 for binary layers, the int8 codes otherwise),
  ``weight_exp = k`` (one per layer); a neuron with ``a_o < 0`` gets its weight row (conv:
  its output channel's kernel) negated and uses ``|a_o|`` (±1 stays ±1);
* ``vth_o = round(threshold * 2**k / |a_o|)`` (the core compares ``v > vth << 6``);
* ``bias_o = round(c_o / |a_o| * 2**(k+6))``, split into a 13-bit signed mantissa and the
  smallest exponent in 0..7 that fits (so the bias keeps the most precision);
* ``dv = round(4096 * (1 - leak))``, ``du = 4095``.

The readout layer (``spiking=False``) needs ONE factor for all neurons (its prediction is
an argmax across neurons): if all ``|a_o|`` are equal the stored codes are kept exactly;
otherwise ``a_o * W_o`` is re-quantised to int8 codes on a common scale (reported). It gets
``vth = VTH_MAX`` and the quantizer proves its voltage can never exceed ``VTH_MAX << 6``.

Choosing ``k`` (the weight exponent): the largest integer (precision grows with ``2**k``)
such that, for ANY input with values in ``[0, input_max]`` (first layer) or ``{0, 1}``
(spikes) and any run of up to ``time_steps`` steps:

1. ``ceil(|z| * 2**k) << 6 <= 2**23 - 1`` with ``|z|`` bounded by the sum of the positive (or
   of the negative) weights times the largest input — the 24-bit current never wraps;
2. the negative voltage never reaches the clip ``-(2**23 - 1)``: ``core_spec.run_bounds`` (the
   same step-by-step rule the emulator uses to skip its wrap/clip passes) over ``T`` steps of
   the negative drive and negative bias;
3. readout only: the same bound on the positive side stays ``<= VTH_MAX << 6`` (no spike);
4. ``vth <= VTH_MAX`` and every bias fits ``mant << exp`` with 13-bit mant and exp <= 7.

(For spiking layers the positive clip cannot change a spike: any voltage that reaches it
is above threshold.) A layer for which no ``k`` in ``K_RANGE`` works raises ``ValueError``
naming the layer and the limiting value.

Residual adds (a layer with ``shortcuts``, core_spec rule 1b)
---------------------------------------------------------
The neuron's voltage unit is fixed by its main block (``v_int = v * 2**(k+6) / |a_o|``). A
shortcut branch with folded per-channel ``(a_b, c_b)`` (``ShortcutSpec.folded_affine`` times the
layer's ``input_gain``, times ``input_scale`` when it reads the input) contributes
``a_b,o * z_b`` to ``v``, i.e. ``W_b * r_o`` per synapse in the main block's units, with
``r_o = a_b,o / |a_o|``. Its mantissas are ``m = round(W_b * r_o * 2**e_b)`` with ``e_b`` the
largest integer that keeps ``|m| <= 127`` (8-bit synapses), and its weight exponent is
``k - e_b``; its bias ``c_b`` is added to the neuron's. The core adds the blocks' activations
exactly (rule 1b); what rounding costs is ``LayerQuant.shortcut_rel_err_max`` (mantissa
rounding relative to the largest branch weight; 0 where ``W_b * r_o * 2**e_b`` are integers, e.g. an
identity branch whose ``r_o`` are powers of two). The bounds (rules 1-3) use the sum of every
block's drive. The readout takes no shortcuts.

What it leaves out: per-neuron weight exponents (Loihi has one per synapse group), and
rounding modes other than round-half-to-even (NumPy's ``round``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer, IntSynapse
from neuro_agmm.artifact import INPUT_NODE, LayerSpec, ModelArtifact

K_RANGE = range(24, -25, -1)  # weight exponents tried, most precise first
V_LIMIT = core_spec.MAX_UV - 1  # |v| clip of the 24-bit voltage register
U_LIMIT = core_spec.MAX_UV - 1  # |u| below this never wraps
READOUT_LIMIT = core_spec.VTH_MAX << core_spec.VTH_SHIFT  # readout voltage must stay <= this
BIAS_LIMIT_POS = core_spec.BIAS_MANT_MAX << core_spec.BIAS_EXP_MAX
BIAS_LIMIT_NEG = core_spec.BIAS_MANT_MIN << core_spec.BIAS_EXP_MAX
EQUAL_SCALE_RTOL = 1e-6


@dataclass
class LayerQuant:
    """What quantizing one layer did and cost."""

    name: str
    kind: str
    readout: bool
    weight_bits: int
    weight_exp: int
    dv: int
    n_flipped: int  # neurons whose weight row was negated (a_o < 0)
    vth_min: int
    vth_max: int
    vth_rel_err_max: float  # max |vth - exact| / exact over neurons (0 for the readout)
    bias_rel_err_max: float  # max |bias_eff - exact| / |exact| over neurons with a nonzero exact bias
    bias_err_thr_max: float  # max |bias_eff - exact| / (threshold in voltage units), per step
    weight_rel_err_max: float  # readout re-quantisation: max |error| / max |weight|; 0 when codes are kept
    u_bound: int  # worst-case |u| (must stay < 2**23)
    v_neg_bound: int  # worst-case -v (must stay < 2**23 - 1)
    v_pos_bound: int  # worst-case v for the readout (must stay <= VTH_MAX << 6); 0 otherwise
    limited_by: str  # which constraint stopped k from growing
    shortcut_exps: list[int] = field(default_factory=list)  # weight exponent of each shortcut block
    shortcut_rel_err_max: float = 0.0  # max |m 2**-e - W r| / max |W r| over the shortcut blocks


@dataclass
class QuantReport:
    """Per-layer quantisation figures and, if sample inputs were given, float-vs-integer agreement."""

    layers: list[LayerQuant]
    time_steps: int  # the bound guarantees hold for runs up to this many steps
    input_max: int
    n_samples: int = 0
    spike_agreement: list[float] = field(default_factory=list)  # per spiking layer, fraction of equal (t, n)
    prediction_agreement: Optional[float] = None
    float_accuracy: Optional[float] = None
    int_accuracy: Optional[float] = None

    def to_dict(self) -> dict:
        return {"layers": [asdict(l) for l in self.layers], "time_steps": self.time_steps,
                "input_max": self.input_max, "n_samples": self.n_samples,
                "spike_agreement": list(self.spike_agreement), "prediction_agreement": self.prediction_agreement,
                "float_accuracy": self.float_accuracy, "int_accuracy": self.int_accuracy}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantReport":
        d = dict(d)
        d["layers"] = [LayerQuant(**l) for l in d["layers"]]
        return cls(**d)

    def summary(self) -> str:
        w = max([12] + [len(l.name) + 1 for l in self.layers])  # the layer-name column
        lines = [f"quantization (bounds hold for T <= {self.time_steps}, input <= {self.input_max})",
                 f"{'layer':<{w}}{'bits':>5}{'exp':>5}{'dv':>6}{'vth':>16}{'vth err':>10}{'bias err':>10}"
                 f"{'flip':>6}  limited by"]
        for l in self.layers:
            vth = "VTH_MAX" if l.readout else f"{l.vth_min}..{l.vth_max}"
            lines.append(f"{l.name:<{w}}{l.weight_bits:>5}{l.weight_exp:>5}{l.dv:>6}{vth:>16}"
                         f"{l.vth_rel_err_max:>10.2e}{l.bias_err_thr_max:>10.2e}{l.n_flipped:>6}  {l.limited_by}")
            if l.shortcut_exps:
                lines.append(f"{'':<{w}}+ shortcut exp {', '.join(map(str, l.shortcut_exps))}, "
                             f"mantissa rounding {l.shortcut_rel_err_max:.2e} of the largest branch weight")
        if self.n_samples:
            agree = ", ".join(f"{a:.4f}" for a in self.spike_agreement)
            lines.append(f"on {self.n_samples} samples: spike agreement per layer [{agree}], "
                         f"prediction agreement {self.prediction_agreement:.4f}")
            if self.float_accuracy is not None:
                lines.append(f"accuracy float {self.float_accuracy:.4f} vs integer {self.int_accuracy:.4f}")
        return "\n".join(lines)


def _per_neuron(values: np.ndarray, layer: LayerSpec) -> np.ndarray:
    """Expand per-channel values to per-neuron (C-order flatten of (C, H, W))."""
    values = np.asarray(values, np.float64)
    if layer.kind == "conv":
        return np.repeat(values, int(np.prod(layer.out_shape[1:])))
    return values


def _split_bias(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest exponent 0..7 per neuron with ``round(b / 2**e)`` in the 13-bit mantissa range."""
    mant = np.zeros(b.shape, np.int32)
    exp = np.full(b.shape, -1, np.int32)
    for e in range(core_spec.BIAS_EXP_MIN, core_spec.BIAS_EXP_MAX + 1):
        m = np.round(b / (1 << e))
        ok = (exp < 0) & (m >= core_spec.BIAS_MANT_MIN) & (m <= core_spec.BIAS_MANT_MAX)
        mant[ok] = m[ok].astype(np.int32)
        exp[ok] = e
    if np.any(exp < 0):
        raise ValueError(f"bias {float(b[np.argmax(exp < 0)]):.0f} does not fit 13-bit mantissa << 7")
    return mant, exp


def _drive_bounds(mant: np.ndarray, kind: str, n_out: int, in_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron bounds on the positive and negative part of ``z = W s`` for ``0 <= s <= in_max``."""
    w = mant.astype(np.int64)
    if kind == "dense":
        pos, neg = np.clip(w, 0, None).sum(axis=1), np.clip(-w, 0, None).sum(axis=1)
    else:  # conv: full kernel (padding only removes terms), per output channel, repeated over positions
        pos = np.clip(w, 0, None).reshape(w.shape[0], -1).sum(axis=1)
        neg = np.clip(-w, 0, None).reshape(w.shape[0], -1).sum(axis=1)
        rep = n_out // w.shape[0]
        pos, neg = np.repeat(pos, rep), np.repeat(neg, rep)
    return pos * in_max, neg * in_max


def _run_bound(z_max: np.ndarray, scale_k: float, b_max: np.ndarray, dv: int, time_steps: int
               ) -> tuple[int, int, bool]:
    """``core_spec.run_bounds`` for one side (positive or negative) of a layer's drive, per neuron.

    ``z_max`` bounds that side of ``z = W s``; the activation after the weight exponent is at most
    ``ceil(z_max * 2**k)`` in magnitude (rule 1 floors). Returns the bound on ``|u|`` (first step;
    ``du = 4095`` clears ``u`` every step), on ``|v|`` after ``time_steps`` steps, and whether the wrap
    or the clip could act in any step.
    """
    if not z_max.size:
        return 0, 0, False
    a_max = np.ceil(z_max * scale_k).astype(np.int64)
    bounds = core_spec.run_bounds(a_max, b_max.astype(np.int64), core_spec.current_decay_factor(core_spec.DECAY_MAX),
                                  core_spec.voltage_decay_factor(dv), time_steps)
    unsafe = any(bool(np.any(b.may_wrap)) or bool(np.any(b.may_clip)) for b in bounds)
    return int(np.max(bounds[0].u)), int(np.max(bounds[-1].v)), unsafe


def _check_finite(layer: LayerSpec) -> None:
    for name, arr in (("weight", layer.weight), ("scale", layer.scale), ("bias", layer.bias)):
        a = np.asarray(arr, np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"layer {layer.name!r}: {name} contains NaN or inf (index {int(np.argmax(~np.isfinite(a.reshape(-1))))})")
    if layer.bn is not None:
        for name in ("gamma", "beta", "mean", "var"):
            if not np.all(np.isfinite(getattr(layer.bn, name))):
                raise ValueError(f"layer {layer.name!r}: batch norm {name} contains NaN or inf")
    for name in ("leak", "threshold", "input_gain"):
        if not np.isfinite(getattr(layer, name)):
            raise ValueError(f"layer {layer.name!r}: {name} is {getattr(layer, name)}")


SHORTCUT_MANT_MAX = 127  # a shortcut block's mantissas are 8-bit


def _shortcut_mantissas(w_real: np.ndarray) -> tuple[np.ndarray, int, float]:
    """``(m, e, rel_err)``: ``m = round(w_real * 2**e)`` with the largest ``e`` keeping ``|m| <= 127``."""
    peak = float(np.max(np.abs(w_real), initial=0.0))
    if peak == 0:
        return np.zeros(w_real.shape, np.int64), 0, 0.0
    e = int(np.floor(np.log2(SHORTCUT_MANT_MAX / peak)))
    while np.max(np.abs(np.round(w_real * 2.0 ** e))) > SHORTCUT_MANT_MAX:
        e -= 1
    m = np.round(w_real * 2.0 ** e).astype(np.int64)
    return m, e, float(np.max(np.abs(m * 2.0 ** -e - w_real)) / peak)


def _quantize_layer(layer: LayerSpec, first: bool, input_scale: float, in_max: int,
                    time_steps: int, shortcut_sources: Optional[list] = None) -> tuple[IntLayer, LayerQuant]:
    """One layer; ``shortcut_sources``: per shortcut ``(node index, largest input value, reads the input)``."""
    _check_finite(layer)
    name = layer.name
    if not 0.0 <= layer.leak <= 1.0:
        raise ValueError(f"layer {name!r}: leak={layer.leak} outside [0, 1]")
    dv = int(round(core_spec.DECAY_UNITY * (1.0 - layer.leak)))
    if dv > core_spec.DECAY_MAX:
        raise ValueError(f"layer {name!r}: leak={layer.leak} needs dv={dv} > {core_spec.DECAY_MAX} "
                         f"(a 12-bit decay cannot clear v; use leak >= 1/4096)")
    a, c = layer.folded_affine()
    if first:
        a = a * float(input_scale)
    a, c = _per_neuron(a, layer), _per_neuron(c, layer)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(c))):
        raise ValueError(f"layer {name!r}: folded scale/bias is not finite (check batch-norm var)")
    n_out = int(np.prod(layer.out_shape))
    w = np.asarray(layer.weight, np.float64)
    if np.any(w != np.round(w)):
        raise ValueError(f"layer {name!r}: weights must be ±1 or integer codes")
    w = w.astype(np.int64)
    binary = layer.precision == "binary"
    n_ch = w.shape[0]
    a_ch = a.reshape(n_ch, -1)[:, 0] if layer.kind == "conv" else a
    weight_rel_err = 0.0

    if layer.spiking:
        if not layer.threshold > 0:
            raise ValueError(f"layer {name!r}: threshold={layer.threshold} must be > 0 for a core (vth is unsigned)")
        if np.any(a_ch == 0):
            raise ValueError(f"layer {name!r}: channel {int(np.argmax(a_ch == 0))} has a zero scale "
                             f"(its input is ignored; fold it into a constant before mapping)")
        sign_ch = np.sign(a_ch).astype(np.int64)
        mant = w * sign_ch.reshape((-1,) + (1,) * (w.ndim - 1))
        mag = np.abs(a)
        weight_bits = 1 if binary else 8
        n_flipped = int(np.sum(sign_ch < 0)) * (n_out // n_ch)
    else:
        # readout: one common factor A for all neurons
        if np.all(np.abs(np.abs(a_ch) - np.abs(a_ch[0])) <= EQUAL_SCALE_RTOL * np.abs(a_ch[0])) and a_ch[0] != 0:
            sign_ch = np.sign(a_ch).astype(np.int64)
            mant = w * sign_ch.reshape((-1,) + (1,) * (w.ndim - 1))
            A = float(np.abs(a_ch[0]))
            weight_bits = 1 if binary else 8
            n_flipped = int(np.sum(sign_ch < 0)) * (n_out // n_ch)
        else:
            w_eff = w * a_ch.reshape((-1,) + (1,) * (w.ndim - 1))
            peak = float(np.max(np.abs(w_eff)))
            if peak == 0:
                raise ValueError(f"layer {name!r}: all readout weights are zero")
            A = peak / 127.0
            mant = np.round(w_eff / A).astype(np.int64)
            weight_rel_err = float(np.max(np.abs(mant * A - w_eff)) / peak)
            weight_bits = 8
            n_flipped = 0
        mag = np.full(n_out, A)

    pos_z, neg_z = _drive_bounds(mant, layer.kind, n_out, in_max)
    # shortcut blocks (rule 1b): mantissas in the main block's voltage units, their own exponent offset
    shortcuts = []  # (spec, source index, mantissas, e_b, positive and negative drive bounds)
    sc_err = 0.0
    if layer.shortcuts and not layer.spiking:
        raise ValueError(f"layer {name!r}: the readout takes no residual shortcuts")
    if len(layer.shortcuts) != len(shortcut_sources or []):  # never drop a branch silently
        raise ValueError(f"layer {name!r}: {len(layer.shortcuts)} shortcuts but {len(shortcut_sources or [])} "
                         f"resolved sources")
    for sc, (src, sc_in_max, from_input) in zip(layer.shortcuts, shortcut_sources or []):
        for nm in ("weight", "scale", "bias"):
            if not np.all(np.isfinite(np.asarray(getattr(sc, nm), np.float64))):
                raise ValueError(f"layer {name!r} shortcut {sc.name!r}: {nm} contains NaN or inf")
        a_b, c_b = sc.folded_affine()
        a_b, c_b = a_b * layer.input_gain, c_b * layer.input_gain
        if from_input:
            a_b = a_b * float(input_scale)
        if not (np.all(np.isfinite(a_b)) and np.all(np.isfinite(c_b))):
            raise ValueError(f"layer {name!r} shortcut {sc.name!r}: folded scale/bias is not finite")
        w_b = np.asarray(sc.weight, np.float64)
        if np.any(w_b != np.round(w_b)):
            raise ValueError(f"layer {name!r} shortcut {sc.name!r}: weights must be ±1 or integer codes")
        ratio = a_b / mag.reshape(n_ch, -1)[:, 0]  # per output channel (conv) or neuron (dense)
        m_b, e_b, err = _shortcut_mantissas(w_b * ratio.reshape((-1,) + (1,) * (w_b.ndim - 1)))
        sc_err = max(sc_err, err)
        c = c + _per_neuron(c_b, layer)
        pz, nz = _drive_bounds(m_b, sc.kind, n_out, sc_in_max)
        shortcuts.append((sc, int(src), m_b, e_b, pz, nz))
    thr = float(layer.threshold)
    reasons: list[str] = []
    for k in K_RANGE:
        scale_k = 2.0 ** k
        if any(not -31 <= k - e_b <= 31 for *_, e_b, _pz, _nz in shortcuts):
            reasons.append("a shortcut's weight exponent leaves [-31, 31]")
            continue
        pos_a = np.ceil(pos_z * scale_k) + sum((np.ceil(pz * 2.0 ** (k - e_b)) for *_, e_b, pz, _ in shortcuts), 0.0)
        neg_a = np.ceil(neg_z * scale_k) + sum((np.ceil(nz * 2.0 ** (k - e_b)) for *_, e_b, _, nz in shortcuts), 0.0)
        u_bound = int(np.max(np.maximum(pos_a, neg_a), initial=0)) << core_spec.ACT_SHIFT
        if u_bound > U_LIMIT:
            reasons.append(f"current |u| bound {u_bound:.0f} > {U_LIMIT}")
            continue
        bias_exact = c / mag * 2.0 ** (k + 6)
        bias_int = np.round(bias_exact)
        if np.any(bias_int > BIAS_LIMIT_POS) or np.any(bias_int < BIAS_LIMIT_NEG):
            i = int(np.argmax((bias_int > BIAS_LIMIT_POS) | (bias_int < BIAS_LIMIT_NEG)))
            reasons.append(f"bias[{i}]={bias_int[i]:.0f} outside [{BIAS_LIMIT_NEG}, {BIAS_LIMIT_POS}]")
            continue
        bias_mant, bias_exp = _split_bias(bias_int)
        bias_eff = core_spec.effective_bias(bias_mant, bias_exp).astype(np.int64)
        _, v_neg, unsafe = _run_bound(neg_a, 1.0, np.clip(-bias_eff, 0, None), dv, time_steps)
        if unsafe or v_neg > V_LIMIT:
            reasons.append(f"negative voltage bound {v_neg:.0f} > {V_LIMIT}")
            continue
        if layer.spiking:
            vth_exact = thr * scale_k / mag
            vth = np.round(vth_exact)
            if np.any(vth > core_spec.VTH_MAX):
                reasons.append(f"vth {vth.max():.0f} > VTH_MAX {core_spec.VTH_MAX}")
                continue
            v_pos = 0
            vth_err = float(np.max(np.abs(vth - vth_exact) / vth_exact)) if n_out else 0.0
            thr_units = vth_exact * 64
        else:
            _, v_pos, unsafe = _run_bound(pos_a, 1.0, np.clip(bias_eff, 0, None), dv, time_steps)
            if unsafe or v_pos > READOUT_LIMIT:
                reasons.append(f"readout voltage bound {v_pos:.0f} > VTH_MAX<<6 = {READOUT_LIMIT}")
                continue
            vth = np.full(n_out, core_spec.VTH_MAX)
            vth_err = 0.0
            thr_units = np.full(n_out, float(READOUT_LIMIT))
        limited = reasons[-1] if reasons else f"k reached the top of K_RANGE ({K_RANGE.start})"
        berr = np.abs(bias_eff - bias_exact)
        nzb = np.abs(bias_exact) > 0
        int_layer = IntLayer(
            name=name, kind=layer.kind, weight_mant=mant.astype(np.int8), weight_exp=int(k),
            weight_bits=weight_bits, vth=vth.astype(np.int32), bias_mant=bias_mant.astype(np.int32),
            bias_exp=bias_exp.astype(np.int32), du=core_spec.DECAY_MAX, dv=dv,
            in_shape=tuple(int(x) for x in layer.in_shape), out_shape=tuple(int(x) for x in layer.out_shape),
            stride=tuple(int(x) for x in layer.stride), padding=tuple(int(x) for x in layer.padding),
            readout=not layer.spiking,
            shortcuts=[IntSynapse(name=sc.name, source=src, kind=sc.kind, weight_mant=m_b.astype(np.int16),
                                  weight_exp=int(k - e_b), weight_bits=8, in_shape=tuple(int(x) for x in sc.in_shape),
                                  out_shape=tuple(int(x) for x in layer.out_shape),
                                  stride=tuple(int(x) for x in sc.stride), padding=tuple(int(x) for x in sc.padding))
                       for sc, src, m_b, e_b, _, _ in shortcuts])
        int_layer.validate()
        q = LayerQuant(
            name=name, kind=layer.kind, readout=not layer.spiking, weight_bits=weight_bits, weight_exp=int(k), dv=dv,
            n_flipped=n_flipped, vth_min=int(vth.min()) if n_out else 0, vth_max=int(vth.max()) if n_out else 0,
            vth_rel_err_max=vth_err,
            bias_rel_err_max=float(np.max(berr[nzb] / np.abs(bias_exact[nzb]))) if np.any(nzb) else 0.0,
            bias_err_thr_max=float(np.max(berr / thr_units)) if n_out else 0.0,
            weight_rel_err_max=weight_rel_err, u_bound=int(u_bound), v_neg_bound=int(v_neg),
            v_pos_bound=int(v_pos), limited_by=limited,
            shortcut_exps=[int(k - e_b) for *_, e_b, _, _ in shortcuts], shortcut_rel_err_max=sc_err)
        return int_layer, q
    raise ValueError(f"layer {name!r}: no weight exponent in [{K_RANGE.stop + 1}, {K_RANGE.start}] fits the core; "
                     f"at the smallest: {reasons[-1]}")


def quantize(art: ModelArtifact, *, time_steps: Optional[int] = None) -> tuple[IntegerNetwork, QuantReport]:
    """Fold ``art`` into an ``IntegerNetwork`` (see the module docstring for the rule).

    ``time_steps`` (default ``art.time_steps``) bounds the run length the overflow
    guarantees cover. Float-vs-integer agreement is measured by ``neuro_agmm.deploy.fidelity``.
    """
    if not art.layers:
        raise ValueError("artifact has no layers")
    if not np.isfinite(art.input_scale) or art.input_scale <= 0:
        raise ValueError(f"input_scale={art.input_scale} must be a positive finite number")
    if art.input_max < 1:
        raise ValueError(f"input_max={art.input_max} must be >= 1")
    t_bound = int(time_steps if time_steps is not None else art.time_steps)
    if t_bound < 1:
        raise ValueError(f"time_steps={t_bound} must be >= 1")
    for i, l in enumerate(art.layers[:-1]):
        if not l.spiking:
            raise ValueError(f"layer {l.name!r} (#{i}) is non-spiking but not the last layer")
    return quantize_layers(art, t_bound, _quantize_layer, "hw_models.mapping.quantizer")


def quantize_layers(art: ModelArtifact, t_bound: int, quantize_layer, source: str) -> tuple[IntegerNetwork, QuantReport]:
    """Run ``quantize_layer(layer, first, input_scale, in_max, time_steps)`` over ``art``'s layers and assemble
    the network and report (shared by this quantizer and ``netx_quantizer``)."""
    int_layers, quants = [], []
    index = {l.name: i for i, l in enumerate(art.layers)}
    if len(index) != len(art.layers):
        raise ValueError("layer names must be unique (residual shortcuts name their source)")
    for i, layer in enumerate(art.layers):
        kwargs = {}
        if layer.shortcuts:
            if quantize_layer is not _quantize_layer:
                raise ValueError(f"layer {layer.name!r} has residual shortcuts, which {source} cannot map")
            srcs = []
            for sc in layer.shortcuts:
                if sc.source != INPUT_NODE and index.get(sc.source, i) >= i:
                    raise ValueError(f"layer {layer.name!r} shortcut {sc.name!r}: source {sc.source!r} is not an "
                                     f"earlier layer or {INPUT_NODE!r}")
                srcs.append((-1, int(art.input_max), True) if sc.source == INPUT_NODE else (index[sc.source], 1, False))
            kwargs["shortcut_sources"] = srcs
        il, q = quantize_layer(layer, i == 0, art.input_scale, int(art.input_max) if i == 0 else 1, t_bound, **kwargs)
        int_layers.append(il)
        quants.append(q)
    net = IntegerNetwork(layers=int_layers, input_shape=tuple(int(x) for x in art.input_shape),
                         input_max=int(art.input_max),
                         meta={"max_time_steps": t_bound, "source": source,
                               "dataset": str(art.provenance.get("dataset", "")),
                               "input_scale": float(art.input_scale)})
    net.validate()
    return net, QuantReport(layers=quants, time_steps=t_bound, input_max=int(art.input_max))
