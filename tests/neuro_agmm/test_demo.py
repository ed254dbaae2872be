"""The main job end to end, on a tiny budget (slow: trains twice and starts Lava and Brian2)."""

import json

import pytest


@pytest.mark.slow
def test_demo_runs_every_stage_and_records_zero_mismatches(tmp_path):
    from neuro_agmm.demo import main

    assert main(["--out", str(tmp_path), "--epochs", "3", "--dvs-epochs", "2", "--lava-samples", "5",
                 "--crosscheck-samples", "2", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["crosscheck_mismatches"] == 0
    assert summary["lava"]["lava_mismatches"] == 0
    assert summary["lava"]["lava_accuracy"] == summary["lava"]["integer_accuracy"]
    assert summary["digits_test_acc"] > 0.5
    assert summary["energy_pj_per_inference"]["bsnn_loihi"] > 0
    assert summary["weight_storage"]["binary_ratio"] == pytest.approx(1 / 32)
    for f in ("digits-agmm/model.h5", "map/map.json", "crosscheck.json", "energy/energy.md",
              "digits-dvs-agmm/model.h5", "infer-digits-dvs.json"):
        assert (tmp_path / f).exists(), f
