"""Crosscheck: zero mismatches on agreeing backends, mismatches found when they differ, CLI."""

import json

import numpy as np
import pytest

from hw_models.backends import emulator as em
from hw_models.backends.reference import run_reference
from neuro_agmm import crosscheck as crosscheck_cli
from neuro_agmm import map as map_cli
from neuro_agmm.deploy import crosscheck as cc
from neuro_agmm.artifact import write_artifact
import random_nets




@pytest.fixture(scope="module")
def art_and_inputs():
    nets = random_nets
    rng = np.random.default_rng(0)
    art = nets.random_artifact(rng, kind="conv", hidden=(4,), input_max=16, time_steps=5)
    return art, nets.artifact_inputs(rng, art, 3)


def test_integer_network_emulator_and_brian2_agree():
    rng = np.random.default_rng(1)
    net = em.random_network(rng, (2, 6, 6), (("conv", 3, 3, 2, 1), ("dense", 6), ("dense", 3)), vth_range=(1, 6))
    x = rng.integers(0, 3, (2, 5, 2, 6, 6))
    res = cc.crosscheck(net, x, backends=("emulator", "brian2"))
    assert res.total_mismatches == 0
    assert [b.backend for b in res.backends] == ["emulator", "brian2"]
    assert all(b.counts_identical for b in res.backends)
    assert res.backends[1].layers[0].entries == 2 * 5 * 27
    assert any("float model skipped" in n for n in res.notes)
    assert "TOTAL mismatches" in res.summary()


def test_compare_finds_every_difference():
    rng = np.random.default_rng(2)
    net = em.random_network(rng, (8,), (("dense", 6), ("dense", 3)), vth_range=(1, 6))
    x = rng.integers(0, 3, (4, 8))
    ref = run_reference(net, x)
    bad = run_reference(net, x)
    bad.spikes[0][2, 4] = ~bad.spikes[0][2, 4]
    bad.v[1][3, 1] += 1
    ms = cc._compare("x", [bad], [ref], net)
    assert (ms[0].spikes, ms[0].v, ms[1].v, ms[1].spikes) == (1, 0, 1, 0)
    assert ms[0].first == (0, 2, 4) and ms[1].first == (0, 3, 1)


def test_artifact_with_lava_and_float_model(art_and_inputs, tmp_path):
    art, x = art_and_inputs
    res = cc.crosscheck(art, x, backends=("emulator", "brian2", "lava"), lava_samples=1, lava_timeout=120)
    assert res.total_mismatches == 0, res.summary()
    lava = res.backends[2]
    assert lava.backend == "lava" and lava.samples == 1 and lava.counts_identical
    fa = res.float_agreement
    assert fa is not None and 0.0 <= fa.output_agreement <= 1.0 and len(fa.layer_spike_agreement) == 1
    p = res.write_json(tmp_path / "cc.json")
    d = json.loads(p.read_text())
    assert d["total_mismatches"] == 0 and d["backends"][0]["layers"][0]["spikes"] == 0


def test_cli_and_map_entry(art_and_inputs, tmp_path, capsys):
    art, x = art_and_inputs
    a = write_artifact(art, tmp_path / "m.h5")
    np.savez(tmp_path / "x.npz", x=x[:2])
    out = tmp_path / "r.json"
    rc = crosscheck_cli.main([str(a), "--inputs", str(tmp_path / "x.npz"), "--backends", "emulator,brian2", "--out", str(out),
                  "--no-progress"])
    assert rc == 0 and json.loads(out.read_text())["total_mismatches"] == 0
    assert "TOTAL mismatches" in capsys.readouterr().out
    assert map_cli.main(["--to", "brian2", str(a), "--samples", "2", "--inputs", str(tmp_path / "x.npz"),
                         "--out", str(tmp_path / "b2.json")]) == 0
    assert json.loads((tmp_path / "b2.json").read_text())["backends"][1]["backend"] == "brian2"
    assert crosscheck_cli.main([str(tmp_path / "missing.h5"), "--no-progress"]) == 2
    assert crosscheck_cli.main([str(a), "--backends", "tpu", "--no-progress"]) == 2
    assert "error:" in capsys.readouterr().err
