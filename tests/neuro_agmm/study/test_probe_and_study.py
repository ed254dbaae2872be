"""The identical-weights probe on a real trained network, and the whole study protocol at a tiny budget."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from neuro_agmm.study.arms import Budget
from neuro_agmm.study.probe import probe
from neuro_agmm.study.protocol import run_study
from neuro_agmm.study.report import CLAIMS, render
from neuro_agmm.study.runner import load_split
from neuro_agmm.training.checkpoint import load_checkpoint
from neuro_agmm.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(dataset="digits", arch="mlp", hidden=[32, 32], epochs=2, time_steps=4, limit_train=320, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("probe") / "vanilla"
    cfg = TrainConfig(**TINY, out=str(out))
    train(cfg)
    return load_checkpoint(out), cfg


def test_probe_separates_step_size_from_gradient_scale(trained):
    """Same weights, same batches: halving the latent learning rate leaves the gradients as they are and cuts
    the flips of both steps; halving every gradient (AGMM 'layer' with k = 0, a constant α and no normalisation:
    m = σ(0) = ½) quarters the variance and cuts SGD's flips, but leaves Adam's step — and its flips — unchanged."""
    ck, cfg = trained
    split = load_split("digits", cfg.data_root, cfg.time_steps, cfg.encoding)
    half = {"method": "agmm", "agmm_where": "layer", "agmm_k": 0.0, "agmm_alpha": "const", "agmm_adaptive": False,
            "agmm_normalize": False}
    res = probe(ck, split, cfg, {"vanilla": {"method": "vanilla"}, "lr/2": {"binary_lr_scale": 0.5},
                                 "grad/2": half}, n_batches=6)
    v, lr2, g2 = res["vanilla"], res["lr/2"], res["grad/2"]
    assert v["batches"] == 6 and 0 < v["flip_sgd"] < 0.5 and 0 < v["flip_adam"] < 0.5
    for k in ("gtoward", "gvar", "gsnr"):
        assert lr2[k] == pytest.approx(v[k], rel=1e-12)
    assert lr2["flip_sgd"] < v["flip_sgd"] and lr2["flip_adam"] < v["flip_adam"]
    assert g2["gvar"] == pytest.approx(v["gvar"] / 4, rel=1e-6) and g2["gsnr"] == pytest.approx(v["gsnr"], rel=1e-6)
    assert g2["flip_sgd"] < v["flip_sgd"]
    assert g2["flip_adam"] == pytest.approx(v["flip_adam"], rel=1e-3)  # Adam is invariant to a gradient scale
    again = probe(ck, split, cfg, {"vanilla": {"method": "vanilla"}}, n_batches=6)
    assert again["vanilla"] == v  # deterministic


def test_probe_refuses_weights_of_another_network(trained):
    ck, cfg = trained
    split = load_split("digits", cfg.data_root, cfg.time_steps, cfg.encoding)
    other = replace(ck, model_config=dict(ck.model_config, hidden=[16, 16]))
    with pytest.raises(Exception, match="size mismatch|do not fit"):
        probe(other, split, cfg, {"vanilla": {}}, n_batches=2)


def test_tiny_study_runs_the_protocol_reports_and_resumes(tmp_path):
    budget = Budget("tiny", {"default": 2}, selection_seeds=1, test_seeds=2, headline_seeds=2, probe_batches=2)
    kw = dict(hidden=[16, 16], limit_train=256, limit_test=120)
    study = run_study(["digits"], budget, tmp_path, workers=2, **kw)
    d = study["datasets"]["digits"]
    assert {r["phase"] for r in d["selection"]} == {"selection"} and {r["seed"] for r in d["selection"]} == {1000}
    assert {r["seed"] for r in d["test"]} == {0, 1}  # test numbers from seeds never used for a choice
    arms = {r["arm"] for r in d["test"]}
    assert {"vanilla", "vanilla@x0.25", "agmm", "agmm-forward", "agmm-sgd", "fp", d["choices"]["sgd_arm"]} <= arms
    assert d["split_sizes"] == {"train": 1217, "val": 220, "test": 360}
    assert set(d["probe"]) >= {"vanilla", "vanilla@x0.5", "agmm", "agmm-forward"}
    assert json.loads((tmp_path / "study.json").read_text())["budget"]["name"] == "tiny"
    text, verdicts = render(study, tmp_path / "figs", "python -m neuro_agmm.study (test)")
    for claim, *_ in CLAIMS:
        assert claim in text and verdicts["digits"]["agmm vs vanilla"][claim]["n"] == 2
    assert (tmp_path / "figs" / "frontier_digits.png").stat().st_size > 10_000
    assert (tmp_path / "figs" / "flip_curves.png").stat().st_size > 10_000
    fwd = [r for r in d["test"] if r["arm"] == "agmm-forward"]
    assert all(r["forward_gate"]["fold_batches"] == 4 for r in fwd)  # 256 samples / 64
    again = run_study(["digits"], budget, tmp_path, workers=1, **kw)
    assert all(r["reused"] for r in again["datasets"]["digits"]["test"])
    assert [r["test_acc"] for r in again["datasets"]["digits"]["test"]] == [r["test_acc"] for r in d["test"]]


def test_cli_report_only_without_a_study_is_one_error_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "neuro_agmm.study", "--report-only", "--out", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "study.json" in p.stderr
    h = subprocess.run([sys.executable, "-m", "neuro_agmm.study", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert h.returncode == 0 and "--budget" in h.stdout and "examples:" in h.stdout
