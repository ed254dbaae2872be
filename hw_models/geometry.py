"""Connection geometry shared by every backend and the energy model: conv arithmetic and synapse lists.

One definition of which input reaches which output (dense: all pairs; conv: the kernel window
after padding and stride), so the reference, the emulator, Brian2, Lava's conv process and
the SynOp counts cannot disagree about it. NumPy only.
"""

from __future__ import annotations

import numpy as np

from hw_models.integer_network import IntLayer


def conv_output_hw(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int]) -> tuple[int, int]:
    """Output height and width of a 2-D cross-correlation (torch's ``conv2d`` arithmetic)."""
    return ((h + 2 * padding[0] - kernel[0]) // stride[0] + 1, (w + 2 * padding[1] - kernel[1]) // stride[1] + 1)


def conv2d(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
           dtype=np.int64) -> np.ndarray:
    """Cross-correlation (torch's ``conv2d``) of ``x`` (C, H, W) or (B, C, H, W) with ``w`` (O, C, kH, kW).

    Computed in ``dtype`` (int64 for the integer network, float for the float model);
    returns (O, H', W') or (B, O, H', W').
    """
    batched = x.ndim == 4
    xb = x if batched else x[None]
    b, c, h, wd = xb.shape
    o, c2, kh, kw = w.shape
    if c != c2:
        raise ValueError(f"conv input has {c} channels, weights expect {c2}")
    ph, pw = padding
    sh, sw = stride
    xp = np.zeros((b, c, h + 2 * ph, wd + 2 * pw), dtype=dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = xb
    ho, wo = conv_output_hw(h, wd, (kh, kw), stride, padding)
    out = np.zeros((b, o, ho, wo), dtype=dtype)
    wc = w.astype(dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + sh * ho:sh, j:j + sw * wo:sw]  # (B, C, ho, wo)
            out += np.einsum("oc,bchw->bohw", wc[:, :, i, j], patch)
    return out if batched else out[0]


def conv2d_int(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    """Integer cross-correlation of ``x`` (C, H, W) with ``w`` (O, C, kH, kW); returns (O, H', W') int64."""
    return conv2d(x, w, stride, padding, dtype=np.int64)


def conv_geometry(layer: IntLayer) -> tuple[int, int, int, int]:
    """``(H_out, W_out, kH, kW)`` of a conv layer (checks that ``out_shape`` agrees)."""
    c, h, w = layer.in_shape
    o, _, kh, kw = layer.weight_mant.shape
    ho, wo = conv_output_hw(h, w, (kh, kw), layer.stride, layer.padding)
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


def max_abs_row_sum(layer: IntLayer, synapses=None) -> int:
    """``max`` over output neurons of ``sum |w|`` over their synapses: bounds ``|W @ x|`` per unit of input
    (``synapses``: this layer's ``synapse_list`` when the caller has it)."""
    if layer.kind == "dense":
        return int(np.abs(np.asarray(layer.weight_mant, np.int64)).sum(axis=1).max(initial=0))
    _, post, wl = synapse_list(layer) if synapses is None else synapses
    return int(np.bincount(post, weights=np.abs(wl).astype(np.float64), minlength=layer.n_out).max(initial=0))


def fan_out(layer: IntLayer) -> np.ndarray:
    """Number of synapses leaving each input neuron, ``(n_in,)`` int64 (borders and stride exact)."""
    if layer.kind == "dense":
        return np.full(layer.n_in, layer.n_out, np.int64)
    pre, _, _ = synapse_list(layer)
    return np.bincount(pre, minlength=layer.n_in).astype(np.int64)
