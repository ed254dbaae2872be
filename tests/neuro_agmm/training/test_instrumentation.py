"""Sign-flip and gradient instrumentation: hand-made updates with known answers."""

import json

import numpy as np
import pytest
import torch

from neuro_agmm.training.agmm import AGMM, AGMMConfig
from neuro_agmm.training.binary_layers import BinaryLinear, Int8Linear
from neuro_agmm.training.instrumentation import InstrumentationCallback, flip_ratio_between

torch.set_num_threads(1)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = Int8Linear(4, 4)
        self.a = BinaryLinear(4, 5)  # 20 weights
        self.b = BinaryLinear(5, 6)  # 30 weights
        self.activity = {}

    def forward(self, x):
        self.activity = {"a": 0.25, "b": 0.5}
        return self.b(self.a(self.first(x)))


def _set(layer, values):
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(values, dtype=torch.float32).reshape(layer.weight.shape))


def test_flip_ratio_on_hand_made_updates():
    net = Net()
    _set(net.a, np.full(20, 0.5))
    _set(net.b, np.full(30, -0.5))
    cb = InstrumentationCallback(per_step=True)
    cb.on_fit_start(net, 1, 2)
    # update 1: flip 2 of a's 20 weights and 3 of b's 30
    for step, (na, nb) in enumerate([(2, 3), (5, 0)]):
        cb.on_batch_start(net, 0, step)
        net.zero_grad()
        net(torch.ones(3, 4)).sum().backward()
        cb.after_backward(net, 0, step)
        wa, wb = net.a.weight.detach().flatten().clone(), net.b.weight.detach().flatten().clone()
        wa[:na] = -wa[:na]
        wb[:nb] = -wb[:nb]
        _set(net.a, wa)
        _set(net.b, wb)
        cb.after_optimizer_step(net, 0, step)
    m = cb.on_epoch_end(net, 0)
    assert m["flip/a"] == pytest.approx((2 / 20 + 5 / 20) / 2)
    assert m["flip/b"] == pytest.approx((3 / 30 + 0) / 2)
    assert m["flip/mean"] == pytest.approx(((2 + 3) / 50 + 5 / 50) / 2)
    # epoch-to-epoch: a's first 2 flipped twice (back), weights 2..4 once -> 3 of 20; b: 3 of 30
    assert m["flip_epoch/a"] == pytest.approx(3 / 20)
    assert m["flip_epoch/b"] == pytest.approx(3 / 30)
    assert m["flip_epoch/mean"] == pytest.approx(6 / 50)
    assert "flip/first" not in m  # int8 layers are not binary
    assert m["rate/a"] == 0.25 and m["rate/mean"] == pytest.approx(0.375)
    assert [r["flip/a"] for r in cb.step_records] == pytest.approx([0.1, 0.25])
    # the next epoch starts from fresh counters
    assert "flip/a" not in cb.on_epoch_end(net, 1)


def test_gradient_statistics_match_numpy_and_see_agmm_modulation():
    torch.manual_seed(0)
    net = Net()
    x = torch.rand(6, 4)
    cb = InstrumentationCallback()
    cb.on_fit_start(net, 1, 1)
    cb.on_batch_start(net, 0, 0)
    net(x).pow(2).sum().backward()
    cb.after_backward(net, 0, 0)
    g = net.a.weight.grad.double().numpy()
    cb.after_optimizer_step(net, 0, 0)
    m = cb.on_epoch_end(net, 0)
    assert m["grad_mean/a"] == pytest.approx(g.mean())
    assert m["grad_var/a"] == pytest.approx(g.var())
    assert m["grad_absmean/a"] == pytest.approx(np.abs(g).mean())

    # registered after AGMM ("layer" variant, unnormalised, fixed centre), it sees the modulated gradient
    agmm = AGMM(AGMMConfig(where="layer", adaptive=False, normalize=False, alpha="const", k=1.0, c=0.0,
                           layout="step", time_steps=1))
    agmm.on_fit_start(net, 1, 1)
    cb.on_fit_start(net, 1, 1)
    for c in (agmm, cb):
        c.on_batch_start(net, 0, 0)
    net.zero_grad()
    net(x).pow(2).sum().backward()
    for c in (agmm, cb):
        c.after_backward(net, 0, 0)
    cb.after_optimizer_step(net, 0, 0)
    m2 = cb.on_epoch_end(net, 0)
    factor = m2["grad_mean/a"] / m["grad_mean/a"]
    with torch.no_grad():
        expected = torch.sigmoid(net.first(x).mean())  # σ(k (E − c)), k = 1, c = 0, E = mean input of a
    assert factor == pytest.approx(float(expected), rel=1e-5)
    assert m2["grad_var/a"] == pytest.approx(m["grad_var/a"] * factor ** 2, rel=1e-6)


def test_flips_from_real_optimizer_step_agree_with_checkpoints(tmp_path):
    torch.manual_seed(1)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    cb = InstrumentationCallback()
    cb.on_fit_start(net, 1, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.save({"model": before, "epoch": 0}, tmp_path / "a.pt")
    cb.on_batch_start(net, 0, 0)
    net(torch.rand(8, 4)).sum().backward()
    cb.after_backward(net, 0, 0)
    opt.step()
    cb.after_optimizer_step(net, 0, 0)
    m = cb.on_epoch_end(net, 0)
    torch.save({"model": net.state_dict(), "epoch": 1}, tmp_path / "b.pt")
    names = ["a.weight", "b.weight"]
    r = flip_ratio_between(tmp_path / "a.pt", tmp_path / "b.pt", names=names)
    assert r["a.weight"] == pytest.approx(m["flip/a"]) and r["b.weight"] == pytest.approx(m["flip/b"])
    assert r["mean"] == pytest.approx(m["flip/mean"])
    assert m["flip/mean"] > 0  # lr 0.5 does flip something
    # state dicts and modules work as inputs too; default names = every >=2-dim weight
    r2 = flip_ratio_between(before, {k: v for k, v in net.state_dict().items()})
    assert set(r2) == {"first.weight", "a.weight", "b.weight", "mean"}
    assert set(flip_ratio_between(before, net)) == {"a.weight", "b.weight", "mean"}  # a module names its binaries
    assert flip_ratio_between(before, before, names=names)["mean"] == 0.0


def test_flip_ratio_between_artifacts(tmp_path):
    from neuro_agmm.artifact import LayerSpec, ModelArtifact, write_artifact

    def art(w, path):
        spec = LayerSpec(name="h", kind="dense", precision="binary", weight=w, scale=np.ones(2), bias=np.zeros(2),
                         in_shape=(4,), out_shape=(2,), leak=0.5, threshold=1.0)
        write_artifact(ModelArtifact([spec], (4,), 1.0, 1, 2, "direct"), path)
        return path

    w = np.ones((2, 4), np.float32)
    w2 = w.copy()
    w2[0, :3] = -1
    r = flip_ratio_between(art(w, tmp_path / "a.h5"), art(w2, tmp_path / "b.h5"))
    assert r == {"h": 3 / 8, "mean": 3 / 8}
    with pytest.raises(KeyError):
        flip_ratio_between({"x.weight": torch.ones(2, 2)}, {"y.weight": torch.ones(2, 2)}, names=["x.weight"])


def test_state_round_trip_keeps_epoch_reference_and_step_log(tmp_path):
    net = Net()
    cb = InstrumentationCallback(per_step=True, step_log_path=tmp_path / "steps.jsonl")
    cb.on_fit_start(net, 2, 1)
    state = cb.state_dict()
    _set(net.a, -net.a.weight.detach())  # every sign of a flips between "epochs"
    cb2 = InstrumentationCallback()
    cb2.load_state_dict(state)
    cb2.on_fit_start(net, 2, 1)
    m = cb2.on_epoch_end(net, 0)
    assert m["flip_epoch/a"] == pytest.approx(1.0) and m["flip_epoch/b"] == 0.0
    cb.on_batch_start(net, 0, 0)
    net(torch.ones(1, 4)).sum().backward()
    cb.after_backward(net, 0, 0)
    cb.after_optimizer_step(net, 0, 0)
    cb.on_epoch_end(net, 0)
    lines = (tmp_path / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["flip/a"] == 0.0


def test_flip_ratio_between_trainer_checkpoints_uses_binary_layers(tmp_path):
    from neuro_agmm.training.loop import TrainConfig, train

    cfg = TrainConfig(method="vanilla", epochs=2, hidden=[12, 12], limit_train=64, limit_test=20, batch_size=32,
                      out=str(tmp_path / "run"), progress=False)
    res = train(cfg)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    init = dict(ck)
    init["model"] = {k: (v.neg() if k == "stages.fc2.synapse.weight" else v) for k, v in ck["model"].items()}
    r = flip_ratio_between(init, tmp_path / "run")  # a run directory reads its checkpoint.pt
    assert set(r) == {"stages.fc2.synapse.weight", "mean"}
    assert r["mean"] == 1.0  # every weight of the only binary layer flipped
    assert flip_ratio_between(tmp_path / "run", res.artifact_path.parent / "checkpoint.pt")["mean"] == 0.0


def test_mid_epoch_resume_gives_the_same_epoch_metrics():
    def steps(net, cb, opt, rng, k):
        for i in range(k):
            cb.on_batch_start(net, 0, i)
            opt.zero_grad()
            net(torch.as_tensor(rng.random((5, 4)), dtype=torch.float32)).pow(2).sum().backward()
            cb.after_backward(net, 0, i)
            opt.step()
            cb.after_optimizer_step(net, 0, i)

    torch.manual_seed(2)
    net = Net()
    init = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    cb = InstrumentationCallback()
    cb.on_fit_start(net, 1, 4)
    steps(net, cb, opt, np.random.default_rng(0), 4)
    full = cb.on_epoch_end(net, 0)

    net.load_state_dict(init)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    cb = InstrumentationCallback()
    cb.on_fit_start(net, 1, 4)
    rng = np.random.default_rng(0)
    steps(net, cb, opt, rng, 2)
    state = cb.state_dict()
    cb2 = InstrumentationCallback()  # "the process was killed": a new callback from the checkpoint
    cb2.load_state_dict(state)
    cb2.on_fit_start(net, 1, 4)
    steps(net, cb2, opt, rng, 2)
    assert cb2.on_epoch_end(net, 0) == pytest.approx(full)
    assert full["flip/mean"] > 0


def _drive(cb, net, grads_a, lr, epoch=0, start=0):
    """Feed hand-made gradients to layer a (b gets none) and take plain SGD steps of ``lr``."""
    for step, g in enumerate(grads_a, start):
        net.a.weight.grad = torch.as_tensor(g, dtype=torch.float32).reshape(net.a.weight.shape)
        net.b.weight.grad = None
        cb.after_backward(net, epoch, step)
        with torch.no_grad():
            net.a.weight -= lr * net.a.weight.grad
        cb.after_optimizer_step(net, epoch, step)


def test_per_weight_gradient_statistics_match_their_definitions():
    """gtoward / gmean_abs / gvar / gsnr are statistics of each weight across minibatches (not the spread of
    one batch across weights), dw is E|Δw| and pw0 the density at 0; all recomputed here with NumPy."""
    rng = np.random.default_rng(3)
    net = Net()
    w0 = rng.normal(0, 0.1, 20)
    _set(net.a, w0)
    _set(net.b, rng.normal(0, 0.1, 30))
    grads = [rng.normal(0.01, 0.02, 20) for _ in range(6)]
    lr = 0.5
    cb = InstrumentationCallback()
    cb.on_fit_start(net, 1, 6)
    _drive(cb, net, grads, lr)
    out = cb.on_epoch_end(net, 0)

    g = np.asarray(grads, dtype=np.float32).astype(np.float64)
    w, signs = np.asarray(w0, dtype=np.float32), []
    for gb in g:  # the sign of w at each update, as the descent moves it
        signs.append(np.where(w >= 0, 1.0, -1.0))
        w = (w - np.float32(lr) * gb.astype(np.float32)).astype(np.float32)
    mean, var = g.mean(0), g.var(0)
    assert out["gtoward/a"] == pytest.approx(float((g * np.asarray(signs)).mean()), rel=1e-9)
    assert out["gmean_abs/a"] == pytest.approx(float(np.abs(mean).mean()), rel=1e-9)
    assert out["gvar/a"] == pytest.approx(float(var.mean()), rel=1e-6)
    assert out["gsnr/a"] == pytest.approx(float((np.abs(mean) / np.sqrt(var)).mean()), rel=1e-6)
    assert out["dw/a"] == pytest.approx(float(np.abs(lr * g).mean()), rel=1e-5)
    a = np.abs(w)
    h = 0.05 * a.mean()
    assert out["pw0/a"] == pytest.approx(float((a < h).mean() / (2 * h)), rel=1e-5)
    assert out["flip_pred/a"] == pytest.approx(out["pw0/a"] * out["dw/a"])
    assert "gvar/b" not in out and "pw0/b" in out  # b got no gradients; its density is still reported


def test_per_weight_statistics_survive_a_mid_epoch_resume():
    rng = np.random.default_rng(4)
    grads = [rng.normal(0, 0.02, 20) for _ in range(6)]
    results = []
    for split in (None, 3):
        net = Net()
        _set(net.a, np.linspace(-0.1, 0.1, 20))
        cb = InstrumentationCallback()
        cb.on_fit_start(net, 1, 6)
        if split is None:
            _drive(cb, net, grads, 0.3)
        else:
            _drive(cb, net, grads[:split], 0.3)
            state = cb.state_dict()
            cb = InstrumentationCallback()
            cb.load_state_dict(state)
            cb.on_fit_start(net, 1, 6)
            _drive(cb, net, grads[split:], 0.3, start=split)
        results.append(cb.on_epoch_end(net, 0))
    for k in ("gtoward/a", "gvar/a", "gsnr/a", "dw/a", "flip/a"):
        assert results[0][k] == pytest.approx(results[1][k], rel=1e-12)


def test_synops_count_input_spikes_times_fan_out_in_a_real_model():
    """synops/<block> of a dense spiking block = Σ input spikes × out_features / batch, over all T steps."""
    from neuro_agmm.training.models import ModelConfig, build_from_config

    torch.manual_seed(0)
    model = build_from_config(ModelConfig(arch="mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(32, 16)))
    x = (torch.rand(3, 5, 1, 8, 8) < 0.3).float()
    cb = InstrumentationCallback()
    cb.on_fit_start(model, 1, 1)
    model(x).sum().backward()
    cb.after_backward(model, 0, 0)
    cb.after_optimizer_step(model, 0, 0)
    out = cb.on_epoch_end(model, 0)
    blocks = dict(model.spiking_blocks())
    s1 = blocks["stages.fc2"].last_input  # fc1's spikes
    assert out["synops/stages.fc2"] == pytest.approx(float(s1.sum()) * 16 / 5, rel=1e-6) and float(s1.sum()) > 0
    assert out["synops/stages.fc1"] == pytest.approx(float(x.sum()) * 32 / 5, rel=1e-6)
