"""Export/import an ``IntegerNetwork`` in lava-dl's *netx* HDF5 format.

Why: netx HDF5 is how Intel's tools (lava-dl SLAYER export, ``lava.lib.dl.netx``) hand
trained networks to Lava; writing it lets a user with lava-dl load our network there.
lava-dl itself does not install here (it needs Python < 3.11), so this module follows
the schema as lava-dl's loader reads it (``lava/lib/dl/netx/hdf5.py``, ``Network``), and
the tests check that schema and our own round trip — not lava-dl's loader.

Schema (datasets inside groups; ``type`` strings stored as bytes, shape (1,), ``S10``)::

    /layer/<i>/type            b"dense" | b"conv" | b"flatten"
              /shape           output shape: (n,) dense; (C, H, W) conv (netx reverses it to WHC)
              /inShape         input shape (informative)
              /weight          EFFECTIVE integer weights (our mantissa << weight_exp):
                               (n_out, n_in) dense; (C_out, C_in, kH, kW) conv (torch layout,
                               cross-correlation; netx flips/transposes for Lava's Conv)
              /bias            per neuron; netx uses it as bias_mant with bias_exp = 6
              /stride, /padding, /dilation (H, W), /groups      conv only
              /neuron/type     b"CUBA"
              /neuron/iDecay   du + 1   (netx: ``du = iDecay - 1``)
              /neuron/vDecay   dv
              /neuron/vThMant  vth (scalar in netx; we store per-neuron arrays when they differ,
                               which lava-dl's scalar-vth LIF cannot load — see ``NetxExport.scalar_vth``)
              /neuron/refDelay 1
              /neuron/gradedSpike False

A ``flatten`` layer is written between a conv and a following dense layer (netx
transposes Lava's WHC order back to C-order there).

Exactness: netx stores effective integer weights and a bias in units of 64, so an
export is exact only for ``weight_exp >= 0`` and effective biases divisible by 64; other
networks raise ``ValueError`` unless ``allow_rounding=True`` (then the bias is rounded to
the nearest multiple of 64 and the worst rounding is reported). What it leaves out:
netx ``input`` layers (affine input transform), delays, pooling and SDNN neurons.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer
from neuro_agmm.artifact import atomic_write

NETX_BIAS_EXP = 6  # lava-dl netx: bias_exp = 6 for CUBA neurons


@dataclass
class NetxExport:
    """What ``export_netx`` wrote."""

    path: Path
    n_layers: int
    scalar_vth: bool  # True if every layer has one threshold (loadable by lava-dl's LIF)
    max_bias_rounding: int  # worst |bias change| in effective units (0 = exact)


def _bytes(g: h5py.Group, key: str, value: str) -> None:
    g.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def export_netx(net: IntegerNetwork, path: str | os.PathLike, *, allow_rounding: bool = False) -> NetxExport:
    """Write ``net`` to ``path`` in netx HDF5 (atomically)."""
    net.validate()
    worst = 0
    for l in net.layers:
        if l.weight_exp < 0:
            raise ValueError(f"layer {l.name!r}: weight_exp={l.weight_exp} < 0 cannot be stored as integer netx "
                             f"weights")
        rem = np.abs(l.bias - np.round(l.bias / 64.0).astype(np.int64) * 64)
        if rem.size and rem.max() > 0:
            if not allow_rounding:
                raise ValueError(f"layer {l.name!r}: effective bias {int(l.bias[np.argmax(rem)])} is not a multiple "
                                 f"of 64 (netx fixes bias_exp = 6); pass allow_rounding=True to round")
            worst = max(worst, int(rem.max()))
    scalar = all(np.unique(l.vth).size <= 1 for l in net.layers)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["producer"] = "neuro_agmm hw_models.netx"
            f.attrs["input_shape"] = list(net.input_shape)
            f.attrs["input_max"] = int(net.input_max)
            top = f.create_group("layer")
            i = 0
            for k, l in enumerate(net.layers):
                if l.kind == "dense" and k > 0 and net.layers[k - 1].kind == "conv":
                    g = top.create_group(str(i))
                    _bytes(g, "type", "flatten")
                    g.create_dataset("shape", data=np.array([l.n_in]))
                    i += 1
                g = top.create_group(str(i))
                i += 1
                _bytes(g, "type", l.kind)
                g.create_dataset("shape", data=np.array(l.out_shape, np.int64))
                g.create_dataset("inShape", data=np.array(l.in_shape, np.int64))
                g.create_dataset("weight", data=l.weight_mant.astype(np.int64) << int(l.weight_exp))
                g.create_dataset("bias", data=np.round(l.bias / 64.0).astype(np.int64))
                if l.kind == "conv":
                    g.create_dataset("stride", data=np.array(l.stride, np.int64))
                    g.create_dataset("padding", data=np.array(l.padding, np.int64))
                    g.create_dataset("dilation", data=np.array([1, 1], np.int64))
                    g.create_dataset("groups", data=1)
                n = g.create_group("neuron")
                _bytes(n, "type", "CUBA")
                n.create_dataset("iDecay", data=int(l.du) + 1)
                n.create_dataset("vDecay", data=int(l.dv))
                vth = np.asarray(l.vth, np.int64)
                n.create_dataset("vThMant", data=int(vth[0]) if np.unique(vth).size == 1 else vth)
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)

    atomic_write(path, write)
    return NetxExport(path=Path(path), n_layers=len(net.layers), scalar_vth=scalar, max_bias_rounding=worst)


def _str(ds) -> str:
    v = ds[()]
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _split_weights(w: np.ndarray) -> tuple[np.ndarray, int]:
    """Largest ``k`` with every weight divisible by ``2**k``, so that ``w = mant << k`` with small mantissas."""
    nz = np.abs(w[w != 0]).astype(np.int64)
    if nz.size == 0:
        return w.astype(np.int16), 0
    k = int(min(int((x & -x)).bit_length() - 1 for x in np.unique(nz)))
    mant = w.astype(np.int64) >> k
    if mant.size and (mant.max() > core_spec.WEIGHT_MANT_MAX or mant.min() < core_spec.WEIGHT_MANT_MIN):
        raise ValueError(f"weights {int(w.min())}..{int(w.max())} do not fit an 8-bit mantissa with a shared exponent")
    return mant.astype(np.int16), k


def import_netx(path: str | os.PathLike, input_max: int | None = None) -> IntegerNetwork:
    """Read a netx HDF5 file (dense, conv and flatten layers of CUBA neurons) into an ``IntegerNetwork``.

    The last layer is marked ``readout`` if its threshold is ``VTH_MAX`` (what our export writes).
    """
    from hw_models.mapping.quantizer import _split_bias

    path = Path(path)
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            raise ValueError(f"{path}: not a netx file (missing group 'layer')")
        layers: list[IntLayer] = []
        in_shape = tuple(int(x) for x in f.attrs["input_shape"]) if "input_shape" in f.attrs else None
        for i in range(len(f["layer"])):
            g = f["layer"][str(i)]
            where = f"{path}:/layer/{i}"
            kind = _str(g["type"])
            if kind == "flatten":
                continue
            if kind not in ("dense", "conv"):
                raise ValueError(f"{where}: layer type {kind!r} is not supported (dense, conv, flatten)")
            for key in ("shape", "weight", "neuron"):
                if key not in g:
                    raise ValueError(f"{where}: missing {key!r}")
            n = g["neuron"]
            if _str(n["type"]) not in ("CUBA", "LOIHI"):
                raise ValueError(f"{where}: neuron type {_str(n['type'])!r} is not supported (CUBA)")
            w = np.asarray(g["weight"][()])
            out_shape = tuple(int(x) for x in np.asarray(g["shape"][()]).reshape(-1))
            if kind == "dense":
                w = w.reshape(int(np.prod(out_shape)), -1)
                out_shape = (int(np.prod(out_shape)),)
                lin = (w.shape[1],)
                stride, padding = (1, 1), (0, 0)
            else:
                w = w.reshape(w.shape[:4])
                lin = tuple(int(x) for x in g["inShape"][()]) if "inShape" in g else None
                if lin is None:
                    raise ValueError(f"{where}: conv layer without 'inShape'")
                stride = tuple(int(x) for x in np.broadcast_to(g["stride"][()], (2,)))
                padding = tuple(int(x) for x in np.broadcast_to(g["padding"][()], (2,)))
                dil = np.broadcast_to(g["dilation"][()], (2,)) if "dilation" in g else np.ones(2)
                if np.any(dil != 1) or ("groups" in g and int(np.asarray(g["groups"][()]).reshape(-1)[0]) != 1):
                    raise ValueError(f"{where}: dilation/groups other than 1 are not supported")
            mant, k = _split_weights(w)
            n_out = int(np.prod(out_shape))
            bias = np.asarray(g["bias"][()], np.int64).reshape(-1) * (1 << NETX_BIAS_EXP) if "bias" in g \
                else np.zeros(n_out, np.int64)
            bias = np.broadcast_to(bias, (n_out,))
            bias_mant, bias_exp = _split_bias(bias.astype(np.float64))
            vth = np.broadcast_to(np.asarray(n["vThMant"][()], np.int64), (n_out,)).astype(np.int32)
            binary = bool(mant.size) and bool(np.all(np.abs(mant) == 1))
            layers.append(IntLayer(
                name=f"l{len(layers)}", kind=kind, weight_mant=mant.astype(np.int8 if binary else np.int16),
                weight_exp=k, weight_bits=1 if binary else 8, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                du=int(np.asarray(n["iDecay"][()]).reshape(-1)[0]) - 1,
                dv=int(np.asarray(n["vDecay"][()]).reshape(-1)[0]),
                in_shape=lin, out_shape=out_shape, stride=stride, padding=padding))
        if not layers:
            raise ValueError(f"{path}: no dense/conv layers")
        if np.all(layers[-1].vth == core_spec.VTH_MAX):
            layers[-1].readout = True
        shape = in_shape or layers[0].in_shape
        net = IntegerNetwork(layers=layers, input_shape=tuple(shape),
                             input_max=int(input_max if input_max is not None else f.attrs.get("input_max", 1)),
                             meta={"source": str(path), "format": "netx"})
    net.validate()
    return net
