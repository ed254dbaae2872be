"""Export: torch model -> artifact -> torch model round trip, validation of broken artifacts, size."""

import h5py
import numpy as np
import pytest
import torch

from neuro_agmm.artifact import ArtifactError, read_artifact
from neuro_agmm.data import load_dataset
from neuro_agmm.training.export import export_artifact, model_from_artifact, predict, weight_storage
from neuro_agmm.training.models import build_model
from neuro_agmm.training.loop import _batch


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", time_steps=4)


def quick_train(model, split, steps=40, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(split.train_y), 64, replace=False)
        loss = torch.nn.functional.cross_entropy(model(_batch(split.train_x, idx, split.input_scale)),
                                                 torch.as_tensor(split.train_y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def _logits(model, split):
    return model(_batch(split.test_x, np.arange(len(split.test_y)), split.input_scale))


@pytest.mark.parametrize("arch,first_last,hidden", [("mlp", "int8", (128, 64)), ("mlp", "binary", (64,)),
                                                    ("convnet", "int8", None)])
def test_round_trip_identical_predictions(tmp_path, digits, arch, first_last, hidden):
    torch.manual_seed(0)
    model = quick_train(build_model(arch, digits.input_shape, 10, first_last=first_last, hidden=hidden), digits,
                        steps=30 if arch == "mlp" else 8)
    with torch.no_grad():  # a negative trained scale must survive export (folded into the signs)
        name, blk = model.spiking_blocks()[-1]
        if blk.synapse.precision == "binary":
            blk.synapse.scale[:3] *= -1
    path = tmp_path / "m.h5"
    export_artifact(model, digits, {"arch": arch, "seed": 3}, {"test_acc": 0.9}, path, method="vanilla")
    art = read_artifact(path)
    assert art.time_steps == 4 and art.input_scale == 1 / 16 and art.input_max == 16 and art.encoding == "direct"
    prov = art.provenance
    assert prov["method"] == "vanilla" and prov["seed"] == 3 and prov["dataset"] == "digits"
    assert all(np.all(l.scale >= 0) for l in art.layers)
    rebuilt = model_from_artifact(path)
    torch.testing.assert_close(_logits(rebuilt, digits), _logits(model, digits), rtol=0, atol=0)
    p1 = predict(model, digits.test_x, digits.input_scale)
    p2 = predict(rebuilt, digits.test_x, art.input_scale)
    assert np.array_equal(p1, p2)
    if arch == "mlp" and first_last == "int8":
        assert (p1 == digits.test_y).mean() > 0.8  # it did learn something


def test_fp_model_exports_as_int8(tmp_path, digits):
    model = quick_train(build_model("mlp", digits.input_shape, 10, precision="fp", hidden=(64,)), digits, steps=30)
    art = export_artifact(model, digits, {}, {}, tmp_path / "fp.h5", method="fp")
    assert {l.precision for l in art.layers} == {"int8"}
    p_fp = predict(model, digits.test_x, digits.input_scale)
    p_q = predict(model_from_artifact(tmp_path / "fp.h5"), digits.test_x, digits.input_scale)
    assert (p_fp == p_q).mean() > 0.9  # post-training int8 keeps nearly all predictions


def test_refuses_nan(tmp_path, digits):
    model = build_model("mlp", digits.input_shape, 10, hidden=(16,)).eval()
    with torch.no_grad():
        model.stages["fc1"].bn.running_var[2] = float("nan")
    with pytest.raises(ArtifactError, match="fc1.*bn/var"):
        export_artifact(model, digits, {}, {}, tmp_path / "nan.h5")
    assert not (tmp_path / "nan.h5").exists()


def test_resnet19_exports_as_a_dag_and_reloads_bit_for_bit(tmp_path):
    """ResNet-19: each residual block is two nodes, the shortcut (identity or 1x1 stride-2 conv + BN) reads the
    node before the block; the frozen network rebuilt from the file gives the trained model's eval outputs."""
    torch.manual_seed(0)
    res = build_model("resnet19", (3, 8, 8), 10, width=1 / 16)
    res.train()
    x = torch.rand(4, 6, 3, 8, 8) * 4
    with torch.no_grad():  # move the batch-norm statistics off their initial values
        for _ in range(3):
            res(x)
    res.eval()
    info = {"dataset": "x", "input_shape": [3, 8, 8], "input_scale": 1 / 255, "input_max": 255,
            "time_steps": 4, "encoding": "direct", "n_classes": 10}
    art = export_artifact(res, info, {}, {}, tmp_path / "r.h5")
    names = [l.name for l in art.layers]
    assert len(names) == 1 + 2 * 8 + 2 and names[:3] == ["conv1", "layer1_0.conv1", "layer1_0"]
    srcs = {l.name: [(sc.name, sc.source, sc.kind, tuple(sc.stride)) for sc in l.shortcuts] for l in art.layers}
    assert srcs["layer1_0"] == [("identity", "conv1", "conv", (1, 1))]
    assert srcs["layer2_0"] == [("shortcut", "layer1_2", "conv", (2, 2))]
    assert srcs["layer2_1"] == [("identity", "layer2_0", "conv", (1, 1))]
    assert srcs["layer1_0.conv1"] == [] and srcs["fc1"] == []
    assert art.layers[names.index("layer2_0")].shortcuts[0].bn is not None
    back = read_artifact(tmp_path / "r.h5")
    assert back.digest() == art.digest()
    xi = torch.randint(0, 256, (4, 3, 3, 8, 8)).float() / 255
    with torch.no_grad():
        assert torch.equal(res(xi), model_from_artifact(back)(xi))


@pytest.fixture()
def artifact_file(tmp_path, digits):
    path = tmp_path / "a.h5"
    export_artifact(build_model("mlp", digits.input_shape, 10, hidden=(16,)).eval(), digits, {}, {}, path)
    return path


def test_corrupted_file(artifact_file):
    data = artifact_file.read_bytes()
    artifact_file.write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError, match="not a readable HDF5"):
        read_artifact(artifact_file)


@pytest.mark.parametrize("edit,match", [
    (lambda f: f.attrs.__setitem__("format_version", 99), "format_version 99"),
    (lambda f: f.attrs.__setitem__("format", "other"), "format is 'other'"),
    (lambda f: f.__delitem__("layers/1/scale"), r"layers/1: missing dataset 'scale'"),
    (lambda f: f["layers/0"].attrs.__delitem__("threshold"), r"layers/0: missing attribute 'threshold'"),
    (lambda f: f["layers/1/bias"].__setitem__(0, np.nan), r"layers/1/bias: contains NaN"),
    (lambda f: f["layers/0/scale"].__setitem__(3, np.inf), r"layers/0/scale: contains NaN or inf"),
    (lambda f: f.__delitem__("layers/0/sign_bits") if "sign_bits" in f["layers/0"] else f.__delitem__(
        "layers/0/weight"), r"layers/0: missing dataset 'weight'"),
    (lambda f: f["layers/0/bn/var"].__setitem__(0, np.nan), r"layers/0/bn/var: contains NaN"),
    (lambda f: f["layers/0/bn/mean"].__setitem__(0, -np.inf), r"layers/0/bn/mean: contains NaN or inf"),
    (lambda f: f["layers/0/bn/var"].__setitem__(1, -1.0), r"layers/0/bn/var: negative variance"),
])
def test_broken_artifacts_name_the_field(artifact_file, edit, match):
    with h5py.File(artifact_file, "r+") as f:
        edit(f)
    with pytest.raises(ArtifactError, match=match):
        read_artifact(artifact_file)


def test_binary_size_ratio(tmp_path, digits):
    model = build_model("mlp", digits.input_shape, 10, hidden=(256, 256)).eval()
    art = export_artifact(model, digits, {}, {}, tmp_path / "s.h5")
    ws = weight_storage(art)
    assert ws["binary_ratio"] == pytest.approx(1 / 32)
    assert ws["binary_weight_bytes"] == 256 * 256 // 8
    with h5py.File(tmp_path / "s.h5") as f:
        assert f["layers/1/sign_bits"].nbytes == 256 * 256 // 8
    print(f"\nweight storage: binary layers {ws['binary_ratio']:.5f} of float32, whole model {ws['ratio']:.4f} "
          f"(int8 first/last layers); file {(tmp_path / 's.h5').stat().st_size} B vs {ws['float32_bytes']} B float32")
