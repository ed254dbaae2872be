"""``python -m neuro_agmm.map`` end to end on small artifacts built from random ±1 weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest

from hw_models.mapping.hardware_section import load_hardware
from neuro_agmm.artifact import write_artifact
from neuro_agmm.deploy.mapping import map_to_lava
from neuro_agmm.map import main
import random_nets

ROOT = Path(__file__).parents[3]




def test_cli_end_to_end_on_the_digits_dataset(tmp_path):
    nets = random_nets
    art = nets.random_artifact(np.random.default_rng(0), kind="conv", hidden=(4, 6), n_cls=10, time_steps=4)
    art.provenance = {"dataset": "digits", "seed": 0}
    path = write_artifact(art, tmp_path / "digits.h5")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "neuro_agmm.map", "--to", "lava", str(path), "--samples", "8",
                        "--out", str(tmp_path / "out"), "--no-progress", "--timeout", "120"],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Lava vs integer reference: 0 sample(s) differ" in r.stdout
    assert "cores used" in r.stdout
    report = json.loads((tmp_path / "out" / "map.json").read_text())
    assert report["lava_mismatches"] == 0 and report["n_samples"] == 8
    assert report["lava_accuracy"] == report["integer_accuracy"]
    assert (tmp_path / "out" / "map.png").stat().st_size > 0
    hw = load_hardware(path)
    assert [l.kind for l in hw.net.layers] == ["conv", "conv", "dense"] and hw.placement.n_cores >= 3


def test_library_call_with_arrays(tmp_path):
    nets = random_nets
    rng = np.random.default_rng(1)
    art = nets.random_artifact(rng, hidden=(12,), n_in=10, time_steps=5)
    path = write_artifact(art, tmp_path / "a.h5")
    x = nets.artifact_inputs(rng, art, 12)
    y = rng.integers(0, 4, 12)
    res = map_to_lava(path, 12, inputs=x, labels=y, out_dir=tmp_path / "o", progress=False, chip="loihi2")
    assert res.lava_mismatches == 0 and res.n_samples == 12
    assert res.lava_accuracy == res.integer_accuracy
    assert res.prediction_agreement_float_lava >= 0.9 and len(res.spike_agreement) == 1
    assert res.chip == "loihi2" and res.n_cores == 2 and res.time_per_step_ms > 0
    assert "Lava fixed_pt" in res.summary()


def test_other_targets_and_errors(tmp_path, capsys):
    nets = random_nets
    art = nets.random_artifact(np.random.default_rng(2), hidden=(8,))
    path = write_artifact(art, tmp_path / "a.h5")
    assert main(["--to", "nir", str(path), "--out", str(tmp_path / "a.nir")]) == 0
    assert len(nir.read(tmp_path / "a.nir").nodes) == 5  # input, synapse, LIF, readout synapse, output
    assert main(["--to", "netx", str(path), "--out", str(tmp_path / "a.netx.h5")]) == 0
    assert (tmp_path / "a.netx.h5").exists()
    capsys.readouterr()
    assert main([str(tmp_path / "missing.h5")]) == 2
    assert "no such artifact file" in capsys.readouterr().err
    assert main([str(path), "--samples", "3"]) == 2  # dataset 'random' is unknown: a one-line error
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert main([str(path), "--inputs", str(tmp_path / "none.npz")]) == 2
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 3, 5), np.int64))
    assert main([str(path), "--inputs", str(tmp_path / "bad.npz")]) == 2
    assert "expects" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


def test_brian2_target_runs_the_crosscheck(tmp_path, capsys):
    nets = random_nets
    rng = np.random.default_rng(3)
    art = nets.random_artifact(rng, hidden=(6,), n_in=8, time_steps=4)
    path = write_artifact(art, tmp_path / "a.h5")
    np.savez(tmp_path / "x.npz", x=nets.artifact_inputs(rng, art, 2))
    out = tmp_path / "check.json"
    assert main(["--to", "brian2", str(path), "--inputs", str(tmp_path / "x.npz"), "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["total_mismatches"] == 0 and report["n_samples"] == 2
    assert {b["backend"] for b in report["backends"]} == {"emulator", "brian2"}
    assert "codegen target numpy" in capsys.readouterr().out
    assert main(["--to", "brian2", str(tmp_path / "missing.h5")]) == 2
    assert "missing.h5" in capsys.readouterr().err


@pytest.mark.slow
def test_trained_digits_network_keeps_its_accuracy_on_lava(tmp_path):
    """Train a small digits BSNN (torch side), then map it: Lava accuracy within 1 point of float."""
    from neuro_agmm.training.loop import TrainConfig, train

    res = train(TrainConfig(dataset="digits", arch="mlp", method="vanilla", epochs=20, out=str(tmp_path / "run"),
                            progress=False))
    assert res.artifact_path is not None
    m = map_to_lava(res.artifact_path, 360, out_dir=tmp_path / "map", progress=False)
    assert m.n_samples == 360 and m.lava_mismatches == 0
    assert m.float_accuracy > 0.85
    assert abs(m.float_accuracy - m.lava_accuracy) <= 0.01, m.summary()
