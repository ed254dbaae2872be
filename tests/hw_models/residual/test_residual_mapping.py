"""Residual artifacts (format 3): the file layout, the quantizer's rescale rule for branches, the hardware
section and the placer."""

import dataclasses

import h5py
import numpy as np
import pytest

from hw_models.backends import registry
from hw_models.backends.emulator import random_residual_network
from hw_models.geometry import synapse_list
from hw_models.mapping.hardware_section import load_hardware, save_hardware
from hw_models.mapping.placer import place
from hw_models.mapping.quantizer import quantize
from neuro_agmm.artifact import ArtifactError, BatchNormSpec, read_artifact, write_artifact
from neuro_agmm.deploy.float_model import run_float
from random_nets import residual_artifact


def _inputs(n=8, seed=1):
    return np.random.default_rng(seed).integers(0, 4, size=(n, 5, 2, 6, 6))


def test_power_of_two_branches_quantize_exactly():
    """With power-of-two scales every rounding step is exact, so the integer network must reproduce the float
    model spike for spike in every layer; a wrong branch exponent, mantissa or bias would break that."""
    art = residual_artifact()
    net, rep = quantize(art)
    assert [len(l.shortcuts) for l in net.layers] == [0, 1, 1, 1, 0]
    assert [l.shortcuts[0].source for l in net.layers[1:4]] == [-1, 0, 2]
    for q in rep.layers[1:4]:
        assert q.shortcut_rel_err_max == 0.0 and len(q.shortcut_exps) == 1
    x = _inputs()
    ft = run_float(art, x)
    bt = registry.run("reference", net, x)
    for k in range(4):
        np.testing.assert_array_equal(bt.spikes[k], ft.spikes[k], err_msg=f"layer {k}")
        assert 0.02 < ft.spikes[k].mean() < 0.98, f"layer {k} should spike sometimes"
    np.testing.assert_array_equal(bt.predictions, ft.predictions())


def test_identity_branch_mantissas_follow_the_stated_rule():
    """Identity shortcut into ``b`` (scale 0.5): r = 1 / 0.5 = 2, e = floor(log2(127 / 2)) = 5, m = 64 on the
    diagonal, exponent k - 5."""
    net, rep = quantize(residual_artifact())
    sc = net.layers[2].shortcuts[0]
    np.testing.assert_array_equal(sc.weight_mant[:, :, 0, 0], 64 * np.eye(4))
    assert sc.weight_exp == net.layers[2].weight_exp - 5 == rep.layers[2].shortcut_exps[0]


def test_other_scales_round_within_the_bound_and_are_reported():
    art = residual_artifact(sc_scale=0.3, id_scale=0.7)
    _, rep = quantize(art)
    errs = [q.shortcut_rel_err_max for q in rep.layers]
    assert errs[2] > 0 and errs[3] > 0 and max(errs) <= 0.5 / 63.5  # peak * 2**e >= 63.5 by the choice of e
    assert "shortcut exp" in rep.summary()


def test_shortcut_drive_enters_the_bounds():
    """A strong branch must lower the main block's exponent: the proof covers the sum of the blocks."""
    art = residual_artifact(id_scale=1000.0)
    plain = dataclasses.replace(art, layers=[dataclasses.replace(l, shortcuts=[]) for l in art.layers])
    k_with = quantize(art)[0].layers[2].weight_exp
    k_without = quantize(plain)[0].layers[2].weight_exp
    assert k_with < k_without


def test_readout_shortcut_refused():
    art = residual_artifact()
    art.layers[-1].shortcuts = [dataclasses.replace(art.layers[2].shortcuts[0], source="d", in_shape=(4, 3, 3))]
    with pytest.raises(ValueError, match="readout"):
        quantize(art)


def test_format_3_file_layout_read_by_h5py(tmp_path):
    art = residual_artifact()
    art.layers[3].shortcuts[0].bn = BatchNormSpec(gamma=np.full(4, 2.0), beta=np.zeros(4), mean=np.ones(4),
                                                  var=np.full(4, 3.0))
    path = write_artifact(art, tmp_path / "r.h5")
    with h5py.File(path) as f:  # the layout documented in neuro_agmm.artifact, read with h5py alone
        assert f.attrs["format_version"] == 3
        g = f["layers/3/shortcuts/0"]
        assert g.attrs["source"] == "b" and g.attrs["name"] == "shortcut" and list(g.attrs["stride"]) == [2, 2]
        signs = np.unpackbits(g["sign_bits"][()], count=16).reshape(4, 4, 1, 1)
        np.testing.assert_array_equal(np.where(signs > 0, 1, -1), art.layers[3].shortcuts[0].weight)
        np.testing.assert_array_equal(f["layers/2/shortcuts/0/weight"][()][:, :, 0, 0], np.eye(4))
        assert f["layers/3/shortcuts/0/bn/var"][()].tolist() == [3.0] * 4
    back = read_artifact(path)
    assert back.digest() == art.digest()
    assert [sc.source for l in back.layers for sc in l.shortcuts] == ["input", "stem", "b"]
    assert back.layers[2].inputs("b.conv1") == ("b.conv1", "stem")
    changed = residual_artifact()
    changed.layers[2].shortcuts[0].scale = np.full(4, 2.0)
    assert changed.digest() != art.digest()
    chain = dataclasses.replace(art, layers=[dataclasses.replace(l, shortcuts=[]) for l in art.layers])
    with h5py.File(write_artifact(chain, tmp_path / "c.h5")) as f:
        assert f.attrs["format_version"] == 2  # a chain keeps the older version: format-2 readers still read it


@pytest.mark.parametrize("edit, match", [
    (lambda f: f["layers/2/shortcuts/0"].attrs.__setitem__("source", "d"), "neither 'input' nor an earlier"),
    (lambda f: f["layers/3/shortcuts/0"].attrs.__setitem__("stride", [1, 1]), "does not carry"),
    (lambda f: f["layers/3/shortcuts/0"].attrs.__setitem__("in_shape", [4, 5, 5]), "does not match its source"),
    (lambda f: f.attrs.__setitem__("format_version", 2), "need format_version 3"),
    (lambda f: f["layers/1/shortcuts/0"].attrs.__setitem__("kind", "pool"), "unknown kind"),
    (lambda f: f["layers/2/shortcuts/0/scale"].__setitem__(0, np.nan), "scale: contains NaN"),
])
def test_bad_shortcuts_are_named(tmp_path, edit, match):
    path = write_artifact(residual_artifact(), tmp_path / "r.h5")
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(ArtifactError, match=match):
        read_artifact(path)


def test_hardware_section_keeps_shortcuts(tmp_path):
    net = random_residual_network(np.random.default_rng(0))
    path = save_hardware(tmp_path / "hw.h5", net)
    with h5py.File(path) as f:
        assert f["hardware"].attrs["format_version"] == 2
        assert f["hardware/layers/4/shortcuts/0"].attrs["source"] == 2
    back = load_hardware(path).net
    for a, b in zip(net.layers, back.layers):
        assert len(a.shortcuts) == len(b.shortcuts)
        for s, t in zip(a.shortcuts, b.shortcuts):
            assert (s.source, s.kind, s.weight_exp, s.stride, s.in_shape) == (t.source, t.kind, t.weight_exp,
                                                                                t.stride, t.in_shape)
            np.testing.assert_array_equal(s.weight_mant, t.weight_mant)
    x = _inputs(2)
    np.testing.assert_array_equal(registry.run("reference", back, x).spikes[4],
                                  registry.run("reference", net, x).spikes[4])
    with h5py.File(path, "a") as f:
        f["hardware"].attrs["format_version"] = 1
    with pytest.raises(ArtifactError, match="format_version 2"):
        load_hardware(path)


def test_placer_counts_every_block():
    net = random_residual_network(np.random.default_rng(0), input_shape=(2, 12, 12), channels=8)
    p = place(net, "loihi2")
    for k, layer in enumerate(net.layers):
        expected = sum(synapse_list(b)[0].size for b in layer.blocks())
        assert sum(c.synapses for c in p.cores if c.layer_index == k) == expected, layer.name
    plain = dataclasses.replace(net, layers=[dataclasses.replace(l, shortcuts=[]) for l in net.layers])
    q = place(plain, "loihi2")

    def fan_out(pl, k):
        return sum(c.fan_out_axons for c in pl.cores if c.layer_index == k)

    assert fan_out(p, 2) > fan_out(q, 2) and fan_out(p, 0) > fan_out(q, 0)  # sources of shortcuts
    fan_in = {k: max(c.fan_in_axons for c in p.cores if c.layer_index == k) for k in (2, 4)}
    fan_in_plain = {k: max(c.fan_in_axons for c in q.cores if c.layer_index == k) for k in (2, 4)}
    assert all(fan_in[k] > fan_in_plain[k] for k in (2, 4))
