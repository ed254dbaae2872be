"""The artifact's data model: layers in float form, the network, and the error the readers raise."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from neuro_agmm.artifact.encoding import InputEncoding

FORMAT_NAME = "neuro_agmm.bsnn"
FORMAT_VERSION = 2  # 2 adds the encoding record; 1 is still read
READABLE_VERSIONS = (1, 2)
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
            arrays = [l.weight, l.scale, l.bias] + ([l.bn.gamma, l.bn.beta, l.bn.mean, l.bn.var,
                                                    np.array([l.bn.eps])] if l.bn is not None else [])
            for a in arrays:
                h.update(np.ascontiguousarray(a, np.float32).tobytes())  # the precision the file stores
        return h.hexdigest()
