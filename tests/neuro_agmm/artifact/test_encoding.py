"""The input encoding travels in the artifact (format v2); v1 files still load, with the documented defaults."""

import h5py
import numpy as np
import pytest

from neuro_agmm.artifact import ArtifactError, InputEncoding, read_artifact, write_artifact
from neuro_agmm.artifact.encoding import DEFAULT_SPAN_US, events_encoding
import random_nets


def _events_art(rng, enc=None):
    art = random_nets.random_artifact(rng, kind="conv", hidden=(3,))
    art.encoding = "events"
    art.provenance["dataset"] = "nmnist"
    art.input_encoding = enc
    return art


def test_record_round_trips_and_is_json_in_the_file(tmp_path):
    enc = events_encoding(8, "time", 2, 15, (34, 34, 2), "nmnist")
    path = write_artifact(_events_art(np.random.default_rng(0), enc), tmp_path / "m.h5")
    with h5py.File(path) as f:
        assert f.attrs["format_version"] == 2 and '"downsample": 2' in f.attrs["encoding_record"]
    got = read_artifact(path).input_encoding
    assert got == enc and got.step_us == DEFAULT_SPAN_US["nmnist"] // 8
    assert got.transform == "neuro_agmm.events.binning.bin_by_time" and got.polarity == "channels"


def test_v1_artifact_loads_with_defaults_and_a_note(tmp_path):
    path = write_artifact(_events_art(np.random.default_rng(1)), tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:  # make it a file as the first landing wrote it
        f.attrs["format_version"] = 1
        del f.attrs["encoding_record"]
    enc = read_artifact(path).input_encoding
    assert enc.kind == "events" and enc.step_us == DEFAULT_SPAN_US["nmnist"] // enc.time_steps
    assert enc.downsample == 0 and enc.clip == read_artifact(path).input_max
    assert any("format v1" in n for n in enc.notes)


def test_v2_without_record_or_with_a_bad_one_is_refused(tmp_path):
    path = write_artifact(_events_art(np.random.default_rng(2)), tmp_path / "m.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["encoding_record"] = "{not json"
    with pytest.raises(ArtifactError, match="encoding_record"):
        read_artifact(path)
    with h5py.File(path, "r+") as f:
        del f.attrs["encoding_record"]
    with pytest.raises(ArtifactError, match="missing attribute 'encoding_record'"):
        read_artifact(path)


def test_trained_event_model_carries_its_binning(tmp_path):
    from neuro_agmm.training.loop import TrainConfig, train

    res = train(TrainConfig(dataset="digits-dvs", epochs=1, time_steps=4, limit_train=64, limit_test=32,
                            out=str(tmp_path / "run"), progress=False, instrument=False))
    enc = read_artifact(res.artifact_path).input_encoding
    assert isinstance(enc, InputEncoding)
    assert (enc.kind, enc.binning, enc.span_us, enc.step_us, enc.clip) == ("events", "time", 300_000, 75_000, 15)
    assert enc.sensor_size == (34, 34, 2) and enc.downsample == 1  # digits-dvs simulates a 34x34 sensor
