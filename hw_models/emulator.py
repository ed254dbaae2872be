"""Fast bit-exact NumPy emulator of an ``IntegerNetwork``: the path for batches and streams.

Why it exists: ``hw_models.reference`` is one sample, one step, one layer at a time (easy to
read, slow); Lava runs every process as an OS process (about a millisecond per step). This
module runs ``B`` samples at once and is bit-exact with ``reference.run_reference``
(tests prove it on random dense and conv networks, including the 24-bit wrap and the
voltage saturation).

How it is fast, and where it is event-driven:

* The network is feed-forward and the canonical schedule has no delays, so the synaptic
  activations of layer ``k`` for a whole chunk of ``t`` steps are one matrix product over
  ``B * t`` columns (feature-major: no transposes between layers, and conv patches multiply
  straight into the C-order output); only the LIF update
  loops over time (elementwise integer work). Python-int magnitude bounds prove, step by
  step, when the 24-bit wrap, the int32 casts and the voltage clip cannot trigger, and
  skip those passes then (they run, exactly as in ``core_spec``, whenever they could).
* Integer sums are computed in float32 / float64 BLAS when a per-layer bound proves the
  result exact (``|sum| < 2**24`` / ``2**53``); otherwise in int64.
* Event-driven where it pays: when the measured density of nonzero input events in a
  chunk is below ``sparse_threshold``, the product is a CSR (events) × weights product whose
  work is proportional to the active input events times their fan-out; above it, the dense
  BLAS product (or im2col for conv) is faster. The choice is per layer and per chunk.

Synaptic operations follow the project convention: one synapse delivering one nonzero input
event (a graded value counts once). Synapses are *structural*: a dense layer connects every
input to every output, a conv layer connects an input pixel to every output position whose
receptive field (after padding and stride) covers it, for every output channel. Zero-valued
weight mantissas still count (the core stores and visits them). ``fan_out`` and
``synapse_list`` are the single definition used by the emulator, Brian2 and the energy model.

What it leaves out: recurrent connections and axonal delays (the network type has none),
Lava's per-layer delay (convert with ``core_spec.LAVA_DELAY_PER_LAYER``), torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import scipy.sparse as sp

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.reference import RunTrace

# Below this fraction of nonzero inputs the event-driven (CSR) product is used. Measured on
# this project's 2-core machine with 1024-row chunks: the CSR product wins below ~1-2 %
# density for dense 256x256 layers and below ~3-5 % for stride-2 3x3 convs; BLAS float32
# (dense / im2col) wins above. One threshold for both kinds, between the two.
SPARSE_THRESHOLD = 0.03
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53

_MAX = core_spec.MAX_UV
_TRUNC_MASK = core_spec.DECAY_UNITY - 1
_I32_MAX = (1 << 31) - 1


# --- structure: synapse lists and fan-out ---------------------------------------------------
def conv_geometry(layer: IntLayer) -> tuple[int, int, int, int]:
    """``(H_out, W_out, kH, kW)`` of a conv layer (checks that ``out_shape`` agrees)."""
    c, h, w = layer.in_shape
    o, _, kh, kw = layer.weight_mant.shape
    ho = (h + 2 * layer.padding[0] - kh) // layer.stride[0] + 1
    wo = (w + 2 * layer.padding[1] - kw) // layer.stride[1] + 1
    if tuple(layer.out_shape) != (o, ho, wo):
        raise ValueError(f"layer {layer.name!r}: out_shape {layer.out_shape} but conv geometry gives {(o, ho, wo)}")
    return ho, wo, kh, kw


def synapse_list(layer: IntLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Explicit synapses ``(pre, post, w)`` of a layer (flat C-order indices, int64, weight mantissas).

    Dense: all ``n_out * n_in`` pairs. Conv: one synapse per (input pixel, output neuron)
    pair inside the kernel window, borders (padding) and stride respected; padded
    positions have no synapse. The activation of output ``j`` is ``sum w * x[pre]`` over
    its synapses, exactly ``reference.synaptic_activation`` before the weight exponent.
    """
    if layer.kind == "dense":
        n_out, n_in = layer.weight_mant.shape
        post, pre = np.meshgrid(np.arange(n_out), np.arange(n_in), indexing="ij")
        return pre.ravel().astype(np.int64), post.ravel().astype(np.int64), \
            np.asarray(layer.weight_mant).ravel().astype(np.int64)
    if layer.kind != "conv":
        raise ValueError(f"layer {layer.name!r}: unknown kind {layer.kind!r}")
    c, h, w = layer.in_shape
    o = layer.weight_mant.shape[0]
    ho, wo, kh, kw = conv_geometry(layer)
    sh, sw = layer.stride
    ph, pw = layer.padding
    oo, cc, ii, jj, yy, xx = np.meshgrid(np.arange(o), np.arange(c), np.arange(kh), np.arange(kw),
                                         np.arange(ho), np.arange(wo), indexing="ij")
    iy = yy * sh - ph + ii
    ix = xx * sw - pw + jj
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    pre = (cc * h + iy) * w + ix
    post = (oo * ho + yy) * wo + xx
    wv = np.asarray(layer.weight_mant)[oo, cc, ii, jj]
    return pre[ok].astype(np.int64), post[ok].astype(np.int64), wv[ok].astype(np.int64)


def fan_out(layer: IntLayer) -> np.ndarray:
    """Number of synapses leaving each input neuron, ``(n_in,)`` int64 (borders and stride exact)."""
    if layer.kind == "dense":
        return np.full(layer.n_in, layer.n_out, np.int64)
    pre, _, _ = synapse_list(layer)
    return np.bincount(pre, minlength=layer.n_in).astype(np.int64)


# --- the LIF update, vectorised (same rules as core_spec.lif_step, tested against it) -------
def _decay_trunc(x: np.ndarray, k: int) -> np.ndarray:
    """``trunc(x * k / 4096)`` for int64 ``x``, ``0 < k < 4096``; a pure shift when ``k`` is a power of two."""
    k = int(k)
    if k & (k - 1) == 0:
        sh = core_spec.DECAY_SHIFT - (k.bit_length() - 1)
        out = x >> 63
        out &= (1 << sh) - 1
        out += x
        out >>= sh
        return out
    out = x * k
    out += (out >> 63) & _TRUNC_MASK
    out >>= core_spec.DECAY_SHIFT
    return out


def lif_step_fast(u: np.ndarray, v: np.ndarray, a: np.ndarray, du: int, dv: int,
                  bias: np.ndarray, vth64: np.ndarray, check_u: bool = True,
                  check_v: bool = True, shifted: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``core_spec.lif_step`` on int64 state arrays, with the same int32 casts; returns ``(u, v, spikes)``.

    ``a`` is the int32 activation (int64 array holding int32 values), ``vth64 = vth << 6``.
    The wrap, int32 cast and clip are applied only when a value is out of range (checked
    with two reductions), which is the common case's fast path; results are identical.
    ``check_u=False`` / ``check_v=False`` skip those checks when the caller has proved
    that the current cannot wrap / the voltage cannot saturate in this step. ``shifted=True``
    means ``a`` already holds ``activation << 6`` (the caller shifted a whole chunk at once)
    and may be overwritten.
    """
    ku = core_spec.DECAY_UNITY - (int(du) + core_spec.DU_OFFSET)
    cur = a if shifted else a << core_spec.ACT_SHIFT  # shifted: ``a`` is a scratch slice, updated in place
    if ku:
        cur += _decay_trunc(u, ku)
    if check_u and cur.size and (cur.max() > _MAX or cur.min() <= -_MAX):
        cur = np.where(cur > _MAX, cur - 2 * _MAX, np.where(cur <= -_MAX, cur + 2 * _MAX, cur))
        if cur.max() > _I32_MAX or cur.min() < -_I32_MAX - 1:
            cur = cur.astype(np.int32).astype(np.int64)  # core_spec casts the wrapped current to int32
    u_new = cur
    kv = core_spec.DECAY_UNITY - (int(dv) + core_spec.DV_OFFSET)
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


# --- results ---------------------------------------------------------------------------------
@dataclass
class LayerCounts:
    """Activity of one layer, per sample ``(B,)`` int64, summed over the steps run."""

    input_events: np.ndarray  # nonzero input entries (graded values count once)
    synops: np.ndarray  # input events x their fan-out
    neuron_updates: np.ndarray  # n_out per step
    spikes: np.ndarray  # output spikes

    @classmethod
    def zeros(cls, batch: int) -> "LayerCounts":
        return cls(*(np.zeros(batch, np.int64) for _ in range(4)))

    def add(self, other: "LayerCounts") -> None:
        for name in ("input_events", "synops", "neuron_updates", "spikes"):
            getattr(self, name).__iadd__(getattr(other, name))

    def total(self) -> dict[str, int]:
        return {name: int(getattr(self, name).sum())
                for name in ("input_events", "synops", "neuron_updates", "spikes")}


@dataclass
class BatchTrace:
    """Result of a batched run in canonical time.

    ``spikes[k]`` is ``(B, t, n_k)`` bool (a view of feature-major storage, not C-contiguous);
    ``v[k]``/``u[k]`` are ``(B, t, n_k)`` int32 when
    recorded (``record_v=True``), else ``None``; ``final_v``/``final_u`` ``(B, n_k)`` int32 are
    the states after the last step; ``predictions`` ``(B,)`` is the argmax of the last layer's
    voltage after the last step; ``counts[k]`` the activity of layer ``k``.
    """

    spikes: list[np.ndarray]
    v: Optional[list[np.ndarray]]
    u: Optional[list[np.ndarray]]
    final_v: list[np.ndarray]
    final_u: list[np.ndarray]
    predictions: np.ndarray
    counts: list[LayerCounts]

    def sample(self, b: int) -> RunTrace:
        """One sample as a ``reference.RunTrace`` (needs ``record_v=True``)."""
        if self.v is None or self.u is None:
            raise ValueError("voltages were not recorded; run with record_v=True")
        return RunTrace(spikes=[s[b] for s in self.spikes], v=[x[b] for x in self.v], u=[x[b] for x in self.u])


@dataclass
class _LayerPlan:
    layer: IntLayer
    w_dense: Optional[np.ndarray]  # (n_out, n_in) float for dense layers
    w_col: Optional[np.ndarray]  # (C*kH*kW, O) conv weights for im2col
    fan: np.ndarray  # (n_in,) fan-out
    row_abs_sum: int  # max over outputs of sum |w| (exactness bound per unit input)
    bias: np.ndarray  # (n_out, 1) int64 (broadcasts over the batch)
    vth64: np.ndarray  # (n_out, 1) int64
    geometry: Optional[tuple[int, int, int, int]] = None
    cache: dict = field(default_factory=dict)

    @property
    def w_csr(self) -> sp.csr_matrix:
        """``(n_out, n_in)`` weights as a sparse matrix (event-driven path), built on first use."""
        if "csr" not in self.cache:
            pre, post, w = synapse_list(self.layer)
            self.cache["csr"] = sp.csr_matrix((w.astype(np.float64), (post, pre)),
                                              shape=(self.layer.n_out, self.layer.n_in))
        return self.cache["csr"]


def _plan(layer: IntLayer) -> _LayerPlan:
    w = np.asarray(layer.weight_mant)
    bias = layer.bias.astype(np.int64)
    vth64 = np.asarray(layer.vth, np.int64) << core_spec.VTH_SHIFT
    if layer.kind == "dense":
        return _LayerPlan(layer=layer, w_dense=np.ascontiguousarray(w.astype(np.float64)), w_col=None,
                          fan=np.full(layer.n_in, layer.n_out, np.int64),
                          row_abs_sum=int(np.abs(w.astype(np.int64)).sum(axis=1).max(initial=0)),
                          bias=bias[:, None], vth64=vth64[:, None])
    pre, post, wl = synapse_list(layer)
    row_abs = np.bincount(post, weights=np.abs(wl).astype(np.float64), minlength=layer.n_out)
    o = w.shape[0]
    return _LayerPlan(layer=layer, w_dense=None, w_col=np.ascontiguousarray(w.astype(np.float64).reshape(o, -1)),
                      fan=np.bincount(pre, minlength=layer.n_in).astype(np.int64),
                      row_abs_sum=int(row_abs.max(initial=0)), bias=bias[:, None], vth64=vth64[:, None],
                      geometry=conv_geometry(layer))


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


def _accumulate(plan: _LayerPlan, x: np.ndarray, sparse_threshold: float) -> tuple[np.ndarray, str, int]:
    """Exact integer ``W @ x`` for columns of ``x`` ``(n_in, N)`` -> ``(n_out, N)``, the path used, and a
    bound on ``|W @ x|``.

    The result is float32/float64 holding exact integers (the bound check guarantees it; the
    caller converts once, into its own layout) or int64.
    """
    layer = plan.layer
    n = x.shape[1]
    nnz = int(np.count_nonzero(x))
    if nnz == 0:
        return np.zeros((layer.n_out, n), np.int64), "empty", 0
    xmax = int(x.max())  # inputs are non-negative
    bound = plan.row_abs_sum * xmax
    if bound >= _F64_EXACT:  # astronomically large inputs: exact int64 route
        out = plan.w_csr.astype(np.int64) @ _events_csr(x.astype(np.int64), np.int64)
        return np.asarray(out.todense(), np.int64), "int64", bound
    dtype = np.float32 if bound < _F32_EXACT else np.float64
    density = nnz / x.size
    if density < sparse_threshold:  # event-driven: work ~ events x fan-out
        key = ("csr", dtype)
        if key not in plan.cache:
            plan.cache[key] = plan.w_csr.astype(dtype)
        return (plan.cache[key] @ _events_csr(x, dtype)).toarray(), "sparse", bound
    if layer.kind == "dense":
        key = ("dense", dtype)
        if key not in plan.cache:
            plan.cache[key] = plan.w_dense.astype(dtype)
        return plan.cache[key] @ x.astype(dtype), "dense", bound
    key = ("col", dtype)
    if key not in plan.cache:
        plan.cache[key] = plan.w_col.astype(dtype)  # (O, C*kH*kW)
    ho, wo, _, _ = plan.geometry
    o = layer.out_shape[0]
    chunk = max(1, (1 << 22) // max(1, ho * wo * plan.w_col.shape[1]))  # ~4M patch entries per block
    if chunk >= n:
        cols = _im2col(x, layer, plan.geometry, dtype, plan.cache)
        return (plan.cache[key] @ cols).reshape(o * ho * wo, n), "im2col", bound
    out = np.empty((layer.n_out, n), dtype)
    for s in range(0, n, chunk):
        cols = _im2col(x[:, s:s + chunk], layer, plan.geometry, dtype, plan.cache)
        out[:, s:s + chunk] = (plan.cache[key] @ cols).reshape(o * ho * wo, -1)
    return out, "im2col", bound


def _activation_step_major(acc: np.ndarray, weight_exp: int, bound: int, t: int, b: int) -> tuple[np.ndarray, int]:
    """``core_spec.apply_weight_exp`` and the ``<< 6`` of ``lif_step``, into a step-major int64 array.

    ``acc`` ``(n_out, t*b)`` exact integer sums (float or int) -> ``(t, n_out, b)`` int64 holding
    ``int32(shift(acc, weight_exp)) << 6`` (one pass to convert and reorder, then in-place
    shifts), and a bound on ``|int32(shift(acc))|``. The int32 wrap is applied only when
    ``bound`` says it could happen (as in ``core_spec.apply_weight_exp``'s cast).
    """
    n_out = acc.shape[0]
    a = np.empty((t, n_out, b), np.int64)
    a[...] = acc.reshape(n_out, t, b).transpose(1, 0, 2)
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
    nz = x if x.dtype == bool else x != 0
    acc_dtype = np.uint8 if t < 256 else (np.uint16 if t < 65536 else np.int64)  # exact, narrower sums
    return nz.reshape(-1, t, b).sum(axis=1, dtype=acc_dtype).astype(np.int64)


class Emulator:
    """Stateful batched emulator: ``B`` independent samples, state carried across calls.

    ``reset()`` zeroes every ``u``/``v`` and the counters; ``step(x_t)`` advances one step;
    ``run(chunk)`` advances ``t`` steps at once (same result as ``t`` calls of ``step``).
    ``counts[k]`` accumulates the activity of layer ``k`` since the last ``reset``;
    ``steps`` counts the steps run. ``last_paths`` names the accumulation path used per layer
    in the last call (``dense``/``im2col``/``sparse``/``empty``/``int64``). ``u``/``v`` are the
    current states per layer as ``(B, n)`` int64 views (stored feature-major, ``(n, B)``).
    """

    def __init__(self, net: IntegerNetwork, batch_size: int, sparse_threshold: float = SPARSE_THRESHOLD):
        net.validate()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.net = net
        self.batch_size = int(batch_size)
        self.sparse_threshold = float(sparse_threshold)
        self._plans = [_plan(layer) for layer in net.layers]
        self.last_paths: list[str] = []
        self.reset()

    def reset(self) -> None:
        """Zero all neuron state and counters (a new sample / stream)."""
        b = self.batch_size
        self._u = [np.zeros((layer.n_out, b), np.int64) for layer in self.net.layers]
        self._v = [np.zeros((layer.n_out, b), np.int64) for layer in self.net.layers]
        self.counts = [LayerCounts.zeros(b) for _ in self.net.layers]
        self.steps = 0

    @property
    def u(self) -> list[np.ndarray]:
        """Current synaptic currents per layer, ``(B, n)`` views."""
        return [x.T for x in self._u]

    @property
    def v(self) -> list[np.ndarray]:
        """Current voltages per layer, ``(B, n)`` views."""
        return [x.T for x in self._v]

    def _check_inputs(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk)
        if chunk.dtype != bool and not np.issubdtype(chunk.dtype, np.integer):
            raise ValueError(f"inputs must be integers (graded spikes), got {chunk.dtype}")
        want = (self.batch_size, tuple(self.net.input_shape))
        if chunk.ndim < 2 or chunk.shape[0] != want[0] or \
                int(np.prod(chunk.shape[2:])) != int(np.prod(want[1])):
            raise ValueError(f"inputs have shape {chunk.shape}, expected (B={want[0]}, T, *{want[1]})")
        if chunk.size and chunk.min() < 0:
            raise ValueError("inputs must be non-negative (graded spikes)")
        return chunk

    def run(self, chunk: np.ndarray, record_v: bool = False) -> BatchTrace:
        """Advance ``t`` steps on ``chunk`` ``(B, t, *input_shape)``; returns that chunk's trace.

        ``counts`` in the returned trace cover this chunk only; ``self.counts`` keeps the
        running totals.
        """
        chunk = self._check_inputs(chunk)
        b, t = chunk.shape[:2]
        # feature-major, columns in time-major order (t, b): x is (n_in, t*b); a layer's
        # activations are (n_out, t, b), so a step is the (n_out, b) slice [:, step]
        cmax = int(chunk.max()) if chunk.size else 0
        small = np.uint8 if cmax < 256 else (np.uint16 if cmax < 65536 else None)  # cheaper transpose
        if small is not None and chunk.dtype != small and chunk.dtype != bool:
            chunk = chunk.astype(small)
        x = chunk.reshape(b, t, -1).transpose(2, 1, 0).reshape(-1, t * b)
        spikes_out, v_out, u_out, counts = [], [], [], []
        self.last_paths = []
        ev = None
        for k, plan in enumerate(self._plans):
            layer = plan.layer
            if ev is None:  # events per (input neuron, sample); for k > 0 reused from the layer below
                ev = _events_per_sample(x, t, b)
            acc, path, bound = _accumulate(plan, x, self.sparse_threshold)
            self.last_paths.append(path)
            # step-major (t, n_out, b): every step's slice contiguous for the LIF loop
            a, a_max = _activation_step_major(acc, layer.weight_exp, bound, t, b)
            u, v = self._u[k], self._v[k]
            s_rec = np.empty((layer.n_out, t, b), bool)
            if record_v:
                v_rec = np.empty((layer.n_out, t, b), np.int32)
                u_rec = np.empty((layer.n_out, t, b), np.int32)
            # magnitude bounds (Python ints) prove when no wrap / clip can happen, skipping the checks
            u_bnd = int(np.abs(u).max()) if u.size else 0
            v_bnd = int(np.abs(v).max()) if v.size else 0
            b_max = int(np.abs(plan.bias).max()) if plan.bias.size else 0
            ku = core_spec.DECAY_UNITY - (int(layer.du) + core_spec.DU_OFFSET)
            kv = core_spec.DECAY_UNITY - (int(layer.dv) + core_spec.DV_OFFSET)
            for step in range(t):
                u_bnd = ((u_bnd * ku) >> core_spec.DECAY_SHIFT) + (a_max << core_spec.ACT_SHIFT)
                check_u = u_bnd >= _MAX
                if check_u:
                    u_bnd = _I32_MAX + 1
                v_bnd = ((v_bnd * kv) >> core_spec.DECAY_SHIFT) + u_bnd + b_max
                check_v = v_bnd > _MAX - 1
                if check_v:
                    v_bnd = _MAX - 1
                u, v, s = lif_step_fast(u, v, a[step], layer.du, layer.dv, plan.bias, plan.vth64,
                                        check_u=check_u, check_v=check_v, shifted=True)
                s_rec[:, step] = s
                if record_v:
                    v_rec[:, step], u_rec[:, step] = v, u
            self._u[k], self._v[k] = u, v
            ev_out = _events_per_sample(s_rec.reshape(layer.n_out, t * b), t, b)
            c = LayerCounts(input_events=ev.sum(axis=0),
                            synops=plan.fan @ ev,
                            neuron_updates=np.full(b, t * layer.n_out, np.int64),
                            spikes=ev_out.sum(axis=0))
            self.counts[k].add(c)
            counts.append(c)
            spikes_out.append(s_rec.transpose(2, 1, 0))
            if record_v:
                v_out.append(v_rec.transpose(2, 1, 0))
                u_out.append(u_rec.transpose(2, 1, 0))
            x = s_rec.reshape(layer.n_out, t * b)
            ev = ev_out
        self.steps += t
        return BatchTrace(spikes=spikes_out, v=v_out if record_v else None, u=u_out if record_v else None,
                          final_v=[v.T.astype(np.int32) for v in self._v],
                          final_u=[u.T.astype(np.int32) for u in self._u],
                          predictions=np.argmax(self._v[-1], axis=0), counts=counts)

    def step(self, x_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step on ``x_t`` ``(B, *input_shape)``; returns the last layer's ``(spikes (B, n) bool, v (B, n) int32)``."""
        x_t = np.asarray(x_t)
        tr = self.run(x_t.reshape((x_t.shape[0], 1) + x_t.shape[1:]))
        return tr.spikes[-1][:, 0], tr.final_v[-1]

    def predictions(self) -> np.ndarray:
        """``argmax`` of the last layer's current voltage, ``(B,)`` (lowest index wins ties)."""
        return np.argmax(self._v[-1], axis=0)


def run_batch(net: IntegerNetwork, inputs: np.ndarray, record_v: bool = False,
              sparse_threshold: float = SPARSE_THRESHOLD) -> BatchTrace:
    """Run ``B`` samples ``inputs`` ``(B, T, *input_shape)`` from zero state, canonical schedule."""
    inputs = np.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(f"inputs have shape {inputs.shape}, expected (B, T, *input_shape)")
    return Emulator(net, inputs.shape[0], sparse_threshold=sparse_threshold).run(inputs, record_v=record_v)


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
            ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
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
