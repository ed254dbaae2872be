"""Model builders: shapes, precisions, activity, the canonical time schedule, layer specs."""

import numpy as np
import pytest
import torch

from neuro_agmm.training.binary_layers import binary_layers
from neuro_agmm.training.lif import lif_step, readout_sequence
from neuro_agmm.training.models import BSNN, ModelConfig, build_from_config, build_model


def test_mlp_structure_and_precisions():
    m = build_model("mlp", (1, 8, 8), 10)
    specs = m.layer_specs()
    assert [s.name for s in specs] == ["fc1", "fc2", "readout"]
    assert [s.precision for s in specs] == ["int8", "binary", "int8"]
    assert [s.spiking for s in specs] == [True, True, False]
    assert specs[0].in_shape == (64,) and specs[0].out_shape == (256,) and specs[-1].out_shape == (10,)
    assert specs[0].leak == 0.5 and specs[0].threshold == 1.0 and specs[0].input_gain == 0.5
    assert specs[-1].leak == 1.0 and specs[-1].input_gain == 1.0
    assert specs[1].bn is not None and specs[-1].bn is None
    assert len(list(binary_layers(m))) == 1


def test_first_last_binary_and_fp():
    m = build_model("mlp", (1, 8, 8), 10, first_last="binary", hidden=(32,))
    assert [s.precision for s in m.layer_specs()] == ["binary", "binary"]
    fp = build_model("mlp", (1, 8, 8), 10, precision="fp", hidden=(32,))
    assert {l.precision for _, l in fp.named_modules() if hasattr(l, "precision")} == {"float"}
    assert [s.precision for s in fp.layer_specs()] == ["int8", "int8"]  # fp exports as int8
    with pytest.raises(ValueError, match="precision"):
        build_model("mlp", (1, 8, 8), 10, precision="ternary")
    with pytest.raises(ValueError, match="arch"):
        build_model("lenet", (1, 8, 8), 10)


def test_forward_shape_activity_and_input_check():
    m = build_model("convnet", (1, 8, 8), 10)
    out = m(torch.rand(3, 5, 1, 8, 8))
    assert out.shape == (5, 10)
    assert set(m.activity) == set(m.stages.keys())
    assert all(0.0 <= r <= 1.0 for r in m.activity.values())
    blk = m.stages["conv2"]
    assert blk.last_input.shape == (3, 5, *blk.in_shape)
    with pytest.raises(ValueError, match="expects input"):
        m(torch.rand(3, 5, 64))


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 8, 8)), ("convnet", (1, 8, 8)), ("convnet", (2, 34, 34))])
def test_layer_spec_shapes_chain(arch, shape):
    specs = build_model(arch, shape, 10).layer_specs()
    prev = int(np.prod(shape))
    for s in specs:
        assert int(np.prod(s.in_shape)) == prev
        n_w = np.asarray(s.weight).shape
        assert n_w[0] == s.out_shape[0] and s.scale.shape == (n_w[0],) and s.bias.shape == (n_w[0],)
        if s.kind == "conv":
            assert s.stride in ((1, 1), (2, 2)) and s.padding == (1, 1)
        prev = int(np.prod(s.out_shape))


def test_canonical_time_loop_equivalence():
    """Layer-by-layer over all steps == for t: for layer: (the canonical schedule), in eval mode."""
    torch.manual_seed(0)
    m = build_model("convnet", (1, 8, 8), 10).eval()
    for blk in m.spiking_blocks():  # non-trivial BN statistics
        bn = blk[1].bn
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.rand(5, 4, 1, 8, 8) * 3
    with torch.no_grad():
        out = m(x)
        vs = {n: torch.zeros(4, *b.out_shape) for n, b in m.stages.items()}
        v_read = []
        for t in range(5):
            h = x[t:t + 1]
            for n, b in m.stages.items():
                z, vs[n] = lif_step(b.currents(h)[0], vs[n], b.lif.norse_parameters())
                h = z[None]
            v_read.append(m.readout.synapse(h[0].reshape(4, -1)))
        manual = readout_sequence(torch.stack(v_read)) / 5
    torch.testing.assert_close(out, manual, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["vgg11", "resnet19"])
def test_paper_scale_archs_forward_backward(arch):
    torch.manual_seed(0)
    m = build_model(arch, (3, 32, 32), 10)
    out = m(torch.rand(1, 2, 3, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 10)
    assert all(l.weight.grad is not None for _, l in binary_layers(m))
    assert len(list(binary_layers(m))) >= 8
    specs = m.layer_specs()
    if arch == "resnet19":  # stem, 8 blocks of two nodes, fc1, readout; 8 shortcuts
        assert len(specs) == 19 and sum(len(s.shortcuts) for s in specs) == 8
    else:
        assert len(specs) == 11  # 8 conv + 2 dense + readout


def test_config_round_trip():
    m = build_model("mlp", (1, 8, 8), 10, hidden=(16, 8), leak=0.25, threshold=0.5)
    cfg = ModelConfig.from_dict(m.config.to_dict())
    m2 = build_from_config(cfg)
    assert isinstance(m2, BSNN) and cfg == m.config
    m2.load_state_dict(m.state_dict())
