"""lava-dl netx HDF5 export/import. lava-dl does not install here (Python < 3.11 only), so these
tests check the schema its loader reads (lava/lib/dl/netx/hdf5.py) and our own round trip."""

import h5py
import numpy as np
import pytest

from hw_models import core_spec
from hw_models.mapping.netx import export_netx, import_netx
from hw_models.mapping.quantizer import quantize
from hw_models.backends.reference import run_reference
from random_nets import random_artifact, random_inputs, random_int_network


def netx_compatible(net):
    for l in net.layers:  # netx: bias in units of 64, integer effective weights
        l.bias_exp[:] = 6
        l.bias_mant[:] = l.bias_mant // 8
    return net


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_round_trip_runs_identically(kind, tmp_path):
    rng = np.random.default_rng(4)
    net = netx_compatible(random_int_network(rng, kind, depth=3))
    ex = export_netx(net, tmp_path / "n.h5")
    assert ex.max_bias_rounding == 0
    back = import_netx(tmp_path / "n.h5")
    assert back.input_shape == net.input_shape and back.layers[-1].readout
    for s in range(3):
        x = random_inputs(np.random.default_rng(s), net, 6)
        a, b = run_reference(net, x), run_reference(back, x)
        for k in range(len(net.layers)):
            assert np.array_equal(a.spikes[k], b.spikes[k]) and np.array_equal(a.v[k], b.v[k])


def test_schema_matches_what_netx_reads(tmp_path):
    rng = np.random.default_rng(5)
    net = netx_compatible(random_int_network(rng, "conv", depth=3, scalar_vth=True))
    export_netx(net, tmp_path / "n.h5")
    with h5py.File(tmp_path / "n.h5", "r") as f:
        types = [f["layer"][str(i)]["type"][0] for i in range(len(f["layer"]))]
        assert types == [b"conv", b"conv", b"flatten", b"dense"]
        assert f["layer/0/type"].dtype.kind == "S"
        g = f["layer/0"]
        assert tuple(g["shape"][()]) == net.layers[0].out_shape  # (C, H, W); netx reverses it to WHC
        assert g["weight"].shape == net.layers[0].weight_mant.shape  # torch layout (O, C, kH, kW)
        n = g["neuron"]
        assert n["type"][0] == b"CUBA"
        assert int(n["iDecay"][()]) == net.layers[0].du + 1  # netx: du = iDecay - 1
        assert int(n["vDecay"][()]) == net.layers[0].dv
        assert int(n["vThMant"][()]) == int(net.layers[0].vth[0])
        assert {"refDelay", "gradedSpike"} <= set(n)
        assert np.array_equal(g["bias"][()] * 64, net.layers[0].bias)  # netx: bias_exp = 6
        assert np.array_equal(g["weight"][()], net.layers[0].weight_mant.astype(np.int64) << net.layers[0].weight_exp)


def test_refusals(tmp_path):
    rng = np.random.default_rng(6)
    art = random_artifact(rng)
    net, _ = quantize(art)
    with pytest.raises(ValueError, match="not a multiple of 64"):
        export_netx(net, tmp_path / "q.h5")
    ex = export_netx(net, tmp_path / "q.h5", allow_rounding=True)
    assert 0 < ex.max_bias_rounding <= 32 and not ex.scalar_vth
    net.layers[0].weight_exp = -1
    with pytest.raises(ValueError, match="weight_exp=-1"):
        export_netx(net, tmp_path / "q2.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_group("layer/0").create_dataset("type", (1,), "S10", [b"pool"])
    with pytest.raises(ValueError, match="'pool' is not supported"):
        import_netx(tmp_path / "bad.h5")
    assert core_spec.VTH_MAX == import_netx(tmp_path / "q.h5").layers[-1].vth[0]
