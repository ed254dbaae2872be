"""The integer semantics of a Loihi-style neuro core: THE contract every backend must meet.

Written once, here, as plain NumPy functions over integer arrays. Lava process models,
the Brian2 builder and the NumPy emulator are implementations of these rules and are
tested against them spike for spike and voltage for voltage.

Every rule cites the Lava 0.10.0 source it reproduces:

* ``lava/proc/lif/models.py`` — ``AbstractPyLifModelFixed`` (``subthr_dynamics``,
  ``scale_bias``, ``reset_voltage``, ``run_spk``) and ``PyLifModelBitAcc``
  (``scale_threshold``, ``spiking_activation``).
* ``lava/proc/dense/models.py`` — ``AbstractPyDenseModelBitAcc.run_spk``.
* ``lava/magma/core/model/py/ports.py`` — ``PyInPortVectorDense.recv`` (summing
  int32 activations into the int16-typed buffer promotes to int32: no 16-bit wrap).

What it leaves out (as Lava's bit-accurate models do): refractory periods, delays on conv
synapses, learning, and Loihi's noise.

Order of operations inside one time step ``t`` for one layer (canonical schedule):

1. ``a[t] = shift(W @ s_in[t], weight_exp)`` — synaptic accumulation, then the layer's
   weight exponent as a left shift (``weight_exp > 0``) or arithmetic right shift. With
   per-synapse delays ``d`` (dense layers, ``0 <= d <= DELAY_MAX``, ``weight_exp >= 0``):
   ``a_i[t] = shift(sum_j W_ij s_j[t - d_ij], weight_exp)`` with ``s[t] = 0`` for ``t < 0``
   (Lava's ``DelayDense``, ``lava/proc/dense/models.py``; netx clamps delays to 62).
1b. Several synapse blocks into one population (a residual network's main branch and its
   shortcut, ``IntLayer.shortcuts``): each block ``b`` computes its own ``a_b[t]`` by rule 1
   with ITS weight exponent, and the population receives ``a[t] = int32(sum_b a_b[t])``
   (``block_activation``; Lava's ``PyInPortVectorDense.recv`` sums the int32 arrays of every
   connected port). This is the rescale rule for adding differently scaled branches: a
   branch's scale relative to the neuron's voltage unit is carried by its own mantissas and
   exponent (the quantizer states how it chooses them), the add itself is exact integer
   arithmetic, and ``step_bound`` is applied to the sum of the blocks' bounds.
2. ``u[t] = wrap24(trunc(u[t-1] * (4096 - (du + 1)) / 4096) + (a[t] << 6))``.
3. ``v[t] = clip(trunc(v[t-1] * (4096 - dv) / 4096) + u[t] + (bias_mant << bias_exp),
   -(2**23 - 1), 2**23 - 1)``.
4. ``spike[t] = v[t] > (vth << 6)``; spiking neurons get ``v[t] = 0`` (``u`` is kept).

Delays: in Lava every Dense/Conv connection sends the activation accumulated in the
*previous* step, so input column ``t`` reaches layer ``k`` (0-based) at Lava step
``t + 1 + k``. The canonical schedule used by the reference and the emulator has no
delays; ``LAVA_DELAY_PER_LAYER`` converts between the two (the network is feed-forward,
so a delay is a pure time shift).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# --- constants (AbstractPyLifModelFixed.__init__) -------------------------------------
DECAY_SHIFT = 12  # decays are 12-bit fractions of 4096
DECAY_UNITY = 1 << DECAY_SHIFT
DU_OFFSET = 1  # ds_offset: the current decay is du + 1, so du = 4095 clears u each step
DV_OFFSET = 0  # dm_offset
ACT_SHIFT = 6  # synaptic input is MSB-aligned: a << 6
VTH_SHIFT = 6  # threshold is MSB-aligned: vth << 6
UV_BITS = 24  # u and v are 24-bit registers
MAX_UV = 1 << (UV_BITS - 1)
LAVA_DELAY_PER_LAYER = 1  # each Dense sends last step's buffer (AbstractPyDenseModelBitAcc)

# --- register ranges (PyLifModelBitAcc docstring, LavaPyType precisions) ---------------
DECAY_MAX = 4095  # du, dv: unsigned 12 bit
VTH_MAX = (1 << 17) - 1  # vth: unsigned 17 bit
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1  # signed 13 bit
BIAS_EXP_MIN, BIAS_EXP_MAX = 0, 7  # unsigned 3 bit
WEIGHT_MANT_MIN, WEIGHT_MANT_MAX = -256, 255  # clip_weights(num_bits=8) in lava/utils/weightutils.py
DELAY_MAX = 62  # synaptic delay in steps: Loihi 2's 6-bit field (DelayDense allows 63), netx clamps to 62
ACTIVATION_BITS = 32  # a_out / a_in are int32 after port summation
INT32_MAX = (1 << 31) - 1


def decay(x: np.ndarray, decay_const: int | np.ndarray) -> np.ndarray:
    """``trunc(x * (4096 - decay_const) / 4096)``: multiply, then shift the magnitude (round toward zero)."""
    prod = x.astype(np.int64) * (DECAY_UNITY - np.asarray(decay_const, dtype=np.int64))
    return (np.sign(prod) * np.right_shift(np.abs(prod), DECAY_SHIFT)).astype(np.int32)


def wrap24(cur: np.ndarray) -> np.ndarray:
    """Lava's 24-bit current wrap, reproduced literally (including its asymmetry).

    ``subthr_dynamics``: values ``> 2**23`` lose ``2**24``; values ``<= -2**23`` gain
    ``2**24`` (computed from the unwrapped value, as Lava does). ``+2**23`` itself stays.
    """
    cur = cur.astype(np.int64)
    wrapped = np.where(cur > MAX_UV, cur - 2 * MAX_UV, cur)
    wrapped = np.where(wrapped <= -MAX_UV, cur + 2 * MAX_UV, wrapped)
    return wrapped.astype(np.int32)


def apply_weight_exp(acc: np.ndarray, weight_exp: int) -> np.ndarray:
    """Dense bit-accurate scaling: ``acc << weight_exp`` or ``acc >> -weight_exp`` (floor)."""
    acc = acc.astype(np.int64)
    out = np.left_shift(acc, weight_exp) if weight_exp > 0 else np.right_shift(acc, -weight_exp)
    return out.astype(np.int32)


def block_activation(activations) -> np.ndarray:
    """Rule 1b: the int32 sum of the per-block activations (each already through ``apply_weight_exp``)."""
    total = np.zeros(np.shape(activations[0]), np.int64)
    for a in activations:
        total += np.asarray(a, np.int64)
    return total.astype(np.int32)


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """``scale_bias``: ``bias_mant << bias_exp`` (right shift for negative exponents)."""
    mant = np.asarray(bias_mant, dtype=np.int32)
    exp = np.asarray(bias_exp, dtype=np.int32)
    return np.where(exp >= 0, np.left_shift(mant, np.maximum(exp, 0)), np.right_shift(mant, np.maximum(-exp, 0)))


class CoreParams(NamedTuple):
    """One layer's neuron registers as the core holds them (``IntLayer.core_params()``).

    ``du``, ``dv``: 12-bit decays (per layer); ``bias``: the effective bias ``bias_mant << bias_exp``
    (per neuron, ``effective_bias``); ``vth``: the threshold mantissa (per neuron or scalar).
    """

    du: int
    dv: int
    bias: np.ndarray
    vth: np.ndarray


class CoreState(NamedTuple):
    """Neuron state: ``u`` the 24-bit synaptic current, ``v`` the 24-bit voltage (int32 arrays)."""

    u: np.ndarray
    v: np.ndarray


def current_decay_factor(du: int) -> int:
    """``ku``: rule 2 multiplies ``u`` by ``ku / 4096``, ``ku = 4096 - (du + 1)`` (Lava's ``ds_offset``)."""
    return DECAY_UNITY - (int(du) + DU_OFFSET)


def voltage_decay_factor(dv: int) -> int:
    """``kv``: rule 3 multiplies ``v`` by ``kv / 4096``, ``kv = 4096 - dv`` (Lava's ``dm_offset`` is 0)."""
    return DECAY_UNITY - (int(dv) + DV_OFFSET)


def decay_shift(k: int):
    """``sh`` with ``trunc(x * k / 4096) == trunc(x / 2**sh)`` when the decay factor ``k`` (``current_decay_factor``
    / ``voltage_decay_factor``) is a power of two; None otherwise (and for ``k = 0``, which clears the value)."""
    k = int(k)
    if k <= 0 or k & (k - 1):
        return None
    return DECAY_SHIFT - (k.bit_length() - 1)


def scaled_threshold(vth: np.ndarray | int) -> np.ndarray:
    """Rule 4's comparison value ``vth << 6`` (``PyLifModelBitAcc.scale_threshold``), int64."""
    return np.asarray(vth, dtype=np.int64) << VTH_SHIFT


def step(state: CoreState, activation: np.ndarray, params: CoreParams) -> tuple[np.ndarray, CoreState]:
    """Rules 2-4 for one time step: returns ``(spikes, new_state)``; inputs are not modified.

    ``activation`` is the int32 synaptic input of this step (rule 1's result, before the
    ``<< 6``). Works on any leading batch dimensions. Every backend kernel implements this
    function (the reference calls it; Lava's ``fixed_pt`` LIF calls it; the emulator and
    Brian2 reproduce it from the constants above and are tested against it).
    """
    u = wrap24(decay(state.u, DECAY_UNITY - current_decay_factor(params.du)).astype(np.int64)
               + (activation.astype(np.int64) << ACT_SHIFT))
    v = decay(state.v, DECAY_UNITY - voltage_decay_factor(params.dv)).astype(np.int64) + u + params.bias
    v = np.clip(v, -MAX_UV + 1, MAX_UV - 1).astype(np.int32)
    spikes = v > scaled_threshold(params.vth)
    v = np.where(spikes, 0, v).astype(np.int32)
    return spikes, CoreState(u, v)


def shifted_bound(bound: int, weight_exp: int) -> int:
    """Bound on ``|apply_weight_exp(acc, weight_exp)|`` given ``|acc| <= bound`` (a floor shift of a
    negative value can round away from zero by one)."""
    if weight_exp > 0:
        return bound << weight_exp
    if weight_exp < 0:
        return (bound >> -weight_exp) + 1
    return bound


class StepBound(NamedTuple):
    """Magnitude bounds after one step, and whether the wrap (rule 2) or the clip (rule 3) may act."""

    u: np.ndarray | int
    v: np.ndarray | int
    may_wrap: np.ndarray | bool
    may_clip: np.ndarray | bool


def step_bound(u_bnd, v_bnd, a_max, b_max, ku: int, kv: int) -> StepBound:
    """Bounds on ``|u|``, ``|v|`` after one ``step`` from bounds before it, the activation bound ``a_max``
    (before ``<< 6``) and the bias bound ``b_max``; Python ints or int64 arrays (per neuron).

    The one overflow rule that both the quantizer (proving a network never wraps or clips) and the
    emulator (skipping the wrap/clip passes when they cannot act) use. ``|trunc(x k / 4096)| <=
    (|x| k) >> 12``. After a possible wrap ``|u|`` is only known to fit int32 (the wrap is computed
    from the unwrapped value); after a possible clip ``|v| <= 2**23 - 1``.
    """
    u = ((u_bnd * ku) >> DECAY_SHIFT) + (a_max << ACT_SHIFT)
    may_wrap = u > MAX_UV - 1
    u = np.where(may_wrap, INT32_MAX + 1, u) if isinstance(u, np.ndarray) else (INT32_MAX + 1 if may_wrap else u)
    v = ((v_bnd * kv) >> DECAY_SHIFT) + u + b_max
    may_clip = v > MAX_UV - 1
    v = np.where(may_clip, MAX_UV - 1, v) if isinstance(v, np.ndarray) else (MAX_UV - 1 if may_clip else v)
    return StepBound(u, v, may_wrap, may_clip)


def run_bounds(a_max, b_max, ku: int, kv: int, steps: int, u0=0, v0=0) -> list[StepBound]:
    """``step_bound`` applied ``steps`` times from the state bounds ``u0``, ``v0``."""
    out, u, v = [], u0, v0
    for i in range(int(steps)):
        b = step_bound(u, v, a_max, b_max, ku, kv)
        out.append(b)
        same = (b.u == u and b.v == v) if isinstance(b.u, int) and isinstance(u, int) else \
            (np.array_equal(b.u, u) and np.array_equal(b.v, v))
        if same:  # a fixed point: every later step is the same
            out.extend([b] * (int(steps) - i - 1))
            break
        u, v = b.u, b.v
    return out
