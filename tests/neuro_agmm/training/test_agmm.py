"""AGMM reconstruction: the gradient is modulated exactly as docs/agmm.md says, the forward pass is not."""

import math

import numpy as np

import pytest
import torch

from neuro_agmm.training.agmm import AGMM, AGMMConfig, alpha_schedule, make_callback, modulation_factors
from neuro_agmm.training.binary_layers import BinaryLinear, Int8Linear

torch.set_num_threads(1)

T, B, FIN, FOUT = 3, 4, 5, 6


class Net(torch.nn.Module):
    """int8 -> binary -> binary, applied to flat (T*B, F) inputs (the layout of neuro_agmm.models)."""

    def __init__(self) -> None:
        super().__init__()
        self.l0 = Int8Linear(FIN, FIN)
        self.l1 = BinaryLinear(FIN, FOUT)
        self.l2 = BinaryLinear(FOUT, FOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.l0(x))
        return self.l2(torch.tanh(self.l1(h)))


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    # different activity per time step so the statistic E_t varies with t
    x = torch.rand(T, B, FIN, generator=g) * torch.tensor([0.2, 1.0, 2.0]).view(T, 1, 1)
    r = torch.randn(T * B, FOUT, generator=g)
    return x.reshape(T * B, FIN), r


def _grads(net, x, r, cb=None, steps=1):
    out = None
    for _ in range(steps):
        if cb is not None:
            cb.on_batch_start(net, 0, 0)
        net.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = net(xi)
        (out * r).sum().backward()
        if cb is not None:
            cb.after_backward(net, 0, 0)
    return out.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}, xi.grad.clone()


def _fixed_cfg(**kw):
    base = dict(where="weight", alpha="exp", gamma=0.7, k=3.0, c=0.4, adaptive=False, normalize=True,
                time_steps=T, layout="flat")
    base.update(kw)
    return AGMMConfig(**base)


def test_weight_gradient_is_sum_of_step_contributions_times_hand_factors():
    torch.manual_seed(0)
    net = Net()
    x, r = _data()
    cb = AGMM(_fixed_cfg())
    cb.on_fit_start(net, 1, 1)
    _, g_agmm, _ = _grads(net, x, r, cb)
    cb.remove()

    # hand computation for layer l1: its input at step t is h_t = relu(l0(x_t)); E_t = mean(h_t)
    with torch.no_grad():
        h = torch.relu(net.l0(x)).reshape(T, B, FIN)
    E = h.reshape(T, -1).mean(1)
    alpha = torch.tensor([0.7 ** t for t in range(T)])
    m = alpha * torch.sigmoid(3.0 * (E - 0.4)) / (alpha.mean() * 0.5)
    expected = torch.zeros_like(net.l1.weight)
    for t in range(T):  # contribution of step t alone: only r at step t is nonzero
        rt = torch.zeros_like(r).reshape(T, B, FOUT)
        rt[t] = r.reshape(T, B, FOUT)[t]
        _, g_t, _ = _grads(net, x, rt.reshape(T * B, FOUT))
        expected += m[t] * g_t["l1.weight"]
    assert torch.allclose(g_agmm["l1.weight"], expected, rtol=1e-5, atol=1e-7)
    # the factors really differ over t, so this is not a uniform rescaling
    assert float(m.max() / m.min()) > 1.1
    # the int8 first layer is not modulated: gradient identical to vanilla ("weight" keeps upstream intact)
    _, g_van, _ = _grads(net, x, r)
    assert torch.allclose(g_agmm["l0.weight"], g_van["l0.weight"], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(g_agmm["l1.weight"], g_van["l1.weight"], rtol=1e-3)


def test_forward_outputs_unchanged_and_input_grad_kept_for_weight_variant():
    torch.manual_seed(1)
    net = Net()
    x, r = _data(1)
    out_van, _, gx_van = _grads(net, x, r)
    for where in ("weight", "output", "layer"):
        cb = AGMM(_fixed_cfg(where=where))
        cb.on_fit_start(net, 1, 1)
        out, _, gx = _grads(net, x, r, cb)
        cb.remove()
        assert torch.equal(out, out_van), where  # bit-identical forward
        if where == "output":
            assert not torch.allclose(gx, gx_van, rtol=1e-3)  # the gate propagates upstream
        else:
            assert torch.allclose(gx, gx_van, rtol=1e-5, atol=1e-7), where


def test_layer_variant_scales_weight_grad_by_mean_factor():
    torch.manual_seed(2)
    net = Net()
    x, r = _data(2)
    _, g_van, _ = _grads(net, x, r)
    cb = AGMM(_fixed_cfg(where="layer"))
    cb.on_fit_start(net, 1, 1)
    _, g, _ = _grads(net, x, r, cb)
    with torch.no_grad():
        h = torch.relu(net.l0(x)).reshape(T, -1).mean(1)
    alpha = alpha_schedule("exp", T, 0.7)
    m = modulation_factors(h, alpha, 3.0, 0.4, 1.0, normalize=True).mean()
    assert torch.allclose(g["l1.weight"], g_van["l1.weight"] * m, rtol=1e-5, atol=1e-8)
    # bias/scale are left alone by the "layer" variant
    assert torch.allclose(g["l1.scale"], g_van["l1.scale"])


class SeqLinear(BinaryLinear):
    """A binary layer that takes (T, B, F) at once."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


class Wrapper(torch.nn.Module):
    """Takes (T, B, F) like neuro_agmm.models and calls its binary layer in one of three layouts."""

    def __init__(self, layout: str) -> None:
        super().__init__()
        self.layout = layout
        self.lin = (SeqLinear if layout == "sequence" else BinaryLinear)(FIN, FOUT)

    def forward(self, xs):
        if self.layout == "flat":
            return self.lin(xs.reshape(T * B, FIN)).reshape(T, B, FOUT)
        if self.layout == "step":
            return torch.stack([self.lin(xs[t]) for t in range(T)])
        return self.lin(xs)


@pytest.mark.parametrize("explicit", [True, False])
def test_sequence_and_step_layouts_agree_with_flat(explicit):
    """The same per-step factors whether the layer sees (T,B,F), (T*B,F) or one call per step."""
    x, r = _data(3)
    xs, rs = x.reshape(T, B, FIN), r.reshape(T, B, FOUT)
    grads = {}
    for layout in ("flat", "step", "sequence"):
        torch.manual_seed(3)
        net = Wrapper(layout)
        cb = AGMM(_fixed_cfg(layout=layout if explicit else "auto", time_steps=T if explicit else None))
        cb.on_fit_start(net, 1, 1)
        cb.on_batch_start(net, 0, 0)
        (net(xs) * rs).sum().backward()
        cb.after_backward(net, 0, 0)
        grads[layout] = net.lin.weight.grad.clone()
    torch.manual_seed(3)
    van = Wrapper("flat")
    (van(xs) * rs).sum().backward()
    assert not torch.allclose(grads["flat"], van.lin.weight.grad, rtol=1e-3)
    assert torch.allclose(grads["flat"], grads["sequence"], rtol=1e-5, atol=1e-7)
    assert torch.allclose(grads["flat"], grads["step"], rtol=1e-5, atol=1e-7)


def test_unnormalised_agmm_reduces_gradient_mean_and_variance_on_fixed_batch():
    torch.manual_seed(4)
    net = Net()
    x, r = _data(4)
    _, g_van, _ = _grads(net, x, r)
    cb = AGMM(_fixed_cfg(normalize=False))
    cb.on_fit_start(net, 1, 1)
    _, g, _ = _grads(net, x, r, cb)
    for n in ("l1.weight", "l2.weight"):
        assert g[n].var() < 0.8 * g_van[n].var()
        assert g[n].abs().mean() < g_van[n].abs().mean()


def test_eval_and_no_grad_forwards_are_untouched():
    net = Net()
    x, _ = _data(5)
    cb = AGMM(_fixed_cfg(adaptive=True))
    cb.on_fit_start(net, 1, 1)
    net.eval()
    with torch.no_grad():
        net(x)
    assert all(st.run_mean is None for st in cb._layers)  # no statistics from evaluation


def test_adaptive_state_survives_state_dict_round_trip():
    torch.manual_seed(6)
    net = Net()
    x, r = _data(6)
    cb = AGMM(_fixed_cfg(adaptive=True, anneal=0.5))
    cb.on_fit_start(net, 2, 3)
    _grads(net, x, r, cb, steps=3)
    state = cb.state_dict()
    _, g1, _ = _grads(net, x, r, cb)
    ref = [(s.run_mean, s.run_var) for s in cb._layers]
    cb.remove()
    cb2 = AGMM(AGMMConfig(**state["config"]))
    cb2.load_state_dict(state)
    cb2.on_fit_start(net, 2, 3)
    assert cb2.global_step == 3
    _, g2, _ = _grads(net, x, r, cb2)
    assert [(s.run_mean, s.run_var) for s in cb2._layers] == ref
    assert torch.equal(g1["l1.weight"], g2["l1.weight"])


def test_make_callback_reads_trainer_config_and_validates():
    class Cfg:
        agmm_variant = "layer"
        agmm_k = 5.0
        time_steps = 7

    cb = make_callback(Cfg())
    assert cb.config.where == "layer" and cb.config.k == 5.0 and cb.config.time_steps == 7
    assert make_callback(None, gamma=0.5).config.gamma == 0.5
    with pytest.raises(ValueError, match="where"):
        AGMM(where="nowhere")
    with pytest.raises(ValueError, match="no binary layers"):
        AGMM().on_fit_start(torch.nn.Linear(2, 2), 1, 1)


def test_alpha_schedules():
    assert torch.allclose(alpha_schedule("exp", 3, 0.5), torch.tensor([1.0, 0.5, 0.25]))
    assert torch.allclose(alpha_schedule("linear", 4), torch.tensor([0.25, 0.5, 0.75, 1.0]))
    assert torch.equal(alpha_schedule("const", 2), torch.ones(2))
    m = modulation_factors(torch.tensor([0.0, 0.0]), torch.ones(2), 1.0, 0.0, 1.0, normalize=True)
    assert torch.allclose(m, torch.ones(2))  # at the centre, the normalised factor is exactly 1
    assert math.isclose(float(modulation_factors(torch.tensor([10.0]), torch.ones(1), 1.0, 0.0, 1.0, False)),
                        1 / (1 + math.exp(-10)), rel_tol=1e-6)


def _schema(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = tuple(sorted(k for k in obj.attrs.keys()))
            out[name] = (type(obj).__name__, getattr(obj, "shape", None), getattr(obj, "dtype", None), attrs)
        f.visititems(visit)
        out["/"] = tuple(sorted(f.attrs.keys()))
    return out


def test_real_bsnn_forward_unchanged_and_agmm_artifact_has_vanilla_schema(tmp_path):
    from neuro_agmm.artifact import read_artifact
    from neuro_agmm.training.models import build_model
    from neuro_agmm.training.loop import TrainConfig, train

    # forward of the real model (T, B, F) in training mode: bit-identical with AGMM's hooks installed
    torch.manual_seed(0)
    model = build_model("mlp", (12,), 3, hidden=(16, 16, 16))
    x = torch.rand(4, 5, 12)
    ref = model(x)
    cb = AGMM()
    cb.on_fit_start(model, 1, 1)
    assert [s.name for s in cb._layers] == ["stages.fc2.synapse", "stages.fc3.synapse"]
    cb.on_batch_start(model, 0, 0)
    out = model(x)
    assert torch.equal(out, ref)
    out.sum().backward()
    cb.after_backward(model, 0, 0)
    assert cb.on_epoch_end(model, 0)["agmm/m/stages.fc2.synapse"] > 0
    cb.remove()

    arts = {}
    for method in ("vanilla", "agmm"):
        cfg = TrainConfig(method=method, epochs=1, hidden=[16, 16], limit_train=96, limit_test=40, batch_size=32,
                          out=str(tmp_path / method), progress=False)
        res = train(cfg)
        arts[method] = res.artifact_path
        assert any(k.startswith("agmm/m/") for k in res.metrics[-1]) == (method == "agmm")
        assert "flip/mean" in res.metrics[-1]
    assert _schema(arts["agmm"]) == _schema(arts["vanilla"])  # same groups, datasets, shapes, dtypes, attrs
    a = read_artifact(arts["agmm"])
    assert [l.precision for l in a.layers] == ["int8", "binary", "int8"]
    assert all(set(np.unique(l.weight)) <= {-1.0, 1.0} for l in a.layers if l.precision == "binary")


# --- variants aimed at fewer flips (docs/agmm_variants_flips.md) ----------------------------------

def _step_sum(net, x, r, m, name="l1.weight"):
    """Σ_t m_t · (gradient of ``name`` from step t alone), each step's contribution computed by hand."""
    expected = torch.zeros_like(dict(net.named_parameters())[name])
    for t in range(T):
        rt = torch.zeros_like(r).reshape(T, B, FOUT)
        rt[t] = r.reshape(T, B, FOUT)[t]
        _, g_t, _ = _grads(net, x, rt.reshape(T * B, FOUT))
        expected += m[t] * g_t[name]
    return expected


def _l1_stats(net, x):
    with torch.no_grad():
        return torch.relu(net.l0(x)).reshape(T, -1).mean(1)


def test_damp_variant_negative_k_gives_high_activity_steps_the_smaller_factor():
    torch.manual_seed(7)
    net = Net()
    x, r = _data(7)
    out_van, _, _ = _grads(net, x, r)
    cb = AGMM(_fixed_cfg(k=-3.0))
    cb.on_fit_start(net, 1, 1)
    out, g, _ = _grads(net, x, r, cb)
    cb.remove()
    assert torch.equal(out, out_van)  # forward untouched
    E = _l1_stats(net, x)
    alpha = torch.tensor([0.7 ** t for t in range(T)])
    g_t = 1.0 / (1.0 + torch.exp(3.0 * (E - 0.4)))  # σ(−3 (E − 0.4)) written out
    m = alpha * g_t / (alpha.mean() * 0.5)
    assert torch.allclose(g["l1.weight"], _step_sum(net, x, r, m), rtol=1e-5, atol=1e-7)
    assert int(E.argmax()) == int(g_t.argmin())  # the most active step is damped the most


def test_renorm_variant_factors_average_one_per_batch():
    torch.manual_seed(8)
    net = Net()
    x, r = _data(8)
    out_van, _, _ = _grads(net, x, r)
    cb = AGMM(_fixed_cfg(renorm=True, normalize=False))
    cb.on_fit_start(net, 1, 1)
    out, g, _ = _grads(net, x, r, cb)
    cb.remove()
    assert torch.equal(out, out_van)
    E = _l1_stats(net, x)
    alpha = torch.tensor([0.7 ** t for t in range(T)])
    s = alpha * torch.sigmoid(3.0 * (E - 0.4))
    m = s / s.mean()
    assert math.isclose(float(m.mean()), 1.0, rel_tol=1e-6) and float(m.max() / m.min()) > 1.1
    assert torch.allclose(g["l1.weight"], _step_sum(net, x, r, m), rtol=1e-5, atol=1e-7)
    # the pure function agrees, and anneal scales the renormalised factors
    assert torch.allclose(modulation_factors(E, alpha, 3.0, 0.4, 1.0, normalize=True, renorm=True), m, rtol=1e-6)
    assert torch.allclose(modulation_factors(E, alpha, 3.0, 0.4, 1.0, False, anneal_factor=0.5, renorm=True),
                          0.5 * m, rtol=1e-6)
    with pytest.raises(ValueError, match="renorm"):
        AGMMConfig(renorm=True, layout="step")
    step_net = Wrapper("step")
    cb = AGMM(_fixed_cfg(renorm=True, layout="auto"))
    cb.on_fit_start(step_net, 1, 1)
    cb.on_batch_start(step_net, 0, 0)
    with pytest.raises(ValueError, match="renorm"):
        step_net(x.reshape(T, B, FIN))


def test_brake_variant_scales_latent_gradient_by_sigmoid_of_weight_magnitude():
    from neuro_agmm.training.agmm import BRAKE_FLOOR, brake_factors

    torch.manual_seed(9)
    net = Net()
    with torch.no_grad():  # some latent weights right at / near 0, some far from it
        net.l1.weight[0, :3] = torch.tensor([0.0, 1e-3, -2e-3])
    x, r = _data(9)
    out_van, g_van, gx_van = _grads(net, x, r)
    rho = 0.2

    def psi(w):  # by hand: ψ0 + (1 − ψ0)(2σ(|w|/τ) − 1), τ = ρ·mean|W|
        tau = rho * w.abs().mean()
        return BRAKE_FLOOR + (1 - BRAKE_FLOOR) * (2 / (1 + torch.exp(-w.abs() / tau)) - 1)

    for name in ("l1.weight", "l2.weight"):
        w = dict(net.named_parameters())[name].detach()
        assert torch.allclose(brake_factors(w, rho), psi(w), rtol=1e-6)
    p = psi(net.l1.weight.detach())
    assert math.isclose(float(p[0, 0]), BRAKE_FLOOR, rel_tol=1e-6) and float(p.max()) > 0.99

    # brake alone (m_t ≡ 1: const α, k = 0, fixed centre, "layer"): W.grad = ψ ⊙ vanilla W.grad
    cb = AGMM(_fixed_cfg(where="layer", alpha="const", k=0.0, brake=rho))
    cb.on_fit_start(net, 1, 1)
    out, g, gx = _grads(net, x, r, cb)
    cb.remove()
    assert torch.equal(out, out_van)
    for name in ("l1.weight", "l2.weight"):
        w = dict(net.named_parameters())[name].detach()
        assert torch.allclose(g[name], psi(w) * g_van[name], rtol=1e-5, atol=1e-9)
    assert torch.equal(g["l1.scale"], g_van["l1.scale"]) and torch.equal(g["l0.weight"], g_van["l0.weight"])
    assert torch.allclose(gx, gx_van, rtol=1e-5, atol=1e-7)

    # combined with the α[t]·σ(E) factor of the "weight" variant: ψ ⊙ Σ_t m_t ∂L_t/∂W
    cb = AGMM(_fixed_cfg(brake=rho))
    cb.on_fit_start(net, 1, 1)
    out, g, _ = _grads(net, x, r, cb)
    cb.remove()
    assert torch.equal(out, out_van)
    E = _l1_stats(net, x)
    alpha = torch.tensor([0.7 ** t for t in range(T)])
    m = alpha * torch.sigmoid(3.0 * (E - 0.4)) / (alpha.mean() * 0.5)
    assert torch.allclose(g["l1.weight"], p * _step_sum(net, x, r, m), rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="brake"):
        AGMMConfig(brake=-1.0)
