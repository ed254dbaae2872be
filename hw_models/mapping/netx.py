"""Export/import an ``IntegerNetwork`` in lava-dl's *netx* HDF5 format, exactly as lava-dl reads it.

Why: netx HDF5 is how Intel's tools (lava-dl SLAYER export, ``lava.lib.dl.netx``) hand trained
networks to Lava. lava-dl does not install here (Python < 3.11), so ``export_netx`` re-reads what it
wrote with lava-dl's own rules (``hw_models.mapping.netx_rules.lava_dl_view``) and refuses — with
``NetxRuleError`` naming the layer and the rule, and no file left behind — unless lava-dl would load
exactly the network given. ``hw_models.mapping.netx_quantizer.quantize_for_netx`` makes networks that
pass (one threshold per layer, weights within lava-dl's 8-bit fit, biases in units of 64).

Schema (datasets inside groups; ``type`` strings stored as bytes, shape (1,), ``S10``)::

    /                          attrs: input_shape, input_max, input_message_bits (load with
                               Network(path, input_message_bits=...) when the input is graded)
    /layer/<i>/type            b"input" | b"dense" | b"conv" | b"flatten"
              /shape           (n,) dense; (C, H, W) conv and input (netx reverses it to WHC)
              /weight          integer weights per synapse (``mant << weight_exp``, ``weight_exp >= 0``):
                               (n_out, n_in) dense; (C_out, C_in, kH, kW) conv
              /bias            bias mantissa (netx: ``bias_exp = 6``); per neuron (dense), per channel (conv)
              /delay           dense only, per synapse (n_out, n_in), when the layer has delays
              /stride, /padding, /dilation (H, W), /groups      conv only
              /neuron/type     b"CUBA"
              /neuron/iDecay   du + 1   (netx: ``du = iDecay - 1``)
              /neuron/vDecay   dv
              /neuron/vThMant  vth (one per layer)
              /neuron/refDelay 1
              /neuron/gradedSpike False

An ``input`` layer (shape only) is written first when the network starts with a conv layer, since
lava-dl cannot infer a first conv layer's input shape otherwise; a ``flatten`` layer before a dense
layer that follows a conv layer.

``import_netx`` reads files as lava-dl writes them: ``input`` layers (shape-only, or with neurons:
an identity synapse and a LIF population), shapes inferred from the previous layer, conv biases per
channel, ``flatten``, per-synapse or per-neuron ``delay`` (clipped to [0, 62] as netx does), and
refuses by name what it cannot run (pooling, which netx itself does not implement, SDNN and RF
neurons, dilation, groups).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.mapping.netx_rules import (NETX_BIAS_EXP, NetxRuleError, lava_dl_view, netx_differences,
                                        residual_refusal)
from neuro_agmm.artifact import atomic_write

__all__ = ["NetxExport", "NetxRuleError", "export_netx", "import_netx", "input_message_bits"]


@dataclass
class NetxExport:
    """What ``export_netx`` wrote (verified against lava-dl's reading rules)."""

    path: Path
    n_layers: int
    input_message_bits: int  # what to pass to lava-dl's Network(...) for this file (0: binary input)


def input_message_bits(net: IntegerNetwork) -> int:
    """Bits lava-dl needs for the first layer's input (0 for spikes)."""
    return int(net.input_max).bit_length() if net.input_max > 1 else 0


def _bytes(g: h5py.Group, key: str, value: str) -> None:
    g.create_dataset(key, (1,), "S10", [value.encode("ascii")])


def _file_bias(layer: IntLayer) -> np.ndarray:
    """The bias dataset: mantissas in units of 64, per channel for conv layers (netx broadcasts them)."""
    eff = layer.bias.astype(np.int64)
    if np.any(eff % (1 << NETX_BIAS_EXP)):
        i = int(np.argmax(eff % (1 << NETX_BIAS_EXP) != 0))
        raise NetxRuleError(f"layer {layer.name!r}: bias {int(eff[i])} (neuron {i}) is not a multiple of 64; "
                            f"lava-dl fixes bias_exp = 6")
    mant = eff >> NETX_BIAS_EXP
    if layer.kind == "conv":
        per_ch = mant.reshape(layer.out_shape[0], -1)
        if np.any(per_ch != per_ch[:, :1]):
            return mant.reshape(layer.out_shape).transpose(2, 1, 0)  # per neuron, in lava-dl's W, H, C order
        return per_ch[:, 0]
    return mant


def export_netx(net: IntegerNetwork, path: str | os.PathLike) -> NetxExport:
    """Write ``net`` to ``path`` in netx HDF5 (atomically), verified: lava-dl loads exactly ``net``."""
    for layer in net.layers:
        if layer.shortcuts:
            raise NetxRuleError(residual_refusal(layer.name))
    net.validate()
    for l in net.layers:
        if l.weight_exp < 0:
            raise NetxRuleError(f"layer {l.name!r}: weight_exp={l.weight_exp} < 0 cannot be stored as integer "
                                f"netx weights (quantize with hw_models.mapping.netx_quantizer.quantize_for_netx)")
        if np.unique(l.vth).size > 1:
            raise NetxRuleError(f"layer {l.name!r}: {np.unique(l.vth).size} different thresholds; lava-dl's LIF "
                                f"takes one per layer (quantize with quantize_for_netx, which folds the "
                                f"per-neuron scale into the weights)")
    bits = input_message_bits(net)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["producer"] = "neuro_agmm hw_models.mapping.netx"
            f.attrs["input_shape"] = list(net.input_shape)
            f.attrs["input_max"] = int(net.input_max)
            f.attrs["input_message_bits"] = bits
            top = f.create_group("layer")
            i = 0

            def group(kind: str) -> h5py.Group:
                nonlocal i
                g = top.create_group(str(i))
                i += 1
                _bytes(g, "type", kind)
                return g

            if net.layers[0].kind == "conv":
                group("input").create_dataset("shape", data=np.array(net.layers[0].in_shape, np.int64))
            for k, l in enumerate(net.layers):
                if l.kind == "dense" and k > 0 and net.layers[k - 1].kind == "conv":
                    group("flatten").create_dataset("shape", data=np.array([l.n_in]))
                g = group(l.kind)
                g.create_dataset("shape", data=np.array(l.out_shape, np.int64))
                g.create_dataset("inShape", data=np.array(l.in_shape, np.int64))
                g.create_dataset("weight", data=l.weight_mant.astype(np.int64) << int(l.weight_exp))
                g.create_dataset("bias", data=_file_bias(l))
                if l.delay is not None:
                    g.create_dataset("delay", data=np.asarray(l.delay, np.int64))
                if l.kind == "conv":
                    g.create_dataset("stride", data=np.array(l.stride, np.int64))
                    g.create_dataset("padding", data=np.array(l.padding, np.int64))
                    g.create_dataset("dilation", data=np.array([1, 1], np.int64))
                    g.create_dataset("groups", data=1)
                n = g.create_group("neuron")
                _bytes(n, "type", "CUBA")
                n.create_dataset("iDecay", data=int(l.du) + 1)
                n.create_dataset("vDecay", data=int(l.dv))
                n.create_dataset("vThMant", data=int(l.vth[0]))
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)
        diffs = netx_differences(lava_dl_view(tmp, input_message_bits=bits, guard=False), net)
        if diffs:
            raise NetxRuleError("lava-dl would load a different network: " + "; ".join(diffs))

    atomic_write(path, write)
    return NetxExport(path=Path(path), n_layers=len(net.layers), input_message_bits=bits)


def _split_weights(w: np.ndarray) -> tuple[np.ndarray, int]:
    """Largest ``k`` with every weight divisible by ``2**k``, so that ``w = mant << k`` with small mantissas."""
    nz = np.abs(w[w != 0]).astype(np.int64)
    if nz.size == 0:
        return w.astype(np.int16), 0
    k = int(min(int((x & -x)).bit_length() - 1 for x in np.unique(nz)))
    return (w.astype(np.int64) >> k).astype(np.int16), k


def import_netx(path: str | os.PathLike, input_max: int | None = None) -> IntegerNetwork:
    """Read a netx HDF5 file (as lava-dl writes it, or as ``export_netx`` does) into an ``IntegerNetwork``.

    The network is what lava-dl's rules load (``netx_rules.lava_dl_view``), with each layer's
    weights written back as the smallest mantissas with a shared exponent (±1 layers become 1-bit
    again). ``input_max`` (default: the file's attribute, else 1) is the largest input value; a graded
    input is loaded as lava-dl does with ``input_message_bits > 0``. The last layer is the readout
    if its threshold is ``VTH_MAX``.
    """
    view = lava_dl_view(path, input_message_bits=None, input_max=input_max)  # graded input as it needs
    for layer in view.layers:
        w = layer.weight_mant.astype(np.int64)
        k = -int(layer.weight_exp)
        if k > 0 and not np.any(w % (1 << k)):
            w, k = w >> k, 0
        if k == 0:
            mant, e = _split_weights(w)
            layer.weight_mant, layer.weight_exp = mant, e
            if mant.size and np.all(np.abs(mant) == 1):
                layer.weight_mant, layer.weight_bits = mant.astype(np.int8), 1
    view.meta["reader"] = "hw_models.mapping.netx.import_netx (lava-dl 0.6.0 rules)"
    if view.layers and np.all(view.layers[-1].vth == core_spec.VTH_MAX):
        view.layers[-1].readout = True
    view.validate()
    return view
