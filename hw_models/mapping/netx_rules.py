"""How lava-dl 0.6.0 reads a netx HDF5 file, re-stated from its source, as an ``IntegerNetwork``.

Why: lava-dl does not install on Python 3.11, and Lava's Python simulation runs an out-of-spec
network without complaint, so the only way to know that lava-dl loads our file *exactly* is to
apply its reading rules ourselves and compare the result with the network we meant to write.
Rules (``lava/lib/dl/netx/hdf5.py`` ``Network``, ``blocks/process.py``, ``utils.py``; Lava 0.10
``proc/dense/models.py``, ``proc/conv/models.py``, ``utils/weightutils.py``):

* neuron ``CUBA``/``LOIHI`` → Lava ``LIF(vth=vThMant, du=iDecay-1, dv=vDecay, bias_mant=bias,
  bias_exp=6)``; ``vth`` is ONE number per population (a Lava ``Var`` of shape (1,)); the bias
  mantissa is a 13-bit signed field; other neuron types (SDNN, RF, RF_IZ) are other processes;
* ``dense``: ``optimize_weight_bits(weight)`` (clip to [-256, 254] when mixed-sign and too large,
  then ``weight << scale_bits`` with ``weight_exp = -scale_bits``), then the bit-accurate Dense clips to
  8 bits and truncates ``8 - num_weight_bits + mixed`` low bits; ``a = shift(W' @ s, weight_exp)``;
* ``conv``: the weight is used as stored (``[:, :, ::-1, ::-1]`` then ``(0, 3, 2, 1)`` for Lava's WHC
  layout; no exponent, no truncation), the activation clamped to signed 24 bits;
* bias: a vector of the population size, or one value per channel for conv (broadcast over the
  map); anything else is an error in ``AbstractBlock._neuron``;
* shapes: ``shape`` per layer (netx reverses it to WHC); a conv layer's input shape is the previous
  layer's shape (or the ``input`` layer's); ``flatten`` reorders a conv map for the next dense layer;
* input: the first synapse receives graded values only if ``Network(input_message_bits > 0)``;
  with the default 0 every input value is cast to bool;
* ``delay`` (dense): clipped to [0, 62]; one value per output neuron is repeated over the inputs.

* topology: ``Network`` connects each block to the one read before it
  (``layers[-2].out.connect(layers[-1].inp)``), so a netx file is a chain; a residual network
  (a layer with shortcut blocks) has no netx form (``residual_refusal``).

``lava_dl_view(path, input_message_bits)`` returns the network lava-dl would run (weights in the form
our cores take: ``a = shift(mant @ s, exp)``), raising ``NetxRuleError`` where lava-dl would fail.
``netx_differences(view, net)`` lists every way it differs from ``net``; an export is exact when
that list is empty.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from hw_models import core_spec


def residual_refusal(layer: str) -> str:
    """Why a residual network cannot be written as netx (the message every netx path raises)."""
    return (f"layer {layer!r} has residual shortcuts: lava-dl's netx reader connects each block only to the one "
            f"before it (hdf5.Network: layers[-2].out.connect(layers[-1].inp)), so a netx file cannot hold a "
            f"residual add; map it with --to lava (our Lava processes run the DAG) or export it with --to nir")
from hw_models.integer_network import IntegerNetwork, IntLayer

NETX_BIAS_EXP = 6  # lava-dl netx: bias_exp = 6 for CUBA neurons
NETX_MAX_DELAY = 62  # lava-dl netx clamps delays to [0, 62]
SUPPORTED_NEURONS = ("CUBA", "LOIHI")
LIF_BIAS_MANT = (-(1 << 12), (1 << 12) - 1)  # PyLifModelBitAcc: bias_mant is 13-bit signed


class NetxRuleError(ValueError):
    """A netx file that lava-dl would reject, or load differently from what we meant to write."""


def optimize_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int, str]:
    """lava-dl's ``netx.utils.optimize_weight_bits``: (weights, num_weight_bits, weight_exp, sign mode)."""
    weight = np.asarray(weight, np.int64)
    max_w, min_w = int(weight.max()), int(weight.min())
    if (max_w > 254 and min_w < 0) or (min_w < -256 and max_w > 0):
        weight = np.clip(weight, -256, 254)
        max_w, min_w = int(weight.max()), int(weight.min())
    if max_w < 0:
        mode, signed, scale = "inhibitory", 0, -256 / min_w
    elif min_w >= 0:
        mode, signed = "excitatory", 0
        scale = 255 / max_w if max_w > 0 else np.inf
    else:
        mode, signed = "mixed", 1
        scale = min(127 / max_w, -128 / min_w)
    if not np.isfinite(scale):  # an all-zero matrix: lava-dl divides by zero (scale inf); nothing to keep
        return weight, 8, 0, mode
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.sum(np.abs(weight / 2 ** n - np.round(weight / 2 ** n))) != 0:
        n -= 1
    n -= signed
    if scale_bits < 0:
        raise NetxRuleError(f"weights up to {max_w} make lava-dl's optimize_weight_bits shift by {scale_bits} "
                            f"(np.left_shift with a negative count)")
    return np.left_shift(weight, scale_bits), 8 - scale_bits - n, -scale_bits, mode


def lava_dense_weights(weight: np.ndarray, num_weight_bits: int, mode: str) -> np.ndarray:
    """Lava's bit-accurate Dense: ``clip_weights(num_bits=8)`` then ``truncate_weights(num_weight_bits)``."""
    w = np.asarray(weight, np.int64)
    mixed = int(mode == "mixed")
    if mode == "inhibitory":
        w = -w
    w = np.clip(w, -(2 ** 8) * mixed, 2 ** 8 - 1)
    shift = 8 - int(num_weight_bits) + mixed
    if shift > 0:
        w = (w >> shift) << shift
    return -w if mode == "inhibitory" else w


def _str(ds) -> str:
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _scalar(g: h5py.Group, key: str, where: str) -> int:
    v = np.asarray(g[key][()])
    if v.size != 1:
        raise NetxRuleError(f"{where}/{key}: lava-dl's LIF takes one value per layer, the file holds {v.size} "
                            f"(distinct: {np.unique(v).size})")
    return int(v.reshape(-1)[0])


def _neuron(g: h5py.Group, where: str, n_out: int, conv_shape: Optional[tuple[int, int, int]], bias) -> dict:
    if "neuron" not in g:
        raise NetxRuleError(f"{where}: no 'neuron' group (lava-dl then uses a non-leaky integrator with "
                            f"vThMant = 1 << 17, which we do not model)")
    n = g["neuron"]
    kind = _str(n["type"])
    if kind not in SUPPORTED_NEURONS:
        raise NetxRuleError(f"{where}: neuron type {kind!r} is not supported (CUBA/LOIHI); lava-dl builds "
                            f"{'Sigma-Delta' if kind == 'SDNN' else 'resonate-and-fire' if 'RF' in kind else 'another'}"
                            f" neurons for it")
    vth = _scalar(n, "vThMant", f"{where}/neuron")
    du, dv = _scalar(n, "iDecay", f"{where}/neuron") - 1, _scalar(n, "vDecay", f"{where}/neuron")
    if bias is None:
        b = np.zeros(n_out, np.int64)
    else:  # AbstractBlock._neuron: per neuron (in lava's WHC order for maps) or, for maps, per channel
        b = np.asarray(bias, np.int64)
        if conv_shape is None and b.size == n_out:
            b = b.reshape(-1)
        elif conv_shape is not None and b.shape == tuple(conv_shape[::-1]):
            b = b.transpose(2, 1, 0).reshape(-1)  # (W, H, C) -> C-order (C, H, W)
        elif conv_shape is not None and b.ndim == 1 and b.size == conv_shape[0]:
            b = np.repeat(b, n_out // conv_shape[0])  # channel-wise over the map
        else:
            raise NetxRuleError(f"{where}/bias: shape {b.shape} cannot be broadcast to the layer's neurons "
                                + (f"(lava-dl takes {tuple(conv_shape[::-1])} in W, H, C order or one per channel, "
                                   f"{conv_shape[0]})" if conv_shape is not None else f"({n_out})"))
    if b.size and (b.min() < LIF_BIAS_MANT[0] or b.max() > LIF_BIAS_MANT[1]):
        i = int(np.argmax((b < LIF_BIAS_MANT[0]) | (b > LIF_BIAS_MANT[1])))
        raise NetxRuleError(f"{where}/bias[{i}] = {int(b[i])} outside the LIF bias field {LIF_BIAS_MANT} "
                            f"(13-bit signed, bias_exp fixed at 6)")
    for name, val, hi in (("vThMant", vth, core_spec.VTH_MAX), ("iDecay - 1", du, core_spec.DECAY_MAX),
                          ("vDecay", dv, core_spec.DECAY_MAX)):
        if not 0 <= val <= hi:
            raise NetxRuleError(f"{where}/neuron: {name} = {val} outside [0, {hi}]")
    return dict(vth=np.full(n_out, vth, np.int32), du=du, dv=dv, bias_mant=b.astype(np.int32),
                bias_exp=np.full(n_out, NETX_BIAS_EXP, np.int32))


def lava_dl_view(path: str | os.PathLike, input_message_bits: Optional[int] = 0, input_max: Optional[int] = None,
                 guard: bool = True) -> IntegerNetwork:
    """The network lava-dl's ``netx.hdf5.Network(path, input_message_bits=...)`` would build, in our terms.

    ``input_message_bits=None``: as many as the file's graded input needs (what a user loading it should
    pass). Any failure reading the file (not HDF5, damaged, a dataset declaring more than the file holds) is
    a ``NetxRuleError`` naming the file; ``guard=False`` skips the forked libhdf5 preflight (for a file this
    process has just written)."""
    from neuro_agmm.artifact.guard import read_guarded

    read = lambda p: _lava_dl_view(Path(p), input_message_bits, input_max)  # noqa: E731
    return read_guarded(path, read, NetxRuleError) if guard else read(path)


def _read(g: h5py.Group, key: str, where: str) -> np.ndarray:
    from neuro_agmm.artifact.h5 import check_size

    if key not in g or not isinstance(g[key], h5py.Dataset):
        raise NetxRuleError(f"{where}: missing dataset {key!r}")
    check_size(g[key], where, NetxRuleError)
    return g[key][()]


def _lava_dl_view(path: Path, input_message_bits: int, input_max: Optional[int]) -> IntegerNetwork:
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            raise NetxRuleError(f"{path}: not a netx file (no group 'layer')")
        in_max = int(input_max if input_max is not None else f.attrs.get("input_max", 1))
        if input_message_bits is None:
            input_message_bits = in_max.bit_length() if in_max > 1 else 0
        if in_max > 1 and input_message_bits == 0:
            raise NetxRuleError(f"{path}: the input is graded (values up to {in_max}) but lava-dl casts input "
                                f"spikes to bool unless Network(..., input_message_bits > 0); load it with "
                                f"input_message_bits={int(in_max).bit_length()} or more")
        layers: list[IntLayer] = []
        shape: Optional[tuple[int, ...]] = tuple(int(x) for x in f.attrs["input_shape"]) \
            if "input_shape" in f.attrs else None
        net_input = shape
        for i in range(len(f["layer"])):
            g = f["layer"][str(i)]
            where = f"{path}:/layer/{i}"
            kind = _str(g["type"])
            if kind == "input":
                shape = tuple(int(x) for x in np.asarray(_read(g, "shape", where)).reshape(-1))
                net_input = net_input or shape
                if "neuron" in g:  # an Input block: a LIF population fed the input value directly
                    layers.append(_input_layer(g, where, shape, i))
                continue
            if kind == "flatten":
                shape = (int(np.prod(shape)),) if shape else None
                continue
            if kind not in ("dense", "conv"):
                raise NetxRuleError(f"{where}: layer type {kind!r}: lava-dl netx 0.6.0 raises NotImplementedError "
                                    f"for it" if kind in ("pool", "convT", "unpool", "average", "concat")
                                    else f"{where}: unknown layer type {kind!r}")
            out_shape = tuple(int(x) for x in np.asarray(_read(g, "shape", where)).reshape(-1))
            w = np.asarray(_read(g, "weight", where), np.int64)
            bias = _read(g, "bias", where) if "bias" in g else None
            if kind == "dense":
                n_out = int(np.prod(out_shape))
                w = w.reshape(n_out, -1)
                mant, nwb, exp, mode = optimize_weight_bits(w)
                mant = lava_dense_weights(mant, nwb, mode)
                if exp < 0 and not np.any(mant % (1 << -exp)):  # shift(W' @ s) with W' = W << k is exactly W @ s
                    mant, exp = mant >> -exp, 0
                if mant.min() < core_spec.WEIGHT_MANT_MIN or mant.max() > core_spec.WEIGHT_MANT_MAX:
                    raise NetxRuleError(f"{where}: weights {int(w.min())}..{int(w.max())} leave the 8-bit synapse")
                in_shape = (w.shape[1],)
                extra = dict(kind="dense", weight_mant=mant.astype(np.int16), weight_exp=exp,
                             in_shape=in_shape, out_shape=(n_out,))
                regs = _neuron(g, where, n_out, None, bias)
                if "delay" in g:
                    if exp < 0:
                        raise NetxRuleError(f"{where}: lava-dl's DelayDense would round each delay bucket's sum "
                                            f"(weights not exact after optimize_weight_bits)")
                    d = np.clip(np.asarray(_read(g, "delay", where), np.int64), 0, NETX_MAX_DELAY)
                    extra["delay"] = _dense_delays(d, w.shape, where)
            else:
                if shape is None or len(shape) != 3:
                    raise NetxRuleError(f"{where}: conv input shape cannot be inferred (no previous layer, no "
                                        f"'input' layer, no input_shape attribute)")
                stride = tuple(int(x) for x in np.broadcast_to(g["stride"][()], (2,)))
                padding = tuple(int(x) for x in np.broadcast_to(g["padding"][()], (2,)))
                dil = np.broadcast_to(g["dilation"][()], (2,)) if "dilation" in g else np.ones(2)
                groups = int(np.asarray(g["groups"][()]).reshape(-1)[0]) if "groups" in g else 1
                if np.any(dil != 1) or groups != 1:
                    raise NetxRuleError(f"{where}: dilation {tuple(dil)} / groups {groups} are not supported")
                w = w.reshape(w.shape[:4])
                extra = dict(kind="conv", weight_mant=w.astype(np.int16), weight_exp=0, in_shape=tuple(shape),
                             out_shape=out_shape, stride=stride, padding=padding)
                if w.size and (w.min() < core_spec.WEIGHT_MANT_MIN or w.max() > core_spec.WEIGHT_MANT_MAX):
                    raise NetxRuleError(f"{where}: conv weights {int(w.min())}..{int(w.max())} outside the "
                                        f"[{core_spec.WEIGHT_MANT_MIN}, {core_spec.WEIGHT_MANT_MAX}] our cores hold")
                regs = _neuron(g, where, int(np.prod(out_shape)), out_shape, bias)
            layer = IntLayer(name=f"netx{i}", weight_bits=8, **extra, **regs)
            layers.append(layer)
            shape = tuple(layer.out_shape)
        if not layers:
            raise NetxRuleError(f"{path}: no dense or conv layers")
        if np.all(layers[-1].vth == core_spec.VTH_MAX):
            layers[-1].readout = True
        net = IntegerNetwork(layers=layers, input_shape=net_input or layers[0].in_shape, input_max=in_max if input_message_bits else 1,
                             meta={"source": str(path), "format": "netx", "reader": "lava-dl 0.6.0 rules"})
    net.validate()
    return net


def _input_layer(g: h5py.Group, where: str, shape: tuple[int, ...], i: int) -> IntLayer:
    """netx's ``Input`` block (neurons whose ``a_in`` is the input itself) as an identity synapse + LIF."""
    n = int(np.prod(shape))
    bias = _read(g, "bias", where) if "bias" in g else None
    from neuro_agmm.artifact.h5 import MAX_READ_BYTES

    if len(shape) != 3 and 2 * n * n > MAX_READ_BYTES:
        raise NetxRuleError(f"{where}: an input layer of {n} neurons needs a {n}x{n} identity synapse, over the "
                            f"read limit")
    if len(shape) == 3:
        w = np.zeros((shape[0], shape[0], 1, 1), np.int16)
        w[np.arange(shape[0]), np.arange(shape[0])] = 1
        regs = _neuron(g, where, n, shape, bias)
        return IntLayer(name=f"netx{i}_input", kind="conv", weight_mant=w, weight_exp=0, weight_bits=8,
                        in_shape=shape, out_shape=shape, **regs)
    regs = _neuron(g, where, n, None, bias)
    return IntLayer(name=f"netx{i}_input", kind="dense", weight_mant=np.eye(n, dtype=np.int16), weight_exp=0,
                    weight_bits=8, in_shape=(n,), out_shape=(n,), **regs)


def _dense_delays(d: np.ndarray, w_shape: tuple[int, int], where: str) -> np.ndarray:
    """netx's delay broadcast: a scalar, one per output neuron (repeated over inputs), one per input, or full."""
    if d.size == 1:
        return np.full(w_shape, int(d.reshape(-1)[0]), np.int16)
    if d.ndim == 1 and d.size == w_shape[0]:
        return np.repeat(d.reshape(-1, 1), w_shape[1], axis=1).astype(np.int16)
    if d.ndim == 1 and d.size == w_shape[1]:
        return np.repeat(d.reshape(1, -1), w_shape[0], axis=0).astype(np.int16)
    if d.shape == tuple(w_shape):
        return d.astype(np.int16)
    raise NetxRuleError(f"{where}/delay: shape {d.shape} does not fit weights {w_shape}")


def _loaded_weights(layer: IntLayer) -> Optional[np.ndarray]:
    """Integer weight per synapse that lava-dl's synapse applies (``mant >> k`` when exact), or None."""
    m, k = layer.weight_mant.astype(np.int64), -int(layer.weight_exp)
    if k < 0:
        return m << -k
    if k and np.any(m % (1 << k)):
        return None  # the shift would floor sums, not single weights
    return m >> k


def _planned_weights(layer: IntLayer) -> Optional[np.ndarray]:
    """``mant << exp`` as int64 for ``exp >= 0`` (the integers a netx file must hold), else None."""
    if layer.weight_exp < 0:
        return None
    return layer.weight_mant.astype(np.int64) << int(layer.weight_exp)


def netx_differences(view: IntegerNetwork, net: IntegerNetwork) -> list[str]:
    """Every register in which ``view`` (what lava-dl loads) differs from ``net`` (what we meant)."""
    out: list[str] = []
    if len(view.layers) != len(net.layers):
        return [f"{len(view.layers)} layers in the file, {len(net.layers)} in the network"]
    for a, b in zip(view.layers, net.layers):
        name = b.name
        if a.kind != b.kind or tuple(a.out_shape) != tuple(b.out_shape):
            out.append(f"layer {name!r}: {a.kind} {a.out_shape} loaded, {b.kind} {b.out_shape} meant")
            continue
        wa, wb = _loaded_weights(a), _planned_weights(b)
        if wb is None:
            out.append(f"layer {name!r}: weight_exp {b.weight_exp} < 0 cannot be expressed (netx weights are "
                       f"integers, scaled only by lava-dl's own fit)")
        elif wa is None or wa.shape != wb.shape or not np.array_equal(wa, wb):
            n = wb.size if wa is None or wa.shape != wb.shape else int(np.sum(wa != wb))
            out.append(f"layer {name!r}: {n} of {wb.size} weights change when lava-dl fits them to its 8-bit "
                       f"synapse (optimize_weight_bits; effective range {int(wb.min())}..{int(wb.max())})")
        for reg in ("vth", "bias"):
            va, vb = np.asarray(getattr(a, reg)), np.asarray(getattr(b, reg))
            if not np.array_equal(va, vb):
                out.append(f"layer {name!r}: {reg} differs in {int(np.sum(va != vb))} neurons")
        for reg in ("du", "dv"):
            if int(getattr(a, reg)) != int(getattr(b, reg)):
                out.append(f"layer {name!r}: {reg} {getattr(a, reg)} loaded, {getattr(b, reg)} meant")
        da, db = getattr(a, "delay", None), getattr(b, "delay", None)
        if (da is None) != (db is None) or (da is not None and not np.array_equal(da, db)):
            out.append(f"layer {name!r}: delays differ")
    return out
