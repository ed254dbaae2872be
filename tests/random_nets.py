"""Random integer networks and artifacts for the hardware tests (plain data, no mocks).

Tests in ``tests/hw_models`` import it as ``nets``; tests in other folders load it by path
(the tests folders are not packages).
"""

from __future__ import annotations

import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer
from neuro_agmm.artifact import BatchNormSpec, LayerSpec, ModelArtifact, ShortcutSpec, write_artifact


def random_int_network(rng: np.random.Generator, kind: str = "dense", depth: int = 2, n_in: int = 12,
                       width: int = 10, input_max: int = 3, scalar_vth: bool = False, binary: bool = True,
                       readout: bool = True) -> IntegerNetwork:
    """A random feed-forward integer network with mixed signs, leaks, thresholds and biases."""
    layers = []
    if kind == "dense":
        shape: tuple[int, ...] = (n_in,)
    else:
        shape = (2, 6, 6)
    for i in range(depth):
        last = readout and i == depth - 1
        if kind == "conv" and not last:
            c_out = int(rng.integers(2, 4))
            stride = (int(rng.integers(1, 3)),) * 2
            pad = (int(rng.integers(0, 2)),) * 2
            kh = 3
            ho = (shape[1] + 2 * pad[0] - kh) // stride[0] + 1
            wo = (shape[2] + 2 * pad[1] - kh) // stride[1] + 1
            w = rng.choice([-1, 1], size=(c_out, shape[0], kh, kh)).astype(np.int8)
            out_shape: tuple[int, ...] = (c_out, ho, wo)
            lk = "conv"
        else:
            n_out = 5 if last else width
            n_prev = int(np.prod(shape))
            if binary and not last:
                w = rng.choice([-1, 1], size=(n_out, n_prev)).astype(np.int8)
            else:
                w = rng.integers(-20, 21, size=(n_out, n_prev)).astype(np.int8)
            out_shape, stride, pad, lk = (n_out,), (1, 1), (0, 0), "dense"
        n = int(np.prod(out_shape))
        in_scale = input_max if i == 0 else 1
        exp = int(rng.integers(0, 4))
        if scalar_vth:
            vth = np.full(n, int(rng.integers(2, 30)) * in_scale, np.int32)
        else:
            vth = rng.integers(1, 40, size=n).astype(np.int32) * in_scale
        if last:
            vth = np.full(n, core_spec.VTH_MAX, np.int32)
        layers.append(IntLayer(
            name=f"l{i}", kind=lk, weight_mant=w, weight_exp=exp, weight_bits=1 if (binary and not last) else 8,
            vth=vth.astype(np.int32), bias_mant=rng.integers(-300, 300, size=n).astype(np.int32),
            bias_exp=rng.integers(0, 3, size=n).astype(np.int32), du=4095 if rng.random() < 0.7 else int(rng.integers(0, 4096)),
            dv=0 if last else int(rng.choice([0, 1024, 2048, 3000, 4095])), in_shape=shape, out_shape=out_shape,
            stride=stride, padding=pad, readout=last))
        shape = out_shape
    net = IntegerNetwork(layers=layers, input_shape=(n_in,) if kind == "dense" else (2, 6, 6), input_max=input_max)
    net.validate()
    return net


def random_inputs(rng: np.random.Generator, net: IntegerNetwork, t_steps: int, batch: int | None = None) -> np.ndarray:
    shape = ((batch,) if batch else ()) + (t_steps,) + tuple(net.input_shape)
    return rng.integers(0, net.input_max + 1, size=shape).astype(np.int64)


def random_artifact(rng: np.random.Generator, kind: str = "dense", hidden: tuple[int, ...] = (16,),
                    n_in: int = 20, n_cls: int = 4, input_max: int = 16, time_steps: int = 6,
                    bn: bool = False, first_int8: bool = False, neg_scales: bool = True) -> ModelArtifact:
    """A random BSNN artifact: binary hidden layers (conv or dense), int8 readout (one common scale)."""
    layers: list[LayerSpec] = []
    if kind == "conv":
        shape: tuple[int, ...] = (1, 8, 8)
    else:
        shape = (n_in,)
    for i, h in enumerate(hidden):
        if kind == "conv":
            c_out = h
            ho = (shape[1] + 2 - 3) // 2 + 1
            w = rng.choice([-1.0, 1.0], size=(c_out, shape[0], 3, 3)).astype(np.float32)
            out_shape: tuple[int, ...] = (c_out, ho, ho)
            extra = dict(stride=(2, 2), padding=(1, 1))
        else:
            n_prev = int(np.prod(shape))
            w = rng.choice([-1.0, 1.0], size=(h, n_prev)).astype(np.float32)
            out_shape, extra = (h,), {}
            c_out = h
        precision = "binary"
        if i == 0 and first_int8:
            w = rng.integers(-127, 128, size=w.shape).astype(np.float32)
            precision = "int8"
        fan_in = int(np.prod(w.shape[1:]))
        mag = 1.0 / np.sqrt(fan_in) * (1 / 127 if precision == "int8" else 1.0)
        if i == 0:
            mag = mag / (input_max / 16.0)
        scale = rng.uniform(2.0, 6.0, size=c_out) * mag * 16 / max(input_max, 1)
        if neg_scales:
            scale = scale * np.where(rng.random(c_out) < 0.2, -1, 1)
        b = rng.normal(0, 0.2, size=c_out)
        bns = None
        if bn:
            bns = BatchNormSpec(gamma=rng.uniform(0.5, 1.5, c_out), beta=rng.normal(0, 0.1, c_out),
                                mean=rng.normal(0, 0.1, c_out), var=rng.uniform(0.5, 2.0, c_out))
        layers.append(LayerSpec(name=f"h{i}", kind=kind, precision=precision, weight=w, scale=scale, bias=b,
                                in_shape=shape, out_shape=out_shape, leak=0.5, threshold=1.0, input_gain=0.5,
                                spiking=True, bn=bns, **extra))
        shape = out_shape
    n_prev = int(np.prod(shape))
    w = rng.integers(-127, 128, size=(n_cls, n_prev)).astype(np.float32)
    s = 1.0 / (127 * np.sqrt(n_prev))
    layers.append(LayerSpec(name="out", kind="dense", precision="int8", weight=w, scale=np.full(n_cls, s),
                            bias=rng.normal(0, 0.05, n_cls), in_shape=shape, out_shape=(n_cls,), leak=1.0,
                            threshold=1.0, input_gain=1.0, spiking=False))
    in_shape = (1, 8, 8) if kind == "conv" else (n_in,)
    return ModelArtifact(layers=layers, input_shape=in_shape, input_scale=1.0 / input_max, input_max=input_max,
                         time_steps=time_steps, encoding="direct", provenance={"dataset": "random", "seed": 0})


def artifact_inputs(rng: np.random.Generator, art: ModelArtifact, n: int, t_steps: int | None = None) -> np.ndarray:
    t = t_steps or art.time_steps
    return rng.integers(0, art.input_max + 1, size=(n, t) + tuple(art.input_shape)).astype(np.int64)



def lif_step(u, v, a, du, dv, bias, vth):
    """``core_spec.step`` with positional registers, returning ``(u, v, spikes)`` (the tests' old shape)."""
    from hw_models import core_spec
    s, st = core_spec.step(core_spec.CoreState(np.asarray(u), np.asarray(v)), np.asarray(a),
                           core_spec.CoreParams(int(du), int(dv), np.asarray(bias), np.asarray(vth)))
    return st.u, st.v, s


def event_artifact(path, input_shape=(2, 34, 34), hidden=32, n_cls=10, time_steps=8, seed=0, dataset="digits-dvs",
                  input_max=15, scales=(0.03, 0.3, 0.05)):
    """A written event-input MLP artifact (int8 → binary → int8 readout) for the streaming tests."""
    rng = np.random.default_rng(seed)
    n_in = int(np.prod(input_shape))
    l0 = LayerSpec("fc0", "dense", "int8", rng.integers(-127, 128, (hidden, n_in)).astype(np.float32),
                   np.full(hidden, scales[0]), rng.normal(0, 0.05, hidden), input_shape, (hidden,), leak=0.5,
                   threshold=1.0, input_gain=0.5)
    l1 = LayerSpec("fc1", "dense", "binary", np.where(rng.random((hidden, hidden)) < 0.5, -1.0, 1.0),
                   np.full(hidden, scales[1]), np.full(hidden, 0.1), (hidden,), (hidden,), leak=0.5, threshold=1.0,
                   input_gain=0.5)
    l2 = LayerSpec("out", "dense", "int8", rng.integers(-127, 128, (n_cls, hidden)).astype(np.float32),
                   np.full(n_cls, scales[2]), np.zeros(n_cls), (hidden,), (n_cls,), leak=1.0, threshold=1.0,
                   input_gain=1.0, spiking=False)
    art = ModelArtifact([l0, l1, l2], input_shape, 1.0 / input_max, input_max, time_steps, "events",
                        provenance={"dataset": dataset})
    write_artifact(art, path)
    return art


def with_delays(rng: np.random.Generator, net: IntegerNetwork, max_delay: int = 5) -> IntegerNetwork:
    """``net`` with random per-synapse delays on every dense layer (exponents raised to >= 0 as delays need)."""
    for layer in net.layers:
        if layer.kind == "dense":
            layer.delay = rng.integers(0, max_delay + 1, size=layer.weight_mant.shape).astype(np.int16)
            layer.weight_exp = max(int(layer.weight_exp), 0)
    net.validate()
    return net


def _residual_conv(name, cin, cout, rng, precision="binary", scale=0.25, stride=1, k=3, pad=1, hw=6, threshold=1.0,
          shortcuts=(), bn=None):
    ho = (hw + 2 * pad - k) // stride + 1
    w = rng.choice([-1.0, 1.0], size=(cout, cin, k, k)) if precision == "binary" else \
        rng.integers(-3, 4, size=(cout, cin, k, k)).astype(np.float64)
    return LayerSpec(name=name, kind="conv", precision=precision, weight=w, scale=np.full(cout, scale),
                     bias=np.zeros(cout), in_shape=(cin, hw, hw), out_shape=(cout, ho, ho), leak=0.5,
                     threshold=threshold, stride=(stride, stride), padding=(pad, pad), shortcuts=list(shortcuts), bn=bn)


def residual_artifact(seed: int = 0, sc_scale: float = 0.125, id_scale: float = 1.0) -> ModelArtifact:
    """A hand-built residual artifact whose scales are powers of two (``sc_scale``/``id_scale`` may break that):
    an identity shortcut, a stride-2 1x1 downsample shortcut and a shortcut from the input."""
    rng = np.random.default_rng(seed)
    c = 4
    eye = np.eye(c).reshape(c, c, 1, 1)
    ident = ShortcutSpec("identity", "stem", "conv", "int8", eye, np.full(c, id_scale), np.zeros(c), (c, 6, 6))
    down = ShortcutSpec("shortcut", "b", "conv", "binary", rng.choice([-1.0, 1.0], size=(c, c, 1, 1)),
                        np.full(c, sc_scale), np.zeros(c), (c, 6, 6), stride=(2, 2))
    from_in = ShortcutSpec("from_input", "input", "conv", "int8", rng.integers(-2, 3, (c, 2, 1, 1)).astype(float),
                           np.full(c, 0.5), np.zeros(c), (2, 6, 6))
    layers = [
        _residual_conv("stem", 2, c, rng, precision="int8", scale=0.5),
        _residual_conv("b.conv1", c, c, rng, shortcuts=[from_in]),
        _residual_conv("b", c, c, rng, scale=0.5, shortcuts=[ident]),
        _residual_conv("d", c, c, rng, stride=2, shortcuts=[down]),
        LayerSpec(name="readout", kind="dense", precision="int8", weight=rng.integers(-5, 6, (5, c * 9)).astype(float),
                  scale=np.full(5, 0.25), bias=np.zeros(5), in_shape=(c * 9,), out_shape=(5,), leak=1.0,
                  threshold=1.0, spiking=False),
    ]
    return ModelArtifact(layers=layers, input_shape=(2, 6, 6), input_scale=0.25, input_max=3, time_steps=5,
                         encoding="direct", provenance={"dataset": "test"})
