"""Fuzzing every reader and the artifact: any mutated byte string yields the data or one of the project's
documented errors naming the file — never another exception, a hang or a crash. The campaign itself is
``benchmarks/fuzz_readers.py`` (recorded in docs/fuzz.md); here a seeded share runs by default and a larger
one in the slow group. Below it, regression tests for the cases a fuzz campaign found."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuro_agmm.artifact import ArtifactError, read_artifact, write_artifact
from neuro_agmm.events import EventFileError, ReadStats, SensorSize, make_events, read_events
from neuro_agmm.events.aedat4 import write_aedat4
from neuro_agmm.events.h5npz import write_event_file
from neuro_agmm.events.nmnist import encode_atis, read_nmnist
from random_nets import random_artifact

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_readers", ROOT / "benchmarks" / "fuzz_readers.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


def test_seeded_fuzz_campaign_raises_only_documented_errors():
    tally, failures = fuzz.campaign(per_format=20, seed=11)
    assert len(tally) == len(FORMATS) and sum(sum(c.values()) for c in tally.values()) == 20 * len(FORMATS)
    assert failures == []
    assert all(c["documented"] > 0 for c in tally.values())  # the mutations do reach the error paths


@pytest.mark.slow
def test_larger_fuzz_campaign():
    """6,800 inputs (400 per seed format), every read isolated: no undocumented error, no hang, no crash (libhdf5's own hangs and
    crashes on damaged files are turned into documented errors by ``neuro_agmm.artifact.guard``).

    Run in a fresh interpreter: each HDF5 read forks a preflight child, and forking this test process (torch,
    numba's kernels and the whole suite's memory mapped) made the campaign three times slower (over 600 s
    inside the slow group, 195 s alone)."""
    code = ("import importlib.util, json, sys; spec = importlib.util.spec_from_file_location('f', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "tally, failures = m.campaign(per_format=400, seed=1); "
            "print(json.dumps({'n': sum(sum(c.values()) for c in tally.values()), "
            "'failures': [str(f) for f in failures[:10]], 'n_failures': len(failures)}))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks" / "fuzz_readers.py")], cwd=ROOT,
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n"] == 400 * len(FORMATS) and res["n_failures"] == 0, res["failures"]


def test_nmnist_events_come_back_sorted_and_counted(tmp_path):
    ev = make_events([1, 2, 3], [1, 2, 3], [500, 100, 300], [1, 0, 1])  # out of order in the file
    raw = bytearray()
    for x, y, t, p in zip(ev["x"], ev["y"], ev["t"], ev["p"]):
        raw += bytes([int(x), int(y), (int(p) << 7) | (int(t) >> 16), (int(t) >> 8) & 0xFF, int(t) & 0xFF])
    (tmp_path / "a.bin").write_bytes(bytes(raw))
    stats = ReadStats()
    got, _ = read_nmnist(tmp_path / "a.bin", stats=stats)
    assert got["t"].tolist() == [100, 300, 500] and stats.repaired == {"out_of_order": 1}
    assert encode_atis(got)  # and it round-trips through the writer


@pytest.mark.parametrize("column,value,match", [("x", 65539, "field 'x'"), ("p", 256, "field 'p'"),
                                                ("t", np.inf, "field 't'"), ("t", -5, "field 't'"),
                                                ("t", 2.0 ** 63, "field 't'")])
def test_plain_event_files_refuse_values_instead_of_wrapping(tmp_path, column, value, match):
    cols = {"x": np.array([1, 2], float), "y": np.array([1, 2], float), "t": np.array([10, 20], float),
            "p": np.array([0, 1], float)}
    cols[column][1] = value
    np.savez(tmp_path / "e.npz", **cols)
    with pytest.raises(EventFileError, match=match):
        read_events(tmp_path / "e.npz")


def test_declared_sizes_are_checked_before_allocation(tmp_path, monkeypatch):
    import neuro_agmm.artifact.h5 as h5mod

    with h5py.File(tmp_path / "big.h5", "w") as f:  # 300 M elements declared in a tiny chunked file
        for k in ("x", "y", "t", "p"):
            f.create_dataset(k, shape=(300_000_000,), dtype=np.int32, chunks=(1024,))
    with pytest.raises(EventFileError, match="unwritten chunks"):
        read_events(tmp_path / "big.h5")
    with h5py.File(tmp_path / "zip.h5", "w") as f:  # honest compressed data, but over the read limit
        for k in ("x", "y", "t", "p"):
            f.create_dataset(k, data=np.zeros(4_000_000, np.int8), compression="gzip")
    monkeypatch.setattr(h5mod, "MAX_READ_BYTES", 1 << 20)
    with pytest.raises(EventFileError, match="read limit"):
        read_events(tmp_path / "zip.h5")
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.int64))
    header["shape"] = (300_000_000,)
    with open(tmp_path / "x.npy", "wb") as f:  # an .npy header promising 2.4 GB in a 100-byte file
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 16)
    with pytest.raises(EventFileError, match="not a readable .npy"):
        read_events(tmp_path / "x.npy")


def test_lz4_bomb_and_table_inside_the_header_are_refused(tmp_path, monkeypatch):
    import neuro_agmm.artifact.h5 as h5mod

    ev = make_events(np.zeros(50_000, int), np.zeros(50_000, int), np.arange(50_000), np.zeros(50_000, int))
    path = write_aedat4(tmp_path / "bomb.aedat4", ev, SensorSize(4, 4, 2), compression=1, packet_size=50_000)
    monkeypatch.setattr(h5mod, "MAX_READ_BYTES", 100_000)  # the packet expands to 800 kB: over this limit
    with pytest.raises(EventFileError, match="read limit"):
        read_events(path)


@pytest.mark.parametrize("where,key,value,match", [
    ("bn", "eps", float("nan"), "eps"), ("layer", "leak", -1.0, "leak"), ("root", "time_steps", 0, "time_steps"),
    ("layer", "stride", [1, 1, 1], "stride"), ("root", "input_scale", 0.0, "input_scale"),
    ("layer", "weight_shape", [5, 3], "weight_shape")])
def test_artifact_attributes_are_validated(tmp_path, where, key, value, match):
    art = random_artifact(np.random.default_rng(0), hidden=(6,), bn=True)
    path = write_artifact(art, tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        target = {"root": f, "layer": f["layers/0"], "bn": f["layers/0/bn"]}[where]
        target.attrs[key] = value
    with pytest.raises(ArtifactError, match=match):
        read_artifact(path)


def test_int8_codes_out_of_range_are_refused(tmp_path):
    art = random_artifact(np.random.default_rng(1), hidden=(6,))
    path = write_artifact(art, tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        w = f["layers/1/weight"][()].astype(np.int16)
        w[0, 0] = 25400
        del f["layers/1/weight"]
        f["layers/1/weight"] = w
    with pytest.raises(ArtifactError, match=r"\[-127, 127\]"):
        read_artifact(path)


def test_corrupt_hdf5_names_the_file(tmp_path):
    path = write_event_file(tmp_path / "e.h5", make_events([1], [1], [1], [1]), SensorSize(4, 4, 2))
    data = bytearray(path.read_bytes())
    data[600:700] = b"\xff" * 100
    path.write_bytes(bytes(data))
    with pytest.raises(EventFileError, match="e.h5"):
        read_events(path)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    return fuzz.seed_files(folder, np.random.default_rng(5))


FORMATS = ["nmnist.bin", "aedat2", "aedat3.1", "aedat4", "prophesee.dat", "evt2.raw", "evt3.raw", "tonic.npy",
           "gesture.npy", "events.npz", "events.h5", "artifact.h5", "hardware.h5", "netx.h5", "cifar.pickle",
           "residual.h5", "hardware_residual.h5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_property_any_patch_of_a_valid_file_reads_or_raises_a_documented_error(seeds, fmt, tmp_path):
    """Hypothesis picks where to cut, overwrite or insert bytes in a valid file of each format."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    path, reader = seeds[fmt]
    original = path.read_bytes()

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(pos=st.integers(0, len(original)), cut=st.integers(0, 64), patch=st.binary(max_size=16))
    def check(pos, cut, patch):
        target = tmp_path / f"h_{path.name}"
        target.write_bytes(original[:pos] + patch + original[pos + cut:])
        outcome = fuzz._isolated(reader, target)
        assert outcome.split(":")[0] in ("ok", "documented"), outcome

    check()


def test_negative_timestamps_are_refused(tmp_path):
    from neuro_agmm.events.aedat4 import read_aedat4

    ev = make_events([1, 2], [1, 2], [-5, 10], [1, 0])
    path = write_aedat4(tmp_path / "neg.aedat4", ev, SensorSize(4, 4, 2), compression=0)
    with pytest.raises(EventFileError, match="negative timestamp"):
        read_aedat4(path)


def test_a_file_that_hangs_libhdf5_gives_a_documented_error(monkeypatch):
    """A mutated artifact found by the campaign on which libhdf5 1.14 loops forever inside C (a damaged global
    heap): the reader's forked preflight stops it and raises ArtifactError naming the file."""
    import neuro_agmm.artifact.guard as guard

    monkeypatch.setattr(guard, "READ_TIMEOUT_S", 3.0)
    path = ROOT / "tests" / "data" / "libhdf5_hang_artifact.h5"
    with pytest.raises(ArtifactError, match="libhdf5_hang_artifact.h5"):
        read_artifact(path)


def test_a_reader_that_crashes_its_process_gives_a_documented_error(tmp_path):
    import os
    import signal

    from neuro_agmm.artifact.guard import preflight

    (tmp_path / "f.h5").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="crashed reading it"):
        preflight(tmp_path / "f.h5", lambda p: os.kill(os.getpid(), signal.SIGSEGV), ArtifactError)


def test_a_cifar_pickle_with_a_huge_memo_index_is_read_at_once():
    """A fuzz-found batch whose LONG_BINPUT names memo slot 941,472,508: the C unpickler sizes its memo by it
    and stalls for minutes; ours reads it (or refuses it) without that allocation."""
    from neuro_agmm.data.cifar import CifarFormatError, read_batch

    try:
        x, y = read_batch(ROOT / "tests" / "data" / "cifar_huge_memo_index.pickle")
        assert x.shape[1:] == (3, 32, 32)
    except CifarFormatError as e:
        assert "cifar_huge_memo_index.pickle" in str(e)
