"""The reference run against hand-computed integer dynamics (small cases worked on paper)."""

import numpy as np
import pytest

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork, IntLayer
from hw_models.geometry import conv2d_int
from hw_models.backends.reference import run_reference


def dense_layer(w, vth, dv=2048, du=4095, bias=0, exp=0, readout=False, bits=1):
    w = np.asarray(w)
    n = w.shape[0]
    return IntLayer("l", "dense", w, exp, bits, np.full(n, vth), np.full(n, bias), np.zeros(n, int), du, dv,
                    (w.shape[1],), (n,), readout=readout)


def test_single_neuron_by_hand():
    # one input, weight +1, exp 3 -> activation 8 per input spike, u = 8 << 6 = 512 (du = 4095 clears u)
    net = IntegerNetwork([dense_layer([[1]], vth=10, exp=3)], (1,))
    tr = run_reference(net, np.array([[1], [1], [0], [1]]))
    # v: 512; 256 + 512 = 768 > 640 -> spike, reset; 0; 512
    assert tr.v[0][:, 0].tolist() == [512, 0, 0, 512]
    assert tr.spikes[0][:, 0].tolist() == [False, True, False, False]


def test_decay_rounds_toward_zero_and_wrap_is_lavas():
    assert core_spec.decay(np.array([-3, 3, -4097]), 2048).tolist() == [-1, 1, -2048]
    m = core_spec.MAX_UV
    assert core_spec.wrap24(np.array([m, m + 1, -m, -m - 1])).tolist() == [m, -m + 1, m, m - 1]


def test_negative_weight_exp_floors():
    assert core_spec.apply_weight_exp(np.array([-3, 3]), -1).tolist() == [-2, 1]


def test_conv_matches_dense_unrolling():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (2, 5, 5))
    w = rng.choice([-1, 1], (3, 2, 3, 3))
    out = conv2d_int(x, w, (2, 2), (1, 1))
    assert out.shape == (3, 3, 3)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for o in range(3):
        for i in range(3):
            for j in range(3):
                assert out[o, i, j] == np.sum(w[o] * xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3])


def test_validate_names_layer_and_value():
    layer = dense_layer([[1, -1]], vth=1)
    layer.bias_mant = np.array([5000])
    with pytest.raises(ValueError, match=r"'l'.*bias_mant\[0\]=5000"):
        IntegerNetwork([layer], (2,)).validate()
    with pytest.raises(ValueError, match="1-bit"):
        dense_layer([[2, -1]], vth=1).validate()
