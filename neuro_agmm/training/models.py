"""BSNN architectures: MLP, small stride-2 conv net, VGG-11 and ResNet-19, built from one block type.

Why: every model the project trains is a stack of *spiking blocks* (weight layer -> optional
batch norm -> LIF) ending in a non-spiking *readout* block, which is exactly the layer graph
the artifact stores (``neuro_agmm.artifact``), so a sequential model exports layer by layer.

Input: ``(T, B, *input_shape)`` float, already multiplied by the dataset's ``input_scale``.
Output: logits ``(B, n_classes) = v_readout[T-1] / T``.

Time schedule: the canonical one (every layer integrates at every step, no synaptic delay:
layer k at step t sees layer k-1's spikes of step t). Because the network is feed-forward
without delays this is computed layer by layer over all T steps at once (weight layer and
batch norm applied to the ``T*B`` samples together, then the LIF loop over t), which gives
the same values as looping over t outside and layers inside. Batch norm in training mode
therefore normalises over batch *and* time (as tdBN does); in eval mode it uses running stats.

``model.activity`` holds the mean firing rate of every spiking block in the last forward;
each block keeps ``last_input`` (its detached input, ``(T, B, *in_shape)``) for callbacks
that need layer input statistics (AGMM). ``model.layer_specs()`` returns the artifact's
``LayerSpec`` list: a residual block becomes two nodes, ``<block>.conv1`` and ``<block>`` (conv2's
neurons, with the shortcut from the node before the block as a ``ShortcutSpec``).

Left out: pooling (stride-2 convolutions instead, so every layer maps to cores), dropout,
recurrence, delays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from neuro_agmm.artifact import INPUT_NODE, BatchNormSpec, LayerSpec, ShortcutSpec
from neuro_agmm.training.binary_layers import CONV, LINEAR
from neuro_agmm.training.lif import DEFAULT_LEAK, DEFAULT_THRESHOLD, LIFConfig, lif_sequence, readout_sequence

ARCHS = ("mlp", "convnet", "vgg11", "resnet19")


@dataclass
class ModelConfig:
    """Everything ``build_model`` needs; stored in checkpoints so a model can be rebuilt."""

    arch: str
    input_shape: tuple[int, ...]
    n_classes: int
    precision: str = "binary"  # "binary" (BSNN) or "fp" (full-precision baseline)
    first_last: str = "int8"  # precision of first and readout layers in a BSNN: "int8" or "binary"
    leak: float = DEFAULT_LEAK
    threshold: float = DEFAULT_THRESHOLD
    batch_norm: bool = True
    surrogate: str = "super"
    alpha: float = 100.0
    hidden: Optional[tuple[int, ...]] = None  # mlp hidden sizes (default (256, 256))
    width: float = 1.0  # channel multiplier for convnet / vgg11 / resnet19
    forward_gate: Optional[dict] = None  # AGMM's forward gate on binary blocks (neuro_agmm.training.forward_gate)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["hidden"] = list(self.hidden) if self.hidden is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        if d.get("hidden") is not None:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)


def conv_out_shape(in_shape: tuple[int, ...], cout: int, k: int, stride: int, padding: int) -> tuple[int, int, int]:
    _, h, w = in_shape
    return (cout, (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1)


class SpikingBlock(nn.Module):
    """Weight layer -> [batch norm] -> LIF, applied to ``(T, B, *in_shape)`` spikes/inputs."""

    def __init__(self, synapse: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...],
                 batch_norm: bool, lif: LIFConfig) -> None:
        super().__init__()
        self.synapse = synapse
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        c = out_shape[0]
        self.bn = (nn.BatchNorm2d(c) if synapse.kind == "conv" else nn.BatchNorm1d(c)) if batch_norm else None
        self.lif = lif
        self.gate: Optional[nn.Module] = None  # AGMM's forward gate (forward_gate.ForwardGate), after batch norm
        self.last_input: Optional[torch.Tensor] = None
        self.rate: float = 0.0

    def currents(self, x: torch.Tensor) -> torch.Tensor:
        """Input currents ``I`` (before the neuron's gain) for all steps: ``(T, B, *out_shape)``."""
        t, b = x.shape[:2]
        flat = x.reshape(t * b, *self.in_shape)
        i = self.synapse(flat)
        if self.bn is not None:
            i = self.bn(i)
        i = i.reshape(t, b, *self.out_shape)
        return self.gate(i, x) if self.gate is not None else i

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_input = x.detach()
        s = lif_sequence(self.currents(x), self.lif)
        self.rate = float(s.detach().mean())
        return s

    def shortcut_spec(self, name: str, source: str) -> ShortcutSpec:
        """This block as a residual branch (its current added to another layer's) reading node ``source``."""
        spec = self.layer_spec(name)
        return ShortcutSpec(name=name, source=source, kind=spec.kind, precision=spec.precision, weight=spec.weight,
                            scale=spec.scale, bias=spec.bias, in_shape=spec.in_shape, stride=spec.stride,
                            padding=spec.padding, bn=spec.bn)

    def layer_spec(self, name: str) -> LayerSpec:
        if self.gate is not None:
            raise NotImplementedError(
                f"layer {name!r} has AGMM's forward gate, a per-sample, per-step gain the integer cores cannot "
                "express; freeze it to one constant per layer first (neuro_agmm.training.forward_gate."
                "fold_forward_gates, which the trainer runs and reports)")
        w, scale, bias, precision = self.synapse.export_weight()
        bn = None
        if self.bn is not None:
            bn = BatchNormSpec(gamma=self.bn.weight.detach().numpy().astype(np.float32).copy(),
                               beta=self.bn.bias.detach().numpy().astype(np.float32).copy(),
                               mean=self.bn.running_mean.numpy().astype(np.float32).copy(),
                               var=self.bn.running_var.numpy().astype(np.float32).copy(), eps=float(self.bn.eps))
        conv = self.synapse.kind == "conv"
        return LayerSpec(name=name, kind=self.synapse.kind, precision=precision, weight=w, scale=scale, bias=bias,
                         in_shape=self.in_shape, out_shape=self.out_shape, leak=self.lif.leak,
                         threshold=self.lif.threshold, input_gain=self.lif.input_gain, spiking=True,
                         stride=self.synapse.stride if conv else (1, 1),
                         padding=self.synapse.padding if conv else (0, 0), bn=bn)


class ReadoutBlock(nn.Module):
    """Dense weight layer -> non-spiking integrator (leak 1, gain 1); returns ``v[T-1] / T``."""

    def __init__(self, synapse: nn.Module, n_in: int, n_classes: int, threshold: float) -> None:
        super().__init__()
        self.synapse = synapse
        self.in_shape, self.out_shape = (n_in,), (n_classes,)
        self.threshold = threshold  # recorded in the artifact; unused (the readout never spikes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, b = x.shape[:2]
        i = self.synapse(x.reshape(t * b, -1)).reshape(t, b, -1)
        return readout_sequence(i) / t

    def layer_spec(self, name: str) -> LayerSpec:
        w, scale, bias, precision = self.synapse.export_weight()
        return LayerSpec(name=name, kind="dense", precision=precision, weight=w, scale=scale, bias=bias,
                         in_shape=self.in_shape, out_shape=self.out_shape, leak=1.0, threshold=self.threshold,
                         input_gain=1.0, spiking=False)


class ResidualBlock(nn.Module):
    """Spiking basic block: ``s1 = LIF(BN(conv1 x))``; ``s = LIF(BN(conv2 s1) + shortcut(x))``.

    The shortcut is identity, or a binary 1x1 stride-s conv + BN when the shape changes.
    """

    def __init__(self, make_conv, in_shape: tuple[int, int, int], cout: int, stride: int, lif: LIFConfig,
                 batch_norm: bool) -> None:
        super().__init__()
        mid = conv_out_shape(in_shape, cout, 3, stride, 1)
        self.conv1 = SpikingBlock(make_conv(in_shape[0], cout, 3, stride, 1), in_shape, mid, batch_norm, lif)
        self.conv2 = SpikingBlock(make_conv(cout, cout, 3, 1, 1), mid, mid, batch_norm, lif)
        self.shortcut = None
        if stride != 1 or in_shape[0] != cout:
            self.shortcut = SpikingBlock(make_conv(in_shape[0], cout, 1, stride, 0), in_shape, mid, batch_norm, lif)
        self.in_shape, self.out_shape, self.lif = tuple(in_shape), mid, lif
        self.rate = 0.0

    def layer_specs(self, name: str, source: str) -> list[LayerSpec]:
        """Two artifact nodes: ``<name>.conv1`` reading ``source``, and ``<name>`` (conv2's neurons) reading
        conv1 with the shortcut from ``source`` (identity: a 1x1 int8 conv of identity codes, unit scale)."""
        first = self.conv1.layer_spec(f"{name}.conv1")
        out = self.conv2.layer_spec(name)
        if self.shortcut is not None:
            out.shortcuts = [self.shortcut.shortcut_spec("shortcut", source)]
        else:
            c = self.in_shape[0]
            eye = np.eye(c, dtype=np.float32).reshape(c, c, 1, 1)
            out.shortcuts = [ShortcutSpec(name="identity", source=source, kind="conv", precision="int8", weight=eye,
                                          scale=np.ones(c, np.float32), bias=np.zeros(c, np.float32),
                                          in_shape=self.in_shape)]
        return [first, out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.conv1(x)
        i = self.conv2.currents(s1)
        self.conv2.last_input = s1.detach()
        i = i + (self.shortcut.currents(x) if self.shortcut is not None else x)
        s = lif_sequence(i, self.lif)
        self.rate = self.conv2.rate = float(s.detach().mean())
        return s


class BSNN(nn.Module):
    """A stack of named stages (``SpikingBlock`` / ``ResidualBlock``) and a ``ReadoutBlock``."""

    def __init__(self, config: ModelConfig, stages: list[tuple[str, nn.Module]], readout: ReadoutBlock) -> None:
        super().__init__()
        self.config = config
        self.stages = nn.ModuleDict(stages)
        self.readout = readout
        self.activity: dict[str, float] = {}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.config.input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"model expects input (T, B, *{self.input_shape}), got {tuple(x.shape)}")
        activity = {}
        for name, stage in self.stages.items():
            x = stage(x)
            if isinstance(stage, ResidualBlock):
                activity[f"{name}.conv1"] = stage.conv1.rate
            activity[name] = stage.rate
        self.activity = activity
        return self.readout(x)

    def first_synapse(self) -> nn.Module:
        """The weight layer that reads the network input (graded values, not spikes)."""
        return next(iter(self.stages.values())).conv1.synapse if isinstance(
            next(iter(self.stages.values())), ResidualBlock) else next(iter(self.stages.values())).synapse

    def spiking_blocks(self) -> list[tuple[str, SpikingBlock]]:
        """``(name, block)`` for every spiking block (inside residual blocks too), in order."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, SpikingBlock)]

    def layer_specs(self) -> list[LayerSpec]:
        """The artifact layer list (float semantics of ``neuro_agmm.artifact``), readout last."""
        specs: list[LayerSpec] = []
        for name, stage in self.stages.items():
            if isinstance(stage, ResidualBlock):  # two nodes; the shortcut reads the node before the block
                specs.extend(stage.layer_specs(name, specs[-1].name if specs else INPUT_NODE))
            else:
                specs.append(stage.layer_spec(name))
        specs.append(self.readout.layer_spec("readout"))
        return specs


def _layer_precisions(config: ModelConfig) -> tuple[str, str, str]:
    """(first, hidden, readout) weight precision names for ``binary_layers.LINEAR/CONV``."""
    if config.precision == "fp":
        return "float", "float", "float"
    if config.precision != "binary":
        raise ValueError(f"precision must be 'binary' or 'fp', got {config.precision!r}")
    if config.first_last not in ("int8", "binary"):
        raise ValueError(f"first_last must be 'int8' or 'binary', got {config.first_last!r}")
    return config.first_last, "binary", config.first_last


def _mlp(config: ModelConfig, lif: LIFConfig, prec) -> BSNN:
    hidden = config.hidden or (256, 256)
    n_in = int(np.prod(config.input_shape))
    stages = []
    for i, h in enumerate(hidden):
        p = prec[0] if i == 0 else prec[1]
        syn = LINEAR[p](n_in, h, bias=not config.batch_norm)
        stages.append((f"fc{i + 1}", SpikingBlock(syn, (n_in,), (h,), config.batch_norm, lif)))
        n_in = h
    readout = ReadoutBlock(LINEAR[prec[2]](n_in, config.n_classes), n_in, config.n_classes, lif.threshold)
    return BSNN(config, stages, readout)


def _conv_stack(config: ModelConfig, lif: LIFConfig, prec, plan: list[tuple[int, int]],
                fc: tuple[int, ...] = ()) -> BSNN:
    """``plan``: (out channels, stride) per 3x3 conv; then dense hidden layers ``fc``; then readout."""
    if len(config.input_shape) != 3:
        raise ValueError(f"conv architectures need input (C, H, W), got {config.input_shape}")
    shape = tuple(config.input_shape)
    stages = []
    for i, (c, s) in enumerate(plan):
        p = prec[0] if i == 0 else prec[1]
        out = conv_out_shape(shape, c, 3, s, 1)
        syn = CONV[p](shape[0], c, 3, s, 1, bias=not config.batch_norm)
        stages.append((f"conv{i + 1}", SpikingBlock(syn, shape, out, config.batch_norm, lif)))
        shape = out
    n_in = int(np.prod(shape))
    for j, h in enumerate(fc):
        syn = LINEAR[prec[1]](n_in, h, bias=not config.batch_norm)
        stages.append((f"fc{j + 1}", SpikingBlock(syn, (n_in,), (h,), config.batch_norm, lif)))
        n_in = h
    readout = ReadoutBlock(LINEAR[prec[2]](n_in, config.n_classes), n_in, config.n_classes, lif.threshold)
    return BSNN(config, stages, readout)


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _convnet(config, lif, prec) -> BSNN:
    c, (h, w) = _ch(32, config.width), config.input_shape[1:]
    plan = [(c, 1)]
    while min(h, w) > 4:
        c = min(2 * c, _ch(256, config.width))
        plan.append((c, 2))
        h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    return _conv_stack(config, lif, prec, plan)


def _vgg11(config, lif, prec) -> BSNN:
    # VGG-11's 8 conv layers, each max-pool replaced by making the next conv stride 2
    # (32x32 -> 2x2), then two hidden dense layers and the readout (8 conv + 3 dense).
    cw = [(_ch(c, config.width), s) for c, s in
          [(64, 1), (128, 2), (256, 2), (256, 1), (512, 2), (512, 1), (512, 2), (512, 1)]]
    return _conv_stack(config, lif, prec, cw, fc=(_ch(1024, config.width), _ch(1024, config.width)))


def _resnet19(config, lif, prec) -> BSNN:
    # ResNet-19 as in tdBN (Zheng et al., 2021): conv 128, 3 blocks x 128, 3 blocks x 256 (stride 2),
    # 2 blocks x 512 (stride 2), a 256-unit dense layer, readout. No pooling: the final 8x8 map
    # is flattened into the dense layer.
    if len(config.input_shape) != 3:
        raise ValueError(f"resnet19 needs input (C, H, W), got {config.input_shape}")
    shape = tuple(config.input_shape)
    c0 = _ch(128, config.width)
    out = conv_out_shape(shape, c0, 3, 1, 1)
    stages = [("conv1", SpikingBlock(CONV[prec[0]](shape[0], c0, 3, 1, 1, bias=not config.batch_norm),
                                     shape, out, config.batch_norm, lif))]
    shape = out

    def make_conv(cin, cout, k, s, p):
        return CONV[prec[1]](cin, cout, k, s, p, bias=not config.batch_norm)

    for li, (c, n, s) in enumerate([(128, 3, 1), (256, 3, 2), (512, 2, 2)]):
        for bi in range(n):
            blk = ResidualBlock(make_conv, shape, _ch(c, config.width), s if bi == 0 else 1, lif, config.batch_norm)
            stages.append((f"layer{li + 1}_{bi}", blk))
            shape = blk.out_shape
    n_in = int(np.prod(shape))
    h = _ch(256, config.width)
    stages.append(("fc1", SpikingBlock(LINEAR[prec[1]](n_in, h, bias=not config.batch_norm), (n_in,), (h,),
                                       config.batch_norm, lif)))
    readout = ReadoutBlock(LINEAR[prec[2]](h, config.n_classes), h, config.n_classes, lif.threshold)
    return BSNN(config, stages, readout)


_BUILDERS = {"mlp": _mlp, "convnet": _convnet, "vgg11": _vgg11, "resnet19": _resnet19}


def build_model(arch: str, input_shape: tuple[int, ...], n_classes: int, precision: str = "binary",
                first_last: str = "int8", leak: float = DEFAULT_LEAK, threshold: float = DEFAULT_THRESHOLD,
                batch_norm: bool = True, surrogate: str = "super", alpha: float = 100.0,
                hidden: Optional[tuple[int, ...]] = None, width: float = 1.0) -> BSNN:
    """Build a BSNN (``precision="binary"``) or its full-precision twin (``"fp"``); see module docstring."""
    config = ModelConfig(arch=arch, input_shape=tuple(int(s) for s in input_shape), n_classes=int(n_classes),
                         precision=precision, first_last=first_last, leak=float(leak), threshold=float(threshold),
                         batch_norm=bool(batch_norm), surrogate=surrogate, alpha=float(alpha),
                         hidden=tuple(hidden) if hidden is not None else None, width=float(width))
    return build_from_config(config)


def build_from_config(config: ModelConfig) -> BSNN:
    if config.arch not in _BUILDERS:
        raise ValueError(f"unknown arch {config.arch!r}; choose from {', '.join(ARCHS)}")
    lif = LIFConfig(leak=config.leak, threshold=config.threshold, surrogate=config.surrogate, alpha=config.alpha)
    model = _BUILDERS[config.arch](config, lif, _layer_precisions(config))
    if config.forward_gate:
        from neuro_agmm.training.forward_gate import install_forward_gates
        install_forward_gates(model, config.forward_gate)
    return model
