"""Write and read the model artifact (HDF5); the layout is in ``neuro_agmm.artifact``'s docstring."""

from __future__ import annotations

import json
import time
import os
from pathlib import Path

import h5py
import numpy as np

from neuro_agmm.artifact.encoding import InputEncoding, encoding_for_v1
from neuro_agmm.artifact.files import atomic_write
from neuro_agmm.artifact.h5 import check_format, open_h5, require_attr, require_dataset
from neuro_agmm.artifact.schema import (FORMAT_NAME, FORMAT_VERSION, INPUT_NODE, READABLE_VERSIONS, ArtifactError,
                                        BatchNormSpec, LayerSpec, ModelArtifact, ShortcutSpec)


def write_artifact(art: ModelArtifact, path: str | os.PathLike, package_version: str = "0.1.0") -> Path:
    """Write ``art`` atomically to ``path`` (HDF5). Returns the path."""
    for layer in art.layers:
        if not np.all(np.isfinite(layer.scale)) or not np.all(np.isfinite(layer.bias)):
            raise ArtifactError(f"layer {layer.name!r}: non-finite scale or bias (NaN/inf); refusing to write")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            # the oldest version that holds the network: a chain stays readable by format-2 readers
            version = FORMAT_VERSION if any(l.shortcuts for l in art.layers) else 2
            f.attrs.update(format=FORMAT_NAME, format_version=version, package_version=package_version,
                           created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           input_shape=list(art.input_shape), input_scale=float(art.input_scale),
                           input_max=int(art.input_max), time_steps=int(art.time_steps), encoding=art.encoding)
            enc = art.input_encoding or encoding_for_v1(art.encoding, art.time_steps, tuple(art.input_shape),
                                                        art.input_max, str(art.provenance.get("dataset", "")))
            f.attrs["encoding_record"] = enc.to_json()
            prov = f.create_group("provenance")
            for k, v in art.provenance.items():
                prov.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v, sort_keys=True)
            layers = f.create_group("layers")
            for i, l in enumerate(art.layers):
                g = layers.create_group(str(i))
                g.attrs.update(name=l.name, kind=l.kind, precision=l.precision, in_shape=list(l.in_shape),
                               out_shape=list(l.out_shape), stride=list(l.stride), padding=list(l.padding),
                               weight_shape=list(l.weight.shape), leak=float(l.leak), threshold=float(l.threshold),
                               input_gain=float(l.input_gain), spiking=bool(l.spiking))
                _write_block_data(g, l)
                if l.shortcuts:
                    sg = g.create_group("shortcuts")
                    for j, sc in enumerate(l.shortcuts):
                        b = sg.create_group(str(j))
                        b.attrs.update(name=sc.name, source=sc.source, kind=sc.kind, precision=sc.precision,
                                       in_shape=list(sc.in_shape), stride=list(sc.stride), padding=list(sc.padding),
                                       weight_shape=list(np.shape(sc.weight)))
                        _write_block_data(b, sc, f"layer {l.name!r} shortcut {sc.name!r}")

    return atomic_write(path, write)


def _write_block_data(g: h5py.Group, blk, owner: str = "") -> None:
    """Weights (sign bits or int8 codes), scale, bias and batch norm of a layer or shortcut."""
    owner = owner or f"layer {blk.name!r}"
    w = np.asarray(blk.weight)
    if blk.precision == "binary":
        if not np.all(np.abs(w) == 1):
            raise ArtifactError(f"{owner}: binary weights must be ±1")
        g.create_dataset("sign_bits", data=np.packbits((w > 0).reshape(-1)))
    else:
        if np.any(np.abs(w) > 127) or np.any(w != np.round(w)):
            raise ArtifactError(f"{owner}: int8 weights must be integers in [-127, 127]")
        g.create_dataset("weight", data=w.astype(np.int8))
    g.create_dataset("scale", data=np.asarray(blk.scale, np.float32))
    g.create_dataset("bias", data=np.asarray(blk.bias, np.float32))
    if blk.bn is not None:
        bn = g.create_group("bn")
        bn.attrs["eps"] = float(blk.bn.eps)
        for k in ("gamma", "beta", "mean", "var"):
            bn.create_dataset(k, data=np.asarray(getattr(blk.bn, k), np.float32))


def read_artifact(path: str | os.PathLike) -> ModelArtifact:
    """Read and validate an artifact; raise ``ArtifactError`` naming the file and the bad field."""
    from neuro_agmm.artifact.guard import read_guarded

    return read_guarded(path, _read_artifact, ArtifactError)


def _ints(value, where: str, key: str, n: int | None = None, lo: int = 0, hi: int = 1 << 31) -> tuple[int, ...]:
    """An attribute as a tuple of whole numbers in ``[lo, hi]`` (``n`` of them if given), else ``ArtifactError``."""
    arr = np.asarray(value).reshape(-1)
    if arr.dtype.kind not in "iu" or (n is not None and arr.size != n) or arr.size == 0 \
            or np.any(arr < lo) or np.any(arr > hi):
        raise ArtifactError(f"{where}: attribute {key!r} = {arr.tolist()[:8]} must be "
                            f"{n if n is not None else 'one or more'} whole number(s) in [{lo}, {hi}]")
    return tuple(int(x) for x in arr)


def _number(value, where: str, key: str, lo: float, hi: float, lo_open: bool = False) -> float:
    """A finite scalar attribute in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), else ``ArtifactError``."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf" or not np.isfinite(float(arr.reshape(-1)[0])):
        raise ArtifactError(f"{where}: attribute {key!r} = {value!r} must be a finite number")
    x = float(arr.reshape(-1)[0])
    if x < lo or x > hi or (lo_open and x == lo):
        raise ArtifactError(f"{where}: attribute {key!r} = {x} outside {'(' if lo_open else '['}{lo}, {hi}]")
    return x


MAX_DIM = 1 << 24  # no shape axis of a model we read is larger


def _read_block_data(g: h5py.Group, lw: str, precision: str, wshape: tuple[int, ...]):
    """``(weight, scale, bias, bn)`` of a layer or shortcut group, each checked against ``wshape``."""
    n_w = int(np.prod(wshape))
    if precision == "binary":
        bits = require_dataset(g, "sign_bits", lw)
        if bits.dtype != np.uint8 or bits.size != (n_w + 7) // 8:
            raise ArtifactError(f"{lw}/sign_bits: expected {(n_w + 7) // 8} uint8 bytes for weight shape "
                                f"{wshape}, found {bits.size} {bits.dtype}")
        weight = np.where(np.unpackbits(bits, count=n_w) > 0, 1, -1).astype(np.float32).reshape(wshape)
    elif precision == "int8":
        weight = require_dataset(g, "weight", lw)
        if weight.shape != wshape:
            raise ArtifactError(f"{lw}/weight: shape {weight.shape} != weight_shape {wshape}")
        if weight.dtype.kind not in "iu" or (weight.size and (weight.min() < -127 or weight.max() > 127)):
            raise ArtifactError(f"{lw}/weight: int8 codes must be integers in [-127, 127] "
                                f"(found {weight.dtype}, {weight.min() if weight.size else 0}.."
                                f"{weight.max() if weight.size else 0})")
        weight = weight.astype(np.float32)
    else:
        raise ArtifactError(f"{lw}: unknown precision {precision!r}")
    bn = None
    if "bn" in g:
        stats = {k: require_dataset(g["bn"], k, lw + "/bn").astype(np.float64)
                 for k in ("gamma", "beta", "mean", "var")}
        for k, arr in stats.items():
            if arr.shape != (wshape[0],):
                raise ArtifactError(f"{lw}/bn/{k}: shape {arr.shape}, expected ({wshape[0]},)")
            if not np.all(np.isfinite(arr)):
                raise ArtifactError(f"{lw}/bn/{k}: contains NaN or inf")
        if np.any(stats["var"] < 0):
            raise ArtifactError(f"{lw}/bn/var: negative variance")
        eps = _number(require_attr(g["bn"], "eps", lw + "/bn"), lw + "/bn", "eps", 0.0, 1.0, lo_open=True)
        bn = BatchNormSpec(**stats, eps=eps)
    scale = require_dataset(g, "scale", lw).astype(np.float64)
    bias = require_dataset(g, "bias", lw).astype(np.float64)
    for name, arr in (("scale", scale), ("bias", bias)):
        if arr.shape != (wshape[0],):
            raise ArtifactError(f"{lw}/{name}: shape {arr.shape}, expected ({wshape[0]},)")
        if not np.all(np.isfinite(arr)):
            raise ArtifactError(f"{lw}/{name}: contains NaN or inf")
    return weight, scale, bias, bn


def _read_shortcuts(g: h5py.Group, lw: str, version: int, earlier: list[LayerSpec], input_shape: tuple[int, ...],
                    out_shape: tuple[int, ...]) -> list[ShortcutSpec]:
    """The ``shortcuts`` of one layer group (format 3): each source must be the input or an earlier layer, and
    its geometry must carry the source's output onto this layer's ``out_shape``."""
    if version < 3:
        raise ArtifactError(f"{lw}/shortcuts: residual shortcuts need format_version 3, the file says {version}")
    out = []
    sg = g["shortcuts"]
    names = {l.name: l for l in earlier}
    for j in range(len(sg)):
        if str(j) not in sg:
            raise ArtifactError(f"{lw}/shortcuts: not numbered 0..{len(sg) - 1} (missing {j})")
        b = sg[str(j)]
        bw = f"{lw}/shortcuts/{j}"
        kind = str(require_attr(b, "kind", bw))
        if kind not in ("dense", "conv"):
            raise ArtifactError(f"{bw}: unknown kind {kind!r}")
        source = str(require_attr(b, "source", bw))
        if source != INPUT_NODE and source not in names:
            raise ArtifactError(f"{bw}: source {source!r} is neither {INPUT_NODE!r} nor an earlier layer "
                                f"({', '.join(names) or 'none'})")
        src_shape = tuple(input_shape) if source == INPUT_NODE else tuple(names[source].out_shape)
        wshape = _ints(require_attr(b, "weight_shape", bw), bw, "weight_shape", 2 if kind == "dense" else 4, 1, MAX_DIM)
        in_shape = _ints(require_attr(b, "in_shape", bw), bw, "in_shape", None, 1, MAX_DIM)
        stride = _ints(require_attr(b, "stride", bw), bw, "stride", 2, 1, 1 << 10)
        padding = _ints(require_attr(b, "padding", bw), bw, "padding", 2, 0, 1 << 10)
        if int(np.prod(in_shape)) != int(np.prod(src_shape)):
            raise ArtifactError(f"{bw}: in_shape {in_shape} does not match its source {source!r}'s output {src_shape}")
        if kind == "dense":
            fits = wshape == (int(np.prod(out_shape)), int(np.prod(in_shape)))
        else:
            fits = (len(in_shape) == 3 and len(out_shape) == 3 and wshape[0] == out_shape[0] and
                    wshape[1] == in_shape[0] and tuple(out_shape[1:]) == tuple(
                        (in_shape[1 + a] + 2 * padding[a] - wshape[2 + a]) // stride[a] + 1 for a in (0, 1)))
        if not fits:
            raise ArtifactError(f"{bw}: weight_shape {wshape} with stride {stride}, padding {padding} does not carry "
                                f"in_shape {in_shape} onto the layer's out_shape {out_shape} ({kind})")
        precision = str(require_attr(b, "precision", bw))
        weight, scale, bias, bn = _read_block_data(b, bw, precision, wshape)
        out.append(ShortcutSpec(name=str(require_attr(b, "name", bw)), source=source, kind=kind, precision=precision,
                                weight=weight, scale=scale, bias=bias, in_shape=in_shape, stride=stride,
                                padding=padding, bn=bn))
    return out


def _read_artifact(path: str | os.PathLike) -> ModelArtifact:
    """The reader proper (see the public wrapper)."""
    path = Path(path)
    with open_h5(path) as f:
        where = str(path)
        version = check_format(f, FORMAT_NAME, READABLE_VERSIONS, where)
        input_shape = _ints(require_attr(f, "input_shape", where), where, "input_shape", None, 1, MAX_DIM)
        input_max = _ints(require_attr(f, "input_max", where), where, "input_max", 1, 1, 1 << 30)[0]
        time_steps = _ints(require_attr(f, "time_steps", where), where, "time_steps", 1, 1, 1 << 30)[0]
        input_scale = _number(require_attr(f, "input_scale", where), where, "input_scale", 0.0, 1e30, lo_open=True)
        if "layers" not in f:
            raise ArtifactError(f"{where}: missing group 'layers'")
        layers = []
        for i in range(len(f["layers"])):
            key = str(i)
            if key not in f["layers"]:
                raise ArtifactError(f"{where}: layers are not numbered 0..{len(f['layers']) - 1} (missing {key})")
            g = f["layers"][key]
            lw = f"{where}:/layers/{key}"
            precision = str(require_attr(g, "precision", lw))
            kind = str(require_attr(g, "kind", lw))
            if kind not in ("dense", "conv"):
                raise ArtifactError(f"{lw}: unknown kind {kind!r}")
            wshape = _ints(require_attr(g, "weight_shape", lw), lw, "weight_shape", 2 if kind == "dense" else 4,
                           1, MAX_DIM)
            in_shape = _ints(require_attr(g, "in_shape", lw), lw, "in_shape", None, 1, MAX_DIM)
            out_shape = _ints(require_attr(g, "out_shape", lw), lw, "out_shape", None, 1, MAX_DIM)
            stride = _ints(require_attr(g, "stride", lw), lw, "stride", 2, 1, 1 << 10)
            padding = _ints(require_attr(g, "padding", lw), lw, "padding", 2, 0, 1 << 10)
            leak = _number(require_attr(g, "leak", lw), lw, "leak", 0.0, 1.0)
            threshold = _number(require_attr(g, "threshold", lw), lw, "threshold", -1e30, 1e30)
            input_gain = _number(require_attr(g, "input_gain", lw), lw, "input_gain", -1e30, 1e30)
            if wshape[0] != out_shape[0] or (kind == "dense" and wshape[1] != int(np.prod(in_shape))) \
                    or (kind == "conv" and (len(in_shape) != 3 or len(out_shape) != 3 or wshape[1] != in_shape[0])):
                raise ArtifactError(f"{lw}: weight_shape {wshape} does not fit in_shape {in_shape} -> "
                                    f"out_shape {out_shape} ({kind})")
            if layers and int(np.prod(in_shape)) != int(np.prod(layers[-1].out_shape)):
                raise ArtifactError(f"{lw}: in_shape {in_shape} does not match the previous layer's output "
                                    f"{layers[-1].out_shape}")
            weight, scale, bias, bn = _read_block_data(g, lw, precision, wshape)
            shortcuts = _read_shortcuts(g, lw, version, layers, input_shape, out_shape) if "shortcuts" in g else []
            layers.append(LayerSpec(
                name=str(require_attr(g, "name", lw)), kind=kind, precision=precision,
                weight=weight, scale=scale, bias=bias, in_shape=in_shape, out_shape=out_shape,
                leak=leak, threshold=threshold, input_gain=input_gain, spiking=bool(require_attr(g, "spiking", lw)),
                stride=stride, padding=padding, bn=bn, shortcuts=shortcuts))
        prov = {}
        if "provenance" in f:
            for k, v in f["provenance"].attrs.items():
                prov[k] = v.item() if hasattr(v, "item") else v
        if layers and int(np.prod(layers[0].in_shape)) != int(np.prod(input_shape)):
            raise ArtifactError(f"{where}: input_shape {input_shape} does not match layer 0's in_shape "
                                f"{layers[0].in_shape}")
        kind = str(require_attr(f, "encoding", where))
        if "encoding_record" in f.attrs:
            try:
                enc = InputEncoding.from_json(str(f.attrs["encoding_record"]))
            except (ValueError, TypeError) as e:
                raise ArtifactError(f"{where}: attribute 'encoding_record' is malformed ({e})") from e
        elif version == 1:
            enc = encoding_for_v1(kind, time_steps, input_shape, input_max, str(prov.get("dataset", "")))
        else:
            raise ArtifactError(f"{where}: missing attribute 'encoding_record' (required from format_version 2)")
        return ModelArtifact(
            layers=layers, input_shape=input_shape, input_scale=input_scale,
            input_max=input_max, time_steps=time_steps, encoding=kind,
            provenance=prov, hardware={"present": True} if "hardware" in f else None, input_encoding=enc)
