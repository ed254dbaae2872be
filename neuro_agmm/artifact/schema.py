"""The artifact's data model: layers in float form, the network, and the error the readers raise."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from neuro_agmm.artifact.encoding import InputEncoding

FORMAT_NAME = "neuro_agmm.bsnn"
FORMAT_VERSION = 3  # 3 adds residual shortcuts (a DAG of named nodes); 2 the encoding record; 1 and 2 are read
READABLE_VERSIONS = (1, 2, 3)
INPUT_NODE = "input"  # the name a shortcut uses for the network input
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


def _folded(scale: np.ndarray, bias: np.ndarray, bn: Optional[BatchNormSpec]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(a, c)`` with ``scale * z + bias`` then batch norm equal to ``a * z + c``."""
    a = np.asarray(scale, np.float64)
    c = np.asarray(bias, np.float64)
    if bn is not None:
        inv = bn.gamma / np.sqrt(bn.var + bn.eps)
        a, c = a * inv, (c - bn.mean) * inv + bn.beta
    return a, c


@dataclass
class ShortcutSpec:
    """A residual branch into a layer's neurons: ``I += scale * (W x_source) + bias`` [then its own batch norm].

    ``source`` names an earlier layer (its spikes) or ``INPUT_NODE`` (the scaled network input). A ResNet's
    identity shortcut is a 1x1 int8 conv with identity codes and unit scale; its downsampling shortcut a
    1x1 stride-2 conv with batch norm.
    """

    name: str
    source: str
    kind: Literal["dense", "conv"]
    precision: Precision
    weight: np.ndarray
    scale: np.ndarray  # (C_out,)
    bias: np.ndarray  # (C_out,)
    in_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    bn: Optional[BatchNormSpec] = None

    def folded_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``(a, c)`` of this branch's current, ``a * z + c`` (the layer's ``input_gain`` not applied)."""
        return _folded(self.scale, self.bias, self.bn)


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
    shortcuts: list[ShortcutSpec] = field(default_factory=list)  # residual branches added to ``I`` (format 3)

    def folded_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``(a, c)`` with ``input_gain * I = a * z + c`` (scale, bias, BN and gain folded)."""
        a, c = _folded(self.scale, self.bias, self.bn)
        return a * self.input_gain, c * self.input_gain

    def inputs(self, previous: str) -> tuple[str, ...]:
        """The node names this layer reads: ``previous`` (the layer before it, or the input) and its shortcuts'."""
        return (previous, *(sc.source for sc in self.shortcuts))


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
    input_encoding: Optional[InputEncoding] = None  # how raw input became the integer inputs (v2)

    def digest(self) -> str:
        """A fingerprint of everything the integer network is derived from (weights, scales, neurons,
        input scaling): ``/hardware`` records it, so a stale mapping is recognised."""
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((tuple(self.input_shape), float(self.input_scale), int(self.input_max))).encode())
        for l in self.layers:
            h.update(repr((l.name, l.kind, l.precision, tuple(l.in_shape), tuple(l.out_shape), tuple(l.stride),
                           tuple(l.padding), float(l.leak), float(l.threshold), float(l.input_gain),
                           bool(l.spiking))).encode())
            for blk in [l, *l.shortcuts]:
                if blk is not l:
                    h.update(repr((blk.name, blk.source, blk.kind, blk.precision, tuple(blk.in_shape),
                                   tuple(blk.stride), tuple(blk.padding))).encode())
                arrays = [blk.weight, blk.scale, blk.bias] + ([blk.bn.gamma, blk.bn.beta, blk.bn.mean, blk.bn.var,
                                                              np.array([blk.bn.eps])] if blk.bn is not None else [])
                for a in arrays:
                    h.update(np.ascontiguousarray(a, np.float32).tobytes())  # the precision the file stores
        return h.hexdigest()
