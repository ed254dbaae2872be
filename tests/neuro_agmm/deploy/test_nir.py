"""NIR export judged by the tools users load it in (Norse's ``from_nir``, snnTorch's ``import_from_nir``),
and NIR import of graphs those tools (and hand-built graphs) produce."""

import contextlib
import io

import nir
import numpy as np
import pytest
import torch

from neuro_agmm.artifact import read_artifact, write_artifact
from neuro_agmm.data.inputs import load_inputs
from neuro_agmm.deploy.float_model import run_float
from neuro_agmm.deploy.nir import DT, PERFECT_LEAK, export_nir, readout_scores, simulate_nir, to_nir
from neuro_agmm.deploy.nir_import import NirImportError, from_nir
import random_nets

snntorch = pytest.importorskip("snntorch", reason="snnTorch is installed by scripts/setup_env.sh (--no-deps)")
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402
import snntorch.utils  # noqa: E402
import norse.torch  # noqa: E402


@pytest.fixture(scope="module", params=["mlp", "convnet"])
def digits_model(request, tmp_path_factory):
    """A BSNN trained briefly on digits (both demo architectures), its NIR file and the digits test split."""
    from neuro_agmm.training.loop import TrainConfig, train

    out = tmp_path_factory.mktemp(request.param)
    res = train(TrainConfig(dataset="digits", arch=request.param, method="agmm", epochs=2, time_steps=4, seed=0,
                            out=str(out / "run"), progress=False))
    art = read_artifact(res.artifact_path)
    x, _ = load_inputs(art, 360)
    return art, export_nir(art, out / "model.nir"), x


def run_torch_graph(module, x: np.ndarray, stateful: bool) -> np.ndarray:
    """Per-step outputs ``(N, T, n)`` of an imported torch module, one unbatched sample at a time
    (NIR shapes carry no batch axis). ``stateful``: Norse style ``(out, state)``; else snnTorch hidden state."""
    rows = []
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # snnTorch prints per-layer notes
        for sample in x:
            state, steps = None, []
            if not stateful:
                snntorch.utils.reset(module)
            for frame in sample:
                inp = torch.tensor(frame, dtype=torch.float32)
                if stateful:
                    y, state = module(inp, state)
                else:
                    y = module(inp)
                    y = y[0] if isinstance(y, tuple) else y
                steps.append(y.double().numpy().reshape(-1))
            rows.append(steps)
    return np.asarray(rows)


def test_digits_models_run_in_norse_and_snntorch(digits_model):
    art, path, x = digits_model
    graph = nir.read(path)  # the file, as a user would load it
    expected = run_float(art, x).predictions()
    leak = float(graph.metadata["readout_leak"])
    norse_out = run_torch_graph(norse.torch.from_nir(graph, dt=DT), x, stateful=True)
    with contextlib.redirect_stdout(io.StringIO()):
        snn_module = import_from_nir(nir.read(path))
    snn_out = run_torch_graph(snn_module, x, stateful=False)
    agree_norse = np.mean(readout_scores(norse_out, leak).argmax(1) == expected)
    agree_snn = np.mean(readout_scores(snn_out, leak).argmax(1) == expected)
    print(f"\n{art.layers[0].kind} net, {len(x)} digits test samples: agreement with our float model: "
          f"Norse {100 * agree_norse:.2f} %, snnTorch {100 * agree_snn:.2f} %")
    assert agree_norse >= 0.99 and agree_snn >= 0.99, (agree_norse, agree_snn)
    _, sim_out = simulate_nir(graph, x)
    assert np.array_equal(readout_scores(sim_out, leak).argmax(1), expected)


def test_graph_shape_and_conventions(digits_model):
    art, path, _ = digits_model
    g = nir.read(path)
    kinds = [type(n).__name__ for n in g.nodes.values()]
    assert kinds.count("LIF") == len(art.layers) - 1 and "I" not in kinds and "LI" not in kinds
    assert "Flatten" in kinds  # image-shaped input (MLP) or conv output before the dense readout
    assert g.metadata["dt"] == DT and g.metadata["time_steps"] == art.time_steps
    for node in g.nodes.values():
        if isinstance(node, nir.LIF):
            assert np.allclose(node.r, 1.0) and np.allclose(node.tau, DT / (1 - art.layers[0].leak))
            assert node.tau.shape == node.v_threshold.shape  # per-neuron arrays


@pytest.mark.parametrize("kind,kw", [("dense", dict(hidden=(12, 8), bn=True)), ("conv", dict(hidden=(3, 4)))])
def test_simulate_and_import_round_trip_equal_the_float_model(kind, kw, tmp_path):
    rng = np.random.default_rng(7)
    art = random_nets.random_artifact(rng, kind=kind, **kw)
    g = nir.read(export_nir(art, tmp_path / "m.nir"))
    x = random_nets.artifact_inputs(rng, art, 12)
    ft = run_float(art, x)
    spikes, out = simulate_nir(g, x)
    for s_nir, s_f in zip(spikes, ft.spikes):
        assert np.array_equal(s_nir.reshape(s_f.shape), s_f)
    assert np.allclose(readout_scores(out, 1.0), ft.logits, atol=1e-9)
    back = read_artifact(write_artifact(from_nir(g, input_max=art.input_max), tmp_path / "back.h5"))
    assert [l.precision for l in back.layers] == [l.precision for l in art.layers]
    assert back.time_steps == art.time_steps and back.input_max == art.input_max
    fb = run_float(back, x)
    for s_b, s_f in zip(fb.spikes, ft.spikes):
        assert np.array_equal(s_b, s_f)
    assert np.array_equal(fb.predictions(), ft.predictions())


def test_perfect_integrator_and_leaky_readout_in_norse():
    art = random_nets.random_artifact(np.random.default_rng(1), hidden=(6,))
    art.layers[0].leak = 1.0
    art.layers[-1].leak = 0.8
    g = to_nir(art)
    lif = next(n for n in g.nodes.values() if isinstance(n, nir.LIF))
    assert np.allclose(1 - DT / lif.tau, PERFECT_LEAK)
    x = random_nets.artifact_inputs(np.random.default_rng(2), art, 5)
    ft = run_float(art, x)
    spikes, out = simulate_nir(g, x)
    assert np.array_equal(spikes[0], ft.spikes[0])
    assert np.allclose(readout_scores(out, g.metadata["readout_leak"]), ft.logits, rtol=1e-5)
    norse_out = run_torch_graph(norse.torch.from_nir(g, dt=DT), x, stateful=True)
    assert np.allclose(readout_scores(norse_out, 0.8), ft.logits, rtol=1e-4, atol=1e-4)


def test_network_built_in_snntorch_imports_and_agrees():
    """A snnTorch Leaky network exported with snnTorch's own ``export_to_nir`` becomes our artifact."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    lin1, lin2 = torch.nn.Linear(64, 32), torch.nn.Linear(32, 10)
    with torch.no_grad():  # weights on an int8 grid (per-row scale): the import is then exact
        lin1.weight.copy_(torch.tensor(rng.integers(-127, 128, (32, 64)) * 0.004, dtype=torch.float32))
        lin2.weight.copy_(torch.tensor(rng.choice([-1, 1], (10, 32)) * 0.3, dtype=torch.float32))
    net = torch.nn.Sequential(lin1, snntorch.Leaky(beta=torch.full((32,), 0.75), threshold=torch.ones(32),
                                                   init_hidden=True, reset_mechanism="zero", reset_delay=False), lin2)
    graph = export_to_nir(net, torch.zeros(1, 64), ignore_dims=[0])
    art = from_nir(graph, dt=1e-4, time_steps=6, input_max=3)  # snnTorch's exporter uses dt = 1e-4
    assert [l.precision for l in art.layers] == ["int8", "binary"] and art.layers[0].leak == pytest.approx(0.75)
    x = rng.integers(0, 4, size=(40, 6, 64))
    with torch.no_grad():
        snntorch.utils.reset(net)
        ys = [net(torch.as_tensor(x[:, t], dtype=torch.float32)).double().numpy() for t in range(6)]
    expected = np.sum(ys, axis=0)
    assert np.allclose(run_float(art, x).logits, expected, atol=1e-4)
    assert art.provenance["nir_import"]["max_weight_rounding"] < 1e-6


def _lif(n, **kw):
    p = dict(tau=np.full(n, 2e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n))
    p.update(kw)
    return nir.LIF(**p)


def _graph(nodes: dict, meta=None) -> nir.NIRGraph:
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])), metadata=meta or {"dt": 1e-3},
                        type_check=False)


def test_hand_built_graph_with_if_li_thresholds_and_leak_voltage():
    rng = np.random.default_rng(3)
    w1, w2 = rng.integers(-40, 41, (5, 4)) * 0.05, rng.integers(-40, 41, (3, 5)) * 0.1  # on an int8 grid: exact
    graph = _graph({"input": nir.Input({"input": np.array([4])}),
                    "a": nir.Affine(weight=w1, bias=rng.normal(0, 0.2, 5)),
                    "n": _lif(5, v_threshold=rng.uniform(0.5, 2, 5), v_leak=rng.normal(0, 0.3, 5)),
                    "b": nir.Linear(weight=w2), "c": nir.IF(r=np.full(3, 1e3), v_threshold=np.full(3, 0.7)),
                    "d": nir.Affine(weight=rng.integers(-9, 10, (2, 3)) * 0.2, bias=np.zeros(2)),
                    "e": nir.LI(tau=np.full(2, 4e-3), r=np.full(2, 4.0), v_leak=np.zeros(2)),
                    "output": nir.Output({"output": np.array([2])})})
    art = from_nir(graph, time_steps=8)
    x = rng.integers(0, 2, size=(30, 8, 4))
    spikes, out = simulate_nir(graph, x, dt=1e-3)
    ft = run_float(art, x)
    assert all(np.array_equal(a, b) for a, b in zip(spikes, ft.spikes))
    assert np.allclose(out[:, -1], ft.logits)
    assert art.provenance["nir_import"]["max_weight_rounding"] < 1e-9
    assert art.layers[0].threshold == 1.0 and art.layers[1].threshold == pytest.approx(0.7)  # folded / kept


@pytest.mark.parametrize("bad,match", [
    ("cuba", "CubaLIF"), ("reset", "v_reset"), ("spiking_last", "non-spiking readout"), ("branch", "two successors"),
    ("no_dt", "pass dt"), ("conv_thresholds", "within a conv channel"), ("no_flatten", "Flatten is missing"),
])
def test_unsupported_graphs_are_refused_by_name(bad, match):
    n_in = 4
    inp = nir.Input({"input": np.array([n_in])})
    aff = nir.Affine(weight=np.ones((3, n_in)), bias=np.zeros(3))
    head = {"d": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)), "output": nir.Output({"output": np.array([2])})}
    if bad == "cuba":
        g = _graph({"input": inp, "a": aff, "n": nir.CubaLIF(tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3),
                                                              v_leak=np.zeros(3), v_threshold=np.ones(3)), **head})
    elif bad == "reset":
        g = _graph({"input": inp, "a": aff, "n": _lif(3, v_reset=np.full(3, -0.5)), **head})
    elif bad == "spiking_last":
        g = _graph({"input": inp, "a": aff, "n": _lif(3), "output": nir.Output({"output": np.array([3])})})
    elif bad == "branch":
        g = _graph({"input": inp, "a": aff, "n": _lif(3), **head})
        g.edges.append(("a", "d"))
    elif bad == "no_dt":
        g = _graph({"input": inp, "a": aff, "n": _lif(3), **head}, meta={"time_steps": 3})
    elif bad == "conv_thresholds":
        conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=1,
                          bias=np.zeros(2))
        g = _graph({"input": nir.Input({"input": np.array([1, 4, 4])}), "c": conv,
                    "n": _lif(32, v_threshold=np.linspace(1, 2, 32)), "f": nir.Flatten({"input": np.array([2, 4, 4])}, 0),
                    "d": nir.Affine(weight=np.ones((2, 32)), bias=np.zeros(2)),
                    "output": nir.Output({"output": np.array([2])})})
    else:
        g = _graph({"input": nir.Input({"input": np.array([1, 2, 2])}), "a": aff, "n": _lif(3), **head})
    with pytest.raises(NirImportError, match=match):
        from_nir(g, time_steps=3)


def test_convert_cli_then_map_to_lava(tmp_path, capsys):
    """A NIR file from elsewhere → ``neuro_agmm.convert`` → ``neuro_agmm.map --to lava``: 0 Lava mismatches."""
    from neuro_agmm.convert import main as convert
    from neuro_agmm.map import main as map_main

    rng = np.random.default_rng(5)
    art = random_nets.random_artifact(rng, hidden=(8,), n_in=10, time_steps=4)
    nir.write(str(tmp_path / "g.nir"), to_nir(art))
    assert convert([str(tmp_path / "g.nir"), "--out", str(tmp_path / "m.h5")]) == 0
    assert "2 layers, T = 4" in capsys.readouterr().out
    np.savez(tmp_path / "x.npz", x=random_nets.artifact_inputs(rng, art, 6))
    assert map_main(["--to", "lava", str(tmp_path / "m.h5"), "--inputs", str(tmp_path / "x.npz"), "--no-progress",
                     "--out", str(tmp_path / "map")]) == 0
    assert "Lava vs integer reference: 0 sample(s) differ" in capsys.readouterr().out
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    assert convert([str(tmp_path / "junk.nir"), "--out", str(tmp_path / "j.h5")]) == 2
    assert "not a readable NIR graph" in capsys.readouterr().err


def _residual_case():
    art = random_nets.residual_artifact(sc_scale=0.3, id_scale=0.7)
    x = np.random.default_rng(3).integers(0, 4, size=(24, 5, 2, 6, 6))
    return art, x, run_float(art, x)


def test_residual_graph_runs_in_snntorch_and_in_norse_neurons(tmp_path):
    """A residual add is a second synapse node into the target LIF (NIR sums a node's inputs). snnTorch's
    importer (nirtorch's ``nir_to_torch``) runs it exactly; so does Norse's module map (LIF, Affine, Conv2d)
    under that interpreter (nirtorch's own default Affine/Conv2d map is not used: it gives a nonzero output
    for a zero input here)."""
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module

    art, x, ft = _residual_case()
    path = export_nir(art, tmp_path / "res.nir")
    graph = nir.read(path)
    assert {("0_stem_lif", "2_b_identity"), ("2_b_identity", "2_b_lif"), ("2_b_syn", "2_b_lif"),
            ("input", "1_b_conv1_from_input"), ("2_b_lif", "3_d_shortcut")} <= set(graph.edges)
    expected = ft.predictions()
    spikes, sim_out = simulate_nir(graph, x)  # our DAG simulator: the float model's spikes, layer by layer
    for s_nir, s_float in zip(spikes, ft.spikes):
        np.testing.assert_array_equal(s_nir.reshape(s_float.shape), s_float)
    np.testing.assert_array_equal(readout_scores(sim_out, 1.0).argmax(1), expected)
    with contextlib.redirect_stdout(io.StringIO()):
        snn_module = import_from_nir(nir.read(path))
    snn_out = run_torch_graph(snn_module, x, stateful=False)
    norse_map = {kind: (lambda n: _import_norse_module(n, dt=DT)) for kind in (nir.LIF, nir.Affine, nir.Conv2d)}
    norse_module = nirtorch.nir_to_torch(nir.read(path), norse_map)  # Norse's modules, nirtorch's scheduler
    norse_out = run_torch_graph(norse_module, x, stateful=True)
    scores = np.sort(readout_scores(sim_out, 1.0), axis=1)
    clear = scores[:, -1] - scores[:, -2] > 1e-3  # the int8 readout's scores tie often (steps of 0.25)
    assert clear.sum() >= len(x) // 2
    for out in (snn_out, norse_out):
        np.testing.assert_allclose(out, sim_out, atol=1e-3)  # every step's readout current: float32 vs float64
        np.testing.assert_array_equal(readout_scores(out, 1.0).argmax(1)[clear], expected[clear])


def test_norse_from_nir_misorders_residual_graphs():
    """Norse 1.1.0's ``from_nir`` uses nirtorch's deprecated ``GraphExecutor``, whose execution order is a
    depth-first preorder: the target of a residual add runs before its second branch, so that branch arrives
    a step late and the output is read from the wrong node. Chains (every graph before format 3) are not
    affected. This test fails when Norse schedules DAGs topologically: then use ``from_nir`` directly."""
    art, x, _ = _residual_case()
    graph = to_nir(art)
    module = norse.torch.from_nir(graph, dt=DT)
    order = [n.name for n in module.execution_order]
    assert order.index("2_b_lif") < order.index("2_b_identity")  # the add's target before one of its inputs
    assert run_torch_graph(module, x[:2], stateful=True).shape[-1] != 5  # not the readout's 5 classes


def test_chain_importer_refuses_residual_graphs_by_name():
    art, _, _ = _residual_case()
    with pytest.raises(NirImportError, match="two successors"):
        from_nir(to_nir(art))
