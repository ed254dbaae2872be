"""The model artifact (HDF5): the one hand-off between training and hardware.

Needs NumPy and h5py only (no torch), so ``hw_models`` and deployment tools can read it.

Float semantics the artifact defines (the trained model and every reader agree on it):

* input: ``x = input_scale * x_int`` where ``x_int`` are non-negative integer graded
  spikes per time step (pixel levels, event counts, or 0/1 spikes);
* a layer: ``z = W x`` (dense or conv2d with stride/padding) where ``W`` is ±1 for
  ``precision="binary"`` and integer codes in [-127, 127] for ``precision="int8"``;
  ``I = scale[c] * z + bias[c]``; then, if batch norm is present,
  ``I = gamma[c] * (I - mean[c]) / sqrt(var[c] + eps) + beta[c]``;
* a spiking neuron: ``v[t] = leak * v[t-1] + input_gain * I[t]``; spike when
  ``v[t] > threshold``; a spike resets ``v`` to 0 (hard reset);
* the readout layer (``spiking=False``) integrates ``v[t] = leak * v[t-1] + input_gain * I[t]``
  without spiking; the prediction is ``argmax v[T-1]``.

Layout (format ``neuro_agmm.bsnn``, version ``FORMAT_VERSION``)::

    /                attrs: format, format_version, package_version, created,
                           input_shape, input_scale, input_max, time_steps, encoding
    /provenance      attrs: config (JSON), dataset, metrics (JSON), method, seed
    /layers/<i>      attrs: name, kind, precision, in_shape, out_shape, stride, padding,
                           weight_shape, leak, threshold, input_gain, spiking
                     datasets: sign_bits (uint8, packbits of W > 0) for binary,
                               weight (int8) for int8, scale, bias, [bn/gamma, beta, mean, var; attr eps]
    /hardware        (optional, written by ``neuro_agmm.map``): integer network, placement
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import h5py
import numpy as np

FORMAT_NAME = "neuro_agmm.bsnn"
FORMAT_VERSION = 1
Precision = Literal["binary", "int8"]


class ArtifactError(ValueError):
    """An artifact file is missing, corrupt, of another version, or breaks the schema."""


@dataclass
class BatchNormSpec:
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5


@dataclass
class LayerSpec:
    """One synapse block + neuron population in float form (see module docstring)."""

    name: str
    kind: Literal["dense", "conv"]
    precision: Precision
    weight: np.ndarray  # ±1 (binary) or integer codes in [-127, 127] (int8), float32 or int
    scale: np.ndarray  # (C_out,) float
    bias: np.ndarray  # (C_out,) float
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    leak: float
    threshold: float
    input_gain: float = 1.0
    spiking: bool = True
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    bn: Optional[BatchNormSpec] = None

    def folded_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``(a, c)`` with ``input_gain * I = a * z + c`` (scale, bias, BN and gain folded)."""
        a = self.scale.astype(np.float64)
        c = self.bias.astype(np.float64)
        if self.bn is not None:
            inv = self.bn.gamma / np.sqrt(self.bn.var + self.bn.eps)
            a, c = a * inv, (c - self.bn.mean) * inv + self.bn.beta
        return a * self.input_gain, c * self.input_gain


@dataclass
class ModelArtifact:
    layers: list[LayerSpec]
    input_shape: tuple[int, ...]
    input_scale: float  # float units per integer input level
    input_max: int  # largest integer input level
    time_steps: int
    encoding: str  # "direct", "rate", "events"
    provenance: dict = field(default_factory=dict)  # config, dataset, metrics, method, seed
    hardware: Optional[dict] = None  # filled by the mapper; opaque here


def require_attr(group: h5py.Group, key: str, where: str):
    if key not in group.attrs:
        raise ArtifactError(f"{where}: missing attribute {key!r}")
    return group.attrs[key]


def require_dataset(group: h5py.Group, key: str, where: str) -> np.ndarray:
    if key not in group or not isinstance(group[key], h5py.Dataset):
        raise ArtifactError(f"{where}: missing dataset {key!r}")
    return group[key][()]


def check_format(group: h5py.Group, name: str, version: int, where: str) -> None:
    """Check a group's ``format``/``format_version`` attributes; ``ArtifactError`` naming what differs."""
    fmt = require_attr(group, "format", where)
    if fmt != name:
        raise ArtifactError(f"{where}: format is {fmt!r}, expected {name!r}")
    ver = int(require_attr(group, "format_version", where))
    if ver != version:
        raise ArtifactError(f"{where}: format_version {ver} is not supported (this reader: {version})")


def open_h5(path: Path, what: str = "artifact file") -> h5py.File:
    """Open ``path`` read-only; ``ArtifactError`` if it is missing or not HDF5 (e.g. truncated)."""
    if not path.exists():
        raise ArtifactError(f"{path}: no such {what}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ArtifactError(f"{path}: not a readable HDF5 file ({e})") from e


def atomic_write(path: str | os.PathLike, write_fn) -> Path:
    """Call ``write_fn(tmp_path)`` then rename onto ``path``: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


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
        check_format(f, FORMAT_NAME, FORMAT_VERSION, where)
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
        return ModelArtifact(
            layers=layers, input_shape=tuple(int(x) for x in require_attr(f, "input_shape", where)),
            input_scale=float(require_attr(f, "input_scale", where)),
            input_max=int(require_attr(f, "input_max", where)),
            time_steps=int(require_attr(f, "time_steps", where)), encoding=str(require_attr(f, "encoding", where)),
            provenance=prov, hardware={"present": True} if "hardware" in f else None)
