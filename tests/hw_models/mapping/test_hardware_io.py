"""The /hardware group: atomic save into the artifact, validated load, clear errors."""

import h5py
import numpy as np
import pytest

from hw_models.mapping.hardware_section import load_hardware, save_hardware
from hw_models.mapping.placer import place
from neuro_agmm.deploy.fidelity import fill_agreement  # noqa: E402
from hw_models.mapping.quantizer import quantize
from hw_models.backends.reference import run_reference
from random_nets import artifact_inputs, random_artifact
from neuro_agmm.artifact import ArtifactError, read_artifact, write_artifact


@pytest.fixture
def mapped(tmp_path):
    rng = np.random.default_rng(0)
    art = random_artifact(rng, kind="conv", hidden=(3, 4))
    path = write_artifact(art, tmp_path / "m.h5")
    net, rep = quantize(art)
    fill_agreement(rep, art, net, artifact_inputs(rng, art, 5))
    pl = place(net, "loihi1")
    save_hardware(path, net, pl, rep)
    return path, art, net, pl, rep


def test_round_trip_keeps_the_artifact_and_the_network(mapped):
    path, art, net, pl, rep = mapped
    again = read_artifact(path)  # the artifact itself is intact and now says it has hardware
    assert again.hardware is not None and len(again.layers) == len(art.layers)
    hw = load_hardware(path)
    for a, b in zip(net.layers, hw.net.layers):
        assert np.array_equal(a.weight_mant, b.weight_mant) and a.weight_exp == b.weight_exp
        for k in ("vth", "bias_mant", "bias_exp"):
            assert np.array_equal(getattr(a, k), getattr(b, k))
        assert (a.du, a.dv, a.in_shape, a.out_shape, a.stride, a.padding, a.readout) == \
            (b.du, b.dv, b.in_shape, b.out_shape, b.stride, b.padding, b.readout)
    x = artifact_inputs(np.random.default_rng(1), art, 1)[0]
    assert np.array_equal(run_reference(net, x).v[-1], run_reference(hw.net, x).v[-1])
    assert hw.placement.to_dict() == pl.to_dict()
    assert hw.report.to_dict() == rep.to_dict()
    # binary layers are stored as sign bits (1 bit per synapse)
    with h5py.File(path, "r") as f:
        assert "sign_bits" in f["hardware/layers/0"] and "weight_mant" in f["hardware/layers/2"]


def test_rewrite_replaces_the_group(mapped):
    path, art, net, pl, rep = mapped
    save_hardware(path, net)  # no placement/report this time
    hw = load_hardware(path)
    assert hw.placement is None and hw.report is None


def test_missing_fields_are_named(mapped, tmp_path):
    path = mapped[0]
    with h5py.File(path, "a") as f:
        del f["hardware/layers/1/vth"]
    with pytest.raises(ArtifactError, match="layers/1: missing dataset 'vth'"):
        load_hardware(path)
    with h5py.File(path, "a") as f:
        del f["hardware"].attrs["format_version"]
    with pytest.raises(ArtifactError, match="missing attribute 'format_version'"):
        load_hardware(path)
    plain = write_artifact(random_artifact(np.random.default_rng(2)), tmp_path / "plain.h5")
    with pytest.raises(ArtifactError, match="missing group '/hardware'"):
        load_hardware(plain)


def test_invalid_network_leaves_file_untouched(mapped):
    path, _, net, _, _ = mapped
    before = path.read_bytes()
    net.layers[0].vth[0] = -5
    with pytest.raises(ValueError, match="vth"):
        save_hardware(path, net)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_sibling_file(tmp_path):
    rng = np.random.default_rng(3)
    net, _ = quantize(random_artifact(rng))
    p = save_hardware(tmp_path / "net.hw.h5", net)
    assert load_hardware(p).net.layers[0].n_out == net.layers[0].n_out
