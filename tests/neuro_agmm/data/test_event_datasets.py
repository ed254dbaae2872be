import numpy as np
import pytest

from neuro_agmm.events.aedat2 import write_aedat2
from neuro_agmm.events.aedat3 import GestureSegment, write_aedat3, write_gesture_labels
from neuro_agmm.events.aedat4 import write_aedat4
from neuro_agmm.data.event_datasets import (BinningConfig, DatasetNotFoundError, bin_dataset, cache_path,
                                        load_event_split, open_event_dataset, prepare)
from neuro_agmm.events.nmnist import write_nmnist
from neuro_agmm.events.tonic_npy import write_tonic_gesture_npy
from neuro_agmm.events.types import SensorSize, make_events

from ev_helpers import random_events


def _nmnist_tree(root, rng, per_class=(3, 2)):
    for split, n in zip(("Train", "Test"), per_class):
        for d in range(10):
            for i in range(n):
                write_nmnist(root / "nmnist" / split / str(d) / f"{i:05d}.bin",
                             random_events(rng, 50 + d, 34, 34, t_max=300_000))


def test_missing_layout_message(tmp_path):
    for name, needle in (("nmnist", "Train/<digit 0-9>"), ("dvsgesture", "userXX_<lighting>.aedat"),
                         ("cifar10dvs", "cifar10_<class>_<i>.aedat")):
        with pytest.raises(DatasetNotFoundError, match=needle):
            open_event_dataset(name, tmp_path, "train")
        with pytest.raises(DatasetNotFoundError, match=f"datasets/{name}/README.md"):
            load_event_split(name, tmp_path, time_steps=2)


def test_nmnist_split_and_cache(tmp_path):
    _nmnist_tree(tmp_path, np.random.default_rng(0))
    ds = open_event_dataset("nmnist", tmp_path, "test")
    assert len(ds) == 20 and ds.labels.tolist() == sorted([d for d in range(10)] * 2)
    ev, label = ds[3]
    assert label == 1 and len(ev) == 51
    path = prepare("nmnist", tmp_path, time_steps=4, progress=False)
    assert path == cache_path("nmnist", tmp_path, BinningConfig(4))
    split = load_event_split("nmnist", tmp_path, time_steps=4)
    assert split.meta["cache"] == str(path)
    assert split.train_x.shape == (30, 4, 2, 34, 34) and split.test_x.shape == (20, 4, 2, 34, 34)
    assert split.encoding == "events" and split.input_max == 15 and split.input_scale == pytest.approx(1 / 15)
    assert split.train_x.reshape(30, -1).sum(axis=1).tolist() == [50 + d for d in range(10) for _ in range(3)]
    fresh = load_event_split("nmnist", tmp_path, time_steps=4, use_cache=False)
    np.testing.assert_array_equal(fresh.train_x, split.train_x)
    assert isinstance(split.train_x, np.memmap) and not split.train_x.flags.writeable  # read from disk on demand
    assert not list(path.parent.glob(".*"))  # no temporary directory left behind


def test_cache_is_built_with_bounded_memory(tmp_path):
    """Binning writes each recording straight into the memory-mapped file: the peak of Python-visible
    allocations stays far below the size of the frames (here 8 steps × 2 × 34 × 34 × 150 recordings)."""
    import tracemalloc

    _nmnist_tree(tmp_path, np.random.default_rng(0), per_class=(10, 5))
    tracemalloc.start()
    path = prepare("nmnist", tmp_path, time_steps=8, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    split = load_event_split("nmnist", tmp_path, time_steps=8)
    frames = split.train_x.nbytes + split.test_x.nbytes
    assert split.train_x.shape == (100, 8, 2, 34, 34) and frames > 2_700_000
    assert peak < frames / 4, (peak, frames)
    assert path.is_dir() and sorted(p.name for p in path.iterdir()) == \
        ["info.json", "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy"]


def test_clip_counted(tmp_path):
    ev = make_events([1] * 40, [1] * 40, np.arange(40), [1] * 40)  # 40 events on one pixel
    for split in ("Train", "Test"):
        write_nmnist(tmp_path / "nmnist" / split / "0" / "a.bin", ev)
    s = load_event_split("nmnist", tmp_path, time_steps=1, clip=15, use_cache=False)
    assert s.train_x.max() == 15 and s.meta["n_clipped_counts"] == 2 and s.meta["clipped_fraction"] == 1.0


def test_dvsgesture_original_layout(tmp_path):
    rng = np.random.default_rng(1)
    base = tmp_path / "dvsgesture" / "DvsGesture"
    for user in (1, 2, 24):
        ev = random_events(rng, 3000, 128, 128, t_max=3_000_000)
        write_aedat3(base / f"user{user:02d}_lab.aedat", ev, extra_packets=((0, 2),))
        write_gesture_labels(base / f"user{user:02d}_lab_labels.csv",
                             [GestureSegment(user % 11, 0, 1_000_000), GestureSegment(3, 1_000_000, 2_500_000)])
    train = open_event_dataset("dvsgesture", tmp_path, "train")
    test = open_event_dataset("dvsgesture", tmp_path, "test")
    assert len(train) == 4 and len(test) == 2
    assert train.labels.tolist() == [1, 3, 2, 3] and test.labels.tolist() == [2, 3]
    ev, lab = test[1]
    assert ev["t"].min() >= 1_000_000 and ev["t"].max() < 2_500_000
    split = load_event_split("dvsgesture", tmp_path, time_steps=3, use_cache=False)
    assert split.train_x.shape == (4, 3, 2, 32, 32)  # downsampled 4x by default
    assert split.meta["skipped"] == {"packet_type_0": 6}


def test_dvsgesture_tonic_layout(tmp_path):
    rng = np.random.default_rng(2)
    for d, sub in (("ibmGestureTrain", "user01_led"), ("ibmGestureTest", "user25_led")):
        for label in (0, 10):
            write_tonic_gesture_npy(tmp_path / "dvsgesture" / d / sub / f"{label}.npy",
                                    random_events(rng, 100, 128, 128))
    ds = open_event_dataset("dvsgesture", tmp_path, "test")
    assert ds.labels.tolist() == [0, 10] and ds.n_classes == 11
    assert len(ds[1][0]) == 100


def test_cifar10dvs_split_rule(tmp_path):
    rng = np.random.default_rng(3)
    for cls in ("airplane", "truck"):
        for i in (0, 99, 100, 101):
            write_aedat2(tmp_path / "cifar10dvs" / cls / f"cifar10_{cls}_{i}.aedat", random_events(rng, 30, 128, 128))
    write_aedat4(tmp_path / "cifar10dvs" / "bird" / "cifar10_bird_500.aedat4", random_events(rng, 30, 128, 128),
                 SensorSize(128, 128, 2))
    test = open_event_dataset("cifar10dvs", tmp_path, "test")
    train = open_event_dataset("cifar10dvs", tmp_path, "train")
    assert test.labels.tolist() == [0, 0, 9, 9] and train.labels.tolist() == [0, 0, 2, 9, 9]
    x, y, info = bin_dataset(train, BinningConfig(2, downsample=4))
    assert x.shape == (5, 2, 2, 32, 32) and x.reshape(5, -1).sum(1).tolist() == [30] * 5


def test_digits_dvs_split():
    s = load_event_split("digits-dvs", time_steps=4, use_cache=False)
    assert s.train_x.shape == (1437, 4, 2, 34, 34) and s.test_x.shape == (360, 4, 2, 34, 34)
    assert s.n_classes == 10 and s.input_max == 15 and s.train_x.dtype == np.uint8
    assert np.bincount(s.test_y).tolist() == np.bincount(s.test_y, minlength=10).tolist()
    from neuro_agmm.data.digits import load_digits_split
    np.testing.assert_array_equal(load_digits_split(time_steps=1).test_y, s.test_y)  # same split as digits
    ds = open_event_dataset("digits-dvs", split="test")
    x, y, _ = bin_dataset(ds, BinningConfig(4), limit=5)
    np.testing.assert_array_equal(x, s.test_x[:5])  # the vectorized path equals the per-recording path
    assert s.meta["events"] > 1797 * 2000
