"""Dataset readers: digits split and encodings, CIFAR pickle batches in the real format, dispatch."""

import os
import pickle

import numpy as np
import pytest

from neuro_agmm.data import load_dataset
from neuro_agmm.data.cifar import CifarFormatError, load_cifar_split, read_batch
from neuro_agmm.data.digits import load_digits_split


def test_digits_direct_split():
    s = load_digits_split(time_steps=3)
    assert s.train_x.shape == (1437, 3, 1, 8, 8) and s.test_x.shape == (360, 3, 1, 8, 8)
    assert s.input_scale == 1 / 16 and s.input_max == 16 and s.n_classes == 10
    assert s.train_x.min() == 0 and s.train_x.max() == 16 and np.issubdtype(s.train_x.dtype, np.integer)
    assert np.array_equal(s.test_x[:, 0], s.test_x[:, 2])  # direct: same levels every step
    assert np.bincount(s.test_y).min() >= 35  # stratified: every class ~36 times
    again = load_digits_split(time_steps=3, seed=5)  # the split does not depend on the run seed
    assert np.array_equal(again.test_y, s.test_y) and np.array_equal(again.test_x, s.test_x)
    s.check()


def test_digits_rate_encoding_seeded():
    a = load_digits_split(time_steps=20, encoding="rate", seed=1)
    b = load_digits_split(time_steps=20, encoding="rate", seed=1)
    c = load_digits_split(time_steps=20, encoding="rate", seed=2)
    assert a.input_scale == 1.0 and a.input_max == 1
    assert set(np.unique(a.train_x)) == {0, 1}
    assert np.array_equal(a.train_x, b.train_x) and not np.array_equal(a.train_x, c.train_x)
    levels = load_digits_split(time_steps=1).train_x[:, 0]
    np.testing.assert_allclose(a.train_x.mean(), levels.mean() / 16, rtol=0.02)
    with pytest.raises(ValueError, match="encoding"):
        load_digits_split(encoding="latency")


def _cifar_images(n, rng):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_cifar10(root, n=4, bytes_keys=True, seed=0):
    """The real CIFAR-10 python layout (Python-2 pickles have bytes keys)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {k("batch_label"): k(f"batch {name}"), k("labels"): [int(v) for v in rng.integers(0, 10, n)],
             k("data"): _cifar_images(n, rng), k("filenames"): [k(f"img_{i}.png") for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        batches[name] = d
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({k("label_names"): [k(str(i)) for i in range(10)]}, f)
    return batches


@pytest.mark.parametrize("bytes_keys", [True, False])
def test_cifar10_reader_real_layout(tmp_path, bytes_keys):
    batches = write_cifar10(tmp_path, bytes_keys=bytes_keys)
    s = load_dataset("cifar10", root=tmp_path, time_steps=2)
    assert s.train_x.shape == (20, 2, 3, 32, 32) and s.test_x.shape == (4, 2, 3, 32, 32)
    assert s.input_scale == 1 / 255 and s.input_max == 255 and s.n_classes == 10
    key = b"data" if bytes_keys else "data"
    raw = batches["data_batch_2"][key][1]
    img = s.train_x[4 + 1, 1]
    # channel-major: 1024 R, then G, then B, each 32x32 row-major
    assert img[0, 0, 5] == raw[5] and img[0, 3, 7] == raw[3 * 32 + 7]
    assert img[1, 0, 0] == raw[1024] and img[2, 31, 31] == raw[3071]
    lk = b"labels" if bytes_keys else "labels"
    assert s.test_y.tolist() == batches["test_batch"][lk]
    s.check()
    # the batch folder itself can be the root
    assert load_cifar_split("cifar10", root=tmp_path / "cifar-10-batches-py", time_steps=1).train_x.shape[0] == 20


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        d = {b"data": _cifar_images(n, rng), b"fine_labels": [99, 0, 50, 1, 2, 3][:n],
             b"coarse_labels": [0] * n, b"filenames": [b"x"] * n, b"batch_label": b"x"}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
    s = load_dataset("cifar100", root=tmp_path, time_steps=1)
    assert s.n_classes == 100 and s.train_y.tolist() == [99, 0, 50, 1, 2, 3]


def test_cifar_missing_and_malformed(tmp_path):
    with pytest.raises(CifarFormatError, match=r"cifar-10-batches-py/\{data_batch_1.*test_batch\}"):
        load_dataset("cifar10", root=tmp_path)
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    with pytest.raises(CifarFormatError, match="data_batch_3.*not a CIFAR"):
        load_dataset("cifar10", root=tmp_path)
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(CifarFormatError, match=r"uint8 \(N, 3072\)"):
        read_batch(bad)
    with open(bad, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(CifarFormatError, match="missing key 'labels'"):
        read_batch(bad)


def test_load_dataset_dispatch_errors():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    assert load_dataset("digits", time_steps=2).time_steps == 2


def _memmapped(a):
    """Whether ``a`` (or an array it views) is a memory-mapped file."""
    while a is not None:
        if isinstance(a, np.memmap):
            return True
        a = a.base if isinstance(a, np.ndarray) else None
    return False


def test_cifar_images_are_cached_once_and_memory_mapped(tmp_path):
    """The first load reads the pickles and writes ``cache/cifar10_v1`` (atomically); later loads map it read-only
    and give the same arrays; changing a batch file rebuilds the cache; ``use_cache=False`` reads the pickles."""
    from neuro_agmm.data.cifar import cache_path

    batches = write_cifar10(tmp_path, n=64)  # 320 training images: 0.9 MiB, well above a load's fixed overhead
    folder = tmp_path / "cifar-10-batches-py"
    first = load_cifar_split("cifar10", root=tmp_path, time_steps=2)
    cache = cache_path(folder, "cifar10")
    assert first.meta["cache"] == str(cache) and (cache / "info.json").is_file()
    assert not any(p.name.startswith(".") for p in cache.parent.iterdir()), "no temporary directory left behind"
    import tracemalloc
    tracemalloc.start()
    second = load_cifar_split("cifar10", root=tmp_path, time_steps=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < second.train_x[:, 0].nbytes / 4, "a cached load must not read the images into memory"
    assert _memmapped(second.train_x) and _memmapped(second.test_x) and not second.train_x.flags.writeable
    plain = load_cifar_split("cifar10", root=tmp_path, time_steps=2, use_cache=False)
    assert plain.meta["cache"] is None and not _memmapped(plain.train_x)
    for a, b in ((second.train_x, plain.train_x), (second.test_x, plain.test_x), (second.train_y, plain.train_y),
                 (second.test_y, plain.test_y)):
        np.testing.assert_array_equal(a, b)
    raw = batches["data_batch_1"][b"data"][2]
    assert second.train_x[2, 1, 0, 0, 7] == raw[7]
    # a changed batch (here: its labels) is noticed by its size or modification time and the cache rebuilt
    d = dict(batches["data_batch_1"])
    d[b"labels"] = [9] * 64
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump(d, f, protocol=2)
    os.utime(folder / "data_batch_1", ns=(1, 1))
    third = load_cifar_split("cifar10", root=tmp_path, time_steps=2)
    assert third.train_y[:64].tolist() == [9] * 64 and _memmapped(third.train_x)


def test_cifar_on_a_read_only_root_reads_the_pickles(tmp_path, monkeypatch):
    """Where the cache cannot be written (a read-only data root: the write fails with PermissionError), the split
    comes from the pickles and says so."""
    import neuro_agmm.data.cifar as cifar

    def refuse(path, fill):
        raise PermissionError(13, "Permission denied", str(path))

    write_cifar10(tmp_path, n=3)
    monkeypatch.setattr(cifar, "write_cache_dir", refuse)
    s = load_cifar_split("cifar10", root=tmp_path, time_steps=1)
    assert s.meta["cache"] is None and s.train_x.shape[0] == 15 and not _memmapped(s.train_x)
