"""Export a trained torch model to the model artifact (HDF5), and rebuild a torch model from one.

Why: the artifact (``neuro_agmm.artifact``) is the hand-off to the hardware side. Export turns
every block of a ``neuro_agmm.models.BSNN`` into a ``LayerSpec``: binary layers as ±1 signs +
per-channel scale (negative trained scales are folded into the signs, see
``neuro_agmm.binary_layers``), int8 layers as codes + their per-layer scale, batch norm as its
running statistics, neurons as leak/threshold/input_gain; plus the input encoding and the
provenance (training config, dataset, metrics, method, seed).

The full-precision baseline (``precision="fp"``) cannot be binary: it is exported as an **int8**
artifact (per-output-channel post-training quantisation, codes in [-127, 127]); its accuracy
after export is what ``evaluate_artifact`` reports, not the float accuracy.

``model_from_artifact`` builds ``ArtifactNet``, a frozen torch network that computes the
artifact's float semantics with the same operations in the same order as the trained
modules, so for binary/int8 models it reproduces the trained model's eval-mode outputs bit
for bit (the round trip the tests check). Left out: ResNet-19 (residual additions are not in
the artifact's sequential graph; export refuses), the hardware group (written by the mapper).

CLI: ``python -m neuro_agmm.export CHECKPOINT OUT.h5`` (CHECKPOINT: a run directory or its
``checkpoint.pt``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, is_dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuro_agmm import __version__
from neuro_agmm.artifact import ArtifactError, LayerSpec, ModelArtifact, read_artifact, write_artifact
from neuro_agmm.artifact.encoding import InputEncoding, events_encoding
from neuro_agmm.training.lif import LIFConfig, lif_sequence, readout_sequence


def data_info(split: Any) -> dict:
    """Input description of a ``DatasetSplit`` (or a dict with the same keys) for export and checkpoints."""
    if isinstance(split, dict):
        return dict(split)
    info = {"dataset": split.name, "input_shape": list(split.input_shape), "n_classes": int(split.n_classes),
            "input_scale": float(split.input_scale), "input_max": int(split.input_max),
            "time_steps": int(split.time_steps), "encoding": split.encoding}
    if split.encoding == "events":
        m = split.meta
        info["encoding_record"] = events_encoding(split.time_steps, m["binning"], m["downsample"], m["clip"],
                                                  m["sensor_size"], split.name, m.get("fixed_span_us")).to_json()
    return info


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    return obj


def model_to_artifact(model: nn.Module, info: dict, provenance: Optional[dict] = None) -> ModelArtifact:
    """``ModelArtifact`` of ``model`` (a ``BSNN``) for inputs described by ``info`` (see ``data_info``)."""
    try:
        layers = model.layer_specs()
    except NotImplementedError as e:
        raise ArtifactError(f"cannot export: {e}") from e
    for spec in layers:
        for name in ("scale", "bias"):
            if not np.all(np.isfinite(getattr(spec, name))):
                raise ArtifactError(f"layer {spec.name!r}: {name} contains NaN or inf; refusing to export")
        if spec.bn is not None:
            for name in ("gamma", "beta", "mean", "var"):
                if not np.all(np.isfinite(getattr(spec.bn, name))):
                    raise ArtifactError(f"layer {spec.name!r}: bn/{name} contains NaN or inf; refusing to export")
    prov = dict(provenance or {})
    prov.setdefault("model_config", model.config.to_dict())
    return ModelArtifact(layers=layers, input_shape=tuple(info["input_shape"]), input_scale=float(info["input_scale"]),
                         input_max=int(info["input_max"]), time_steps=int(info["time_steps"]),
                         encoding=str(info["encoding"]), provenance=prov,
                         input_encoding=InputEncoding.from_json(info["encoding_record"])
                         if "encoding_record" in info else None)


def export_artifact(model: nn.Module, split: Any, cfg: Any, metrics: Optional[dict], path: str | os.PathLike,
                    method: Optional[str] = None, seed: Optional[int] = None) -> ModelArtifact:
    """Export ``model`` with provenance (``cfg`` as JSON, dataset, ``metrics``, method, seed) to ``path``."""
    info = data_info(split)
    cfg_d = _plain(cfg) if cfg is not None else {}
    if not isinstance(cfg_d, dict):
        cfg_d = dict(vars(cfg_d))
    prov = {"config": json.dumps(cfg_d, sort_keys=True, default=str), "dataset": str(info.get("dataset", "")),
            "metrics": json.dumps(metrics or {}, sort_keys=True, default=float),
            "method": str(method if method is not None else cfg_d.get("method", "")),
            "seed": int(seed if seed is not None else cfg_d.get("seed", 0))}
    art = model_to_artifact(model, info, prov)
    write_artifact(art, path, package_version=__version__)
    return art


def weight_storage(art: ModelArtifact) -> dict:
    """Bytes of weight storage in the artifact vs the same weights as float32.

    ``ratio``: all layers; ``binary_ratio``: binary layers only (1 bit vs 32 bits: 1/32 up to padding).
    """
    stored = f32 = bin_stored = bin_f32 = 0
    for l in art.layers:
        n = int(np.asarray(l.weight).size)
        b = (n + 7) // 8 if l.precision == "binary" else n
        stored += b
        f32 += 4 * n
        if l.precision == "binary":
            bin_stored += b
            bin_f32 += 4 * n
    return {"weight_bytes": stored, "float32_bytes": f32, "ratio": stored / f32 if f32 else float("nan"),
            "binary_weight_bytes": bin_stored, "binary_float32_bytes": bin_f32,
            "binary_ratio": bin_stored / bin_f32 if bin_f32 else float("nan")}


# --- artifact -> torch ---------------------------------------------------------------------------

class _FrozenLayer(nn.Module):
    """One artifact layer in torch: ``I = scale * (W x) + bias`` [BN] -> LIF or readout integrator."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec_name, self.kind, self.spiking = spec.name, spec.kind, spec.spiking
        self.in_shape, self.out_shape = tuple(spec.in_shape), tuple(spec.out_shape)
        self.stride, self.padding = tuple(spec.stride), tuple(spec.padding)
        self.register_buffer("weight", torch.as_tensor(np.asarray(spec.weight, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(spec.scale, np.float32)))
        self.register_buffer("bias", torch.as_tensor(np.asarray(spec.bias, np.float32)))
        self.bn_eps = None
        if spec.bn is not None:
            self.bn_eps = float(spec.bn.eps)
            for k in ("gamma", "beta", "mean", "var"):
                self.register_buffer(f"bn_{k}", torch.as_tensor(np.asarray(getattr(spec.bn, k), np.float32)))
        self.lif = LIFConfig(leak=spec.leak, threshold=spec.threshold) if spec.spiking else None
        self.rate = 0.0

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """Synaptic current ``I`` (before ``input_gain``) for inputs ``(T, B, ...)``: ``(T, B, *out_shape)``."""
        t, b = x.shape[:2]
        if self.kind == "dense":  # a dense layer reads its input flat, whatever shape the artifact records
            z = F.linear(x.reshape(t * b, -1), self.weight)
        else:
            z = F.conv2d(x.reshape(t * b, *self.in_shape), self.weight, stride=self.stride, padding=self.padding)
        shape = (1, -1) + (1,) * (z.dim() - 2)
        i = z * self.scale.view(shape) + self.bias.view(shape)
        if self.bn_eps is not None:
            i = F.batch_norm(i, self.bn_mean, self.bn_var, self.bn_gamma, self.bn_beta, False, 0.0, self.bn_eps)
        return i.reshape(t, b, *self.out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neurons(self.current(x))

    def neurons(self, i: torch.Tensor) -> torch.Tensor:
        """The neuron population on currents ``i`` ``(T, B, *out_shape)``: spikes, or the readout's logits."""
        t = i.shape[0]
        if not self.spiking:
            return readout_sequence(i) / t
        s = lif_sequence(i, self.lif)
        self.rate = float(s.mean())
        return s


class ArtifactNet(nn.Module):
    """Frozen torch network of a ``ModelArtifact``; input ``(T, B, *input_shape)`` floats, output logits.

    Residual shortcuts add their branch current to the layer's before the neuron, in the trained
    ``ResidualBlock``'s order (main branch first), so a ResNet's outputs are reproduced bit for bit too."""

    def __init__(self, art: ModelArtifact) -> None:
        super().__init__()
        if not art.layers or art.layers[-1].spiking:
            raise ArtifactError("artifact has no non-spiking readout as its last layer")
        self.layers = nn.ModuleList([_FrozenLayer(s) for s in art.layers])
        self.shortcuts = nn.ModuleList([nn.ModuleList([_FrozenLayer(_as_layer(sc, s)) for sc in s.shortcuts])
                                        for s in art.layers])
        self.sources = [[sc.source for sc in s.shortcuts] for s in art.layers]
        self.input_shape, self.input_scale = tuple(art.input_shape), float(art.input_scale)
        self.activity: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from neuro_agmm.artifact import INPUT_NODE

        nodes = {INPUT_NODE: x}
        for k, layer in enumerate(self.layers):
            x = layer.neurons(self.current(k, x, nodes))
            nodes[layer.spec_name] = x
        self.activity = {l.spec_name: l.rate for l in self.layers if l.spiking}
        return x


    def current(self, k: int, x: torch.Tensor, nodes: dict) -> torch.Tensor:
        """Layer ``k``'s synaptic current for its input ``x``: its main block's, plus each shortcut's on the
        output of its source node in ``nodes`` (name -> ``(T, B, ...)``), in the trained block's order."""
        i = self.layers[k].current(x)
        for sc, src in zip(self.shortcuts[k], self.sources[k]):
            i = i + sc.current(nodes[src])
        return i


def _as_layer(sc, target: LayerSpec) -> LayerSpec:
    """A shortcut as a ``LayerSpec`` for ``_FrozenLayer`` (its current only: the neuron fields are unused)."""
    return LayerSpec(name=sc.name, kind=sc.kind, precision=sc.precision, weight=sc.weight, scale=sc.scale,
                     bias=sc.bias, in_shape=sc.in_shape, out_shape=target.out_shape, leak=target.leak,
                     threshold=target.threshold, stride=sc.stride, padding=sc.padding, bn=sc.bn)


def model_from_artifact(art: ModelArtifact | str | os.PathLike) -> ArtifactNet:
    """``ArtifactNet`` for an artifact object or file (eval mode)."""
    if not isinstance(art, ModelArtifact):
        art = read_artifact(art)
    return ArtifactNet(art).eval()


@torch.no_grad()
def predict(model: nn.Module, x_int: np.ndarray, input_scale: float, batch_size: int = 256) -> np.ndarray:
    """Class predictions for integer inputs ``(N, T, *shape)``; ``model`` in eval mode. Returns (N,) int64."""
    was = model.training
    model.eval()
    out = []
    from neuro_agmm.training.batches import to_float

    device = next(iter(model.parameters()), torch.empty(0)).device  # where the model is (the CPU for ArtifactNet)
    for i in range(0, len(x_int), batch_size):
        out.append(model(to_float(x_int[i:i + batch_size], input_scale).to(device)).argmax(1).cpu().numpy())
    model.train(was)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def evaluate_artifact(art: ModelArtifact | str | os.PathLike, split: Any, batch_size: int = 256) -> float:
    """Test accuracy of the artifact's float semantics (``ArtifactNet``) on ``split.test_x/test_y``."""
    net = model_from_artifact(art)
    pred = predict(net, split.test_x, net.input_scale, batch_size)
    return float((pred == split.test_y).mean())


# --- CLI -----------------------------------------------------------------------------------------

def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike) -> ModelArtifact:
    """Export the model held by a training checkpoint (file or run directory) to ``out``."""
    from neuro_agmm.training.checkpoint import load_checkpoint
    from neuro_agmm.training.models import ModelConfig, build_from_config

    ck = load_checkpoint(checkpoint)
    model = build_from_config(ModelConfig.from_dict(ck.model_config))
    model.load_state_dict(ck.model)
    model.eval()
    metrics = ck.metrics[-1] if ck.metrics else {}
    return export_artifact(model, ck.data_info, ck.config, metrics, out)
