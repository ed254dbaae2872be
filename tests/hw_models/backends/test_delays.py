"""Per-synapse delays (core_spec rule 1): the reference, the NumPy emulator (one shot and streamed), Lava and
Brian2 agree spike for spike and voltage for voltage on random delayed networks."""

import numpy as np
import pytest

from hw_models import core_spec
from hw_models.backends.brian2 import run_brian2
from hw_models.backends.emulator import Emulator, run_batch
from hw_models.backends.lava.runner import run_lava, run_lava_batch
from hw_models.backends.reference import run_reference
from hw_models.mapping.hardware_section import load_hardware, save_hardware
from random_nets import random_inputs, random_int_network, with_delays


def delayed_net(seed: int, max_delay: int = 6):
    rng = np.random.default_rng(seed)
    return with_delays(rng, random_int_network(rng, "dense", depth=3), max_delay), rng


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.spikes, b.spikes)) and \
        all(np.array_equal(x, y) for x, y in zip(a.v, b.v))


def test_reference_follows_the_rule_by_hand():
    """One synapse, delay 3: the input at t reaches the neuron at t + 3 (and nothing before t = 3)."""
    from hw_models.integer_network import IntegerNetwork, IntLayer

    layer = IntLayer(name="d", kind="dense", weight_mant=np.array([[5, 7]], np.int16), weight_exp=0, weight_bits=8,
                     vth=np.array([core_spec.VTH_MAX], np.int32), bias_mant=np.zeros(1, np.int32),
                     bias_exp=np.zeros(1, np.int32), du=4095, dv=0, in_shape=(2,), out_shape=(1,), readout=True,
                     delay=np.array([[3, 0]], np.int16))
    net = IntegerNetwork([layer], (2,), input_max=1)
    x = np.zeros((6, 2), np.int64)
    x[0, 0] = 1  # via the delay-3 synapse (weight 5): arrives at t = 3
    x[1, 1] = 1  # via the delay-0 synapse (weight 7): arrives at t = 1
    v = run_reference(net, x).v[0][:, 0] >> core_spec.ACT_SHIFT
    assert v.tolist() == [0, 7, 7, 12, 12, 12]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_emulator_one_shot_and_streamed_equal_the_reference(seed):
    net, rng = delayed_net(seed)
    x = random_inputs(rng, net, 14, batch=3)
    tr = run_batch(net, x, record_v=True)  # kernel auto: delayed networks run on the NumPy engine
    for b in range(3):
        r = run_reference(net, x[b])
        assert all(np.array_equal(r.spikes[k], tr.spikes[k][b]) and np.array_equal(r.v[k], tr.v[k][b])
                   for k in range(len(net.layers)))
    assert sum(int(s.sum()) for s in tr.spikes) > 0
    em = Emulator(net, 3, kernel="numpy")
    chunks = [em.run(x[:, i:i + 4]) for i in range(0, 14, 4)]  # delays reach across chunk borders
    for k in range(len(net.layers)):
        assert np.array_equal(np.concatenate([c.spikes[k] for c in chunks], axis=1), tr.spikes[k])
    with pytest.raises(ValueError, match="compiled kernel has no synaptic delays"):
        Emulator(net, 1, kernel="compiled")


@pytest.mark.parametrize("seed", [3, 4])
def test_lava_and_brian2_equal_the_reference(seed):
    net, rng = delayed_net(seed, max_delay=core_spec.DELAY_MAX if seed == 4 else 5)
    x = random_inputs(rng, net, 12)
    ref = run_reference(net, x)
    assert sum(int(s.sum()) for s in ref.spikes) > 0
    assert same(run_lava(net, x), ref)
    assert same(run_brian2(net, x), ref)


def test_refusals_and_persistence(tmp_path):
    net, rng = delayed_net(5)
    with pytest.raises(ValueError, match="one sample per run"):
        run_lava_batch(net, random_inputs(rng, net, 4, batch=2))
    layer = net.layers[0]
    for bad, match in ((np.full(layer.weight_mant.shape, core_spec.DELAY_MAX + 1, np.int16), "outside"),
                       (np.zeros((1, 1), np.int16), "shape")):
        layer.delay, keep = bad, layer.delay
        with pytest.raises(ValueError, match=match):
            layer.validate()
        layer.delay = keep
    layer.weight_exp = -1
    with pytest.raises(ValueError, match="weight_exp >= 0"):
        layer.validate()
    layer.weight_exp = 0
    conv = random_int_network(rng, "conv", depth=2)
    conv.layers[0].delay = np.zeros(conv.layers[0].weight_mant.shape, np.int16)
    with pytest.raises(ValueError, match="dense layers only"):
        conv.validate()
    path = tmp_path / "hw.h5"
    save_hardware(path, net)
    back = load_hardware(path).net
    x = random_inputs(rng, net, 10)
    assert same(run_reference(back, x), run_reference(net, x))


def test_placer_checks_the_chips_delay_range_and_charges_delay_bits():
    from hw_models.core_limits import get_chip
    from hw_models.mapping.placer import PlacementError, place

    net, _ = delayed_net(6, max_delay=core_spec.DELAY_MAX)
    plain, _ = delayed_net(6)
    for layer in plain.layers:
        layer.delay = None
    with_d = place(net, "loihi1")
    without = place(plain, "loihi1")
    assert with_d.cores[0].synaptic_bits > without.cores[0].synaptic_bits
    net.layers[0].delay[0, 0] = core_spec.DELAY_MAX
    import dataclasses
    chip = get_chip("loihi2")
    short = dataclasses.replace(chip, core=dataclasses.replace(chip.core, max_synaptic_delay=10))
    with pytest.raises(PlacementError, match="delay 62 exceeds the core's 10-step range"):
        place(net, short)
