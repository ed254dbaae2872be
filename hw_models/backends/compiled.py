"""The emulator's compiled kernel: ``core_spec`` rules 1-4 as numba loops, event-driven, exact in every case.

Why: the NumPy engine (``emulator``) spends its time in many small array passes and in NumPy's
generic BLAS kernel; plain torch beat it at batch 1 and 64. One compiled loop per layer and chunk
does the whole job in one pass over the events: for every nonzero input it adds that input's
weight row (dense) or kernel slice (conv) into the accumulators, then applies the LIF rules to
every neuron. The rules are written literally (trunc decays, the 24-bit wrap, the int32 casts,
the voltage clip), so no bound has to be proved for correctness; bounds only choose int32 or
int64 accumulators.

Layout (all internal; every public result is in the network's own order):

* a conv layer keeps its neurons channel-last, ``(H, W, C)``: one input event adds a contiguous
  run of ``C_out`` weights per kernel offset (vectorised by LLVM). Its input is read in whatever
  order the layer below stores it, through per-input ``(c, y, x)`` tables.
* a dense layer stores its weights transposed ``(n_in, n_out)`` with rows in its input's storage
  order, so one input event is one contiguous row.
* ``NetworkPlan`` holds these tables, per-neuron registers in storage order and the index maps
  back to the network order. It is built once per network object (``plan_for``) and its
  source arrays are frozen (made read-only) so a change after planning fails loudly instead of
  being ignored.

Kernels release the GIL (``nogil``), so ``run_plan(..., workers=n)`` splits the batch over threads.
Without numba, ``HAVE_NUMBA`` is False and the emulator falls back to its NumPy engine.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hw_models import core_spec
from hw_models.geometry import synapse_list
from hw_models.integer_network import IntegerNetwork, IntLayer

try:  # optional: the NumPy engine is the fallback
    import numba
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised by the fallback test with a patched flag
    numba = None
    HAVE_NUMBA = False

_MAX = core_spec.MAX_UV
_SHIFT = core_spec.DECAY_SHIFT
_ACT = core_spec.ACT_SHIFT
_COUNT_FIELDS = 4  # input_events, synops, neuron_updates, spikes (hw_models.results.LayerCounts order)


def _jit(fn):
    return numba.njit(nogil=True, cache=True, fastmath=False, boundscheck=False)(fn) if HAVE_NUMBA else fn


def _inline(fn):
    return numba.njit(inline="always", cache=True)(fn) if HAVE_NUMBA else fn


@_inline
def _trunc_scale(x, k):
    """``trunc(x * k / 4096)`` (``core_spec.decay``), branch-free: negatives add ``4095`` before the shift.

    ``x`` and ``k`` are int32 (``|k| <= 4096``): the product is a 32x32->64-bit multiply, which AVX2 has."""
    p = np.int64(x) * np.int64(k)
    return (p + ((p >> 63) & 4095)) >> _SHIFT


@_inline
def _to_int32(x):
    """NumPy's int64 -> int32 cast (modulo 2**32)."""
    return ((np.int64(x) + 2147483648) & 4294967295) - 2147483648


@_jit
def _lif64(acc, weight_exp, ku, kv, bias, vth64, u, v, s_row):
    """Rules 1 (shift, int32 cast) to 4 for one sample and step, in int64 with every wrap, cast and clip.

    The general path: any decay, any state. Clears ``acc`` as it reads it (for the next step)."""
    ku, kv = np.int32(ku), np.int32(kv)
    lsh = weight_exp if weight_exp > 0 else 0
    rsh = -weight_exp if weight_exp < 0 else 0
    for j in range(acc.shape[0]):
        a = _to_int32((np.int64(acc[j]) << lsh) >> rsh)
        acc[j] = 0
        cur = _trunc_scale(u[j], ku) + (a << _ACT)
        cur = cur - (2 * _MAX) * (cur > _MAX) + (2 * _MAX) * (cur <= -_MAX)  # 24-bit wrap (core_spec.wrap24)
        cur = _to_int32(cur)
        vv = _trunc_scale(v[j], kv) + cur + bias[j]
        vv = min(max(vv, 1 - _MAX), _MAX - 1)
        spk = vv > vth64[j]
        s_row[j] = spk
        u[j] = cur
        v[j] = 0 if spk else vv


@_jit
def _lif32(acc, lsh, rsh, shu, mask_u, shv, bias32, vth32, u, v, s_row):
    """``_lif64`` where the caller has proved (``core_spec.run_bounds``) that nothing wraps, saturates or
    leaves int32 and the decays are shifts (``trunc(x / 2**sh)``; ``mask_u = 0`` clears ``u``, du = 4095).

    Every operation is 32-bit, so LLVM vectorises it 8 lanes wide (AVX2); shift counts are masked to
    ``< 32`` to let it narrow them."""
    lsh, rsh, shu, shv = lsh & 31, rsh & 31, shu & 31, shv & 31
    ru = (np.int32(1) << shu) - 1
    rv = (np.int32(1) << shv) - 1
    for j in range(acc.shape[0]):
        a = np.int32((np.int32(acc[j]) << lsh) >> rsh)
        acc[j] = 0
        uu, vj = u[j], v[j]
        cur = np.int32((a << _ACT) + (np.int32((uu + ((uu >> 31) & ru)) >> shu) & mask_u))
        vv = np.int32(np.int32((vj + ((vj >> 31) & rv)) >> shv) + cur + bias32[j])
        spk = np.uint8(vv > vth32[j])
        s_row[j] = spk
        u[j] = cur
        v[j] = vv * (np.int32(1) - np.int32(spk))


@_inline
def _neurons(acc, fast, p64, p32, u, v, s_row, v_rec, u_rec, record):
    """One step of the layer's neurons (``_lif32`` when proved safe, else ``_lif64``). Spikes are counted
    afterwards by ``run_layers`` (``np.count_nonzero``: a counter here stops the LIF loop vectorising)."""
    if fast:
        _lif32(acc, p32[0], p32[1], p32[2], p32[3], p32[4], p32[5], p32[6], u, v, s_row)
    else:
        _lif64(acc, p64[0], p64[1], p64[2], p64[3], p64[4], u, v, s_row)
    if record:
        for j in range(v.shape[0]):
            v_rec[j] = v[j]
            u_rec[j] = u[j]


@_jit
def _dense_chunk(x, wT, fan, fast, p64, p32, u, v, acc, spikes, v_rec, u_rec, record, counts):
    """A dense layer over ``x`` ``(B, T, n_in)``: gather-add the weight rows of the active inputs, then LIF."""
    n_b, n_t, n_in = x.shape
    n_out = wT.shape[1]
    for b in range(n_b):
        for t in range(n_t):
            n_ev = 0
            syn = 0
            for i in range(n_in):
                xv = x[b, t, i]
                if xv != 0:
                    n_ev += 1
                    syn += fan[i]
                    if xv == 1:  # 2-D indexing, not a row view: a view per event costs a refcount pair
                        for j in range(n_out):
                            acc[j] += wT[i, j]
                    else:
                        for j in range(n_out):
                            acc[j] += xv * wT[i, j]
            _neurons(acc, fast, p64, p32, u[b], v[b], spikes[b, t], v_rec[b, t] if record else v_rec[0, 0],
                             u_rec[b, t] if record else u_rec[0, 0], record)
            counts[b, 0] += n_ev
            counts[b, 1] += syn
            counts[b, 2] += n_out


@_jit
def _conv_chunk(x, wk, in_c, in_pos, fan, tap_ptr, tap_out, tap_k, fast, p64, p32, u, v, acc, spikes,
                v_rec, u_rec, record, counts):
    """A conv layer over ``x`` ``(B, T, n_in)`` (network order, decoded by ``in_c``/``in_pos``); neurons HWC.

    ``wk`` is ``(C_in, kH*kW, C_out)``. The taps of input position ``p`` (``tap_ptr[p]:tap_ptr[p+1]``) list
    the outputs it reaches: ``tap_out`` is the output position ``oy * W_out + ox``, ``tap_k`` the kernel offset.
    One event adds a contiguous run of ``C_out`` weights per tap.
    """
    n_b, n_t, n_in = x.shape
    c_out = wk.shape[2]
    n_out = acc.shape[0]
    n_pos = n_out // c_out
    acc2 = acc.reshape((n_pos, c_out))  # (output position, channel)
    s_hwc = np.empty(n_out, np.uint8)
    for b in range(n_b):
        for t in range(n_t):
            n_ev = 0
            syn = 0
            for i in range(n_in):
                xv = x[b, t, i]
                if xv == 0:
                    continue
                n_ev += 1
                syn += fan[i]
                c, pos = in_c[i], in_pos[i]
                for q in range(tap_ptr[pos], tap_ptr[pos + 1]):
                    # 2-D indexing (no views: a view per tap costs a refcount pair); the inner index is the
                    # loop counter, so the add vectorises
                    op, kk = tap_out[q], tap_k[q]
                    if xv == 1:
                        for o in range(c_out):
                            acc2[op, o] += wk[c, kk, o]
                    else:
                        for o in range(c_out):
                            acc2[op, o] += xv * wk[c, kk, o]
            _neurons(acc, fast, p64, p32, u[b], v[b], s_hwc, v_rec[b, t] if record else v_rec[0, 0],
                     u_rec[b, t] if record else u_rec[0, 0], record)
            s_chw = spikes[b, t]  # spikes leave in network order (C, H, W): the next layer reads them so
            for q in range(n_pos):
                for o in range(c_out):
                    s_chw[o * n_pos + q] = s_hwc[q * c_out + o]
            counts[b, 0] += n_ev
            counts[b, 1] += syn
            counts[b, 2] += n_out


def _conv_taps(layer: IntLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per input position ``y * W + x``: the ``(output position, kernel offset)`` pairs it reaches."""
    _, h, w = layer.in_shape
    c_out, ho, wo = layer.out_shape
    kh, kw = np.asarray(layer.weight_mant).shape[2:]
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    oy, ox, ky, kx = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    y, x = oy * sh - ph + ky, ox * sw - pw + kx
    ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    pos = (y * w + x)[ok]
    order = np.argsort(pos, kind="stable")
    ptr = np.zeros(h * w + 1, np.int64)
    np.cumsum(np.bincount(pos, minlength=h * w), out=ptr[1:])
    out_pos = (oy * wo + ox)[ok][order]
    k = (ky * kw + kx)[ok][order]
    return ptr, out_pos.astype(np.int64), k.astype(np.int64)


def _decay_shift(k: int) -> Optional[tuple[int, int]]:
    """``(sh, mask)`` with ``trunc(x * k / 4096) == trunc(x / 2**sh) & mask`` for int32 ``x``; None unless
    ``k`` is 0 or a power of two."""
    if k == 0:
        return 0, 0
    if k & (k - 1):
        return None
    return _SHIFT - (k.bit_length() - 1), -1


def _smallest_int(lo: int, hi: int, choices=(np.int8, np.int16, np.int32)) -> np.dtype:
    for dt in choices:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


@dataclass
class LayerPlan:
    """One layer as the kernels take it: weights, registers (conv: channel-last), input decoding tables."""

    kind: str
    n_in: int
    n_out: int
    weight_exp: int
    ku: int
    kv: int
    bias: np.ndarray  # (n_out,) int64, storage order (conv: channel-last)
    vth64: np.ndarray  # (n_out,) int64, storage order
    fan: np.ndarray  # (n_in,) int64 structural fan-out per input
    weights: np.ndarray  # dense: (n_in, n_out); conv: (C_in, kH*kW, C_out)
    acc_bound: int  # max over neurons of sum |w| (bounds |acc| per unit of input)
    in_decode: Optional[tuple[np.ndarray, np.ndarray]]  # conv: (c, y * W + x) per input index
    taps: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]  # conv: _conv_taps
    hwc: Optional[tuple[int, int]]  # conv: (C_out, H_out * W_out), the channel-last state's shape
    b_max: int = 0  # max |bias|
    p64: tuple = ()  # _lif64's registers: (weight_exp, ku, kv, bias, vth64)
    p32: Optional[tuple] = None  # _lif32's: (lsh, rsh, shu, mask_u, shv, bias32, vth32); None: not shift-only

    def __post_init__(self):
        self._safe_memo: dict = {}
        self.b_max = int(np.abs(self.bias).max(initial=0))
        self.p64 = (self.weight_exp, self.ku, self.kv, self.bias, self.vth64)
        shifts = [_decay_shift(k) for k in (self.ku, self.kv)]
        if None not in shifts and self.b_max < _MAX and int(self.vth64.max(initial=0)) <= core_spec.INT32_MAX:
            (shu, mask_u), (shv, _) = shifts
            we = self.weight_exp
            self.p32 = (max(we, 0), max(-we, 0), shu, mask_u, shv, self.bias.astype(np.int32),
                        self.vth64.astype(np.int32))

    def int32_safe(self, a_max: int, steps: int, u_bnd: int, v_bnd: int) -> tuple[bool, int, int]:
        """Whether ``_lif32`` is exact for ``steps`` steps from state bounds ``u_bnd``/``v_bnd`` with activations
        ``|a| <= a_max`` (``core_spec.run_bounds``: no wrap, no clip); and the bounds after those steps."""
        key = (a_max, steps, u_bnd, v_bnd)
        hit = self._safe_memo.get(key)  # batches start from (0, 0); streams reach a fixed point: few keys
        if hit is None:
            bounds = core_spec.run_bounds(a_max, self.b_max, self.ku, self.kv, steps, u_bnd, v_bnd)
            if not bounds:
                hit = (self.p32 is not None, u_bnd, v_bnd)
            else:
                clean = not any(b.may_wrap or b.may_clip for b in bounds)
                hit = (self.p32 is not None and clean, int(bounds[-1].u), int(bounds[-1].v))
            if len(self._safe_memo) > 256:
                self._safe_memo.clear()
            self._safe_memo[key] = hit
        return hit

    def acc_dtype(self, x_max: int) -> np.dtype:
        """The narrowest of int16 / int32 / int64 that holds ``sum |w| * x_max`` (so every sum is exact)."""
        bound = self.acc_bound * max(1, x_max)
        return _smallest_int(-bound, bound, (np.int16, np.int32))


def _layer_plan(layer: IntLayer) -> LayerPlan:
    """The plan of ``layer``: its input arrives in network order (every layer emits its spikes so)."""
    w = np.asarray(layer.weight_mant)
    wdt = _smallest_int(int(w.min(initial=0)), int(w.max(initial=0)), (np.int8, np.int16))
    n_in, n_out = layer.n_in, layer.n_out
    bias = np.asarray(layer.bias, np.int64).reshape(-1)
    vth64 = np.ascontiguousarray(np.broadcast_to(core_spec.scaled_threshold(layer.vth), (n_out,)), np.int64)
    if layer.kind == "dense":
        weights = np.ascontiguousarray(w.T, wdt)
        fan = np.full(n_in, n_out, np.int64)
        acc_bound = int(np.abs(w.astype(np.int64)).sum(axis=1).max(initial=0))
        decode, taps, hwc = None, None, None
    else:
        pre, post, wl = synapse_list(layer)
        fan = np.bincount(pre, minlength=n_in).astype(np.int64)
        acc_bound = int(np.bincount(post, weights=np.abs(wl).astype(np.float64), minlength=n_out).max(initial=0))
        c_out, c_in = w.shape[:2]
        weights = np.ascontiguousarray(w.transpose(1, 2, 3, 0).reshape(c_in, -1, c_out), wdt)  # (C_in, kH*kW, C_out)
        _, h, wd = layer.in_shape
        cc, pos = np.divmod(np.arange(n_in), h * wd)
        decode = (cc.astype(np.int64), pos.astype(np.int64))
        taps = _conv_taps(layer)
        hwc = (c_out, int(layer.out_shape[1]) * int(layer.out_shape[2]))
        bias, vth64 = _to_hwc(bias, hwc), _to_hwc(vth64, hwc)
    return LayerPlan(layer.kind, n_in, n_out, int(layer.weight_exp), core_spec.current_decay_factor(layer.du),
                     core_spec.voltage_decay_factor(layer.dv), np.ascontiguousarray(bias), np.ascontiguousarray(vth64),
                     fan, weights, acc_bound, decode, taps, hwc)


def _to_hwc(arr: np.ndarray, hwc: tuple[int, int]) -> np.ndarray:
    """Network order ``(..., C * HW)`` -> channel-last ``(..., HW * C)``."""
    c, hw = hwc
    return np.ascontiguousarray(arr.reshape(arr.shape[:-1] + (c, hw)).swapaxes(-1, -2)).reshape(arr.shape)


def _from_hwc(arr: np.ndarray, hwc: tuple[int, int]) -> np.ndarray:
    """Channel-last ``(..., HW * C)`` -> network order ``(..., C * HW)`` (a copy)."""
    c, hw = hwc
    return np.ascontiguousarray(arr.reshape(arr.shape[:-1] + (hw, c)).swapaxes(-1, -2)).reshape(arr.shape)


class NetworkPlan:
    """Every layer's plan; built once per network (``plan_for``)."""

    def __init__(self, net: IntegerNetwork):
        net.validate()
        self.input_shape = tuple(net.input_shape)
        self.n_in = int(np.prod(self.input_shape))
        self.layers = [_layer_plan(layer) for layer in net.layers]

    def to_natural(self, k: int, arr: np.ndarray) -> np.ndarray:
        """Layer ``k``'s state values in storage order (last axis) in the network's order."""
        hwc = self.layers[k].hwc
        return arr if hwc is None else _from_hwc(arr, hwc)


_PLANS: dict[int, tuple[weakref.ref, tuple, NetworkPlan]] = {}


def _fingerprint(net: IntegerNetwork) -> tuple:
    """What a plan depends on, by identity for arrays (they are frozen) and by value for scalars."""
    return (tuple(net.input_shape),) + tuple(
        (id(l.weight_mant), id(l.vth), id(l.bias_mant), id(l.bias_exp), l.kind, int(l.weight_exp), int(l.du),
         int(l.dv), tuple(l.in_shape), tuple(l.out_shape), tuple(l.stride), tuple(l.padding)) for l in net.layers)


def _freeze(net: IntegerNetwork) -> None:
    for layer in net.layers:
        for arr in (layer.weight_mant, layer.vth, layer.bias_mant, layer.bias_exp):
            if isinstance(arr, np.ndarray):
                arr.flags.writeable = False


def plan_for(net: IntegerNetwork) -> NetworkPlan:
    """The cached plan of ``net`` (built, validated and the net's arrays frozen on first use).

    Replacing a layer's array or a register gives a new plan; writing into a frozen array raises.
    """
    key = id(net)
    fp = _fingerprint(net)
    hit = _PLANS.get(key)
    if hit is not None and hit[0]() is net and hit[1] == fp:
        return hit[2]
    plan = NetworkPlan(net)
    _freeze(net)
    for k in [k for k, (ref, _, _) in _PLANS.items() if ref() is None]:
        del _PLANS[k]
    _PLANS[key] = (weakref.ref(net), fp, plan)
    return plan


def _input_array(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Inputs as ``(B, T, n)`` in the narrowest unsigned type that holds them, and their maximum."""
    x_max = int(x.max()) if x.size else 0
    dt = np.uint8 if x_max < 256 else (np.uint16 if x_max < 65536 else np.int64)
    if x.dtype == bool:
        return x.view(np.uint8).reshape(x.shape[0], x.shape[1], -1), x_max
    return np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1), dt), x_max


def run_layers(plan: NetworkPlan, x: np.ndarray, u: list[np.ndarray], v: list[np.ndarray], record_v: bool,
               counts: np.ndarray, bounds: list[tuple[int, int]]
               ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Advance every layer over ``x`` ``(B, T, *input_shape)`` with states ``u``/``v`` (``(B, n)`` int32, storage
    order, updated in place), ``counts`` ``(L, B, 4)`` (added to) and ``bounds`` (per layer ``(|u|, |v|)``
    bounds, replaced by the bounds after the chunk). Returns spikes (bool, network order) and, when
    ``record_v``, ``v``/``u`` records (storage order: ``NetworkPlan.to_natural``), each ``(B, T, n)``."""
    b, t = x.shape[:2]
    h, x_max = _input_array(x)
    spikes_out, v_out, u_out = [], [], []
    empty = np.zeros((1, 1, 1), np.int32)
    for k, lp in enumerate(plan.layers):
        s = np.empty((b, t, lp.n_out), np.uint8)
        vr = np.empty((b, t, lp.n_out), np.int32) if record_v else empty
        ur = np.empty((b, t, lp.n_out), np.int32) if record_v else empty
        acc_dt = lp.acc_dtype(x_max)
        a_max = core_spec.shifted_bound(lp.acc_bound * max(1, x_max), lp.weight_exp)
        fast, u_end, v_end = lp.int32_safe(a_max, t, *bounds[k])
        if not fast and lp.p32 is not None:  # the carried bounds may be loose: try the state itself
            fast, u_end, v_end = lp.int32_safe(a_max, t, int(np.abs(u[k]).max(initial=0)),
                                               int(np.abs(v[k]).max(initial=0)))
        bounds[k] = (u_end, v_end)
        p32 = lp.p32 if lp.p32 is not None else _NO_P32
        acc = np.zeros(lp.n_out, acc_dt)  # kept zero between steps by the LIF kernels
        if lp.kind == "dense":
            _dense_chunk(h, lp.weights, lp.fan, fast, lp.p64, p32, u[k], v[k], acc, s, vr, ur, record_v, counts[k])
        else:
            (cc, pos), (ptr, tap_out, tap_k) = lp.in_decode, lp.taps
            _conv_chunk(h, lp.weights, cc, pos, lp.fan, ptr, tap_out, tap_k, fast, lp.p64, p32, u[k], v[k], acc, s,
                        vr, ur, record_v, counts[k])
        counts[k][:, 3] += np.count_nonzero(s.reshape(b, -1), axis=1)
        spikes_out.append(s.view(np.bool_))
        if record_v:
            v_out.append(vr)
            u_out.append(ur)
        h, x_max = s, 1
    return spikes_out, v_out, u_out


_NO_P32 = (0, 0, 0, 0, 0, np.zeros(1, np.int32), np.zeros(1, np.int32))  # typed filler when _lif32 cannot run


def run_split(plan: NetworkPlan, x: np.ndarray, u: list[np.ndarray], v: list[np.ndarray], record_v: bool,
              counts: np.ndarray, bounds: list[tuple[int, int]], workers: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """``run_layers`` with the batch split over ``workers`` threads (the kernels release the GIL)."""
    b = x.shape[0]
    workers = max(1, min(int(workers), b))
    if workers == 1:
        return run_layers(plan, x, u, v, record_v, counts, bounds)
    edges = np.linspace(0, b, workers + 1).astype(int)
    parts = [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]
    part_counts = [np.zeros((len(plan.layers), hi - lo, _COUNT_FIELDS), np.int64) for lo, hi in parts]

    part_bounds = [list(bounds) for _ in parts]

    def one(i: int):
        lo, hi = parts[i]
        return run_layers(plan, x[lo:hi], [a[lo:hi] for a in u], [a[lo:hi] for a in v], record_v, part_counts[i],
                          part_bounds[i])

    with ThreadPoolExecutor(len(parts)) as pool:
        results = list(pool.map(one, range(len(parts))))
    bounds[:] = [tuple(max(pb[k][j] for pb in part_bounds) for j in range(2)) for k in range(len(bounds))]
    for (lo, hi), c in zip(parts, part_counts):
        counts[:, lo:hi] += c
    out = []
    for j in range(3):
        out.append([np.concatenate([r[j][k] for r in results]) for k in range(len(results[0][j]))])
    return out[0], out[1], out[2]
