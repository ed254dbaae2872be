"""ResNet-19 at reduced width, end to end through the CLIs: CIFAR-format files we write -> ``train`` ->
``export`` -> ``map --to lava`` -> ``crosscheck`` (emulator, Brian2, Lava), bit-exact against the reference.

Width 1/32 (4, 8 and 16 channels in the three stages) on full 32x32x3 inputs, T = 2, two epochs on 256
images (enough that every hidden layer spikes), so that Lava and
Brian2 run the whole residual DAG (17 conv layers, 8 shortcuts) within a minute each.
"""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[3]


def test_resnet19_trains_exports_maps_and_runs_bit_exactly(tmp_path, capsys):
    from neuro_agmm.crosscheck import main as crosscheck
    from neuro_agmm.export import main as export
    from neuro_agmm.map import main as map_main
    from neuro_agmm.train import main as train

    data = tmp_path / "data"
    made = subprocess.run([sys.executable, str(ROOT / "benchmarks/make_cifar_like.py"), "--root", str(data),
                           "--n-train", "256", "--n-test", "32"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    run = tmp_path / "run"
    assert train(["--dataset", "cifar10", "--data-root", str(data), "--arch", "resnet19", "--width", "0.03125",
                  "--epochs", "2", "--batch-size", "32", "-T", "2", "--out", str(run), "--threads", "1",
                  "--device", "cpu", "--no-progress"]) == 0
    assert export([str(run), str(tmp_path / "again.h5")]) == 0  # the export CLI gives the trainer's artifact
    with h5py.File(run / "model.h5") as f, h5py.File(tmp_path / "again.h5") as g:
        assert f.attrs["format_version"] == 3 == g.attrs["format_version"]
        assert len(f["layers"]) == 19 and "shortcuts" in f["layers/2"] and "shortcuts" in f["layers/8"]
        np.testing.assert_array_equal(f["layers/8/shortcuts/0/sign_bits"][()], g["layers/8/shortcuts/0/sign_bits"][()])
    capsys.readouterr()

    assert map_main([str(run / "model.h5"), "--to", "lava", "--samples", "3", "--core", "loihi2",
                     "--data-root", str(data), "--no-progress", "--out", str(tmp_path / "map")]) == 0
    out = capsys.readouterr().out
    assert "Lava vs integer reference: 0 sample(s) differ" in out
    assert "shortcut exp" in out  # the quantizer reports each branch's exponent and rounding
    report = json.loads((tmp_path / "map" / "map.json").read_text())
    assert report["lava_mismatches"] == 0 and report["n_cores"] >= 19
    with h5py.File(run / "model.h5") as f:
        assert f["hardware"].attrs["format_version"] == 2 and "shortcuts" in f["hardware/layers/8"]

    assert crosscheck([str(run / "model.h5"), "--samples", "2", "--lava-samples", "1", "--data-root", str(data),
                       "--out", str(tmp_path / "cc.json")]) == 0
    out = capsys.readouterr().out
    assert "TOTAL mismatches (spikes + v + u + predictions): 0" in out
    cc = json.loads((tmp_path / "cc.json").read_text())
    assert cc["total_mismatches"] == 0
    assert {b["backend"]: b["mismatches"] for b in cc["backends"]} == {"emulator": 0, "brian2": 0, "lava": 0}
    rates = cc["float_agreement"]["layer_rate_int"][:-1]  # the trained network is alive: hidden layers spike
    assert min(rates) > 0.01, rates
