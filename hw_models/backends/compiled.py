"""The emulator's compiled kernel: ``core_spec`` rules 1-4 as numba loops, event-driven, exact in every case.

Why: the NumPy engine (``emulator``) spends its time in many small array passes and in NumPy's
generic BLAS kernel; plain torch beat it at batch 1 and 64. Here one compiled call runs every layer
of a chunk: for each sample and step it finds the active inputs (8-byte words at a time), adds each
one's weight row (dense) or its kernel taps (conv) into integer accumulators, then applies the LIF
rules to every neuron. ``_lif64`` writes the rules literally (trunc decays, the 24-bit wrap, the
int32 casts, the voltage clip) and is exact for any state; ``_lif32`` is the same in 32-bit lanes,
used only for chunks where ``core_spec.run_bounds`` (the quantizer's overflow rule) proves that the
current never wraps (then nothing leaves int32; the clip is applied in both) and the decays are
shifts. Bounds also pick int32 or int64 accumulators.

A binary conv (every weight ±1) fed by a conv layer's spikes has a second, output-stationary path
(``_conv_bitplane``): each output's receptive field is gathered as bits and its sum is
``2 * popcount(x & w+) - popcount(x)``, the XNOR-popcount of binary networks. Scattering weight rows
is bound by scattered read-modify-writes (about 11 ns per tap here, in numba and in C alike); the
bit-plane pass costs the same at any activity, so ``_layer_step`` takes it only from a count of
active inputs (``_popcount_min``) at which it is cheaper. ``_bin_and_run`` bins a stream window's
events and runs every layer in one call (``CompiledRun.advance_events``): at 1 ms windows the Python
between binning and kernel was a tenth of the time. Tests run every emulator test on both engines,
and the bit-plane path forced on, against the reference.

Layout (internal; every public result is in the network's order):

* conv layers keep neurons and output spikes channel-last ``(H, W, C)``: an input event adds a
  contiguous run of ``C_out`` weights per tap, and the tap table (``_conv_taps``) lists, per input
  position, the ``(output position, kernel offset)`` pairs it reaches; a conv of stride 1 along x stores
  its kernel columns reversed, so one kernel row's taps are one run of ``(positions x C_out)``
  (``_conv_rows``);
* a dense layer stores its weights ``(n_in, n_out)`` with rows in the order its input arrives;
* all layers' weights, tap tables and registers are concatenated into flat arrays with offsets in a
  parameter table (``P_*`` columns), state ``u``/``v`` is one ``(B, N)`` array each, spikes one
  ``(B, T, width)`` buffer: passing typed lists cost about 2 µs each per call.

``NetworkPlan`` is built once per network object (``plan_for``), which freezes the network's arrays
(a later in-place write raises instead of being ignored); ``CompiledRun`` holds one batch's state.
Kernels release the GIL, so ``CompiledRun(workers=n)`` splits a batch over threads. Without numba,
``HAVE_NUMBA`` is False and ``emulator`` uses its NumPy engine (with a warning), never other numbers.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hw_models import core_spec
from hw_models.geometry import max_abs_row_sum
from hw_models.integer_network import IntegerNetwork, IntLayer

try:  # optional: the NumPy engine is the fallback
    import numba
    from numba.cpython.unsafe.numbers import trailing_zeros
    from numba.extending import intrinsic
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised by the fallback test with a patched flag
    numba = None
    HAVE_NUMBA = False

    def trailing_zeros(x):  # the plain-Python meaning, for the uncompiled kernels
        return (int(x) & -int(x)).bit_length() - 1

if HAVE_NUMBA:
    @intrinsic
    def _popcount_raw(typingctx, x):
        """LLVM's ``ctpop`` (one ``popcnt`` instruction); numba has no popcount of its own."""
        def codegen(context, builder, sig, args):
            return builder.call(builder.module.declare_intrinsic("llvm.ctpop", [args[0].type]), args)
        return x(x), codegen
else:  # pragma: no cover
    def _popcount_raw(x):
        return bin(int(x)).count("1")

_MAX = core_spec.MAX_UV
_SHIFT = core_spec.DECAY_SHIFT
_ACT = core_spec.ACT_SHIFT
_COUNT_FIELDS = 5  # input_events, synops, neuron_updates, spikes (LayerCounts order), active neuron updates


def jit(fn):
    """``numba.njit`` as every kernel of the project uses it (no GIL, cached on disk); identity without numba."""
    return numba.njit(nogil=True, cache=True, fastmath=False, boundscheck=False)(fn) if HAVE_NUMBA else fn


def _inline(fn):
    return numba.njit(inline="always", cache=True)(fn) if HAVE_NUMBA else fn

# columns of the per-layer parameter table handed to the kernel (LayerPlan.params)
(P_KIND, P_CIN, P_COUT, P_K, P_IN_HWC, P_WEXP, P_KU, P_KV, P_LSH, P_RSH, P_SHU, P_MASKU, P_SHV, P_SOFF,
 P_SPAD, P_ROFF, P_NOUT, P_WOFF, P_WROWS, P_WCOLS, P_TPOFF, P_TOFF, P_NTAPS, P_DIVSH,
 P_NW, P_BOFF, P_PCMIN, P_KH, P_KW, P_SH, P_SW, P_PH, P_PW, P_H, P_W, P_HO, P_WO, P_R32OFF, P_R32LEN, P_ROWS,
 P_WSH) = range(41)
N_PARAMS = 41
REG_TILE = 64  # int32 registers that repeat with the channel (conv, channel-last) are stored as one 64-entry tile
POPCOUNT_WORDS = 4  # the bit-plane path packs a receptive field (K * C_in bits) into at most 4 words
POPCOUNT_SCATTER_RATIO = 3.0  # cost of one scattered weight row / one popcount word, measured (see _popcount_min)


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


@jit
def _lif64(acc, weight_exp, ku, kv, bias, vth64, u, v, s_row):
    """Rules 1 (shift, int32 cast) to 4 for one sample and step, in int64 with every wrap, cast and clip.

    The general path: any decay, any state. Clears ``acc`` as it reads it (for the next step); returns the
    number of spikes."""
    ku, kv = np.int32(ku), np.int32(kv)
    n_spk = 0
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
        n_spk += spk
        u[j] = cur
        v[j] = 0 if spk else vv
    return n_spk


@_inline
def _voltage32(vj, cur, bias, rv, shv, lo, hi):
    """Rules 2-3 in 32 bits: ``trunc(v / 2**shv) + cur + bias``, clipped to 24 bits."""
    return min(max(np.int32(np.int32((vj + ((vj >> 31) & rv)) >> shv) + cur + bias), lo), hi)


@jit
def _lif32(acc, lsh, rsh, shu, mask_u, shv, bias32, vth32, u, v, s_row):
    """``_lif64`` where the caller has proved (``core_spec.run_bounds``) that the current never wraps and the
    decays are shifts (``trunc(x / 2**sh)``; ``mask_u = 0`` clears ``u``, du = 4095); returns the spike count.

    Then every value fits int32: ``|cur| < 2**23`` (no wrap), ``|v| < 2**23`` (clipped every step), ``|bias| <
    2**23``, so ``trunc(v) + cur + bias`` stays below ``3 * 2**23`` before the clip, which is applied here as in
    ``_lif64`` (a min and a max: it costs two vector instructions, and proving it idle forced busy layers onto
    the int64 path). Every operation is 32-bit, so LLVM vectorises it 8 lanes wide (AVX2); shift counts are
    masked to ``< 32`` to let it narrow them. ``bias32``/``vth32`` of ``REG_TILE`` entries (``int32_registers``)
    hold registers that repeat every ``REG_TILE`` neurons."""
    lsh, rsh, shu, shv = lsh & 31, rsh & 31, shu & 31, shv & 31
    ru = (np.int32(1) << shu) - 1
    rv = (np.int32(1) << shv) - 1
    lo, hi = np.int32(1 - _MAX), np.int32(_MAX - 1)
    n_spk = 0
    if mask_u == 0 and bias32.shape[0] == REG_TILE and acc.shape[0] % REG_TILE == 0:
        # registers as one tile of REG_TILE (they repeat with the channel): 8 bytes a neuron less to stream
        for blk in range(acc.shape[0] // REG_TILE):
            j0 = blk * REG_TILE
            for i in range(REG_TILE):
                j = j0 + i
                cur = np.int32(np.int32((np.int32(acc[j]) << lsh) >> rsh) << _ACT)
                acc[j] = 0
                vv = _voltage32(v[j], cur, bias32[i], rv, shv, lo, hi)
                spk = np.int32(vv > vth32[i])
                s_row[j] = np.uint8(spk)
                n_spk += spk
                u[j] = cur
                v[j] = vv * (np.int32(1) - spk)
        return n_spk
    if mask_u == 0:  # du = 4095 (the usual setting): u is this step's input alone, and is not read
        for j in range(acc.shape[0]):
            cur = np.int32(np.int32((np.int32(acc[j]) << lsh) >> rsh) << _ACT)
            acc[j] = 0
            vv = _voltage32(v[j], cur, bias32[j], rv, shv, lo, hi)
            spk = np.int32(vv > vth32[j])
            s_row[j] = np.uint8(spk)
            n_spk += spk
            u[j] = cur
            v[j] = vv * (np.int32(1) - spk)
        return n_spk
    for j in range(acc.shape[0]):
        a = np.int32((np.int32(acc[j]) << lsh) >> rsh)
        acc[j] = 0
        uu = u[j]
        cur = np.int32((a << _ACT) + (np.int32((uu + ((uu >> 31) & ru)) >> shu) & mask_u))
        vv = _voltage32(v[j], cur, bias32[j], rv, shv, lo, hi)
        spk = np.int32(vv > vth32[j])
        s_row[j] = np.uint8(spk)
        n_spk += spk
        u[j] = cur
        v[j] = vv * (np.int32(1) - spk)
    return n_spk


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH1 = np.uint64(0x8080808080808080)
_GATHER = np.uint64(0x0102040810204080)  # moves bit 8k of a word to bit 56 + k


def _set_bit_table() -> np.ndarray:
    """Row ``m``: the positions of the set bits of the byte ``m``, in order (zero-padded to 8)."""
    tab = np.zeros((256, 8), np.int32)
    for m in range(256):
        pos = [b for b in range(8) if m >> b & 1]
        tab[m, :len(pos)] = pos
    return tab


_SET_BITS = _set_bit_table()


@_inline
def _active_inputs(xs, xs64, evbuf):
    """Indices of the nonzero entries of ``xs`` into ``evbuf`` (which has 8 entries of slack); returns their number.

    ``xs64`` is the same row seen as 8-byte words (uint8 rows whose length is a multiple of 8; else empty).
    Each word's nonzero bytes become an 8-bit mask (``_byte_mask``) whose set-bit positions are copied from a
    table, all 8 slots written and the count advanced by the mask's popcount: no branch on the data. Tests
    on the data (skip zero words, then walk the set bits) mispredicted often enough at 6-11 % activity that
    this was faster on every step's new spikes, though slower on one row scanned over and over (a predictor
    that learns the row: what a repeated micro-benchmark measures). A row with fewer set bits than an eighth
    of its words (counted first, branch-free) takes the tests instead: there they are predicted, and the
    table pass would cost a few ns for every word of a nearly empty row."""
    n = 0
    n_words = xs64.shape[0]
    if n_words > 0:
        busy = 0  # set bits: the number of active inputs of a spike row, an over-estimate for graded ones
        for wi in range(n_words):
            busy += _popcount(xs64[wi])
        if busy * 8 < n_words:  # mostly zero words: skipping them is predicted, and skips the table
            for wi in range(n_words):
                w = xs64[wi]
                if w != 0:
                    bits = _byte_mask(w)
                    base = wi * 8
                    while bits:
                        evbuf[n] = base + trailing_zeros(bits)
                        n += 1
                        bits &= bits - np.uint64(1)
            return n
        for wi in range(n_words):
            bits = _byte_mask(xs64[wi])
            base = wi * 8
            r = np.int64(bits)
            for k in range(8):
                evbuf[n + k] = base + _SET_BITS[r, k]
            n += _popcount(bits)
    else:
        for i in range(xs.shape[0]):
            if xs[i] != 0:
                evbuf[n] = i
                n += 1
    return n


@jit
def _dense_add(xs, evbuf, n_ev, wf, acc):
    """Each active input ``evbuf[:n_ev]`` of row ``xs`` adds its weight row (``wf`` flat ``(n_in, n_out)``).

    Its own compiled function (not inlined into the network loop): in the big loop the same code ran
    slower (register pressure). Flat unsigned offsets, not row views (a view per event costs a refcount
    pair, and unsigned indices need no negative-index fix-up, so the adds vectorise)."""
    n_out = acc.shape[0]
    for e in range(n_ev):
        i = evbuf[e]
        xv = xs[i]
        w0 = np.uint64(i * n_out)
        if xv == 1:
            for j in range(n_out):
                acc[j] += wf[w0 + np.uint64(j)]
        else:
            for j in range(n_out):
                acc[j] += xv * wf[w0 + np.uint64(j)]


@jit
def _conv_add(xs, evbuf, n_ev, wf, acc, c_in, c_out, n_k, in_hwc, div_sh, tp, tq, touched):
    """Each active input adds its taps' ``C_out`` weights to the channel-last accumulators; returns
    ``(SynOps, active neuron updates)``.

    Input ``i`` is ``c * HW + p`` (network order) or, with ``in_hwc``, ``p * C_in + c``; splitting it is a shift
    when the divisor is a power of two (``div_sh``; a 64-bit division per event cost as much as its adds).
    ``touched`` flags the output positions reached, set without a test, counted and cleared at the end."""
    hw = xs.shape[0] // c_in
    syn = 0
    for e in range(n_ev):
        i = evbuf[e]
        xv = xs[i]
        if in_hwc:
            p = i >> div_sh if div_sh >= 0 else i // c_in
            c = i - p * c_in
        else:
            c = i >> div_sh if div_sh >= 0 else i // hw
            p = i - c * hw
        q0, q1 = tp[p], tp[p + 1]
        syn += (q1 - q0) * c_out
        for q in range(q0, q1):
            op = tq[q] >> 8
            touched[op] = 1
            a0 = np.uint64(op * c_out)
            w0 = np.uint64((c * n_k + (tq[q] & 255)) * c_out)
            if xv == 1:
                for o in range(c_out):
                    acc[a0 + np.uint64(o)] += wf[w0 + np.uint64(o)]
            else:
                for o in range(c_out):
                    acc[a0 + np.uint64(o)] += xv * wf[w0 + np.uint64(o)]
    n_active = 0
    n_pos = acc.shape[0] // c_out
    for m in range(n_pos):
        n_active += touched[m]
        touched[m] = 0
    return syn, n_active * c_out


@_inline
def _popcount(x):
    return np.int64(_popcount_raw(x))


@_inline
def _byte_mask(w):
    """The 8 bits ``k`` = byte ``k`` of ``w`` is nonzero (see ``_active_inputs``)."""
    return ((((((w & _LOW7) + _LOW7) | w) & _HIGH1) >> np.uint64(7)) * _GATHER) >> np.uint64(56)


@_inline
def _count_spikes(xs64):
    """Active inputs of a spike row (bytes 0 or 1) seen as words: one popcount per word."""
    n = 0
    for wi in range(xs64.shape[0]):
        n += _popcount(xs64[wi])
    return n


@jit
def _conv_bitplane(xs64, wbits, acc, c_in, c_out, kh, kw, sh, sw, ph, pw, h, w, ho, wo, n_words):
    """A binary (every weight ±1) conv on spikes, output by output: ``acc = 2 * popcount(x & w+) - popcount(x)``.

    ``x`` is the receptive field's input bits (bit ``(ky * kW + kx) * C_in + c``, ``n_words`` <= 4 words,
    gathered from the channel-last spike words: one word holds 8 channels of a position), ``w+`` the same bits
    of the weights that are +1 (``wbits`` rows of ``POPCOUNT_WORDS``). Exact (integer counts); the sum over the
    receptive field equals the scattered sum, ``SynOps`` are its active bits times ``C_out`` and the positions
    reached are those with any active bit, as in ``_conv_add``. Returns ``(SynOps, active neuron updates)``.
    At a busy step it costs about half of scattering weight rows, which is bound by scattered
    read-modify-writes of the accumulators; at a quiet one it costs more, so ``_layer_step`` picks by the
    count of active inputs."""
    cw = c_in >> 3  # words per input position
    syn = 0
    n_active = 0
    for oy in range(ho):
        iy0 = oy * sh - ph
        ky0, ky1 = max(0, -iy0), min(kh, h - iy0)  # the taps inside the input: no test per tap
        for ox in range(wo):
            ix0 = ox * sw - pw
            kx0, kx1 = max(0, -ix0), min(kw, w - ix0)
            x0 = np.uint64(0)
            x1 = np.uint64(0)
            x2 = np.uint64(0)
            x3 = np.uint64(0)
            for ky in range(ky0, ky1):
                row = ((iy0 + ky) * w + ix0) * cw
                for kx in range(kx0, kx1):
                    base = row + kx * cw
                    bit = (ky * kw + kx) * c_in
                    for j in range(cw):  # no test of the word itself: a zero word adds no bits
                        off = bit + 8 * j
                        m = _byte_mask(xs64[base + j]) << np.uint64(off & 63)
                        q = off >> 6  # the same sequence at every output: predicted
                        if q == 0:
                            x0 |= m
                        elif q == 1:
                            x1 |= m
                        elif q == 2:
                            x2 |= m
                        else:
                            x3 |= m
            tot = _popcount(x0) + _popcount(x1) + _popcount(x2) + _popcount(x3)
            if tot == 0:
                continue
            syn += tot
            n_active += 1
            a0 = (oy * wo + ox) * c_out
            if n_words == 1:  # one loop per word count: no popcounts of words that are always zero
                for o in range(c_out):
                    acc[a0 + o] = 2 * _popcount(x0 & wbits[o * POPCOUNT_WORDS]) - tot
            elif n_words == 2:
                for o in range(c_out):
                    r = o * POPCOUNT_WORDS
                    acc[a0 + o] = 2 * (_popcount(x0 & wbits[r]) + _popcount(x1 & wbits[r + 1])) - tot
            else:
                for o in range(c_out):
                    r = o * POPCOUNT_WORDS
                    acc[a0 + o] = 2 * (_popcount(x0 & wbits[r]) + _popcount(x1 & wbits[r + 1]) +
                                       _popcount(x2 & wbits[r + 2]) + _popcount(x3 & wbits[r + 3])) - tot
    return syn * c_out, n_active * c_out


@jit
def _conv_rows(xs, evbuf, n_ev, wf, acc, c_in, c_out, kh, kw, sh, ph, pw, w, ho, wo, in_hwc, div_sh, w_sh, touched):
    """``_conv_add`` for convs of stride 1 along x: the taps of one kernel row land on consecutive output
    positions, so with the kernel's columns stored reversed (``_layer_plan``) an input event adds one contiguous
    run of ``(positions x C_out)`` weights per kernel row to one contiguous run of accumulators (a 5x5 kernel:
    5 runs of 80 instead of 25 runs of 16). Returns ``(SynOps, active neuron updates)`` as ``_conv_add``.

    Splitting the input index is a shift where the divisors are powers of two (``div_sh``, ``w_sh``); graded
    inputs are multiplied in the loop rather than tested (a count of 1 or more is not predictable)."""
    hw = xs.shape[0] // c_in
    syn = 0
    for e in range(n_ev):
        i = evbuf[e]
        xv = np.int32(xs[i])
        if in_hwc:
            p = i >> div_sh if div_sh >= 0 else i // c_in
            c = i - p * c_in
        else:
            c = i >> div_sh if div_sh >= 0 else i // hw
            p = i - c * hw
        y = p >> w_sh if w_sh >= 0 else p // w
        x = p - y * w
        ox_u = x + pw - kw + 1  # the output column the last kernel column reaches
        ox_a, ox_b = max(ox_u, 0), min(x + pw, wo - 1)
        if ox_a > ox_b:
            continue
        run = (ox_b - ox_a + 1) * c_out
        kr_a = ox_a - ox_u
        for ky in range(kh):
            t = y + ph - ky
            if t < 0:
                break
            oy = t // sh
            if oy * sh != t or oy >= ho:
                continue
            a0 = np.uint64((oy * wo + ox_a) * c_out)
            w0 = np.uint64(((c * kh + ky) * kw + kr_a) * c_out)
            for j in range(run):
                acc[a0 + np.uint64(j)] += xv * wf[w0 + np.uint64(j)]
            for q in range(oy * wo + ox_a, oy * wo + ox_b + 1):
                touched[q] = 1
            syn += run
    n_active = 0
    n_pos = acc.shape[0] // c_out
    for m in range(n_pos):
        n_active += touched[m]
        touched[m] = 0
    return syn, n_active * c_out


@_inline
def _layer_step(k, xs, xs64, b, t, par, fast, weights, tap_ptr, taps, wbits, bias64, vth64, bias32, vth32, us, vs,
                accs, spikes, v_rec, u_rec, record, counts, evbuf, touched):
    """Layer ``k`` for sample ``b``, step ``t``, on input row ``xs``: rules 1-4 of ``core_spec``.

    Dense: each active input adds its weight row. Conv (``par[k, P_KIND] == 1``): input ``i`` is ``c * HW + p``
    (network order) or, after a conv layer, ``p * C_in + c`` (channel-last); each tap of position ``p``
    (``output position << 8 | kernel offset``) adds the contiguous ``C_out`` weights of row ``c * K + offset``
    to the channel-last accumulators of that output position. Active neuron updates (neurons that received an
    event, ``hw_models.results.active_updates``): a dense layer's all when any input is active; a conv layer's
    ``C_out`` per distinct output position reached (``touched`` flags, set without a test, counted and cleared
    after the step: a test-and-append per tap cost more). A binary conv on spikes (``par[k, P_NW] > 0``) takes
    ``_conv_bitplane`` instead when at least ``P_PCMIN`` inputs are active.
    """
    soff, roff, n_out = par[k, P_SOFF], par[k, P_ROFF], par[k, P_NOUT]
    acc = accs[roff:roff + n_out]
    bitplane = False
    if par[k, P_NW] > 0:  # a binary conv on spikes: count the active inputs first, then pick the cheaper path
        n_ev = _count_spikes(xs64)
        bitplane = n_ev >= par[k, P_PCMIN]
    if bitplane:
        syn, n_active = _conv_bitplane(xs64, wbits[par[k, P_BOFF]:par[k, P_BOFF] + par[k, P_COUT] * POPCOUNT_WORDS],
                                       acc, par[k, P_CIN], par[k, P_COUT], par[k, P_KH], par[k, P_KW], par[k, P_SH],
                                       par[k, P_SW], par[k, P_PH], par[k, P_PW], par[k, P_H], par[k, P_W],
                                       par[k, P_HO], par[k, P_WO], par[k, P_NW])
    else:
        n_ev = _active_inputs(xs, xs64, evbuf)
        woff, rows, cols = par[k, P_WOFF], par[k, P_WROWS], par[k, P_WCOLS]
        wf = weights[woff:woff + rows * cols]
        if par[k, P_KIND] == 0:
            _dense_add(xs, evbuf, n_ev, wf, acc)
            syn = n_ev * n_out
            n_active = n_out if n_ev > 0 else 0
        elif par[k, P_ROWS]:
            syn, n_active = _conv_rows(xs, evbuf, n_ev, wf, acc, par[k, P_CIN], par[k, P_COUT], par[k, P_KH],
                                       par[k, P_KW], par[k, P_SH], par[k, P_PH], par[k, P_PW], par[k, P_W],
                                       par[k, P_HO], par[k, P_WO], par[k, P_IN_HWC], par[k, P_DIVSH], par[k, P_WSH],
                                       touched)
        else:
            c_in = par[k, P_CIN]
            hw = xs.shape[0] // c_in
            tp = tap_ptr[par[k, P_TPOFF]:par[k, P_TPOFF] + hw + 1]
            tq = taps[par[k, P_TOFF]:par[k, P_TOFF] + par[k, P_NTAPS]]
            syn, n_active = _conv_add(xs, evbuf, n_ev, wf, acc, c_in, par[k, P_COUT], par[k, P_K], par[k, P_IN_HWC],
                                      par[k, P_DIVSH], tp, tq, touched)
    u, v, s_row = us[b, roff:roff + n_out], vs[b, roff:roff + n_out], spikes[b, t, soff:soff + n_out]
    if fast[k]:
        n_spk = _lif32(acc, par[k, P_LSH], par[k, P_RSH], par[k, P_SHU], par[k, P_MASKU], par[k, P_SHV],
                       bias32[par[k, P_R32OFF]:par[k, P_R32OFF] + par[k, P_R32LEN]],
                       vth32[par[k, P_R32OFF]:par[k, P_R32OFF] + par[k, P_R32LEN]], u, v, s_row)
    else:
        n_spk = _lif64(acc, par[k, P_WEXP], par[k, P_KU], par[k, P_KV], bias64[roff:roff + n_out],
                       vth64[roff:roff + n_out], u, v, s_row)
    if record:
        for j in range(n_out):
            v_rec[b, t, roff + j] = v[j]
            u_rec[b, t, roff + j] = u[j]
    counts[k, b, 0] += n_ev
    counts[k, b, 1] += syn
    counts[k, b, 2] += n_out
    counts[k, b, 3] += n_spk
    counts[k, b, 4] += n_active


@jit
def _run_network(x, x64, par, fast, weights, tap_ptr, taps, wbits, bias64, vth64, bias32, vth32, us, vs, accs, spikes,
                 spike_words, v_rec, u_rec, record, counts, evbuf, touched):
    """Every layer over every sample and step of ``x`` ``(B, T, n_in)``; one call per chunk.

    Layer ``k``'s spikes of step ``t`` are ``spikes[b, t, soff:soff + n]`` (storage order; ``soff`` a multiple of
    8, the segment padded with zeros to whole words, seen by ``spike_words``) and are the input row of layer
    ``k + 1`` in that step (the network is feed-forward: layer ``k`` can run the whole chunk first). State (``us``, ``vs``: ``(B, N)``), accumulators (``(N,)``) and records
    (``(B, T, N)``) put layer ``k`` at column ``roff``; so do the registers (``bias*``, ``vth*``). Weights and tap
    tables are every layer's, concatenated (offsets in ``par``): flat arrays, because each typed-list
    argument cost about 2 µs to pass, which at one step per call was a tenth of the budget."""
    n_b, n_t = x.shape[0], x.shape[1]
    n_layers = par.shape[0]
    # layer by layer (each layer's weights stay in cache over the whole chunk), then sample, then step
    for b in range(n_b):
        for t in range(n_t):
            _layer_step(0, x[b, t], x64[b, t], b, t, par, fast, weights, tap_ptr, taps, wbits, bias64, vth64, bias32,
                        vth32, us, vs, accs, spikes, v_rec, u_rec, record, counts, evbuf, touched)
    for k in range(1, n_layers):
        so, n, pad = par[k - 1, P_SOFF], par[k - 1, P_NOUT], par[k - 1, P_SPAD]
        for b in range(n_b):
            for t in range(n_t):
                _layer_step(k, spikes[b, t, so:so + n], spike_words[b, t, so // 8:(so + pad) // 8], b, t, par, fast,
                            weights, tap_ptr, taps, wbits, bias64, vth64, bias32, vth32, us, vs, accs, spikes, v_rec,
                            u_rec, record, counts, evbuf, touched)


@_inline
def _count_events(ev, lo, hi, start, stop, n_bins, f, f_shift, w, h, n_pol, clip, out):
    """Count events ``ev[lo:hi]`` (a structured array with fields ``x``, ``y``, ``t``, ``p``, read in place)
    into ``out`` ``(n_bins, P, H, W)`` uint8, bins ``(t - start) * n_bins // (stop - start)``
    (``events.binning.bin_by_time``'s edges), coordinates divided by the downsample ``f``, saturating at
    ``clip``. Returns ``(-1, largest count)``, or the index of the first event outside the span or the sensor
    (nothing is dropped: the caller reports it).

    Divides only where it must: a power-of-two ``f`` is the shift ``f_shift`` (floor division, like ``//``), and
    one bin needs no bin index; three 64-bit divisions per event were most of a window's binning. Reading the
    records in place (one stream of 13-byte records) was twice as fast as four copied columns, and saves
    copying them (a tenth of a 1 s DVS128 stream's wall time at 2e6 events/s)."""
    span = stop - start
    x_max = 0
    for i in range(lo, hi):
        e = ev[i]
        ti = e.t
        if ti < start or ti >= stop:
            return i, x_max
        if f_shift >= 0:
            xi = e.x >> f_shift
            yi = e.y >> f_shift
        else:
            xi = e.x // f
            yi = e.y // f
        pi = e.p if n_pol > 1 else 0
        if xi < 0 or xi >= w or yi < 0 or yi >= h or pi < 0 or pi >= n_pol:
            return i, x_max
        k = ((ti - start) * n_bins) // span if n_bins > 1 else 0
        c = out[k, pi, yi, xi]
        if c < clip:
            c += 1
            out[k, pi, yi, xi] = c
            x_max = max(x_max, np.int64(c))
    return -1, x_max


@jit
def bin_events_u8(ev, lo, hi, start, stop, n_bins, f, f_shift, w, h, n_pol, clip, out):
    """``_count_events`` as a call of its own (``streaming.windows.WindowBinner``)."""
    return _count_events(ev, lo, hi, start, stop, n_bins, f, f_shift, w, h, n_pol, clip, out)


@jit
def search_time(ev, lo, stop):
    """The first index ``>= lo`` of the time-sorted records ``ev`` whose ``t`` is ``>= stop`` (binary search)."""
    hi = ev.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if ev[mid].t < stop:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def _bin_and_run(ev, lo, hi, start, stop, n_bins, f, f_shift, w, h, n_pol, clip, frame, frame_words, x_bound,
                 par, fast, weights, tap_ptr, taps, wbits, bias64, vth64, bias32, vth32, us, vs, accs, spikes,
                 spike_words, no_rec, counts, evbuf, touched):
    """One stream window in one call: ``_count_events`` into ``frame`` (cleared first), then ``_run_network`` on
    it (batch 1), unless an event is bad (returns its index) or a count exceeds ``x_bound``, the largest input
    the caller's int32 proof assumed (returns -2 and runs nothing: the caller proves again and repeats).
    Returns ``(status, largest count)``."""
    n_in = n_pol * h * w
    size = n_bins * n_in
    buf = frame[:size]
    for i in range(size):
        buf[i] = 0
    bad, x_max = _count_events(ev, lo, hi, start, stop, n_bins, f, f_shift, w, h, n_pol, clip,
                               buf.reshape((n_bins, n_pol, h, w)))
    if bad >= 0:
        return bad, x_max
    if x_max > x_bound:
        return -2, x_max
    nw = frame_words.shape[0] // max(1, frame.shape[0] // n_in)  # words per step (0: rows not whole words)
    _run_network(buf.reshape((1, n_bins, n_in)), frame_words[:n_bins * nw].reshape((1, n_bins, nw)), par, fast,
                 weights, tap_ptr, taps, wbits, bias64, vth64, bias32, vth32, us, vs, accs, spikes, spike_words,
                 no_rec, no_rec, False, counts, evbuf, touched)
    return -1, x_max


@jit
def _max_u8(x):
    m = 0
    for i in range(x.shape[0]):
        m = max(m, x[i])
    return m


def _conv_taps(layer: IntLayer) -> tuple[np.ndarray, np.ndarray]:
    """Per input position ``y * W + x``: the ``output position << 8 | kernel offset`` taps it reaches (int32)."""
    _, h, w = layer.in_shape
    c_out, ho, wo = layer.out_shape
    kh, kw = np.asarray(layer.weight_mant).shape[2:]
    if kh * kw > 256 or ho * wo >= 1 << 23:
        raise ValueError(f"layer {layer.name!r}: kernel {kh}x{kw} or output map {ho}x{wo} too large for the "
                         "compiled kernel's tap table; use kernel='numpy'")
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    oy, ox, ky, kx = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    y, x = oy * sh - ph + ky, ox * sw - pw + kx
    ok = (y >= 0) & (y < h) & (x >= 0) & (x < w)
    pos = (y * w + x)[ok]
    order = np.argsort(pos, kind="stable")
    ptr = np.zeros(h * w + 1, np.int32)
    np.cumsum(np.bincount(pos, minlength=h * w), out=ptr[1:])
    packed = ((oy * wo + ox) << 8 | (ky * kw + kx))[ok][order]
    return ptr, packed.astype(np.int32)


def _decay_shift(k: int) -> Optional[tuple[int, int]]:
    """``(sh, mask)`` with ``trunc(x * k / 4096) == trunc(x / 2**sh) & mask`` for int32 ``x`` (``core_spec.decay_shift``;
    ``k = 0`` clears: mask 0); None unless ``k`` is 0 or a power of two."""
    if k == 0:
        return 0, 0
    sh = core_spec.decay_shift(k)
    return None if sh is None else (sh, -1)


def _smallest_int(lo: int, hi: int, choices=(np.int8, np.int16, np.int32)) -> np.dtype:
    for dt in choices:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


@dataclass
class LayerPlan:
    """One layer as the kernel takes it: weights, registers (conv: channel-last), the conv's tap table."""

    kind: str
    n_in: int
    n_out: int
    weight_exp: int
    ku: int
    kv: int
    bias: np.ndarray  # (n_out,) int64, storage order (conv: channel-last)
    vth64: np.ndarray  # (n_out,) int64, storage order
    weights: np.ndarray  # NetworkPlan narrows all layers to one type: dense (n_in, n_out), conv (C_in*K, C_out) (rows: kW reversed)
    acc_bound: int  # max over neurons of sum |w| (bounds |acc| per unit of input)
    c_in: int  # conv: input channels
    n_k: int  # conv: kernel offsets K = kH * kW
    in_hwc: bool  # inputs arrive channel-last (from a conv layer) rather than in network order
    taps: Optional[tuple[np.ndarray, np.ndarray]]  # conv: _conv_taps
    hwc: Optional[tuple[int, int]]  # conv: (C_out, H_out * W_out), the channel-last state's shape
    b_max: int = 0  # max |bias|
    p32: Optional[tuple] = None  # the int32 path's (lsh, rsh, shu, mask_u, shv); None: decays not shift-only
    bits: Optional[np.ndarray] = None  # binary conv on spikes: (C_out, POPCOUNT_WORDS) +1-weight bits (_conv_bitplane)
    rows: bool = False  # conv of stride 1 along x: scattered by kernel rows (_conv_rows), kernel columns reversed
    geometry: tuple = ()  # conv: (kH, kW, sH, sW, pH, pW, H, W, H_out, W_out)

    def __post_init__(self):
        self._safe_memo: dict = {}
        self._call_memo: dict = {}
        self.b_max = int(np.abs(self.bias).max(initial=0))
        shifts = [_decay_shift(k) for k in (self.ku, self.kv)]
        if None not in shifts and self.b_max < _MAX and int(self.vth64.max(initial=0)) <= core_spec.INT32_MAX:
            (shu, mask_u), (shv, _) = shifts
            we = self.weight_exp
            self.p32 = (max(we, 0), max(-we, 0), shu, mask_u, shv)

    def params(self) -> np.ndarray:
        """This layer's row of the kernel's parameter table (``P_*`` columns)."""
        row = np.zeros(N_PARAMS, np.int64)
        row[[P_KIND, P_CIN, P_COUT, P_K, P_IN_HWC, P_WEXP, P_KU, P_KV]] = [
            self.kind == "conv", self.c_in, self.hwc[0] if self.hwc else 0, self.n_k, self.in_hwc, self.weight_exp,
            self.ku, self.kv]
        if self.p32 is not None:
            row[[P_LSH, P_RSH, P_SHU, P_MASKU, P_SHV]] = self.p32
        if self.kind == "conv":
            d = self.c_in if self.in_hwc else self.n_in // self.c_in  # the divisor that splits an input index
            row[P_DIVSH] = d.bit_length() - 1 if d & (d - 1) == 0 else -1
            row[[P_KH, P_KW, P_SH, P_SW, P_PH, P_PW, P_H, P_W, P_HO, P_WO]] = self.geometry
            row[P_ROWS] = self.rows
            w_in = self.geometry[7]
            row[P_WSH] = w_in.bit_length() - 1 if w_in & (w_in - 1) == 0 else -1
        if self.bits is not None:
            row[P_NW] = -(-self.n_k * self.c_in // 64)  # words a receptive field takes
            row[P_PCMIN] = _popcount_min(self)
        return row

    def int32_registers(self) -> tuple[np.ndarray, np.ndarray]:
        """``(bias, threshold)`` for ``_lif32`` (int32, storage order): one ``REG_TILE`` tile where they repeat
        every ``REG_TILE`` neurons and u is cleared each step (a conv's per-channel registers, channel-last),
        else one per neuron; zero-length where the layer never takes the int32 path."""
        if self.p32 is None:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        b, v = self.bias.astype(np.int32), self.vth64.astype(np.int32)
        n = self.n_out
        if self.p32[3] == 0 and n % REG_TILE == 0 and n > REG_TILE:
            tb, tv = b[:REG_TILE], v[:REG_TILE]
            if np.array_equal(b.reshape(-1, REG_TILE), np.broadcast_to(tb, (n // REG_TILE, REG_TILE))) and \
                    np.array_equal(v.reshape(-1, REG_TILE), np.broadcast_to(tv, (n // REG_TILE, REG_TILE))):
                return tb.copy(), tv.copy()
        return b, v

    def int32_safe(self, a_max: int, steps: int, u_bnd: int, v_bnd: int) -> tuple[bool, int, int]:
        """Whether ``_lif32`` is exact for ``steps`` steps from state bounds ``u_bnd``/``v_bnd`` with activations
        ``|a| <= a_max`` (``core_spec.run_bounds``: no wrap; a clip may act); and the bounds after those steps."""
        key = (a_max, steps, u_bnd, v_bnd)
        hit = self._safe_memo.get(key)  # batches start from (0, 0); streams reach a fixed point: few keys
        if hit is None:
            bounds = core_spec.run_bounds(a_max, self.b_max, self.ku, self.kv, steps, u_bnd, v_bnd)
            if not bounds:
                hit = (self.p32 is not None, u_bnd, v_bnd)
            else:
                clean = not any(b.may_wrap for b in bounds)  # _lif32 applies the clip itself
                hit = (self.p32 is not None and clean, int(bounds[-1].u), int(bounds[-1].v))
            if len(self._safe_memo) > 256:
                self._safe_memo.clear()
            self._safe_memo[key] = hit
        return hit


def _layer_plan(layer: IntLayer, in_hwc: Optional[tuple[int, int]]) -> LayerPlan:
    """The plan of ``layer``; ``in_hwc`` = ``(C, HW)`` when its input is a conv layer's channel-last spikes."""
    w = np.asarray(layer.weight_mant, np.int64)
    n_in, n_out = layer.n_in, layer.n_out
    bias = np.asarray(layer.bias, np.int64).reshape(-1)
    vth64 = np.array(np.broadcast_to(core_spec.scaled_threshold(layer.vth), (n_out,)), np.int64)  # writable copy
    acc_bound = max_abs_row_sum(layer)
    if layer.kind == "dense":
        weights = (w if in_hwc is None else _to_hwc(w, in_hwc)).T  # rows in the order the inputs arrive
        taps, hwc, c_in, n_k = None, None, 0, 0
    else:
        if in_hwc is not None and in_hwc[0] != layer.in_shape[0]:
            raise ValueError(f"layer {layer.name!r}: input channels {layer.in_shape[0]} != {in_hwc[0]}")
        c_out, c_in, kh, kw = w.shape
        n_k = kh * kw
        rows = int(layer.stride[1]) == 1  # _conv_rows: kernel columns stored reversed
        wt = w.transpose(1, 2, 3, 0)  # (C_in, kH, kW, C_out)
        weights = (wt[:, :, ::-1] if rows else wt).reshape(c_in * n_k, c_out)  # row c * K + offset: C_out weights
        taps = _conv_taps(layer)
        hwc = (c_out, int(layer.out_shape[1]) * int(layer.out_shape[2]))
        bias, vth64 = _to_hwc(bias, hwc), _to_hwc(vth64, hwc)
    plan = LayerPlan(layer.kind, n_in, n_out, int(layer.weight_exp), core_spec.current_decay_factor(layer.du),
                     core_spec.voltage_decay_factor(layer.dv), np.ascontiguousarray(bias), np.ascontiguousarray(vth64),
                     weights, acc_bound, c_in, n_k, in_hwc is not None, taps, hwc)
    if layer.kind == "conv":
        plan.geometry = tuple(int(v) for v in (kh, kw, *layer.stride, *layer.padding, *layer.in_shape[1:],
                                               *layer.out_shape[1:]))
        plan.rows = rows
        if in_hwc is not None:  # its inputs are a conv layer's spikes, channel-last
            plan.bits = _bitplane_weights(w)
    return plan


def _bitplane_weights(w: np.ndarray) -> Optional[np.ndarray]:
    """``(C_out, POPCOUNT_WORDS)`` uint64: bit ``(ky * kW + kx) * C_in + c`` of row ``o`` set where
    ``w[o, c, ky, kx] == +1``; None unless every weight is ±1, ``C_in`` is a multiple of 8 (one input word per
    8 channels) and a receptive field fits the words."""
    c_out, c_in, kh, kw = w.shape
    if c_in % 8 or kh * kw * c_in > 64 * POPCOUNT_WORDS or not np.all(np.abs(w) == 1):
        return None
    pos = (w > 0).transpose(0, 2, 3, 1).reshape(c_out, -1)  # bit index (ky * kW + kx) * C_in + c
    padded = np.zeros((c_out, POPCOUNT_WORDS, 64), bool)
    padded.reshape(c_out, -1)[:, :pos.shape[1]] = pos
    return np.ascontiguousarray(np.packbits(padded, axis=-1, bitorder="little").view("<u8")[..., 0], np.uint64)


def _popcount_min(lp: LayerPlan) -> int:
    """Active inputs from which ``_conv_bitplane`` is cheaper than scattering weight rows: the bit-plane pass
    costs about ``K * C_in / 8 + C_out`` word operations per output position whatever the activity; the scatter
    ``ceil(C_out / 8)`` row adds per tap of each active input, each ``POPCOUNT_SCATTER_RATIO`` word
    operations (a scattered read-modify-write). A speed choice only: both are exact."""
    kh, kw, sh, sw = lp.geometry[:4]
    n_pos = lp.hwc[1]
    taps_per_input = kh * kw / (sh * sw)
    dense = n_pos * (kh * kw * lp.c_in / 8 + lp.hwc[0])
    per_input = taps_per_input * -(-lp.hwc[0] // 8) * POPCOUNT_SCATTER_RATIO
    return int(np.ceil(dense / per_input))


def _transpose_last(arr: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The last axis read as ``(rows, cols)`` and written as ``(cols, rows)`` (a copy)."""
    return np.ascontiguousarray(arr.reshape(arr.shape[:-1] + (rows, cols)).swapaxes(-1, -2)).reshape(arr.shape)


def _to_hwc(arr: np.ndarray, hwc: tuple[int, int]) -> np.ndarray:
    """Network order ``(..., C * HW)`` -> channel-last ``(..., HW * C)``."""
    return _transpose_last(arr, *hwc)


def _from_hwc(arr: np.ndarray, hwc: tuple[int, int]) -> np.ndarray:
    """Channel-last ``(..., HW * C)`` -> network order ``(..., C * HW)``."""
    return _transpose_last(arr, hwc[1], hwc[0])


_FILLER32 = np.zeros(1, np.int32)


class NetworkPlan:
    """Every layer's plan and the kernel's per-layer lists; built once per network (``plan_for``).

    All layers' weights share one type (int8 when every mantissa fits, else int16) and live in one flat array,
    so the kernel compiles once per type, not once per layer mix or depth."""

    def __init__(self, net: IntegerNetwork):
        net.validate()
        self.layers: list[LayerPlan] = []
        in_hwc = None
        for layer in net.layers:
            self.layers.append(_layer_plan(layer, in_hwc))
            in_hwc = self.layers[-1].hwc
        lo = min(int(lp.weights.min(initial=0)) for lp in self.layers)
        hi = max(int(lp.weights.max(initial=0)) for lp in self.layers)
        wdt = _smallest_int(lo, hi, (np.int8, np.int16))
        for lp in self.layers:
            lp.weights = np.ascontiguousarray(lp.weights, wdt)
        self.par = np.stack([lp.params() for lp in self.layers])
        par, lps = self.par, self.layers
        # one spike buffer for all layers: segments start on 8-byte words and are padded to whole words
        pads = [-(-lp.n_out // 8) * 8 for lp in lps]
        par[:, P_SPAD] = pads
        par[:, P_SOFF] = np.cumsum([0] + pads[:-1])
        par[:, P_NOUT] = [lp.n_out for lp in lps]
        par[:, P_ROFF] = np.cumsum([0] + [lp.n_out for lp in lps[:-1]])
        self.spike_width = int(sum(pads))
        self.record_width = int(sum(lp.n_out for lp in lps))
        self.spike_segments = [(int(o), int(o) + lp.n_out) for o, lp in zip(par[:, P_SOFF], lps)]
        self.record_segments = [(int(o), int(o) + lp.n_out) for o, lp in zip(par[:, P_ROFF], lps)]
        # every layer's weights, tap tables and registers concatenated (offsets in par)
        par[:, P_WROWS] = [lp.weights.shape[0] for lp in lps]
        par[:, P_WCOLS] = [lp.weights.shape[1] for lp in lps]
        par[:, P_WOFF] = np.cumsum([0] + [lp.weights.size for lp in lps[:-1]])
        self.weights = np.concatenate([lp.weights.reshape(-1) for lp in lps])
        ptrs = [lp.taps[0] if lp.taps else _FILLER32 for lp in lps]
        taps = [lp.taps[1] if lp.taps else _FILLER32 for lp in lps]
        par[:, P_TPOFF] = np.cumsum([0] + [a.size for a in ptrs[:-1]])
        par[:, P_TOFF] = np.cumsum([0] + [a.size for a in taps[:-1]])
        par[:, P_NTAPS] = [a.size for a in taps]
        self.tap_ptr, self.taps = np.concatenate(ptrs), np.concatenate(taps)
        bits = [lp.bits.reshape(-1) if lp.bits is not None else np.zeros(0, np.uint64) for lp in lps]
        par[:, P_BOFF] = np.cumsum([0] + [a.size for a in bits[:-1]])
        self.wbits = np.concatenate(bits + [np.zeros(1, np.uint64)])  # never empty (a typed argument)
        self.bias64 = np.concatenate([lp.bias for lp in lps])
        self.vth64 = np.concatenate([lp.vth64 for lp in lps])
        # the int32 path's registers (zeros for layers that cannot take it: they never read them)
        regs = [lp.int32_registers() for lp in lps]
        par[:, P_R32LEN] = [b.size for b, _ in regs]
        par[:, P_R32OFF] = np.cumsum([0] + [b.size for b, _ in regs[:-1]])
        self.bias32 = np.concatenate([b for b, _ in regs] + [np.zeros(1, np.int32)])
        self.vth32 = np.concatenate([v for _, v in regs] + [np.zeros(1, np.int32)])

    def to_natural(self, k: int, arr: np.ndarray) -> np.ndarray:
        """Layer ``k``'s values (state or spikes) in storage order (last axis) in the network's order."""
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
    if any(l.delay is not None for l in net.layers):
        raise ValueError("the compiled kernel has no synaptic delays; run delayed networks on the NumPy engine")
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


def _coarse(n: int) -> int:
    """``n`` rounded up to 4 significant bits: still an upper bound (so still a proof, at most 1/8 looser), and
    few distinct values, so ``LayerPlan.int32_safe``'s memo answers most stream steps without ``run_bounds``."""
    n = int(n)
    if n < 16:
        return n
    sh = n.bit_length() - 4
    return -(-n >> sh) << sh


def _input_array(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Inputs as ``(B, T, n)`` in the narrowest unsigned type that holds them, and their maximum."""
    if x.dtype == bool:
        return x.view(np.uint8).reshape(x.shape[0], x.shape[1], -1), 1 if x.size else 0
    if x.dtype == np.uint8 and x.flags.c_contiguous:
        flat = x.reshape(-1)
        return x.reshape(x.shape[0], x.shape[1], -1), int(_max_u8(flat)) if flat.size else 0
    x_max = int(x.max()) if x.size else 0
    dt = np.uint8 if x_max < 256 else (np.uint16 if x_max < 65536 else np.int64)
    return np.ascontiguousarray(x.reshape(x.shape[0], x.shape[1], -1), dt), x_max


def _layer_call(lp: LayerPlan, x_max: int) -> tuple[np.dtype, int]:
    """``(accumulator dtype, activation bound)`` of ``lp`` for inputs up to ``x_max`` (memoised)."""
    hit = lp._call_memo.get(x_max)
    if hit is None:
        bound = lp.acc_bound * max(1, x_max)
        hit = (np.dtype(np.int32) if bound <= core_spec.INT32_MAX else np.dtype(np.int64),
               core_spec.shifted_bound(bound, lp.weight_exp))
        lp._call_memo[x_max] = hit
    return hit


_EMPTY_REC = np.zeros((1, 1, 1), np.int32)  # typed filler when nothing is recorded (never written)
RETRY_MIN_NEURONS = 1024
RETRY_WAIT = 64  # calls to wait after a failed retry (a performance choice: the int64 path is always exact)


def _words(a: np.ndarray) -> np.ndarray:
    """``a`` ``(B, T, n)`` uint8 as 8-byte words when ``n`` allows it, else an empty ``(B, T, 0)`` view."""
    if a.dtype == np.uint8 and a.shape[-1] % 8 == 0 and a.shape[-1] and a.flags.c_contiguous:
        return a.view(np.uint64)
    return np.zeros(a.shape[:2] + (0,), np.uint64)


class CompiledRun:
    """The compiled kernel's state for ``B`` samples of one network: ``u``/``v`` per layer (storage order), the
    accumulators (kept zero between steps), the magnitude bounds that choose the int32 path, and buffers.

    ``advance`` runs a chunk; ``u``/``v`` give the state in network order. ``workers > 1`` splits the batch
    over threads, each with its own ``CompiledRun`` on a slice of the state."""

    def __init__(self, plan: NetworkPlan, batch_size: int, workers: int = 1):
        self.plan = plan
        self.b = int(batch_size)
        self.workers = max(1, min(int(workers), self.b))
        self.reset()

    def reset(self) -> None:
        lps, b = self.plan.layers, self.b
        self.u_all = np.zeros((b, self.plan.record_width), np.int32)  # every layer's state, one array each
        self.v_all = np.zeros((b, self.plan.record_width), np.int32)
        self._views()
        self.bounds = ((0, 0),) * len(lps)
        self._flags_memo: dict = {}
        self._frames: dict = {}  # advance_events: the frame buffer (and its words) per window length
        self._x_seen = 1  # advance_events: the largest input count seen in this stream (the proof's bound)
        self._reuse: dict = {}
        self._accs: dict = {}  # accumulators by dtype
        self._acc_dtype: dict = {}  # x_max -> accumulator dtype
        self._evbuf = np.empty(max(lp.n_in for lp in lps) + 8, np.int32)  # 8 of slack for _active_inputs
        n_pos = max([lp.hwc[1] for lp in lps if lp.hwc] or [1])
        self._touched = np.zeros(n_pos, np.uint8)  # conv output positions reached this step (kept zero between)
        self._retry_wait = [0] * len(lps)
        self._parts = None
        if self.workers > 1:
            edges = np.linspace(0, b, self.workers + 1).astype(int)
            self._parts = [(lo, hi, CompiledRun(self.plan, hi - lo)) for lo, hi in zip(edges[:-1], edges[1:])]
            for lo, hi, part in self._parts:  # the parts own views of this run's state
                part.u_all, part.v_all = self.u_all[lo:hi], self.v_all[lo:hi]
                part._views()

    def _views(self) -> None:
        segs = self.plan.record_segments
        self.us = [self.u_all[:, lo:hi] for lo, hi in segs]  # per layer (B, n), storage order
        self.vs = [self.v_all[:, lo:hi] for lo, hi in segs]

    def _fast_flags(self, x_max: int, t: int) -> np.ndarray:
        """Per layer, whether ``_lif32`` is proved exact for this chunk (``LayerPlan.int32_safe``); updates the
        carried bounds. Layers below ``RETRY_MIN_NEURONS`` do not retry from the state when the carried bounds
        fail (the reductions cost more than the int32 path saves on a readout of ten neurons); after a failed
        retry a layer waits ``RETRY_WAIT`` calls before the next.

        A stream's bounds reach a fixed point within a few steps, so the answer for ``(x_max, t, bounds)`` is
        memoised whenever no retry took part in it (it then depends on nothing else): one lookup per window."""
        x_max = _coarse(x_max)
        key = (x_max, t, self.bounds)
        hit = self._flags_memo.get(key)
        if hit is not None:
            self.bounds = hit[1]
            return hit[0]
        fast = np.zeros(len(self.plan.layers), np.bool_)
        bounds = list(self.bounds)
        pure = True  # no retry (and no retry wait) decided anything
        for k, lp in enumerate(self.plan.layers):
            a_max = _layer_call(lp, x_max if k == 0 else 1)[1]
            ok, u_end, v_end = lp.int32_safe(a_max, t, *bounds[k])
            if not ok and lp.p32 is not None and lp.n_out >= RETRY_MIN_NEURONS:
                pure = False
                if self._retry_wait[k] == 0:
                    ok, u_end, v_end = lp.int32_safe(a_max, t, _coarse(int(np.abs(self.us[k]).max(initial=0))),
                                                     _coarse(int(np.abs(self.vs[k]).max(initial=0))))
                    if not ok:  # the state does not prove it either: wait before paying the reductions again
                        self._retry_wait[k] = RETRY_WAIT
                else:
                    self._retry_wait[k] -= 1
            bounds[k] = (_coarse(u_end), _coarse(v_end))
            fast[k] = ok
        self.bounds = tuple(bounds)
        if pure:
            if len(self._flags_memo) > 256:
                self._flags_memo.clear()
            self._flags_memo[key] = (fast, self.bounds)
        return fast

    def advance(self, x: np.ndarray, record_v: bool = False, keep_spikes: bool = True,
                counts_into: Optional[np.ndarray] = None
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]:
        """``t`` steps on ``x`` ``(B, t, *input_shape)``: ``(spikes, v records, u records, counts (L, B, 5))``;
        spikes, records and state in storage order. ``keep_spikes=False`` reuses the spike and count buffers
        (the caller reads only the state and counts, before the next call). ``counts_into``: a C-ordered
        ``(L, B, 5)`` int64 array the kernel adds this chunk's counts to (a caller's running totals).

        At one step per call (streams) this Python side is the fixed cost of a window; it is kept to a few
        dictionary lookups and one kernel call."""
        if self._parts is not None:
            return self._advance_parts(x, record_v)
        plan, b, t = self.plan, x.shape[0], x.shape[1]
        h, x_max = _input_array(x)
        fast = self._fast_flags(x_max, t)
        accs = self._accumulators(x_max)
        spikes, words, v_rec, u_rec, counts = self._buffers(b, t, record_v, reuse=not keep_spikes)
        if counts_into is not None:
            counts = counts_into
        elif not keep_spikes:
            counts.fill(0)
        self.last_fast = fast
        _run_network(h, _words(h), plan.par, fast, plan.weights, plan.tap_ptr, plan.taps, plan.wbits, plan.bias64,
                     plan.vth64, plan.bias32, plan.vth32, self.u_all, self.v_all, accs, spikes, words, v_rec, u_rec,
                     record_v, counts, self._evbuf, self._touched)
        if not keep_spikes:
            return [], [], [], counts
        spikes_out = [spikes[:, :, lo:hi].view(np.bool_) for lo, hi in plan.spike_segments]
        if not record_v:
            return spikes_out, [], [], counts
        rseg = plan.record_segments
        return spikes_out, [v_rec[:, :, lo:hi] for lo, hi in rseg], [u_rec[:, :, lo:hi] for lo, hi in rseg], counts

    def _accumulators(self, x_max: int) -> np.ndarray:
        """The accumulators for inputs up to ``x_max``: int64 when any layer's sums could leave int32."""
        dt = self._acc_dtype.get(x_max)
        if dt is None:
            wide = any(_layer_call(lp, x_max if k == 0 else 1)[0] == np.int64 for k, lp in enumerate(self.plan.layers))
            dt = self._acc_dtype[x_max] = np.dtype(np.int64 if wide else np.int32)
        accs = self._accs.get(dt)
        if accs is None:
            accs = self._accs[dt] = np.zeros(self.plan.record_width, dt)  # kept zero between steps by the LIF kernels
        return accs

    def _buffers(self, b: int, t: int, record_v: bool = False, reuse: bool = True) -> tuple:
        """``(spikes, their words, v records, u records, counts)`` for a chunk of ``t`` steps; ``reuse``: the
        same buffers every call (the caller reads them before the next)."""
        buf = self._reuse.get((t, record_v)) if reuse else None
        if buf is None:
            plan = self.plan
            spikes = np.zeros((b, t, plan.spike_width), np.uint8)  # zero padding between segments
            recs = (np.empty((b, t, plan.record_width), np.int32), np.empty((b, t, plan.record_width), np.int32)) \
                if record_v else (_EMPTY_REC, _EMPTY_REC)
            buf = (spikes, spikes.view(np.uint64)) + recs + (np.zeros((len(plan.layers), b, _COUNT_FIELDS), np.int64),)
            if reuse:
                self._reuse[(t, record_v)] = buf
        return buf

    def advance_events(self, events: np.ndarray, lo: int, hi: int, start: int, stop: int, n_bins: int,
                       binning: tuple, counts_into: np.ndarray) -> int:
        """One stream window straight from events (``_bin_and_run``: binning and every layer in one call, for
        batch 1): ``events`` a C-contiguous structured array with integer fields ``x``, ``y``, ``t``, ``p`` (read in
        place; ``events.types.EVENT_DTYPE``: one compiled signature), ``binning`` = ``(f, f_shift, W, H, P,
        clip)`` of the frames;
        counts are added to ``counts_into`` ``(L, 1, 5)``. Returns -1, or the index of the first event outside the
        window or the sensor (nothing was run; the caller reports it).

        The int32 proof assumes the largest count seen so far in this stream (a bound: counts only grow it);
        a window with a larger count is proved again and repeated."""
        if self.b != 1 or self._parts is not None:
            raise ValueError("advance_events runs one stream (batch 1, one worker)")
        plan = self.plan
        f, f_shift, w, h, n_pol, clip = binning
        n_in = n_pol * h * w
        frame = self._frames.get(n_bins)
        if frame is None:
            frame = np.zeros(n_bins * n_in, np.uint8)
            words = frame.view(np.uint64) if n_in % 8 == 0 else np.zeros(0, np.uint64)
            frame = self._frames[n_bins] = (frame, words)
        spikes, words, _, _, _ = self._buffers(1, n_bins)
        accs = self._accumulators(clip)
        while True:
            bounds_before = self.bounds
            fast = self._fast_flags(self._x_seen, n_bins)
            status, x_max = _bin_and_run(events, lo, hi, start, stop, n_bins, f, f_shift,
                                         w, h, n_pol, clip, frame[0], frame[1], self._x_seen, plan.par, fast,
                                         plan.weights, plan.tap_ptr, plan.taps, plan.wbits, plan.bias64, plan.vth64,
                                         plan.bias32, plan.vth32, self.u_all, self.v_all, accs, spikes, words,
                                         _EMPTY_REC, counts_into, self._evbuf, self._touched)
            if status != -2:
                self.last_fast = fast
                return int(status)
            self.bounds = bounds_before  # that proof was for a smaller bound, and nothing ran: prove again
            self._x_seen = int(x_max)

    def _advance_parts(self, x, record_v):
        with ThreadPoolExecutor(len(self._parts)) as pool:
            res = list(pool.map(lambda part: part[2].advance(x[part[0]:part[1]], record_v), self._parts))
        out = [[np.concatenate([r[j][k] for r in res]) for k in range(len(res[0][j]))] for j in range(3)]
        return out[0], out[1], out[2], np.concatenate([r[3] for r in res], axis=1)


