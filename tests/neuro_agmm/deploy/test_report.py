"""Energy report: files written, numbers consistent with the energy module, CLI errors."""

import json

import numpy as np
import pytest

from neuro_agmm import report as report_cli
from neuro_agmm.deploy import energy_report as report
from neuro_agmm.artifact import write_artifact
import random_nets




@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    nets = random_nets
    rng = np.random.default_rng(3)
    art = nets.random_artifact(rng, kind="dense", hidden=(16,), input_max=16, time_steps=5)
    d = tmp_path_factory.mktemp("rep")
    path = write_artifact(art, d / "m.h5")
    x = nets.artifact_inputs(rng, art, 6)
    y = rng.integers(0, art.layers[-1].out_shape[0], 6)
    np.savez(d / "x.npz", x=x, y=y)
    return path, x, y, d


def test_energy_report_writes_everything(artifact, tmp_path):
    path, x, y, _ = artifact
    rep = report.energy_report(path, x, y, out_dir=tmp_path)
    for key in ("json", "markdown", "png_energy", "png_layers", "png_activity"):
        assert rep.files[key].exists() and rep.files[key].stat().st_size > 0
    d = json.loads(rep.files["json"].read_text())
    names = [s["name"] for s in d["energy"]["scenarios"]]
    assert names[0] == "bsnn_loihi" and "ann_fp32_45nm" in names
    assert 0.0 <= d["accuracy_integer"] <= 1.0
    md = rep.files["markdown"].read_text()
    assert "Davies" in md and "Horowitz" in md and "Synapse memory" in md
    # binary hidden layer: 1 bit per weight
    mem = rep.memory.layers[0]
    assert mem["weight_bits"] == 1 and mem["bits"] * 32 == mem["float32_bits"]
    tot = rep.energy.scenario("bsnn_loihi")
    assert tot.total_pj > 0 and rep.energy.activity.n_samples == 6


def test_cli(artifact, tmp_path, capsys):
    path, _, _, d = artifact
    rc = report_cli.main([str(path), "--inputs", str(d / "x.npz"), "--samples", "4", "--out", str(tmp_path / "o"),
                      "--hops", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "bsnn_loihi" in out and "2 tile hops" in out
    assert json.loads((tmp_path / "o" / "energy.json").read_text())["energy"]["activity"]["n_samples"] == 4
    assert report_cli.main([str(tmp_path / "nope.h5"), "--inputs", str(d / "x.npz"), "--out", str(tmp_path)]) == 2
    assert report_cli.main([str(path), "--inputs", str(tmp_path / "none.npz"), "--out", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
