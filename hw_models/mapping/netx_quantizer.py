"""Quantize an artifact into an ``IntegerNetwork`` that lava-dl's netx loader reproduces exactly.

Why: lava-dl gives each population ONE threshold, fits dense weights into an 8-bit synapse with
its own exponent (``optimize_weight_bits`` clips mixed-sign weights to [-256, 254]), fixes the
bias exponent at 6 with a 13-bit mantissa, and uses conv weights as stored
(``hw_models.mapping.netx_rules``). Our general quantizer (``quantizer.quantize``) uses per-neuron
thresholds and a shared power-of-two weight exponent, which netx cannot hold. This profile folds
the per-channel scale into the weights instead:

* a spiking layer with float threshold ``θ`` and folded per-channel scale ``a_o`` and bias ``c_o``
  gets one integer threshold ``V`` and weights ``round(W * a_o * V / θ)`` (so ±1 rows become ±m_o,
  stored as 8-bit weights), bias ``64 * round(c_o * V / θ)`` (bias_exp 6), ``weight_exp = 0``;
* ``V`` is the largest value with every ``|weight| <= 254``, ``V <= VTH_MAX``, every bias mantissa
  in the 13-bit field, and the quantizer's overflow bounds (24-bit current, negative voltage clip)
  satisfied over ``time_steps``; a readout gets one common factor ``A`` (weights ``round(W a_o / A)``,
  ``|weight| <= 254``), ``vth = VTH_MAX`` and the proof that it never reaches it.

The cost is precision: a row's weight magnitude ``m_o`` is rounded to an integer (relative error
up to ``1 / (2 m_o)``), reported per layer in ``LayerQuant.vth_rel_err_max`` (here: the worst
relative weight rounding) — measure the float-vs-integer agreement (``neuro_agmm.deploy.fidelity``).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.mapping.netx_rules import LIF_BIAS_MANT, NETX_BIAS_EXP, NetxRuleError, residual_refusal
from hw_models.mapping.quantizer import (READOUT_LIMIT, U_LIMIT, V_LIMIT, LayerQuant, QuantReport, _check_finite,
                                         _drive_bounds, _per_neuron, _run_bound, quantize_layers)
from neuro_agmm.artifact import LayerSpec, ModelArtifact

NETX_WEIGHT_LIMIT = 254  # optimize_weight_bits clips mixed-sign weights above 254
SHRINK = 0.9  # the factor by which V (or 1/A) shrinks when a bound fails


def _try(w_real: np.ndarray, c_real: np.ndarray, layer: LayerSpec, in_max: int, dv: int, time_steps: int,
         readout: bool):
    """Integer weights/bias for real-valued ones already in integer units; None (and why) if a bound fails."""
    w = np.round(w_real).astype(np.int64)
    if w.size and np.abs(w).max() > NETX_WEIGHT_LIMIT:
        return None, f"|weight| {int(np.abs(w).max())} > {NETX_WEIGHT_LIMIT}"
    b = np.round(c_real).astype(np.int64)
    if b.size and (b.min() < LIF_BIAS_MANT[0] or b.max() > LIF_BIAS_MANT[1]):
        return None, f"bias mantissa {int(np.abs(b).max())} outside {LIF_BIAS_MANT}"
    n_out = int(np.prod(layer.out_shape))
    pos, neg = _drive_bounds(w, layer.kind, n_out, in_max)
    u_bound = int(np.max(np.maximum(pos, neg), initial=0)) << core_spec.ACT_SHIFT
    if u_bound > U_LIMIT:
        return None, f"current |u| bound {u_bound} > {U_LIMIT}"
    b_eff = _per_neuron(b, layer).astype(np.int64) << NETX_BIAS_EXP
    _, v_neg, unsafe = _run_bound(neg, 1.0, np.clip(-b_eff, 0, None), dv, time_steps)
    if unsafe or v_neg > V_LIMIT:
        return None, f"negative voltage bound {v_neg} > {V_LIMIT}"
    v_pos = 0
    if readout:
        _, v_pos, unsafe = _run_bound(pos, 1.0, np.clip(b_eff, 0, None), dv, time_steps)
        if unsafe or v_pos > READOUT_LIMIT:
            return None, f"readout voltage bound {v_pos} > {READOUT_LIMIT}"
    return (w, b, u_bound, v_neg, v_pos), ""


def _quantize_layer(layer: LayerSpec, first: bool, input_scale: float, in_max: int, time_steps: int
                    ) -> tuple[IntLayer, LayerQuant]:
    _check_finite(layer)
    name = layer.name
    if not 0.0 <= layer.leak <= 1.0:
        raise ValueError(f"layer {name!r}: leak={layer.leak} outside [0, 1]")
    dv = int(round(core_spec.DECAY_UNITY * (1.0 - layer.leak)))
    if dv > core_spec.DECAY_MAX:
        raise ValueError(f"layer {name!r}: leak={layer.leak} needs dv={dv} > {core_spec.DECAY_MAX}")
    a, c = layer.folded_affine()
    if first:
        a = a * float(input_scale)
    w = np.asarray(layer.weight, np.float64)
    shape = (-1,) + (1,) * (w.ndim - 1)
    w_scaled = w * a.reshape(shape)  # the float weights in float-voltage units per input unit
    peak = float(np.abs(w_scaled).max()) if w.size else 0.0
    if peak == 0:
        raise ValueError(f"layer {name!r}: all weights are zero after scaling")
    readout = not layer.spiking
    if readout:
        factor = NETX_WEIGHT_LIMIT / peak  # integer units per float-voltage unit: 1 / A
        vth = core_spec.VTH_MAX
    else:
        if not layer.threshold > 0:
            raise ValueError(f"layer {name!r}: threshold={layer.threshold} must be > 0")
        vth = int(min(core_spec.VTH_MAX, np.floor(NETX_WEIGHT_LIMIT * layer.threshold / peak)))
        factor = vth / layer.threshold
    why = ""
    while (vth >= 1) if not readout else (factor > 1e-12):
        got, why = _try(w_scaled * factor, np.asarray(c, np.float64) * factor, layer, in_max, dv, time_steps,
                        readout)
        if got is not None:
            break
        if readout:
            factor *= SHRINK
        else:
            vth = int(vth * SHRINK) if int(vth * SHRINK) < vth else vth - 1
            factor = vth / layer.threshold
    else:
        raise ValueError(f"layer {name!r}: no netx threshold fits ({why})")
    w_int, b_int, u_bound, v_neg, v_pos = got
    n_out = int(np.prod(layer.out_shape))
    exact = w_scaled * factor
    nz = exact != 0
    rel = float(np.max(np.abs(w_int - exact)[nz] / np.abs(exact)[nz])) if np.any(nz) else 0.0
    bias_mant = _per_neuron(b_int, layer).astype(np.int32)
    int_layer = IntLayer(
        name=name, kind=layer.kind, weight_mant=w_int.astype(np.int16), weight_exp=0, weight_bits=8,
        vth=np.full(n_out, vth, np.int32), bias_mant=bias_mant, bias_exp=np.full(n_out, NETX_BIAS_EXP, np.int32),
        du=core_spec.DECAY_MAX, dv=dv, in_shape=tuple(int(x) for x in layer.in_shape),
        out_shape=tuple(int(x) for x in layer.out_shape), stride=tuple(int(x) for x in layer.stride),
        padding=tuple(int(x) for x in layer.padding), readout=readout)
    int_layer.validate()
    b_exact = _per_neuron(np.asarray(c, np.float64) * factor, layer)
    berr = np.abs(bias_mant - b_exact)
    q = LayerQuant(name=name, kind=layer.kind, readout=readout, weight_bits=8, weight_exp=0, dv=dv, n_flipped=0,
                   vth_min=vth, vth_max=vth, vth_rel_err_max=rel,
                   bias_rel_err_max=float(np.max(berr[b_exact != 0] / np.abs(b_exact[b_exact != 0])))
                   if np.any(b_exact != 0) else 0.0,
                   bias_err_thr_max=float(np.max(berr) / vth) if n_out and not readout else 0.0,
                   weight_rel_err_max=rel, u_bound=u_bound, v_neg_bound=v_neg, v_pos_bound=v_pos,
                   limited_by=why or f"|weight| <= {NETX_WEIGHT_LIMIT}")
    return int_layer, q


def quantize_for_netx(art: ModelArtifact, *, time_steps: Optional[int] = None) -> tuple[IntegerNetwork, QuantReport]:
    """Fold ``art`` into an ``IntegerNetwork`` that ``export_netx`` writes and lava-dl loads exactly."""
    if not art.layers:
        raise ValueError("artifact has no layers")
    for layer in art.layers:
        if layer.shortcuts:
            raise NetxRuleError(residual_refusal(layer.name))
    t_bound = int(time_steps if time_steps is not None else art.time_steps)
    return quantize_layers(art, t_bound, _quantize_layer, "hw_models.mapping.netx_quantizer")
