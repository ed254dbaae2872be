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
from neuro_agmm.artifact.schema import (FORMAT_NAME, FORMAT_VERSION, READABLE_VERSIONS, ArtifactError, BatchNormSpec,
                                        LayerSpec, ModelArtifact)


def write_artifact(art: ModelArtifact, path: str | os.PathLike, package_version: str = "0.1.0") -> Path:
    """Write ``art`` atomically to ``path`` (HDF5). Returns the path."""
    for layer in art.layers:
        if not np.all(np.isfinite(layer.scale)) or not np.all(np.isfinite(layer.bias)):
            raise ArtifactError(f"layer {layer.name!r}: non-finite scale or bias (NaN/inf); refusing to write")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, package_version=package_version,
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
                w = np.asarray(l.weight)
                if l.precision == "binary":
                    if not np.all(np.abs(w) == 1):
                        raise ArtifactError(f"layer {l.name!r}: binary weights must be ±1")
                    g.create_dataset("sign_bits", data=np.packbits((w > 0).reshape(-1)))
                else:
                    if np.any(np.abs(w) > 127) or np.any(w != np.round(w)):
                        raise ArtifactError(f"layer {l.name!r}: int8 weights must be integers in [-127, 127]")
                    g.create_dataset("weight", data=w.astype(np.int8))
                g.create_dataset("scale", data=np.asarray(l.scale, np.float32))
                g.create_dataset("bias", data=np.asarray(l.bias, np.float32))
                if l.bn is not None:
                    bn = g.create_group("bn")
                    bn.attrs["eps"] = float(l.bn.eps)
                    for k in ("gamma", "beta", "mean", "var"):
                        bn.create_dataset(k, data=np.asarray(getattr(l.bn, k), np.float32))

    return atomic_write(path, write)


def read_artifact(path: str | os.PathLike) -> ModelArtifact:
    """Read and validate an artifact; raise ``ArtifactError`` naming the file and the bad field."""
    path = Path(path)
    with open_h5(path) as f:
        where = str(path)
        version = check_format(f, FORMAT_NAME, READABLE_VERSIONS, where)
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
            wshape = tuple(int(x) for x in require_attr(g, "weight_shape", lw))
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
                bn = BatchNormSpec(**stats, eps=float(require_attr(g["bn"], "eps", lw + "/bn")))
            scale = require_dataset(g, "scale", lw).astype(np.float64)
            bias = require_dataset(g, "bias", lw).astype(np.float64)
            for name, arr in (("scale", scale), ("bias", bias)):
                if arr.shape != (wshape[0],):
                    raise ArtifactError(f"{lw}/{name}: shape {arr.shape}, expected ({wshape[0]},)")
                if not np.all(np.isfinite(arr)):
                    raise ArtifactError(f"{lw}/{name}: contains NaN or inf")
            layers.append(LayerSpec(
                name=str(require_attr(g, "name", lw)), kind=str(require_attr(g, "kind", lw)), precision=precision,
                weight=weight, scale=scale, bias=bias,
                in_shape=tuple(int(x) for x in require_attr(g, "in_shape", lw)),
                out_shape=tuple(int(x) for x in require_attr(g, "out_shape", lw)),
                leak=float(require_attr(g, "leak", lw)), threshold=float(require_attr(g, "threshold", lw)),
                input_gain=float(require_attr(g, "input_gain", lw)), spiking=bool(require_attr(g, "spiking", lw)),
                stride=tuple(int(x) for x in require_attr(g, "stride", lw)),
                padding=tuple(int(x) for x in require_attr(g, "padding", lw)), bn=bn))
        prov = {}
        if "provenance" in f:
            for k, v in f["provenance"].attrs.items():
                prov[k] = v.item() if hasattr(v, "item") else v
        input_shape = tuple(int(x) for x in require_attr(f, "input_shape", where))
        input_max = int(require_attr(f, "input_max", where))
        time_steps = int(require_attr(f, "time_steps", where))
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
            layers=layers, input_shape=input_shape, input_scale=float(require_attr(f, "input_scale", where)),
            input_max=input_max, time_steps=time_steps, encoding=kind,
            provenance=prov, hardware={"present": True} if "hardware" in f else None, input_encoding=enc)
