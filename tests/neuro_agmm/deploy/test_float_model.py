"""The NumPy float forward pass follows the artifact's float semantics exactly."""


import numpy as np

from hw_models.geometry import conv2d_int
from neuro_agmm.artifact import BatchNormSpec, LayerSpec, ModelArtifact
from neuro_agmm.deploy.float_model import accuracy, conv2d_float, predict, run_float
import random_nets




def tiny(bn=None):
    hid = LayerSpec(name="h", kind="dense", precision="binary", weight=np.array([[1.0, -1.0]]),
                    scale=np.array([2.0]), bias=np.array([0.5]), in_shape=(2,), out_shape=(1,), leak=0.5,
                    threshold=1.0, input_gain=0.5, bn=bn)
    out = LayerSpec(name="o", kind="dense", precision="int8", weight=np.array([[3.0], [-1.0]]),
                    scale=np.array([0.25, 0.25]), bias=np.array([0.0, 0.1]), in_shape=(1,), out_shape=(2,),
                    leak=1.0, threshold=1.0, spiking=False)
    return ModelArtifact(layers=[hid, out], input_shape=(2,), input_scale=0.5, input_max=2, time_steps=3,
                         encoding="direct")


def test_hand_computed_trace():
    x = np.array([[2, 0], [2, 0], [0, 2]])  # levels; x_float = 0.5 * levels
    tr = run_float(tiny(), x)
    # hidden: I = 2 * z + 0.5; v = 0.5 v + 0.5 I; z = 1, 1, -1  ->  I = 2.5, 2.5, -1.5
    v = 0.0
    want_s, want_v = [], []
    for i in (2.5, 2.5, -1.5):
        v = 0.5 * v + 0.5 * i
        s = v > 1.0
        v = 0.0 if s else v
        want_s.append(s)
        want_v.append(v)
    assert tr.spikes[0][0, :, 0].tolist() == want_s and np.allclose(tr.v[0][0, :, 0], want_v)
    # readout integrates 0.25 * w * s + bias, no spikes
    s = np.array(want_s, float)
    logits = np.array([np.sum(0.25 * 3 * s), np.sum(-0.25 * s + 0.1)])
    assert np.allclose(tr.logits[0], logits) and not tr.spikes[1].any()
    assert tr.predictions()[0] == int(np.argmax(logits))


def test_batch_norm_folds_like_the_docstring():
    bn = BatchNormSpec(gamma=np.array([1.5]), beta=np.array([0.2]), mean=np.array([0.3]), var=np.array([4.0]))
    x = np.array([[[2, 0], [0, 0], [1, 1]]])
    tr = run_float(tiny(bn), x)
    v = 0.0
    for z in (1.0, 0.0, 0.0):
        i = 2.0 * z + 0.5
        i = 1.5 * (i - 0.3) / np.sqrt(4.0 + 1e-5) + 0.2
        v = 0.5 * v + 0.5 * i
        v = 0.0 if v > 1.0 else v
    assert np.isclose(tr.v[0][0, -1, 0], v)


def test_conv_matches_integer_reference_and_batching():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(2, 3, 7, 6))
    w = rng.integers(-2, 3, size=(4, 3, 3, 3))
    got = conv2d_float(x.astype(float), w.astype(float), (2, 1), (1, 0))
    for b in range(2):
        assert np.array_equal(got[b], conv2d_int(x[b], w, (2, 1), (1, 0)))
    nets = random_nets
    art = nets.random_artifact(rng, kind="conv", hidden=(3, 4))
    xs = nets.artifact_inputs(rng, art, 6)
    full = run_float(art, xs)
    one = run_float(art, xs[2])
    assert all(np.array_equal(a[2], b[0]) for a, b in zip(full.spikes, one.spikes))
    assert np.array_equal(predict(art, xs, batch_size=4), full.predictions())
    assert accuracy(art, xs, full.predictions()) == 1.0
