"""Save/load the mapped hardware network (IntegerNetwork + Placement + QuantReport) in HDF5.

Why: mapping is a step of its own (``neuro_agmm.map``); its result is stored beside the
trained model so a deployment tool can run the exact integer network without re-doing
quantisation. It goes into the artifact's ``/hardware`` group (or any HDF5 file),
written atomically: the artifact is copied to a temporary file, the group is (re)written
there, and the copy is renamed over the original — a reader never sees half a group.

Layout of ``/hardware``::

    attrs: format ("neuro_agmm.hardware"), format_version, input_shape, input_max,
           meta (JSON), placement (JSON, optional), quant_report (JSON, optional)
    /layers/<i>  attrs: name, kind, weight_exp, weight_bits, du, dv, in_shape, out_shape,
                        stride, padding, readout
                 datasets: weight_mant (int8; binary layers stored as packbits of w > 0
                           in ``sign_bits`` with ``weight_shape``), vth, bias_mant, bias_exp
    /layers/<i>/shortcuts/<j>  (version 2, residual networks) attrs: name, source (node index,
                        -1 = input), kind, weight_exp, weight_bits, in_shape, out_shape, stride,
                        padding, weight_shape; weights as for a layer

Version 1 (chains only) is still read.

The loader validates the format/version and every field and names the one missing.
What it leaves out: Lava process graphs (rebuilt from the integer network on demand).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import h5py
import numpy as np

from hw_models.integer_network import IntegerNetwork, IntLayer, IntSynapse
from hw_models.mapping.placer import Placement
from hw_models.mapping.quantizer import QuantReport
from neuro_agmm.artifact import (ArtifactError, atomic_write, check_format, open_h5, require_attr,
                                 require_dataset)

HW_FORMAT = "neuro_agmm.hardware"
HW_FORMAT_VERSION = 2  # 2 adds shortcut blocks; 1 is still read
HW_READABLE_VERSIONS = (1, 2)
GROUP = "hardware"


@dataclass
class HardwareSection:
    """What ``load_hardware`` returns."""

    net: IntegerNetwork
    placement: Optional[Placement]
    report: Optional[QuantReport]


def _write_group(g: h5py.Group, net: IntegerNetwork, placement: Optional[Placement],
                 report: Optional[QuantReport]) -> None:
    version = HW_FORMAT_VERSION if net.residual else 1  # the oldest version that holds the network
    g.attrs.update(format=HW_FORMAT, format_version=version, input_shape=list(net.input_shape),
                   input_max=int(net.input_max), meta=json.dumps(net.meta, sort_keys=True, default=str))
    if placement is not None:
        g.attrs["placement"] = json.dumps(placement.to_dict())
    if report is not None:
        g.attrs["quant_report"] = json.dumps(report.to_dict())
    layers = g.create_group("layers")
    for i, l in enumerate(net.layers):
        lg = layers.create_group(str(i))
        _write_block(lg, l)
        lg.attrs.update(du=int(l.du), dv=int(l.dv), readout=bool(l.readout))
        if l.shortcuts:
            sg = lg.create_group("shortcuts")
            for j, sc in enumerate(l.shortcuts):
                bg = sg.create_group(str(j))
                _write_block(bg, sc)
                bg.attrs["source"] = int(sc.source)
        for k in ("vth", "bias_mant", "bias_exp"):
            lg.create_dataset(k, data=np.asarray(getattr(l, k), np.int32))
        if l.delay is not None:
            lg.create_dataset("delay", data=np.asarray(l.delay, np.int16))


def _write_block(g: h5py.Group, blk) -> None:
    """The synapse-block fields of a layer or shortcut: geometry attributes and the weights."""
    g.attrs.update(name=blk.name, kind=blk.kind, weight_exp=int(blk.weight_exp), weight_bits=int(blk.weight_bits),
                   in_shape=list(blk.in_shape), out_shape=list(blk.out_shape), stride=list(blk.stride),
                   padding=list(blk.padding), weight_shape=list(np.shape(blk.weight_mant)))
    w = np.asarray(blk.weight_mant)
    if blk.weight_bits == 1:
        g.create_dataset("sign_bits", data=np.packbits((w > 0).reshape(-1)))
    else:
        g.create_dataset("weight_mant", data=w.astype(np.int16))


def _read_block(g: h5py.Group, where: str) -> dict:
    """The fields ``_write_block`` wrote, checked: a dict of ``IntLayer``/``IntSynapse`` keyword arguments."""
    wshape = tuple(int(x) for x in require_attr(g, "weight_shape", where))
    bits = int(require_attr(g, "weight_bits", where))
    if bits == 1:
        packed = require_dataset(g, "sign_bits", where)
        n_w = int(np.prod(wshape))
        if packed.size != (n_w + 7) // 8:
            raise ArtifactError(f"{where}/sign_bits: {packed.size} bytes, expected {(n_w + 7) // 8}")
        w = np.where(np.unpackbits(packed, count=n_w) > 0, 1, -1).astype(np.int8).reshape(wshape)
    else:
        w = require_dataset(g, "weight_mant", where)
        if w.shape != wshape:
            raise ArtifactError(f"{where}/weight_mant: shape {w.shape} != weight_shape {wshape}")
        w = w.astype(np.int16)
    return dict(name=str(require_attr(g, "name", where)), kind=str(require_attr(g, "kind", where)), weight_mant=w,
                weight_exp=int(require_attr(g, "weight_exp", where)), weight_bits=bits,
                in_shape=tuple(int(x) for x in require_attr(g, "in_shape", where)),
                out_shape=tuple(int(x) for x in require_attr(g, "out_shape", where)),
                stride=tuple(int(x) for x in require_attr(g, "stride", where)),
                padding=tuple(int(x) for x in require_attr(g, "padding", where)))


def save_hardware(path: str | os.PathLike, net: IntegerNetwork, placement: Optional[Placement] = None,
                  report: Optional[QuantReport] = None) -> Path:
    """Write (or replace) the ``/hardware`` group of the HDF5 file ``path`` atomically.

    If ``path`` exists (e.g. the model artifact) it is copied first and everything else
    in it is kept; otherwise a new file holding only the group is created.
    """
    net.validate()
    path = Path(path)

    def write(tmp: Path) -> None:
        if path.exists():
            shutil.copyfile(path, tmp)
            mode = "a"
        else:
            mode = "w"
        with h5py.File(tmp, mode) as f:
            if GROUP in f:
                del f[GROUP]
            _write_group(f.create_group(GROUP), net, placement, report)

    return atomic_write(path, write)


def load_hardware(path: str | os.PathLike) -> HardwareSection:
    """Read and validate the ``/hardware`` group; raise ``ArtifactError`` naming what is missing or wrong."""
    from neuro_agmm.artifact.guard import read_guarded

    return read_guarded(path, _load_hardware, ArtifactError)


def _load_hardware(path: str | os.PathLike) -> HardwareSection:
    """The reader proper (see the public wrapper)."""
    path = Path(path)
    with open_h5(path, "file") as f:
        if GROUP not in f:
            raise ArtifactError(f"{path}: missing group '/{GROUP}' (map the artifact first: python -m neuro_agmm.map)")
        g = f[GROUP]
        where = f"{path}:/{GROUP}"
        version = check_format(g, HW_FORMAT, HW_READABLE_VERSIONS, where)
        if "layers" not in g:
            raise ArtifactError(f"{where}: missing group 'layers'")
        layers = []
        for i in range(len(g["layers"])):
            if str(i) not in g["layers"]:
                raise ArtifactError(f"{where}/layers: missing layer {i}")
            lg = g["layers"][str(i)]
            lw = f"{where}/layers/{i}"
            shortcuts = []
            if "shortcuts" in lg:
                if version < 2:
                    raise ArtifactError(f"{lw}/shortcuts: shortcut blocks need format_version 2, the file says "
                                        f"{version}")
                for j in range(len(lg["shortcuts"])):
                    if str(j) not in lg["shortcuts"]:
                        raise ArtifactError(f"{lw}/shortcuts: missing block {j}")
                    bw = f"{lw}/shortcuts/{j}"
                    bg = lg["shortcuts"][str(j)]
                    shortcuts.append(IntSynapse(source=int(require_attr(bg, "source", bw)), **_read_block(bg, bw)))
            layers.append(IntLayer(
                **_read_block(lg, lw),
                vth=require_dataset(lg, "vth", lw).astype(np.int32),
                bias_mant=require_dataset(lg, "bias_mant", lw).astype(np.int32),
                bias_exp=require_dataset(lg, "bias_exp", lw).astype(np.int32), du=int(require_attr(lg, "du", lw)),
                dv=int(require_attr(lg, "dv", lw)), readout=bool(require_attr(lg, "readout", lw)),
                delay=lg["delay"][()].astype(np.int16) if "delay" in lg else None, shortcuts=shortcuts))
        net = IntegerNetwork(layers=layers, input_shape=tuple(int(x) for x in require_attr(g, "input_shape", where)),
                             input_max=int(require_attr(g, "input_max", where)),
                             meta=json.loads(str(require_attr(g, "meta", where))))
        try:
            net.validate()
        except ValueError as e:
            raise ArtifactError(f"{where}: {e}") from e
        placement = Placement.from_dict(json.loads(str(g.attrs["placement"]))) if "placement" in g.attrs else None
        report = QuantReport.from_dict(json.loads(str(g.attrs["quant_report"]))) if "quant_report" in g.attrs else None
        return HardwareSection(net=net, placement=placement, report=report)
