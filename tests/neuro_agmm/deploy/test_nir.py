"""NIR export: written with nir.write, read back with nir.read, and simulated with the documented
discrete semantics it reproduces the float model."""


import nir
import numpy as np
import pytest

from neuro_agmm.deploy.float_model import run_float
from neuro_agmm.deploy.nir import export_nir, simulate_nir, to_nir
import random_nets




@pytest.mark.parametrize("kind,kw", [("dense", dict(hidden=(12, 8), bn=True)), ("conv", dict(hidden=(3, 4)))])
def test_write_read_simulate_equals_float_model(kind, kw, tmp_path):
    nets = random_nets
    rng = np.random.default_rng(7)
    art = nets.random_artifact(rng, kind=kind, **kw)
    path = export_nir(art, tmp_path / "m.nir")
    g = nir.read(path)
    kinds = {type(n).__name__ for n in g.nodes.values()}
    assert {"Input", "Output", "LIF", "I"} <= kinds
    assert ("Conv2d" in kinds) == (kind == "conv") and ("Flatten" in kinds) == (kind == "conv")
    for node in g.nodes.values():
        if isinstance(node, nir.LIF):
            assert node.tau.shape == node.v_threshold.shape == node.r.shape  # per-neuron arrays
            assert np.allclose(node.tau, 2.0) and np.allclose(node.r, 2.0)  # leak 0.5, dt = 1
    x = nets.artifact_inputs(rng, art, 12)
    spikes, last = simulate_nir(g, x)
    ft = run_float(art, x)
    for s_nir, s_f in zip(spikes, ft.spikes):
        assert np.array_equal(s_nir.reshape(s_f.shape), s_f)
    assert np.allclose(last.reshape(12, -1), ft.logits, atol=1e-9)


def test_leaky_readout_and_if_neurons():
    nets = random_nets
    art = nets.random_artifact(np.random.default_rng(1), hidden=(6,))
    art.layers[0].leak = 1.0
    art.layers[-1].leak = 0.8
    g = to_nir(art)
    kinds = [type(n).__name__ for n in g.nodes.values()]
    assert "IF" in kinds and "LI" in kinds
    x = nets.artifact_inputs(np.random.default_rng(2), art, 5)
    spikes, last = simulate_nir(g, x)
    ft = run_float(art, x)
    assert np.array_equal(spikes[0], ft.spikes[0]) and np.allclose(last, ft.logits)
