"""The integer network: what the quantizer produces and every hardware backend runs.

A plain data object (NumPy arrays + ints), independent of torch, Lava and Brian2. Each
layer is a synapse block (dense or 2-D convolution) followed by a population of
Loihi-style LIF neurons with the semantics of ``hw_models.core_spec``.

Conventions
-----------
* Input to the network is a non-negative integer array per time step (graded spikes:
  0/1 for spike trains, small counts for event frames or pixel intensities).
* Dense weights have shape ``(n_out, n_in)``; conv weights ``(C_out, C_in, kH, kW)`` and
  act on ``(C, H, W)`` maps flattened in C order (torch's ``flatten``).
* ``weight_mant`` holds the stored mantissas (±1 for binary layers, int8 for 8-bit
  layers); the synaptic activation is ``apply_weight_exp(W_mant @ s, weight_exp)``.
* ``vth``, ``bias_mant``, ``bias_exp`` are per neuron; ``du``, ``dv`` are per layer.
* Residual networks (a DAG): a layer may have ``shortcuts``, extra synapse blocks
  (``IntSynapse``) from an EARLIER node into the same neuron population (``source`` is the
  index of that layer, ``-1`` the network input). The main block always reads the layer
  just before it. Each block applies its own weight exponent; the population sums the
  blocks' activations (``core_spec.block_activation``, rule 1b). A ResNet's identity
  shortcut is a 1x1 conv whose mantissas are a scaled identity, its downsampling shortcut
  a 1x1 stride-2 conv.
* ``readout=True`` marks the output layer: it follows the same dynamics as every other
  layer (no special case in any backend), but the quantizer gives it ``dv = 0`` (a
  perfect integrator) and ``vth = VTH_MAX`` and checks that its voltage cannot reach
  the threshold, so it never spikes; the prediction is ``argmax`` of its voltage after
  the last step (ties go to the lowest class index).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from hw_models import core_spec

LayerKind = Literal["dense", "conv"]


def _check_weights(blk, bad, what: str) -> np.ndarray:
    """The weight checks every synapse block (a layer's or a shortcut's) passes: integer mantissas in the core's
    range, ±1 for 1-bit blocks, the weight shape of its kind; ``bad(msg)`` builds the error. Returns the weights."""
    w = np.asarray(blk.weight_mant)
    if not np.issubdtype(w.dtype, np.integer):
        raise bad(f"weight_mant must be integers, got {w.dtype}")
    if w.size and (w.min() < core_spec.WEIGHT_MANT_MIN or w.max() > core_spec.WEIGHT_MANT_MAX):
        raise bad(f"weight mantissa {int(w.min())}..{int(w.max())} outside "
                  f"[{core_spec.WEIGHT_MANT_MIN}, {core_spec.WEIGHT_MANT_MAX}]")
    if blk.weight_bits == 1 and w.size and not np.all(np.abs(w) == 1):
        raise bad(f"a 1-bit {what} must hold only ±1 weights")
    if blk.kind == "dense" and w.shape != (blk.n_out, blk.n_in):
        raise bad(f"dense weights have shape {w.shape}, expected {(blk.n_out, blk.n_in)}")
    if blk.kind == "conv" and (w.ndim != 4 or len(blk.in_shape) != 3 or w.shape[0] != blk.out_shape[0]
                               or w.shape[1] != blk.in_shape[0]):
        raise bad(f"conv weights {w.shape} do not match in {blk.in_shape} / out {blk.out_shape}")
    return w


@dataclass
class IntSynapse:
    """An extra synapse block into a layer's neurons (a residual shortcut), read from node ``source``."""

    name: str
    source: int  # index of the layer whose spikes it reads; -1 = the network input
    kind: LayerKind
    weight_mant: np.ndarray
    weight_exp: int
    weight_bits: int
    in_shape: tuple[int, ...]  # the source's output shape
    out_shape: tuple[int, ...]  # the target layer's out_shape
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    delay = None  # shortcuts have no per-synapse delays (read by code shared with IntLayer)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    def validate(self, owner: str) -> None:
        where = f"layer {owner!r} shortcut {self.name!r}"
        w = _check_weights(self, lambda msg: ValueError(f"{where}: {msg}"), "block")
        if self.kind == "conv":
            (kh, kw), (sh, sw), (ph, pw) = w.shape[2:], self.stride, self.padding
            expected = (w.shape[0], (self.in_shape[1] + 2 * ph - kh) // sh + 1, (self.in_shape[2] + 2 * pw - kw) // sw + 1)
            if tuple(self.out_shape) != expected:  # the conv arithmetic of geometry.conv_output_hw
                raise ValueError(f"{where}: out_shape {tuple(self.out_shape)} but the conv geometry gives {expected}")
        if self.kind not in ("dense", "conv"):
            raise ValueError(f"{where}: unknown kind {self.kind!r}")
        if not isinstance(self.weight_exp, (int, np.integer)) or not -31 <= int(self.weight_exp) <= 31:
            raise ValueError(f"{where}: weight_exp={self.weight_exp!r} outside [-31, 31]")


@dataclass
class IntLayer:
    """One synapse block + LIF population in integer form."""

    name: str
    kind: LayerKind
    weight_mant: np.ndarray  # int8/int16 mantissas; ±1 for binary layers
    weight_exp: int
    weight_bits: int  # bits stored per synapse (1 for binary, 8 for 8-bit layers)
    vth: np.ndarray  # (n_neurons,) threshold mantissas
    bias_mant: np.ndarray  # (n_neurons,)
    bias_exp: np.ndarray  # (n_neurons,)
    du: int
    dv: int
    in_shape: tuple[int, ...]  # (n_in,) for dense, (C, H, W) for conv
    out_shape: tuple[int, ...]  # (n_out,) for dense, (C, H, W) for conv
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    readout: bool = False
    delay: Optional[np.ndarray] = None  # dense only: (n_out, n_in) steps in [0, DELAY_MAX] (core_spec rule 1)
    shortcuts: list[IntSynapse] = field(default_factory=list)  # extra blocks from earlier nodes (rule 1b)

    def blocks(self) -> list:
        """Every synapse block into this layer: the main one (``self``) first, then the shortcuts."""
        return [self, *self.shortcuts]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def bias(self) -> np.ndarray:
        """Effective per-neuron bias (``bias_mant << bias_exp``)."""
        return core_spec.effective_bias(self.bias_mant, self.bias_exp)

    def core_params(self) -> core_spec.CoreParams:
        """The neuron registers as ``core_spec.step`` takes them."""
        return core_spec.CoreParams(du=int(self.du), dv=int(self.dv), bias=self.bias, vth=np.asarray(self.vth))

    def validate(self) -> None:
        """Raise ``ValueError`` naming the layer and the value if a register cannot hold it."""
        def bad(msg: str) -> ValueError:
            return ValueError(f"layer {self.name!r}: {msg}")

        w = _check_weights(self, bad, "layer")
        for reg, val in (("du", self.du), ("dv", self.dv)):
            if not isinstance(val, (int, np.integer)) or not 0 <= int(val) <= core_spec.DECAY_MAX:
                raise bad(f"{reg}={val!r} is not a 12-bit unsigned integer")
        for reg, arr, lo, hi in (
            ("vth", self.vth, 0, core_spec.VTH_MAX),
            ("bias_mant", self.bias_mant, core_spec.BIAS_MANT_MIN, core_spec.BIAS_MANT_MAX),
            ("bias_exp", self.bias_exp, core_spec.BIAS_EXP_MIN, core_spec.BIAS_EXP_MAX),
        ):
            a = np.asarray(arr)
            if not np.issubdtype(a.dtype, np.integer):
                raise bad(f"{reg} must be integers, got {a.dtype}")
            if a.shape != (self.n_out,):
                raise bad(f"{reg} has shape {a.shape}, expected ({self.n_out},)")
            if a.size and (a.min() < lo or a.max() > hi):
                i = int(np.argmax((a < lo) | (a > hi)))
                raise bad(f"{reg}[{i}]={int(a[i])} outside [{lo}, {hi}]")
        if self.delay is not None:
            d = np.asarray(self.delay)
            if self.kind != "dense":
                raise bad("delays are supported on dense layers only")
            if not np.issubdtype(d.dtype, np.integer) or d.shape != w.shape:
                raise bad(f"delay must be integers of the weights' shape {w.shape}, got {d.dtype} {d.shape}")
            if d.size and (d.min() < 0 or d.max() > core_spec.DELAY_MAX):
                raise bad(f"delay {int(d.min())}..{int(d.max())} outside [0, {core_spec.DELAY_MAX}]")
            if self.weight_exp < 0:
                raise bad("a delayed layer needs weight_exp >= 0 (Lava's DelayDense shifts each delay bucket "
                          "separately, so a right shift would round per bucket)")

    @property
    def max_delay(self) -> int:
        """The largest synaptic delay in steps (0 without delays)."""
        return int(np.max(self.delay)) if self.delay is not None and np.size(self.delay) else 0


@dataclass
class IntegerNetwork:
    """A feed-forward DAG of ``IntLayer`` in topological order; layer ``k`` reads layer ``k-1``'s spikes
    (and, through its shortcuts, earlier layers' or the input's)."""

    layers: list[IntLayer]
    input_shape: tuple[int, ...]
    input_max: int = 1  # largest graded input value (1 for binary spikes)
    meta: dict = field(default_factory=dict)

    def validate(self) -> None:
        """Check every layer's registers and the shape chain; raise ``ValueError`` on the first problem."""
        shape = tuple(self.input_shape)
        for k, layer in enumerate(self.layers):
            if int(np.prod(layer.in_shape)) != int(np.prod(shape)):
                raise ValueError(f"layer {layer.name!r} expects input {layer.in_shape}, gets {shape}")
            layer.validate()
            for sc in layer.shortcuts:
                if not isinstance(sc.source, (int, np.integer)) or not -1 <= int(sc.source) < k:
                    raise ValueError(f"layer {layer.name!r} shortcut {sc.name!r}: source {sc.source!r} must be an "
                                     f"earlier node (-1 = the input .. {k - 1})")
                if layer.readout:
                    raise ValueError(f"layer {layer.name!r}: the readout takes no shortcuts")
                src_shape = tuple(self.input_shape) if sc.source < 0 else tuple(self.layers[sc.source].out_shape)
                if int(np.prod(sc.in_shape)) != int(np.prod(src_shape)):
                    raise ValueError(f"layer {layer.name!r} shortcut {sc.name!r} expects input {sc.in_shape}, "
                                     f"its source gives {src_shape}")
                if tuple(sc.out_shape) != tuple(layer.out_shape):
                    raise ValueError(f"layer {layer.name!r} shortcut {sc.name!r}: out_shape {sc.out_shape} != "
                                     f"the layer's {layer.out_shape}")
                sc.validate(layer.name)
            shape = tuple(layer.out_shape)

    @property
    def residual(self) -> bool:
        """Whether any layer has a shortcut (the network is a DAG, not a chain)."""
        return any(l.shortcuts for l in self.layers)

    def sources(self, k: int) -> list[int]:
        """Node index read by each block of layer ``k`` (main first; -1 = the input)."""
        return [k - 1] + [int(sc.source) for sc in self.layers[k].shortcuts]

    @property
    def n_classes(self) -> Optional[int]:
        return self.layers[-1].n_out if self.layers and self.layers[-1].readout else None
