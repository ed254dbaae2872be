"""AGMM's forward gate: its formula, learnable parameters, the refusal to export, and the exact fold."""

import numpy as np
import pytest
import torch

from neuro_agmm.artifact import ArtifactError
from neuro_agmm.training.export import model_to_artifact
from neuro_agmm.training.forward_gate import ForwardGate, fold_forward_gates, gate_config, gated_blocks
from neuro_agmm.training.loop import TrainConfig, train
from neuro_agmm.training.models import ModelConfig, build_from_config

torch.set_num_threads(1)
INFO = {"input_shape": [1, 8, 8], "input_scale": 1 / 16, "input_max": 16, "time_steps": 4, "encoding": "direct"}


def gated_model(seed=0, gamma=0.8, k=2.0, c=0.0):
    torch.manual_seed(seed)
    return build_from_config(ModelConfig(arch="mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(32, 24, 16),
                                         forward_gate=gate_config(4, gamma, k, c)))


def test_gate_is_alpha_times_sigmoid_of_the_input_mean_per_sample_and_step():
    g = ForwardGate(4, gamma=0.5, k=3.0, c=0.2)
    a = 0.5 ** np.arange(4)
    assert np.allclose(g.alpha.detach().numpy(), a / (a.mean() * 0.5))  # mean_t α[t]·σ(0) = 1
    x = torch.rand(4, 3, 10)
    cur = torch.randn(4, 3, 7)
    e = x.mean(dim=2).numpy()
    want = (g.alpha.detach().numpy()[:, None] / (1 + np.exp(-3.0 * (e - 0.2))))[..., None] * cur.numpy()
    assert np.allclose(g(cur, x).detach().numpy(), want, atol=1e-6)
    with pytest.raises(ValueError, match="T=4"):
        g(cur[:2], x[:2])


def test_gates_sit_on_binary_blocks_only_and_learn_alpha_k_c():
    model = gated_model()
    names = [n for n, _ in gated_blocks(model)]
    assert names == ["stages.fc2", "stages.fc3"]  # fc1 is the int8 first layer
    model(torch.rand(4, 8, 1, 8, 8)).sum().backward()
    for _, b in gated_blocks(model):
        for p in (b.gate.alpha, b.gate.k, b.gate.c):
            assert p.grad is not None and float(p.grad.abs().sum()) > 0


def test_export_refuses_live_gates_and_the_fold_is_exact_for_a_constant_gate():
    model = gated_model(k=0.0)  # σ(0) = ½ for every input: with a flat α the gate is one constant per layer
    with torch.no_grad():
        for _, b in gated_blocks(model):
            b.gate.alpha.fill_(1.7)
    with pytest.raises(ArtifactError, match="layer .fc2. has AGMM.s forward gate.*fold_forward_gates"):
        model_to_artifact(model, INFO)
    x = torch.rand(4, 16, 1, 8, 8)
    model.train()
    model(x)  # a training step's worth of batch-norm statistics
    model.eval()
    before = model(x).detach()
    factors = fold_forward_gates(model, [x])
    assert factors == {"stages.fc2": pytest.approx(0.85), "stages.fc3": pytest.approx(0.85)}
    assert not gated_blocks(model) and model.config.forward_gate is None
    assert torch.allclose(model(x), before, atol=1e-6)
    art = model_to_artifact(model, INFO)
    assert [l.name for l in art.layers] == ["fc1", "fc2", "fc3", "readout"]


def test_trainer_folds_the_gate_and_reports_the_cost(tmp_path):
    res = train(TrainConfig(dataset="digits", arch="mlp", hidden=[32, 32], epochs=2, time_steps=4, limit_train=256,
                            limit_test=120, progress=False, method="agmm", agmm_where="forward",
                            out=str(tmp_path / "run")))
    gate = res.summary["forward_gate"]
    assert set(gate["factors"]) == {"stages.fc2"} and gate["fold_batches"] == 4  # 256 samples / 64
    assert gate["fold_cost"] == pytest.approx(gate["gated_test_acc"] - gate["folded_test_acc"])
    assert res.summary["artifact_test_acc"] == pytest.approx(gate["folded_test_acc"])
    assert "agmm/gate/stages.fc2" in res.final and "agmm/k/stages.fc2" in res.final
