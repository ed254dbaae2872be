"""Our Lava Processes: register validation at construction (before Lava could hang on bad values)."""

import numpy as np
import pytest

import hw_models.backends.lava.procs as lp
from hw_models import core_spec


def test_processes_build_with_valid_registers():
    d = lp.BinaryDense(weights=np.array([[1, -1, 1]]), weight_exp=3, name="d")
    assert d.weights.init.tolist() == [[1, -1, 1]] and d.s_in.shape == (3,) and d.a_out.shape == (1,)
    c = lp.BinaryConv(weights=np.ones((2, 1, 3, 3), np.int8), in_shape=(1, 5, 5), stride=(2, 2), padding=(1, 1))
    assert c.out_shape == (2, 3, 3) and c.a_out.shape == (18,)
    n = lp.CoreLIF(shape=(4,), du=4095, dv=2048, vth=np.arange(4), bias_mant=[1, 2, 3, 4], bias_exp=0,
                   period=5, n_windows=3, record="window")
    assert n.v_win.shape == (4, 3) and n.vth.init.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("kwargs,match", [
    (dict(du=0.5), "du=0.5 must be an integer"),
    (dict(dv=4096), r"dv=4096 outside \[0, 4095\]"),
    (dict(vth=np.array([1.5, 2.0])), "vth must be integers"),
    (dict(vth=np.array([core_spec.VTH_MAX + 1, 0])), "vth values"),
    (dict(bias_exp=np.array([8, 0])), "bias_exp values"),
    (dict(record="some"), "record="),
])
def test_lif_refuses_registers_a_core_cannot_hold(kwargs, match):
    args = dict(shape=(2,), du=4095, dv=2048, vth=np.array([1, 2]))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lp.CoreLIF(**args)


def test_synapses_refuse_bad_weights():
    with pytest.raises(ValueError, match="weights must be integers"):
        lp.BinaryDense(weights=np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="outside"):
        lp.BinaryDense(weights=np.array([[300, 1]]))
    with pytest.raises(ValueError, match="do not fit"):
        lp.BinaryConv(weights=np.ones((2, 3, 3, 3), np.int8), in_shape=(1, 5, 5))


def test_package_modules_have_no_import_side_effects():
    # Lava's compiler executes every module of the package folder under a bare name; re-executing
    # them must only define classes.
    import importlib.util
    from pathlib import Path

    folder = Path(lp.__file__).parent
    for name in ("process", "models"):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        public = {k for k, v in vars(mod).items() if not k.startswith("_") and isinstance(v, type)}
        assert public


def test_floating_pt_models_equal_fixed_where_no_rounding_happens():
    # du = 4095 and dv = 0: no decay truncation, so the float models give the same integers
    from hw_models.integer_network import IntegerNetwork, IntLayer
    from hw_models.backends.lava.runner import run_lava
    from hw_models.backends.reference import run_reference

    rng = np.random.default_rng(0)
    layers = []
    for i, (n_in, n_out) in enumerate([(6, 5), (5, 3)]):
        layers.append(IntLayer(name=f"l{i}", kind="dense", weight_mant=rng.choice([-1, 1], (n_out, n_in)).astype(np.int8),
                               weight_exp=2, weight_bits=1, vth=rng.integers(1, 12, n_out).astype(np.int32),
                               bias_mant=rng.integers(-20, 20, n_out).astype(np.int32),
                               bias_exp=np.zeros(n_out, np.int32), du=4095, dv=0, in_shape=(n_in,), out_shape=(n_out,)))
    net = IntegerNetwork(layers, input_shape=(6,), input_max=2)
    x = rng.integers(0, 3, (6, 6))
    tr, ref = run_lava(net, x, select_tag="floating_pt", timeout=120), run_reference(net, x)
    assert ref.spikes[0].any()
    for k in range(2):
        assert np.array_equal(tr.spikes[k], ref.spikes[k]) and np.array_equal(tr.v[k], ref.v[k])
