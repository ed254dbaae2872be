"""bf16 for binary layers fed by spikes: the forward is bit-identical to float32 (exact chunks), the backward
close to it, and training runs with it."""

import pytest
import torch
import torch.nn.functional as F

from neuro_agmm.training.binary_layers import HALF_EXACT_FAN_IN, _half_exact, use_half_precision
from neuro_agmm.training.models import build_model


def test_chunks_keep_large_fan_ins_exact_where_one_bf16_product_does_not():
    torch.manual_seed(0)
    x = (torch.rand(64, 1500) < 0.5).float()  # spikes
    w = torch.where(torch.rand(40, 1500) < 0.9, 1.0, -1.0)  # sums of several hundred
    exact = F.linear(x, w)
    assert torch.equal(_half_exact(F.linear, x, w, torch.bfloat16, 1), exact)
    plain = F.linear(x.bfloat16(), w.bfloat16()).float()  # one product: its bf16 output rounds sums above 256
    assert not torch.equal(plain, exact) and exact.abs().max() > HALF_EXACT_FAN_IN[torch.bfloat16]
    xc = (torch.rand(2, 64, 6, 6) < 0.4).float()
    wc = torch.where(torch.rand(8, 64, 3, 3) < 0.5, 1.0, -1.0)  # fan-in 576: three chunks of 28 channels
    conv = lambda a, b: F.conv2d(a, b, padding=1)  # noqa: E731
    assert torch.equal(_half_exact(conv, xc, wc, torch.bfloat16, 9), conv(xc, wc))


@pytest.mark.parametrize("arch, shape, kw, first_last, n_half", [
    ("mlp", (1, 8, 8), {}, "int8", 1), ("mlp", (1, 8, 8), {}, "binary", 2),
    ("convnet", (1, 8, 8), {}, "int8", 1), ("resnet19", (3, 16, 16), {"width": 0.25, "threshold": 0.05}, "int8", 19)])
def test_forward_is_bit_identical_and_the_first_layer_stays_float32(arch, shape, kw, first_last, n_half):
    torch.manual_seed(0)
    m = build_model(arch, shape, 10, first_last=first_last, **kw)
    x = torch.rand(3, 4, *shape) * 10
    with torch.no_grad():
        m.train()
        m(x)  # batch-norm statistics off their initial values
    m.eval()
    with torch.no_grad():
        ref = m(x)
    rates = dict(m.activity)
    names = use_half_precision(m, "bf16")
    assert len(names) == n_half and getattr(m.first_synapse(), "half_dtype", None) is None
    with torch.no_grad():
        assert torch.equal(m(x), ref)
    assert min(list(rates.values())[:-1]) > 0.01, rates  # the layers feeding the bf16 layers spike


def test_backward_is_close_to_float32():
    torch.manual_seed(1)
    m = build_model("convnet", (1, 8, 8), 10)
    x = torch.rand(4, 8, 1, 8, 8) * 3
    grads = []
    for precision in ("none", "bf16"):
        use_half_precision(m, precision)
        m.zero_grad()
        m(x).sum().backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    for n, g in grads[0].items():
        err = (grads[1][n] - g).abs().max() / g.abs().max().clamp_min(1e-12)
        assert err < 0.05, (n, float(err))
    with pytest.raises(ValueError, match="half precision"):
        use_half_precision(m, "fp8")


def test_training_with_bf16(tmp_path):
    from neuro_agmm.training.loop import TrainConfig, train

    res = train(TrainConfig(dataset="digits", arch="mlp", method="agmm", epochs=2, time_steps=4, seed=0,
                            half_precision="bf16", out=str(tmp_path / "run"), progress=False))
    assert res.summary["final"]["test_acc"] > 0.5
