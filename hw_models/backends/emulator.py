"""Fast bit-exact emulator of an ``IntegerNetwork``: the path for batches and streams.

Two engines behind one ``Emulator`` / ``run_batch``: the compiled kernel
(``hw_models.backends.compiled``, numba; ``kernel="compiled"``, the default when numba is installed)
and the NumPy engine described below (``kernel="numpy"``: the fallback, and a second
implementation every test checks against the reference too). ``workers`` splits a batch over
threads (compiled kernel).

Why it exists: ``hw_models.reference`` is one sample, one step, one layer at a time (easy to
read, slow); Lava runs every process as an OS process (about a millisecond per step). This
module runs ``B`` samples at once and is bit-exact with ``reference.run_reference``
(tests prove it on random dense and conv networks, including the 24-bit wrap and the
voltage saturation).

How it is fast, and where it is event-driven:

* The network is feed-forward and the canonical schedule has no delays, so the synaptic
  activations of layer ``k`` for a whole chunk of ``t`` steps are one product over ``B * t``
  columns (feature-major: no transposes between layers); only the LIF update loops over time
  (elementwise integer work). Python-int magnitude bounds prove, step by step, when the 24-bit
  wrap, the int32 casts and the voltage clip cannot trigger, and skip those passes then (they
  run, exactly as in ``core_spec``, whenever they could). The bounds are carried from call to
  call, so a stream of one-step calls does not re-scan the state.
* When the bounds hold for the whole chunk and the decays are powers of two (the project's
  du = 4095, dv = 2048 / 0), the LIF loop runs in int32 with shifts only, in place on
  preallocated arrays; otherwise in int64 with ``lif_step_fast`` (36-bit decay products).
* Integer sums are computed in float32 / float64 BLAS when a per-layer bound proves the
  result exact (``|sum| < 2**24`` / ``2**53``); otherwise in int64.
* Event-driven where it pays (``SPARSE_THRESHOLD*``, measured): a dense layer gathers the
  weight rows of its active inputs (one column) or multiplies an events CSR by ``W.T``; a conv
  with one column sums its events' synapses with one ``bincount``. Above the threshold: BLAS
  for dense layers; for convs one product with the unrolled synapse matrix (CSR, many columns
  or little work) or im2col + BLAS. Weight-derived structures are cached by content and shared
  between emulators. Layers without input events skip the product (only the decays act).

Synaptic operations follow the project convention: one synapse delivering one nonzero input
event (a graded value counts once). Synapses are *structural*: a dense layer connects every
input to every output, a conv layer connects an input pixel to every output position whose
receptive field (after padding and stride) covers it, for every output channel. Zero-valued
weight mantissas still count (the core stores and visits them). ``fan_out`` and
``synapse_list`` are the single definition used by the emulator, Brian2 and the energy model.

Residual networks (``IntLayer.shortcuts``, core_spec rule 1b) run on the NumPy engine only: every node's
feature-major output of the chunk is kept, a shortcut block is accumulated by the same paths as a layer,
each block's sums go through its own exponent, and the int32 sum feeds the int64 LIF loop. The compiled
kernel runs chains (``kernel="auto"`` falls back; ``"compiled"`` refuses).

What it leaves out: recurrent connections and axonal delays (the network type has none),
Lava's per-layer delay (convert with ``core_spec.LAVA_DELAY_PER_LAYER``), torch.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from typing import Optional

import numpy as np
import scipy.sparse as sp

from hw_models import core_spec
from hw_models.backends import compiled
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.geometry import conv_geometry, conv_output_hw, max_abs_row_sum, synapse_list
from hw_models.results import BatchTrace, LayerCounts, RunTrace, active_updates, conv_connectivity

# Below this fraction of nonzero inputs the event-driven product is used (``sparse_threshold=None``
# picks by layer kind and number of columns N = steps x batch). Measured on this project's 2-core
# machine, one thread: dense layers with N > 1 (events CSR @ W.T) win below ~2-5 % density over BLAS;
# with N = 1 the gathered matrix-vector product wins up to ~20 %; a conv's event-driven bincount wins
# below ~3 % for N = 1 (DVS128-sized layers); for N > 1 the unrolled sparse-matrix product always won.
SPARSE_THRESHOLD = 0.03
SPARSE_THRESHOLD_DENSE_SINGLE = 0.2
SPARSE_THRESHOLD_CONV_BATCH = 0.0
# A conv above the event-driven threshold is one product with the unrolled synapse matrix (CSR) when
# there are many columns (its inner loop runs over them) or little work (synapses x columns below
# this); else im2col + BLAS, which measured 2.5-5x faster for DVS128-sized layers and few columns.
UNROLLED_MIN_COLUMNS = 64
UNROLLED_MAX_WORK = 100_000
UNROLLED_BLOCK = 2048  # columns per unrolled product (2.7x faster than one product at 8192 columns)
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53

_MAX = core_spec.MAX_UV
_TRUNC_MASK = core_spec.DECAY_UNITY - 1
_I32_MAX = core_spec.INT32_MAX


# --- the LIF update, vectorised (core_spec.step, rules 2-4; tested against it) ---------------
def _decay_trunc(x: np.ndarray, k: int) -> np.ndarray:
    """``trunc(x * k / 4096)`` for int64 ``x``, ``0 < k < 4096``; a pure shift when ``k`` is a power of two."""
    sh = core_spec.decay_shift(k)
    if sh is not None:
        out = x >> 63
        out &= (1 << sh) - 1
        out += x
        out >>= sh
        return out
    out = x * int(k)
    out += (out >> 63) & _TRUNC_MASK
    out >>= core_spec.DECAY_SHIFT
    return out


def lif_step_fast(u: np.ndarray, v: np.ndarray, a: np.ndarray, du: int, dv: int,
                  bias: np.ndarray, vth64: np.ndarray, check_u: bool = True,
                  check_v: bool = True, shifted: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``core_spec.step`` (rules 2-4) on int64 state arrays, with the same int32 casts; returns ``(u, v, spikes)``.

    ``a`` is the int32 activation (int64 array holding int32 values), ``vth64 = vth << 6``.
    The wrap, int32 cast and clip are applied only when a value is out of range (checked
    with two reductions), which is the common case's fast path; results are identical.
    ``check_u=False`` / ``check_v=False`` skip those checks when the caller has proved
    that the current cannot wrap / the voltage cannot saturate in this step. ``shifted=True``
    means ``a`` already holds ``activation << 6`` (the caller shifted a whole chunk at once)
    and may be overwritten.
    """
    ku = core_spec.current_decay_factor(du)
    cur = a if shifted else a << core_spec.ACT_SHIFT  # shifted: ``a`` is a scratch slice, updated in place
    if ku:
        cur += _decay_trunc(u, ku)
    if check_u and cur.size and (cur.max() > _MAX or cur.min() <= -_MAX):
        cur = np.where(cur > _MAX, cur - 2 * _MAX, np.where(cur <= -_MAX, cur + 2 * _MAX, cur))
        if cur.max() > _I32_MAX or cur.min() < -_I32_MAX - 1:
            cur = cur.astype(np.int32).astype(np.int64)  # core_spec casts the wrapped current to int32
    u_new = cur
    kv = core_spec.voltage_decay_factor(dv)
    if kv == core_spec.DECAY_UNITY:
        v_new = v + u_new
    else:
        v_new = _decay_trunc(v, kv)
        v_new += u_new
    v_new += bias
    if check_v and v_new.size and (v_new.max() > _MAX - 1 or v_new.min() < 1 - _MAX):
        np.clip(v_new, 1 - _MAX, _MAX - 1, out=v_new)
    spikes = v_new > vth64
    np.putmask(v_new, spikes, 0)
    return u_new, v_new, spikes


# Layer structures derived from the weights alone (fan-out, bounds, converted weight matrices) are
# content-addressed and shared between emulators: ``run_batch`` on the same network builds them once.
_STRUCT_CACHE: "OrderedDict[bytes, dict]" = OrderedDict()
_STRUCT_CACHE_SIZE = 16


def _structure(layer: IntLayer) -> dict:
    """The weight-derived constants of ``layer`` (shared dict; filled lazily by ``_LayerPlan``)."""
    w = np.ascontiguousarray(layer.weight_mant)
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((layer.kind, tuple(layer.in_shape), tuple(layer.out_shape), tuple(layer.stride),
                   tuple(layer.padding), w.shape, w.dtype.str)).encode())
    h.update(w.tobytes())
    key = h.digest()
    hit = _STRUCT_CACHE.get(key)
    if hit is not None:
        _STRUCT_CACHE.move_to_end(key)
        return hit
    if layer.kind == "dense":
        st = {"fan": np.full(layer.n_in, layer.n_out, np.int64), "row_abs_sum": max_abs_row_sum(layer)}
    else:
        syn = synapse_list(layer)
        st = {"fan": np.bincount(syn[0], minlength=layer.n_in).astype(np.int64),
              "row_abs_sum": max_abs_row_sum(layer, syn), "synapses": syn}
    _STRUCT_CACHE[key] = st
    while len(_STRUCT_CACHE) > _STRUCT_CACHE_SIZE:
        _STRUCT_CACHE.popitem(last=False)
    return st


class _LayerPlan:
    """Per-layer constants, computed once per emulator: sizes, decay factors, ``bias``, ``vth << 6``
    (int64 and int32 copies), and the weight matrices of every accumulation path (built on first use)."""

    def __init__(self, layer: IntLayer):
        self._init_block(layer)
        # shortcut blocks (rule 1b): their own weights and exponent, accumulated like a main block
        self.shortcuts = [_BlockPlan(sc) for sc in layer.shortcuts]
        bias = np.asarray(layer.bias, np.int64).reshape(-1)
        vth64 = np.broadcast_to(core_spec.scaled_threshold(layer.vth), (self.n_out,))
        self.bias = bias[:, None]  # (n_out, 1), broadcasts over the batch
        self.vth64 = np.ascontiguousarray(vth64)[:, None]
        self.b_max = int(np.abs(bias).max()) if bias.size else 0
        self.ku = core_spec.current_decay_factor(layer.du)
        self.kv = core_spec.voltage_decay_factor(layer.dv)
        # the int32 LIF loop needs shift-only decays (no 36-bit products) and values that fit in int32
        v_max = int(np.abs(vth64).max(initial=0))
        self.int32_ok = ((self.ku == 0 or core_spec.decay_shift(self.ku) is not None)
                         and core_spec.decay_shift(self.kv) is not None
                         and self.b_max < _MAX and v_max <= _I32_MAX)
        if self.int32_ok:
            self.bias32 = self.bias.astype(np.int32)
            self.vth32 = self.vth64.astype(np.int32)
        # per-synapse delays: one weight matrix per delay value (core_spec rule 1)
        self.max_delay = layer.max_delay
        self.delay_buckets = None if layer.delay is None else [
            (int(d), np.where(layer.delay == d, layer.weight_mant, 0).astype(np.int64)) for d in np.unique(layer.delay)]

    def _init_block(self, layer) -> None:
        """The synapse-block part: sizes, weight exponent, shared weight structures, conv geometry."""
        self.layer = layer
        self.kind = layer.kind
        self.n_in, self.n_out = layer.n_in, layer.n_out
        self.weight_exp = int(layer.weight_exp)
        self.struct = _structure(layer)
        self.fan = self.struct["fan"]
        self.row_abs_sum = self.struct["row_abs_sum"]
        self.geometry = conv_geometry(layer) if layer.kind == "conv" else None
        self.n_synapses = self.n_in * self.n_out if layer.kind == "dense" else int(self.struct["synapses"][0].size)
        self.work: dict = {}  # im2col buffers of this emulator

    def weights(self, what: str, dtype) -> np.ndarray | sp.csr_matrix:
        """Weight matrices by path, converted to ``dtype`` once (shared cache):

        ``"dense"`` ``(n_out, n_in)`` ndarray; ``"wT"`` ``(n_in, n_out)`` ndarray (dense layers);
        ``"col"`` ``(O, C*kH*kW)`` conv kernels for im2col;
        ``"unrolled"`` ``(n_out, n_in)`` CSR of the conv's synapses; ``"gather"``
        ``(indptr, indices, data)`` of the transposed weights (rows = inputs, CSR) for the event kernel.
        """
        key = (what, np.dtype(dtype).str)
        hit = self.struct.get(key)
        if hit is not None:
            return hit
        w = np.asarray(self.layer.weight_mant)
        if what == "dense":
            out = np.ascontiguousarray(w.astype(dtype))
        elif what == "wT":
            out = np.ascontiguousarray(w.T.astype(dtype))
        elif what == "col":
            out = np.ascontiguousarray(w.astype(dtype).reshape(w.shape[0], -1))
        elif what == "unrolled":
            pre, post, wl = self.struct["synapses"]
            out = sp.csr_matrix((wl.astype(dtype), (post, pre)), shape=(self.n_out, self.n_in))
            out.sum_duplicates()
        elif what == "gather":
            if self.kind == "dense":
                indptr = np.arange(self.n_in + 1, dtype=np.int64) * self.n_out
                indices = np.tile(np.arange(self.n_out, dtype=np.int64), self.n_in)
                data = np.ascontiguousarray(w.T.astype(dtype)).reshape(-1)
            else:
                pre, post, wl = self.struct["synapses"]
                order = np.argsort(pre, kind="stable")
                indptr = np.zeros(self.n_in + 1, np.int64)
                np.cumsum(np.bincount(pre, minlength=self.n_in), out=indptr[1:])
                indices, data = post[order].astype(np.int64), wl[order].astype(dtype)
            out = (indptr, indices, data)
        else:
            raise ValueError(what)
        self.struct[key] = out
        return out

    def connectivity(self):
        """``results.conv_connectivity`` of this block, built once (shared cache); None for dense blocks."""
        if self.kind != "conv":
            return None
        conn = self.struct.get("connectivity")
        if conn is None:
            conn = self.struct["connectivity"] = conv_connectivity(self.layer)
        return conn

    def active_updates(self, x: np.ndarray, t: int, b: int, shortcut_inputs=()) -> np.ndarray:
        """``results.active_updates`` per sample for feature-major input ``x`` ``(n_in, t*b)`` (columns (t, b));
        ``shortcut_inputs``: the feature-major input of each shortcut block."""
        return active_updates(self.layer, x.T, self.connectivity(), shortcut_rows=[xs.T for xs in shortcut_inputs],
                              shortcut_connectivity=[p.connectivity() for p in self.shortcuts]
                              ).reshape(t, b).sum(axis=0)

    @property
    def w_csr(self) -> sp.csr_matrix:
        """``(n_out, n_in)`` int64 weights as a sparse matrix (the exact int64 route)."""
        if self.kind == "dense":
            return sp.csr_matrix(np.asarray(self.layer.weight_mant, np.int64))
        return self.weights("unrolled", np.int64)


class _BlockPlan(_LayerPlan):
    """A shortcut block's plan: the synapse part of ``_LayerPlan`` only (no neurons of its own)."""

    def __init__(self, block):
        self._init_block(block)
        self.shortcuts = []


def _im2col(x: np.ndarray, layer: IntLayer, geom: tuple[int, int, int, int], dtype,
            work: Optional[dict] = None) -> np.ndarray:
    """``(C*H*W, N)`` -> ``(C*kH*kW, H_out*W_out*N)`` patches (zero padding), rows in (C, kH, kW) order.

    Feature-major throughout (the sample axis last), so every strided copy moves contiguous
    runs of N values and the product ``(O, C*kH*kW) @ patches`` is already ``(n_out, N)``.
    ``work`` (a dict) keeps the padded and patch buffers between calls of the same size; the
    padded border is zero from allocation and never written.
    """
    c, h, w = layer.in_shape
    ho, wo, kh, kw = geom
    sh, sw = layer.stride
    ph, pw = layer.padding
    n = x.shape[1]
    key = (np.dtype(dtype).str, n)
    if work is not None and work.get("im2col", (None,))[0] == key:  # one buffer pair, the last size used
        _, xp, cols = work["im2col"]
    else:
        xp = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype)
        cols = np.empty((c, kh, kw, ho, wo, n), dtype)
        if work is not None:
            work["im2col"] = (key, xp, cols)
    xp[:, ph:ph + h, pw:pw + w, :] = x.reshape(c, h, w, n)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
    return cols.reshape(c * kh * kw, ho * wo * n)


def _events_csr(x: np.ndarray, dtype) -> sp.csr_matrix:
    """``x`` ``(n_in, N)`` as a CSR matrix built straight from its nonzero entries."""
    rows, cols = np.nonzero(x)
    indptr = np.zeros(x.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=x.shape[0]), out=indptr[1:])
    return sp.csr_matrix((x[rows, cols].astype(dtype), cols, indptr), shape=x.shape)


def _gather(plan: _LayerPlan, x: np.ndarray, dtype) -> np.ndarray:
    """Event-driven ``W @ x`` for ``x`` ``(n_in, N)``: work proportional to the events times their fan-out.

    Dense layers: one column is a gathered matrix-vector product over the rows of ``W.T`` its
    events select; several columns are ``events (N, n_in) CSR @ W.T``, one axpy of the weight row
    per event. Conv layers: one column sums the synapses of its events with one ``bincount``
    (float64, exact below ``2**53``); several columns are ``W (CSR) @ events (CSR)``.
    """
    n = x.shape[1]
    if plan.kind == "dense":
        wt = plan.weights("wT", dtype)
        if n == 1:
            col = x[:, 0]
            idx = np.flatnonzero(col)
            return (col[idx].astype(dtype) @ wt[idx]).reshape(plan.n_out, 1)
        return np.asarray(_events_csr(x.T, dtype) @ wt).T
    if n > 1:
        return (plan.weights("unrolled", dtype) @ _events_csr(x, dtype)).toarray()
    indptr, indices, data = plan.weights("gather", np.float64)
    col = x[:, 0]
    rows = np.flatnonzero(col)
    vals = col[rows]
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    ends = np.cumsum(lens)
    total = int(ends[-1]) if ends.size else 0
    if total == 0:
        return np.zeros((plan.n_out, 1), np.float64)
    pos = np.repeat(starts - (ends - lens), lens)
    pos += np.arange(total)
    wts = data[pos]
    if vals.dtype != bool and vals.max() > 1:
        wts *= np.repeat(vals.astype(np.float64), lens)
    return np.bincount(indices[pos], weights=wts, minlength=plan.n_out).reshape(plan.n_out, 1)


def _threshold(plan: _LayerPlan, n: int, sparse_threshold: Optional[float]) -> float:
    """The density below which ``_accumulate`` takes the event-driven path (``None``: measured defaults)."""
    if sparse_threshold is not None:
        return sparse_threshold
    if plan.kind == "dense":
        return SPARSE_THRESHOLD_DENSE_SINGLE if n == 1 else SPARSE_THRESHOLD
    return SPARSE_THRESHOLD if n == 1 else SPARSE_THRESHOLD_CONV_BATCH


def _accumulate(plan: _LayerPlan, x: np.ndarray, sparse_threshold: Optional[float], xmax: Optional[int] = None
                ) -> tuple[np.ndarray, str, int]:
    """Exact integer ``W @ x`` for columns of ``x`` ``(n_in, N)`` -> ``(n_out, N)``, the path used, and a
    bound on ``|W @ x|``.

    The result is float32/float64 holding exact integers (the bound check guarantees it; the
    caller converts once, into its own layout) or int64. Paths: ``empty`` (no input event),
    ``sparse`` (event-driven gather, below ``sparse_threshold`` density), ``dense`` (BLAS),
    ``unrolled`` (conv as one sparse-matrix product over the unrolled synapses), ``im2col``
    (conv patches and BLAS), ``int64``.
    """
    n = x.shape[1]
    nnz = int(np.count_nonzero(x))
    if nnz == 0:
        return np.zeros((plan.n_out, n), np.float32), "empty", 0
    if xmax is None:
        xmax = 1 if x.dtype == bool else int(x.max())  # inputs are non-negative
    bound = plan.row_abs_sum * xmax
    if bound >= _F64_EXACT:  # astronomically large inputs: exact int64 route
        out = plan.w_csr @ _events_csr(x.astype(np.int64), np.int64)
        return np.asarray(out.todense(), np.int64), "int64", bound
    dtype = np.float32 if bound < _F32_EXACT else np.float64
    if nnz < _threshold(plan, n, sparse_threshold) * x.size:  # event-driven: work ~ events x fan-out
        return _gather(plan, x, dtype), "sparse", bound
    if plan.kind == "dense":
        return plan.weights("dense", dtype) @ x.astype(dtype), "dense", bound
    if n >= UNROLLED_MIN_COLUMNS or plan.n_synapses * n < UNROLLED_MAX_WORK:
        w = plan.weights("unrolled", dtype)
        if n <= UNROLLED_BLOCK:
            return w @ x.astype(dtype), "unrolled", bound
        out = np.empty((plan.n_out, n), dtype)
        for s in range(0, n, UNROLLED_BLOCK):  # column blocks: the input block stays in cache
            out[:, s:s + UNROLLED_BLOCK] = w @ x[:, s:s + UNROLLED_BLOCK].astype(dtype)
        return out, "unrolled", bound
    w_col = plan.weights("col", dtype)  # (O, C*kH*kW)
    cols = _im2col(x, plan.layer, plan.geometry, dtype, plan.work)
    return (w_col @ cols).reshape(plan.n_out, n), "im2col", bound


def _delayed_accumulate(plan: _LayerPlan, x: np.ndarray, hist: np.ndarray, t: int, b: int
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sum_d W_d @ x[t - d]`` for a delayed dense layer: (acc ``(n_out, t*b)`` int64, the last ``D`` input
    steps to carry into the next call, active updates per sample). ``hist`` holds the previous ``D`` steps."""
    d_max = plan.max_delay
    x_ext = np.concatenate([hist, x.astype(np.int64)], axis=1)  # (n_in, (D + t) * b), time-major columns
    acc = np.zeros((plan.n_out, t * b), np.int64)
    active = np.zeros((plan.n_out, t * b), bool)
    for d, w in plan.delay_buckets:
        src = x_ext[:, (d_max - d) * b:(d_max - d + t) * b]
        acc += w @ src
        active |= (w != 0).astype(np.int64) @ (src != 0).astype(np.int64) > 0
    per_sample = active.reshape(plan.n_out, t, b).sum(axis=(0, 1)).astype(np.int64)
    return acc, x_ext[:, x_ext.shape[1] - d_max * b:] if d_max else hist, per_sample


def _activation_step_major(acc: np.ndarray, weight_exp: int, bound: int, t: int, b: int,
                           as_int32: bool = False) -> tuple[np.ndarray, int]:
    """``core_spec.apply_weight_exp`` (rule 1) and the ``<< 6`` of rule 2, into a step-major array.

    ``acc`` ``(n_out, t*b)`` exact integer sums (float or int) -> ``(t, n_out, b)`` int64 holding
    ``int32(shift(acc, weight_exp)) << 6`` (one pass to convert and reorder, then in-place
    shifts), and a bound on ``|int32(shift(acc))|``. The int32 wrap is applied only when
    ``bound`` says it could happen (as in ``core_spec.apply_weight_exp``'s cast).
    ``as_int32=True`` (the caller proved ``bound << 6`` of the shifted sums below ``2**23``):
    an int32 array, and for ``weight_exp >= 0`` the shifts are one exact power-of-two scaling
    of the float sums before the conversion.
    """
    n_out = acc.shape[0]
    src = acc.reshape(n_out, t, b).transpose(1, 0, 2)
    if as_int32:
        a = np.empty((t, n_out, b), np.int32)
        if weight_exp >= 0 and acc.dtype != np.int64:
            np.multiply(src, acc.dtype.type(1 << (weight_exp + core_spec.ACT_SHIFT)), out=a, casting="unsafe")
            return a, (bound << weight_exp)
        a[...] = src
        if weight_exp > 0:
            a <<= weight_exp
            bound <<= weight_exp
        elif weight_exp < 0:
            a >>= -weight_exp
            bound = (bound >> -weight_exp) + 1
        a <<= core_spec.ACT_SHIFT
        return a, bound
    a = np.empty((t, n_out, b), np.int64)
    a[...] = src
    if weight_exp > 0:
        a <<= weight_exp
        bound <<= weight_exp
    elif weight_exp < 0:
        a >>= -weight_exp  # arithmetic shift: floor, as Lava
        bound = (bound >> -weight_exp) + 1
    if bound > _I32_MAX and a.size:
        hi, lo = int(a.max()), int(a.min())
        if hi > _I32_MAX or lo < -_I32_MAX - 1:
            a = a.astype(np.int32).astype(np.int64)
            hi, lo = int(a.max()), int(a.min())
        bound = max(hi, -lo)
    a <<= core_spec.ACT_SHIFT  # int64: exact for every int32 activation
    return a, bound


def _events_per_sample(x: np.ndarray, t: int, b: int) -> np.ndarray:
    """Nonzero entries of ``x`` ``(n, t*b)`` (columns time-major) per (neuron, sample): ``(n, b)`` int64."""
    if t == 1:
        return (x if x.dtype == bool else x != 0).astype(np.int64)
    nz = x if x.dtype == bool else x != 0
    acc_dtype = np.uint8 if t < 256 else (np.uint16 if t < 65536 else np.int64)  # exact, narrower sums
    return nz.reshape(-1, t, b).sum(axis=1, dtype=acc_dtype).astype(np.int64)


def _feature_major(x: np.ndarray) -> np.ndarray:
    """``(b, t, n)`` -> ``(n, t*b)`` (columns time-major), in two cheaper copies when both ``b, t > 1``."""
    b, t, n = x.shape
    if b == 1 or t == 1:
        return x.transpose(2, 1, 0).reshape(n, t * b)
    y = np.ascontiguousarray(x.reshape(b, t * n).T)  # (t*n, b): a 2-D transpose
    return np.ascontiguousarray(y.reshape(t, n, b).transpose(1, 0, 2)).reshape(n, t * b)  # runs of b


def _count_events(x: np.ndarray, t: int, b: int) -> np.ndarray:
    """Nonzero entries of ``x`` ``(n, t*b)`` or ``(n, t, b)`` (columns time-major) per sample: ``(b,)`` int64."""
    if b == 1:
        return np.array([np.count_nonzero(x)], np.int64)
    nz = x if x.dtype == bool else x != 0
    return nz.reshape(-1, t, b).sum(axis=(0, 1), dtype=np.int64)


def _decay_trunc32(x: np.ndarray, sh: int, out: np.ndarray) -> np.ndarray:
    """``trunc(x / 2**sh)`` for int32 ``x`` into ``out`` (round toward zero: add ``2**sh - 1`` to negatives)."""
    np.right_shift(x, 31, out=out)
    if sh == 1:
        np.subtract(x, out, out=out)  # x + 1 for negatives
    else:
        out &= (1 << sh) - 1
        out += x
    out >>= sh
    return out


def _lif_checks(u_bnd: int, v_bnd: int, a_max: int, plan: "_LayerPlan", t: int
                ) -> tuple[list[tuple[bool, bool]], bool, int, int]:
    """Per step ``(check_u, check_v)``: whether the 24-bit wrap / the voltage clip could trigger; whether
    no step needs either; and the bounds on ``|u|``, ``|v|`` after the last step.

    ``core_spec.run_bounds`` (the quantizer's overflow rule too) from the state bounds ``u_bnd``,
    ``v_bnd``, the activation bound ``a_max`` (before ``<< 6``) and the layer's decays and bias.
    """
    bounds = core_spec.run_bounds(a_max, plan.b_max, plan.ku, plan.kv, t, u_bnd, v_bnd)
    out = [(bool(b.may_wrap), bool(b.may_clip)) for b in bounds]
    clean = not any(w or c for w, c in out)
    if bounds:
        u_bnd, v_bnd = bounds[-1].u, bounds[-1].v
    return out, clean, u_bnd, v_bnd


KERNELS = ("auto", "compiled", "numpy")
_FAST_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_))
_FALLBACK_NOTED = False


def resolve_kernel(kernel: str) -> str:
    """``"auto"`` -> ``"compiled"`` when numba is installed, else ``"numpy"`` (with a one-time warning);
    asking for ``"compiled"`` without numba is an error, never a silent switch."""
    global _FALLBACK_NOTED
    if kernel not in KERNELS:
        raise ValueError(f"unknown emulator kernel {kernel!r}; choose from {', '.join(KERNELS)}")
    if kernel == "compiled" and not compiled.HAVE_NUMBA:
        raise ValueError("the compiled emulator kernel needs numba (pip install numba); use kernel='numpy'")
    if kernel == "auto":
        if compiled.HAVE_NUMBA:
            return "compiled"
        if not _FALLBACK_NOTED:
            warnings.warn("numba is not installed: the emulator uses its NumPy engine (same results, slower)",
                          RuntimeWarning, stacklevel=3)
            _FALLBACK_NOTED = True
        return "numpy"
    return kernel


class Emulator:
    """Stateful batched emulator: ``B`` independent samples, state carried across calls.

    ``reset()`` zeroes every ``u``/``v`` and the counters; ``step(x_t)`` advances one step;
    ``run(chunk)`` advances ``t`` steps at once (same result as ``t`` calls of ``step``).
    ``counts[k]`` accumulates the activity of layer ``k`` since the last ``reset``;
    ``steps`` counts the steps run. ``last_paths`` names the accumulation path used per layer
    in the last call (``dense``/``unrolled``/``sparse``/``empty``/``int64``). ``u``/``v`` are the
    current states per layer as ``(B, n)`` int32 views (stored feature-major, ``(n, B)``); treat
    them as read-only (the magnitude bounds carried between calls assume only ``run`` changes them).
    """

    def __init__(self, net: IntegerNetwork, batch_size: int, sparse_threshold: Optional[float] = None,
                 kernel: str = "auto", workers: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.net = net
        self._in_shape = tuple(int(d) for d in net.input_shape)
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.sparse_threshold = None if sparse_threshold is None else float(sparse_threshold)
        self.kernel = resolve_kernel(kernel)
        if self.kernel == "compiled" and any(l.delay is not None for l in net.layers):
            if kernel == "compiled":
                raise ValueError("the compiled kernel has no synaptic delays; use kernel='numpy' (or 'auto')")
            self.kernel = "numpy"  # delays run on the NumPy engine
        if self.kernel == "compiled" and net.residual:
            if kernel == "compiled":
                raise ValueError("the compiled kernel runs chains only; a residual network (shortcut blocks) needs "
                                 "kernel='numpy' (or 'auto')")
            self.kernel = "numpy"  # residual DAGs run on the NumPy engine
        if self.kernel == "compiled":
            self._plan = compiled.plan_for(net)  # validated, cached per network object
            self._plans = []
        else:
            net.validate()
            self._plans = [_LayerPlan(layer) for layer in net.layers]
            # node outputs a shortcut reads (k + 1 for layer k): only those are kept through a chunk
            self._shortcut_sources = {int(sc.source) + 1 for layer in net.layers for sc in layer.shortcuts}
        self.last_paths: list[str] = []
        self.reset()

    def reset(self) -> None:
        """Zero all neuron state and counters (a new sample / stream)."""
        b = self.batch_size
        if self.kernel == "compiled":  # state (B, n) per layer in storage order: compiled.CompiledRun
            self._run = compiled.CompiledRun(self._plan, b, self.workers)
            self._totals = np.zeros((len(self._plan.layers), 5, b), np.int64)
            self._totals_b1 = self._totals.reshape(len(self._plan.layers), 1, 5) if b == 1 else None
            self.counts = [LayerCounts.of_rows(rows) for rows in self._totals]
            self.last_paths = ["compiled"] * len(self._plan.layers)
            self.steps = 0
            return
        self._totals_b1 = None
        # int32 state: u is wrapped to 24 bits (and cast to int32), v clipped to 24 bits, so both fit
        self._u = [np.zeros((plan.n_out, b), np.int32) for plan in self._plans]
        self._v = [np.zeros((plan.n_out, b), np.int32) for plan in self._plans]
        self._totals = np.zeros((len(self._plans), 5, b), np.int64)  # running counts (+ active updates), one array
        self.counts = [LayerCounts.of_rows(rows) for rows in self._totals]
        self._bounds = [(0, 0)] * len(self._plans)  # bounds on |u|, |v| per layer (Python ints)
        self._hist = [np.zeros((plan.n_in, plan.max_delay * b), np.int64) for plan in self._plans]  # delayed inputs
        self.steps = 0

    @property
    def u(self) -> list[np.ndarray]:
        """Current synaptic currents per layer, ``(B, n)`` int32 (views for the NumPy engine)."""
        if self.kernel == "compiled":
            return [self._plan.to_natural(k, x) for k, x in enumerate(self._run.us)]
        return [x.T for x in self._u]

    @property
    def v(self) -> list[np.ndarray]:
        """Current voltages per layer, ``(B, n)`` int32 (views for the NumPy engine)."""
        if self.kernel == "compiled":
            return [self._plan.to_natural(k, x) for k, x in enumerate(self._run.vs)]
        return [x.T for x in self._v]

    def readout_v(self) -> np.ndarray:
        """The last layer's voltage ``(B, n_classes)`` int32 (cheaper than ``v[-1]``: one layer)."""
        if self.kernel == "compiled":
            return self._plan.to_natural(len(self._run.vs) - 1, self._run.vs[-1])
        return self._v[-1].T

    def _check_inputs(self, chunk: np.ndarray) -> np.ndarray:
        if isinstance(chunk, np.ndarray) and chunk.dtype in _FAST_DTYPES and chunk.ndim >= 2 and \
                chunk.shape[0] == self.batch_size and chunk.shape[2:] == self._in_shape:
            return chunk  # the stream's case: unsigned frames of the right shape (nothing else to check)
        chunk = np.asarray(chunk)
        if chunk.dtype.kind not in "biu":
            raise ValueError(f"inputs must be integers (graded spikes), got {chunk.dtype}")
        if chunk.ndim < 2 or chunk.shape[0] != self.batch_size or \
                (chunk.size // max(1, chunk.shape[0] * chunk.shape[1]) if chunk.size else
                 int(np.prod(chunk.shape[2:]))) != int(np.prod(self._in_shape)):
            raise ValueError(f"inputs have shape {chunk.shape}, expected "
                             f"(B={self.batch_size}, T, *{tuple(self.net.input_shape)})")
        if chunk.size and chunk.dtype.kind == "i" and chunk.min() < 0:
            raise ValueError("inputs must be non-negative (graded spikes)")
        return chunk

    def run(self, chunk: np.ndarray, record_v: bool = False) -> BatchTrace:
        """Advance ``t`` steps on ``chunk`` ``(B, t, *input_shape)``; returns that chunk's trace.

        ``counts`` in the returned trace cover this chunk only; ``self.counts`` keeps the
        running totals.
        """
        spikes_out, v_out, u_out, counts = self.advance(chunk, record_v)
        return BatchTrace(spikes=spikes_out, v=v_out if record_v else None, u=u_out if record_v else None,
                          final_v=[np.array(v) for v in self.v], final_u=[np.array(u) for u in self.u],
                          predictions=self.predictions(), counts=counts)

    def advance(self, chunk: np.ndarray, record_v: bool = False, keep_spikes: bool = True
                ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[LayerCounts]]:
        """``run`` without building the trace: ``(spikes, v, u, counts)`` per layer (``v``/``u`` empty
        lists unless ``record_v``); ``spikes[k]`` is ``(B, t, n_k)`` bool. The cheap call for streams.

        ``keep_spikes=False``: for callers that read only the readout and the running counters (``counts``,
        ``active_updates``): the compiled kernel then reuses its buffers and returns empty lists (the NumPy
        engine returns its usual results)."""
        chunk = self._check_inputs(chunk)
        if self.kernel == "compiled":
            return self._advance_compiled(chunk, record_v, reuse_spikes=not keep_spikes)
        b, t = chunk.shape[:2]
        # feature-major, columns in time-major order (t, b): x is (n_in, t*b); a layer's
        # activations are (n_out, t, b), so a step is the (n_out, b) slice [:, step]
        xmax = 1
        if chunk.dtype != bool:
            xmax = int(chunk.max()) if chunk.size else 0
            small = np.uint8 if xmax < 256 else (np.uint16 if xmax < 65536 else None)  # cheaper transpose
            if small is not None and chunk.dtype != small and t * b > 1:
                chunk = chunk.astype(small)
        x = _feature_major(chunk.reshape(b, t, -1))
        spikes_out, v_out, u_out, counts = [], [], [], []
        self.last_paths = []
        ev = ev_in = None
        nodes = [(x, xmax)]  # feature-major output of each node a shortcut reads (0: the input, k + 1: layer k)
        for k, plan in enumerate(self._plans):
            n_out = plan.n_out
            if ev is None:  # input events per sample; for k > 0 the spike count of the layer below
                if plan.kind == "conv":  # per (input, sample) events are needed for the SynOps anyway
                    ev_in = _events_per_sample(x, t, b)
                    ev = ev_in.sum(axis=0)
                else:
                    ev = _count_events(x, t, b)
            rows = np.empty((5, b), np.int64)  # this chunk's counts (LayerCounts fields, active updates)
            rows[0] = ev
            if plan.delay_buckets is not None:
                acc, self._hist[k], rows[4] = _delayed_accumulate(plan, x, self._hist[k], t, b)
                path, bound = "delayed", int(np.abs(acc).max()) if acc.size else 0
            else:
                rows[4] = plan.active_updates(x, t, b, [nodes[sc.source + 1][0] for sc in plan.layer.shortcuts])
                acc, path, bound = _accumulate(plan, x, self.sparse_threshold, xmax)
            sc_rows = None
            if plan.shortcuts:  # rule 1b: each block through its own exponent, then the int32 sum (int64 LIF)
                acc, bound, sc_rows = self._shortcut_activation(plan, acc, bound, nodes, t, b)
                path += "+shortcut"
            self.last_paths.append(path)
            u, v = self._u[k], self._v[k]
            s_rec = np.empty((t, n_out, b), bool)  # step-major, as the LIF loop writes it
            if record_v:
                v_rec = np.empty((t, n_out, b), np.int32)
                u_rec = np.empty((t, n_out, b), np.int32)
            # magnitude bounds (Python ints) prove when no wrap / clip can happen, skipping the checks;
            # first from the bounds carried over from the last call, then (if those do not suffice)
            # from the state itself
            a_bnd = bound if sc_rows is not None else core_spec.shifted_bound(bound, plan.weight_exp)
            u_bnd, v_bnd = self._bounds[k]
            checks, clean, u_end, v_end = _lif_checks(u_bnd, v_bnd, a_bnd, plan, t)
            if not clean:
                u_bnd = int(np.abs(u).max()) if u.size else 0
                v_bnd = int(np.abs(v).max()) if v.size else 0
                checks, clean, u_end, v_end = _lif_checks(u_bnd, v_bnd, a_bnd, plan, t)
            if plan.int32_ok and clean and sc_rows is None:
                # int32 loop: shift-only decays, every value proved inside 24 bits
                a, _ = _activation_step_major(acc, plan.weight_exp, bound, t, b, as_int32=True)
                u32, v32 = u, v  # v is updated in place (it is this layer's state)
                tmp = np.empty_like(v32)
                ku, kv = plan.ku, plan.kv
                sh_u = core_spec.decay_shift(ku) if ku else 0
                sh_v = core_spec.decay_shift(kv)
                bias32, vth32 = plan.bias32, plan.vth32
                for step in range(t):
                    cur = a[step]  # the new current: (a << 6) + trunc(u * ku / 4096)
                    if ku:
                        cur += _decay_trunc32(u32, sh_u, tmp)
                    u32 = cur
                    if sh_v:
                        np.add(_decay_trunc32(v32, sh_v, tmp), cur, out=v32)
                    else:
                        v32 += cur
                    v32 += bias32
                    s = s_rec[step]
                    np.greater(v32, vth32, out=s)
                    np.copyto(v32, 0, where=s)
                    if record_v:
                        v_rec[step], u_rec[step] = v32, u32
                u, v = u32, v32
            else:
                # step-major (t, n_out, b): every step's slice contiguous for the LIF loop
                if sc_rows is None:
                    a, a_max = _activation_step_major(acc, plan.weight_exp, bound, t, b)
                else:  # already the summed activation, step-major and << 6
                    a, a_max = acc, bound
                checks, _, u_end, v_end = _lif_checks(u_bnd, v_bnd, a_max, plan, t)
                u, v = u.astype(np.int64), v.astype(np.int64)
                for step in range(t):
                    check_u, check_v = checks[step]
                    u, v, s = lif_step_fast(u, v, a[step], plan.layer.du, plan.layer.dv, plan.bias, plan.vth64,
                                            check_u=check_u, check_v=check_v, shifted=True)
                    s_rec[step] = s
                    if record_v:
                        v_rec[step], u_rec[step] = v, u
                u, v = u.astype(np.int32), v.astype(np.int32)
            self._u[k], self._v[k] = u, v
            self._bounds[k] = (u_end, v_end)
            ev_out = _count_events(s_rec, t, b)
            if plan.kind == "dense":  # every input has fan-out n_out
                np.multiply(ev, n_out, out=rows[1])
            else:
                rows[1] = plan.fan @ (ev_in if ev_in is not None else _events_per_sample(x, t, b))
            if sc_rows is not None:  # the shortcut blocks' input events and SynOps
                rows[0] += sc_rows[0]
                rows[1] += sc_rows[1]
            rows[2] = t * n_out
            rows[3] = ev_out
            self._totals[k] += rows
            counts.append(LayerCounts.of_rows(rows))
            spikes_out.append(s_rec.transpose(2, 0, 1))
            if record_v:
                v_out.append(v_rec.transpose(2, 0, 1))
                u_out.append(u_rec.transpose(2, 0, 1))
            if t == 1:
                x = s_rec.reshape(n_out, b)
            else:  # the next layer's input, feature-major
                x = np.ascontiguousarray(s_rec.transpose(1, 0, 2)).reshape(n_out, t * b)
            nodes.append((x, 1) if k + 1 in self._shortcut_sources else None)
            ev_in = None
            xmax = 1
            ev = ev_out
        self.steps += t
        return spikes_out, v_out, u_out, counts

    def _shortcut_activation(self, plan: _LayerPlan, acc: np.ndarray, bound: int, nodes: list, t: int, b: int
                             ) -> tuple[np.ndarray, int, tuple[np.ndarray, np.ndarray]]:
        """Rule 1b for a layer with shortcut blocks: the main block's sums ``acc`` and each shortcut's, each
        through its own weight exponent, summed as int32 -> ``(t, n_out, b)`` int64 ``<< 6``, a bound on the
        sum (before ``<< 6``), and the shortcuts' (input events, SynOps) per sample."""
        a, a_max = _activation_step_major(acc, plan.weight_exp, bound, t, b)
        ev = np.zeros(b, np.int64)
        syn = np.zeros(b, np.int64)
        for sp_plan in plan.shortcuts:
            xs, xs_max = nodes[sp_plan.layer.source + 1]
            acc_s, _, bnd_s = _accumulate(sp_plan, xs, self.sparse_threshold, xs_max)
            a_s, max_s = _activation_step_major(acc_s, sp_plan.weight_exp, bnd_s, t, b)
            a += a_s
            a_max += max_s
            per_in = _events_per_sample(xs, t, b)
            ev += per_in.sum(axis=0)
            syn += sp_plan.fan @ per_in
        if a_max > _I32_MAX and a.size:  # the int32 sum of the blocks (the ports' int32 addition)
            a = (a >> core_spec.ACT_SHIFT).astype(np.int32).astype(np.int64) << core_spec.ACT_SHIFT
            a_max = int(np.abs(a).max()) >> core_spec.ACT_SHIFT
        return a, a_max, (ev, syn)

    def _advance_compiled(self, chunk: np.ndarray, record_v: bool, reuse_spikes: bool = False
                          ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[LayerCounts]]:
        plan = self._plan
        t = chunk.shape[1]
        self.steps += t
        if reuse_spikes and self.batch_size == 1 and self._run._parts is None:
            # the lean stream call: the kernel adds to the running totals themselves ((L, 5, 1) is (L, 1, 5) in
            # memory), no per-chunk objects
            self._run.advance(chunk, record_v, keep_spikes=False, counts_into=self._totals_b1)
            return [], [], [], []
        s, vr, ur, c = self._run.advance(chunk, record_v, keep_spikes=not reuse_spikes)
        rows = c.transpose(0, 2, 1)
        self._totals += rows
        self.last_paths = ["compiled"] * len(plan.layers)
        if reuse_spikes:  # running totals only (self.counts), no per-chunk objects
            return [], [], [], []
        nat = plan.to_natural
        return ([nat(k, x) for k, x in enumerate(s)], [nat(k, x) for k, x in enumerate(vr)],
                [nat(k, x) for k, x in enumerate(ur)],
                [LayerCounts.of_rows(r) for r in np.ascontiguousarray(rows)])

    def advance_events(self, events: np.ndarray, lo: int, hi: int, start: int, stop: int, n_steps: int,
                       binning: tuple) -> bool:
        """One stream window straight from events, binned and run in one compiled call
        (``compiled.CompiledRun.advance_events``; ``events``, ``binning``: see there); running counters only.
        Returns False, having run nothing, where that path does not apply (NumPy engine, batch > 1, workers, a
        window shorter than a step) or an event is outside the window or the sensor: the caller then bins
        frames itself (and reports the event)."""
        if self.kernel != "compiled" or self._totals_b1 is None or self._run._parts is not None or n_steps < 1:
            return False
        if self._run.advance_events(events, lo, hi, start, stop, n_steps, binning, self._totals_b1) >= 0:
            return False
        self.steps += n_steps
        return True

    def account_idle(self, n_steps: int) -> None:
        """Count ``n_steps`` input-free steps that leave the state unchanged (a fixed point the caller
        established) without running them: each updates every neuron once and does nothing else."""
        n_out = np.array([layer.n_out for layer in self.net.layers], np.int64)
        self._totals[:, 2, :] += int(n_steps) * n_out[:, None]
        self.steps += int(n_steps)

    @property
    def active_updates(self) -> np.ndarray:
        """Active neuron updates since ``reset`` per layer and sample, ``(L, B)`` (``results.active_updates``)."""
        return self._totals[:, 4]

    def step(self, x_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step on ``x_t`` ``(B, *input_shape)``; returns the last layer's ``(spikes (B, n) bool, v (B, n) int32)``."""
        x_t = np.asarray(x_t)
        tr = self.run(x_t.reshape((x_t.shape[0], 1) + x_t.shape[1:]))
        return tr.spikes[-1][:, 0], tr.final_v[-1]

    def predictions(self) -> np.ndarray:
        """``argmax`` of the last layer's current voltage, ``(B,)`` (lowest index wins ties)."""
        return np.argmax(self.readout_v(), axis=1)


def run_batch(net: IntegerNetwork, inputs: np.ndarray, record_v: bool = False,
              sparse_threshold: Optional[float] = None, kernel: str = "auto", workers: int = 1) -> BatchTrace:
    """Run ``B`` samples ``inputs`` ``(B, T, *input_shape)`` from zero state, canonical schedule.

    ``kernel``: ``"compiled"`` (numba), ``"numpy"`` or ``"auto"`` (compiled when numba is installed);
    ``workers`` threads split the batch (compiled kernel only; the NumPy engine ignores it).
    """
    inputs = np.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(f"inputs have shape {inputs.shape}, expected (B, T, *input_shape)")
    return Emulator(net, inputs.shape[0], sparse_threshold=sparse_threshold, kernel=kernel,
                    workers=workers).run(inputs, record_v=record_v)


def run_single(net: IntegerNetwork, inputs: np.ndarray) -> RunTrace:
    """One sample ``(T, *input_shape)`` as a ``reference.RunTrace`` (drop-in for ``run_reference``)."""
    return run_batch(net, np.asarray(inputs)[None], record_v=True).sample(0)


def random_network(rng: np.random.Generator, input_shape: tuple[int, ...] = (12,),
                   layers: tuple[tuple, ...] = (("dense", 10), ("dense", 4)),
                   weight_range: tuple[int, int] = (-8, 8), binary_hidden: bool = False,
                   vth_range: tuple[int, int] = (1, 64), readout: bool = True, input_max: int = 3) -> IntegerNetwork:
    """A random valid ``IntegerNetwork`` for tests and benchmarks.

    ``layers`` items are ``("dense", n_out)`` or ``("conv", C_out, k, stride, padding)``;
    registers (du, dv, vth, bias, weight_exp) are drawn over their legal ranges, with biases
    small enough that the network is not saturated.
    """
    shape = tuple(input_shape)
    out: list[IntLayer] = []
    for idx, spec in enumerate(layers):
        last = idx == len(layers) - 1
        if spec[0] == "dense":
            n_in, n_out = int(np.prod(shape)), int(spec[1])
            wshape, oshape, stride, pad = (n_out, n_in), (n_out,), (1, 1), (0, 0)
        else:
            _, co, k, s, p = spec
            c, h, w = shape
            ho, wo = conv_output_hw(h, w, (k, k), (s, s), (p, p))
            wshape, oshape, stride, pad = (co, c, k, k), (co, ho, wo), (s, s), (p, p)
            n_out = co * ho * wo
        binary = binary_hidden and 0 < idx < len(layers) - 1
        if binary:
            wm = rng.choice(np.array([-1, 1], np.int16), size=wshape)
        else:
            wm = rng.integers(weight_range[0], weight_range[1] + 1, size=wshape).astype(np.int16)
        is_readout = readout and last
        out.append(IntLayer(
            name=f"l{idx}", kind=spec[0], weight_mant=wm, weight_exp=int(rng.integers(-2, 3)),
            weight_bits=1 if binary else 8,
            vth=(np.full(n_out, core_spec.VTH_MAX, np.int32) if is_readout
                 else rng.integers(vth_range[0], vth_range[1] + 1, n_out).astype(np.int32)),
            bias_mant=rng.integers(-8, 9, n_out).astype(np.int32), bias_exp=rng.integers(0, 3, n_out).astype(np.int32),
            du=int(rng.choice([4095, int(rng.integers(0, 4096))])),
            dv=0 if is_readout else int(rng.choice([2048, int(rng.integers(0, 4096))])),
            in_shape=shape, out_shape=oshape, stride=stride, padding=pad, readout=is_readout))
        shape = oshape
    net = IntegerNetwork(layers=out, input_shape=tuple(input_shape), input_max=input_max)
    net.validate()
    return net


def random_residual_network(rng: np.random.Generator, input_shape: tuple[int, int, int] = (2, 6, 6),
                            channels: int = 4, binary_hidden: bool = True, input_max: int = 3,
                            weight_range: tuple[int, int] = (-8, 8), vth_max: int = 6) -> IntegerNetwork:
    """A random valid residual ``IntegerNetwork`` (a ResNet in miniature) for tests and benchmarks.

    stem conv -> block 1 (conv, conv + identity-like 1x1 shortcut from the stem) -> block 2 (stride-2 conv,
    conv + 1x1 stride-2 shortcut from block 1's output) -> a second shortcut from the network input into
    block 1's first conv -> dense readout. Shortcut mantissas are random int8 values, their exponents
    drawn independently of the main blocks' (rule 1b adds differently scaled branches).
    """
    c = int(channels)
    net = random_network(rng, input_shape, (("conv", c, 3, 1, 1), ("conv", c, 3, 1, 1), ("conv", c, 3, 1, 1),
                                            ("conv", c, 3, 2, 1), ("conv", c, 3, 1, 1), ("dense", 5)),
                         weight_range=weight_range, binary_hidden=binary_hidden, input_max=input_max)
    from hw_models.integer_network import IntSynapse

    for layer in net.layers[:-1]:  # thresholds low enough that every layer spikes (a dead layer tests nothing)
        layer.vth = rng.integers(1, vth_max + 1, layer.n_out).astype(np.int32)
        layer.weight_exp = int(rng.integers(0, 2))

    def shortcut(name: str, src: int, k: int, stride: int) -> IntSynapse:
        src_shape = tuple(input_shape) if src < 0 else tuple(net.layers[src].out_shape)
        w = rng.integers(weight_range[0], weight_range[1] + 1, size=(c, src_shape[0], 1, 1)).astype(np.int16)
        return IntSynapse(name=name, source=src, kind="conv", weight_mant=w, weight_exp=int(rng.integers(-2, 2)),
                          weight_bits=8, in_shape=src_shape, out_shape=tuple(net.layers[k].out_shape),
                          stride=(stride, stride))

    net.layers[2].shortcuts = [shortcut("shortcut", 0, 2, 1)]
    net.layers[4].shortcuts = [shortcut("shortcut", 2, 4, 2)]
    net.layers[1].shortcuts = [shortcut("from_input", -1, 1, 1)]
    net.validate()
    return net
