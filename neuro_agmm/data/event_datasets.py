"""Event-camera datasets over the ``datasets/`` root, and their binned ``DatasetSplit`` form.

Why: training and evaluation want ``(N, T, P, H, W)`` integer count frames; streaming
inference wants the raw ``(events, label)`` recordings. Both come from here:

* ``open_event_dataset(name, root, split)`` -> an ``EventDataset`` (``len``, ``ds[i] ->
  (events, label)``, ``sensor_size``, ``classes``) for ``digits-dvs`` (embedded,
  simulated, needs no files), ``nmnist``, ``dvsgesture``, ``cifar10dvs`` (the files the
  user supplies, layouts in ``datasets/<name>/README.md`` and ``LAYOUTS`` below).
* ``load_event_split(name, root, time_steps, ...)`` -> ``DatasetSplit`` with
  ``encoding="events"``: each recording binned by time over its own span (or by event
  count), optionally downsampled, counts **clipped** to ``clip`` (default 15: 4-bit
  graded spikes; the fraction of clipped counts is in ``meta["clipped_fraction"]``),
  ``input_max = clip`` and ``input_scale = 1 / clip`` (so the float model sees inputs in
  [0, 1], as for the frame datasets). ``digits-dvs`` is binned over its fixed 300 ms.
* ``prepare(name, root, time_steps, ...)`` writes that split to a cache **directory**
  ``datasets/<name>/cache/<key>_v2/`` of plain ``.npy`` files (``train_x``, ``train_y``, ``test_x``,
  ``test_y``) and ``info.json``, written into a temporary directory and renamed into place (atomic),
  recordings binned one by one straight into the memory-mapped file (bounded memory at any dataset
  size; a progress bar over recordings). ``load_event_split`` opens the frames **memory-mapped**
  (``np.load(mmap_mode="r")``), so a training run reads only the batches it draws, and builds (and
  caches) the split when no cache is there. v1 caches (one compressed ``.npz``) are not read any more.

Splits: N-MNIST ``Train``/``Test`` folders; DVS Gesture users 1-23 train / 24-29 test;
CIFAR10-DVS has no official split: recordings with index < 100 per class are the test
set (a common choice), the rest train; digits-dvs uses the digits split of
``neuro_agmm.data.digits`` (stratified 1437/360, fixed). Event datasets are fixed
recordings, so ``seed`` does not change them (``sim_seed`` varies the simulated sensor).

Left out: data augmentation, N-Caltech101 (the reader exists: ``events.nmnist``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from neuro_agmm.data.cache import read_cache_dir, write_cache_dir
from neuro_agmm.data.split import DatasetSplit
from neuro_agmm.events.binning import bin_by_count, bin_by_time, downsampled_size
from neuro_agmm.events.types import EventFileError, ReadStats, SensorSize

EVENT_DATASETS = ("digits-dvs", "nmnist", "dvsgesture", "cifar10dvs")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10DVS_TEST_PER_CLASS = 100
DEFAULT_DOWNSAMPLE = {"digits-dvs": 1, "nmnist": 1, "dvsgesture": 4, "cifar10dvs": 4}
DEFAULT_CLIP = 15
LAYOUTS = {
    "nmnist": "datasets/nmnist/Train/<digit 0-9>/<id>.bin and datasets/nmnist/Test/<digit 0-9>/<id>.bin "
              "(the unzipped Train.zip / Test.zip of N-MNIST)",
    "dvsgesture": "datasets/dvsgesture/DvsGesture/userXX_<lighting>.aedat with userXX_<lighting>_labels.csv "
                  "(the original DvsGesture.tar.gz), or tonic's preprocessed "
                  "datasets/dvsgesture/ibmGestureTrain|ibmGestureTest/<userXX_lighting>/<label>.npy",
    "cifar10dvs": "datasets/cifar10dvs/<class>/cifar10_<class>_<i>.aedat (AEDAT 2.0 originals) or .aedat4 "
                  "(tonic's re-packaged files), class in airplane, automobile, ..., truck",
}


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where the readers expect them; the message names the layout."""


def _missing(name: str, root: Path, detail: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{name}: {detail} under {root}; expected layout: {LAYOUTS[name]} "
                                f"(see datasets/{name}/README.md)")


@dataclass
class EventDataset:
    """Recordings of one split: ``ds[i] -> (events, label)``; ``stats`` sums what readers skipped."""

    name: str
    split: str
    sensor_size: SensorSize
    classes: tuple[str, ...]
    labels: np.ndarray
    sources: list[str]  # one human-readable source per recording (file, or file#segment)
    _load: Callable[[int, ReadStats], np.ndarray]
    fixed_span_us: Optional[int] = None  # bin over [0, span) instead of each recording's own span
    stats: ReadStats = field(default_factory=ReadStats)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        return self._load(i, self.stats), int(self.labels[i])

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# ----------------------------------------------------------------------------- digits-dvs

_SIM_CACHE: dict = {}


def _simulated(sim_seed: int):
    """The simulated digits (memoised: one config at a time) and their fixed train/test indices."""
    from sklearn.model_selection import train_test_split

    from neuro_agmm.data.digits import N_TEST, SPLIT_SEED
    from neuro_agmm.data.dvs_sim import DVSSimConfig, simulate_digits

    cfg = DVSSimConfig(seed=sim_seed)
    if cfg not in _SIM_CACHE:
        _SIM_CACHE.clear()
        sim = simulate_digits(cfg)
        idx_tr, idx_te = train_test_split(np.arange(len(sim)), test_size=N_TEST, stratify=sim.labels,
                                          random_state=SPLIT_SEED)
        _SIM_CACHE[cfg] = (sim, {"train": idx_tr, "test": idx_te})
    return _SIM_CACHE[cfg]


def _digits_dvs(split: str, sim_seed: int = 0) -> EventDataset:
    sim, splits = _simulated(sim_seed)
    idx = splits[split]

    def load(i: int, stats: ReadStats) -> np.ndarray:
        ev = sim.sample(int(idx[i]))
        stats.n_events += len(ev)
        return ev

    return EventDataset("digits-dvs", split, sim.sensor_size, tuple(str(d) for d in range(10)), sim.labels[idx],
                        [f"digits[{int(j)}]" for j in idx], load, fixed_span_us=sim.config.duration_us)


# ----------------------------------------------------------------------------- file datasets

def _nmnist(root: Path, split: str) -> EventDataset:
    from neuro_agmm.events.nmnist import NMNIST_SENSOR, read_nmnist

    base = root / "nmnist" / {"train": "Train", "test": "Test"}[split]
    if not base.is_dir():
        raise _missing("nmnist", root, f"no folder {base.relative_to(root)}")
    files, labels = [], []
    for d in range(10):
        fs = sorted((base / str(d)).glob("*.bin"))
        files += fs
        labels += [d] * len(fs)
    if not files:
        raise _missing("nmnist", root, f"no .bin files in {base}/<digit>/")
    return EventDataset("nmnist", split, NMNIST_SENSOR, tuple(str(d) for d in range(10)), np.array(labels),
                        [str(f) for f in files], lambda i, st: read_nmnist(files[i], stats=st)[0])


def _dvsgesture(root: Path, split: str) -> EventDataset:
    from neuro_agmm.events import aedat3, tonic_npy

    base = root / "dvsgesture"
    tonic_dir = base / (tonic_npy.TRAIN_DIR if split == "train" else tonic_npy.TEST_DIR)
    if tonic_dir.is_dir():
        files = sorted(tonic_dir.glob("*/*.npy"))
        if not files:
            raise _missing("dvsgesture", root, f"no .npy files in {tonic_dir}/<user_lighting>/")
        return EventDataset("dvsgesture", split, tonic_npy.DVS_GESTURE_SENSOR, aedat3.GESTURE_CLASSES,
                            np.array([tonic_npy.label_of(f) for f in files]), [str(f) for f in files],
                            lambda i, st: tonic_npy.read_tonic_gesture_npy(files[i], stats=st)[0])
    orig = base / "DvsGesture" if (base / "DvsGesture").is_dir() else base
    users = aedat3.TRAIN_USERS if split == "train" else aedat3.TEST_USERS
    recs = [f for f in sorted(orig.glob("user*.aedat")) if aedat3.parse_gesture_name(f)[0] in users]
    if not recs:
        raise _missing("dvsgesture", root, f"no userXX_<lighting>.aedat files for users {users.start}-"
                                            f"{users.stop - 1} in {orig}")
    items, labels = [], []
    for f in recs:
        csv = f.with_name(f.stem + "_labels.csv")
        if not csv.exists():
            raise EventFileError(f, f"label file {csv.name} is missing next to it")
        for k, seg in enumerate(aedat3.read_gesture_labels(csv)):
            items.append((f, seg, k))
            labels.append(seg.label)
    cache: dict = {}

    def load(i: int, st: ReadStats) -> np.ndarray:
        f, seg, _ = items[i]
        if cache.get("file") != f:  # recordings are read once per file when iterated in order
            local = ReadStats()
            cache.update(file=f, events=aedat3.read_aedat3(f, stats=local)[0])
            st.skipped.update({k: st.skipped.get(k, 0) + v for k, v in local.skipped.items()})
        ev = aedat3.cut_segments(cache["events"], [seg])[0][0]
        st.n_events += len(ev)
        return ev

    return EventDataset("dvsgesture", split, aedat3.DVS_GESTURE_SENSOR, aedat3.GESTURE_CLASSES, np.array(labels),
                        [f"{f}#{k}" for f, _, k in items], load)


def _cifar10dvs(root: Path, split: str) -> EventDataset:
    from neuro_agmm.events.aedat2 import DVS128_SENSOR, read_aedat2
    from neuro_agmm.events.aedat4 import read_aedat4

    base = root / "cifar10dvs"
    files, labels = [], []
    for c, cls in enumerate(CIFAR10_CLASSES):
        for f in sorted((base / cls).glob(f"cifar10_{cls}_*.aedat*")):
            try:
                i = int(f.name.split("_")[-1].split(".")[0])
            except ValueError:
                raise EventFileError(f, "name is not cifar10_<class>_<index>.aedat[4]") from None
            if (i < CIFAR10DVS_TEST_PER_CLASS) == (split == "test"):
                files.append(f)
                labels.append(c)
    if not files:
        raise _missing("cifar10dvs", root, "no cifar10_<class>_<i>.aedat files")

    def load(i: int, st: ReadStats) -> np.ndarray:
        f = files[i]
        if f.suffix == ".aedat4":
            ev, sensor = read_aedat4(f, stats=st)
            if tuple(sensor[:2]) != (128, 128):
                raise EventFileError(f, f"sensor {tuple(sensor)} is not the DVS128's 128x128")
            return ev
        return read_aedat2(f, stats=st)[0]

    return EventDataset("cifar10dvs", split, DVS128_SENSOR, CIFAR10_CLASSES, np.array(labels),
                        [str(f) for f in files], load)


def open_event_dataset(name: str, root: str | os.PathLike = "datasets", split: str = "train",
                       sim_seed: int = 0) -> EventDataset:
    """The recordings of ``split`` ("train"/"test") of event dataset ``name``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    if name == "digits-dvs":
        return _digits_dvs(split, sim_seed)
    if name == "nmnist":
        return _nmnist(root, split)
    if name == "dvsgesture":
        return _dvsgesture(root, split)
    if name == "cifar10dvs":
        return _cifar10dvs(root, split)
    raise ValueError(f"unknown event dataset {name!r}; choose from {', '.join(EVENT_DATASETS)}")


# ----------------------------------------------------------------------------- binning into a split

@dataclass(frozen=True)
class BinningConfig:
    time_steps: int
    binning: str = "time"  # "time" (over each recording's span) or "count"
    downsample: int = 1
    clip: int = DEFAULT_CLIP

    def key(self) -> str:
        return f"T{self.time_steps}_{self.binning}_ds{self.downsample}_clip{self.clip}"


def bin_recording(events: np.ndarray, ds: EventDataset, cfg: BinningConfig) -> np.ndarray:
    """One recording -> unclipped count frames ``(T, P, H', W')`` int32 under ``cfg``."""
    if cfg.binning == "time":
        if ds.fixed_span_us is not None:
            return bin_by_time(events, ds.sensor_size, cfg.time_steps, 0, ds.fixed_span_us, cfg.downsample)
        return bin_by_time(events, ds.sensor_size, cfg.time_steps, downsample=cfg.downsample)
    if cfg.binning == "count":
        return bin_by_count(events, ds.sensor_size, cfg.time_steps, downsample=cfg.downsample)
    raise ValueError(f"binning must be 'time' or 'count', got {cfg.binning!r}")


def frames_shape(ds: EventDataset, cfg: BinningConfig, limit: Optional[int] = None) -> tuple[int, ...]:
    """``(N, T, P, H, W)`` of ``ds`` binned under ``cfg``."""
    n = len(ds) if limit is None else min(limit, len(ds))
    out = downsampled_size(ds.sensor_size, cfg.downsample)
    return (n, cfg.time_steps, out.P, out.H, out.W)


def bin_dataset(ds: EventDataset, cfg: BinningConfig, progress: bool = False, limit: Optional[int] = None,
                out: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """All recordings of ``ds`` binned and clipped: ``x (N, T, P, H, W) uint8``, ``y (N,)``, stats.

    ``out``: an array of ``frames_shape`` to fill (e.g. a memory-mapped ``.npy``), else one is allocated.
    """
    if not 1 <= cfg.clip <= 255:
        raise ValueError(f"clip must be in 1..255, got {cfg.clip}")
    shape = frames_shape(ds, cfg, limit)
    n = shape[0]
    if out is not None and (out.shape != shape or out.dtype != np.uint8):
        raise ValueError(f"bin_dataset: out is {out.dtype} {out.shape}, needs uint8 {shape}")
    x = np.zeros(shape, np.uint8) if out is None else out
    n_nonzero = n_clipped = 0
    it = range(n)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f"binning {ds.name}/{ds.split}", unit="rec")
    for i in it:
        ev, _ = ds[i]
        f = bin_recording(ev, ds, cfg)
        n_nonzero += int(np.count_nonzero(f))
        n_clipped += int(np.count_nonzero(f > cfg.clip))
        x[i] = np.minimum(f, cfg.clip)
    info = {"n_nonzero_counts": n_nonzero, "n_clipped_counts": n_clipped, "events": ds.stats.n_events,
            "skipped": dict(ds.stats.skipped)}
    return x, ds.labels[:n].astype(np.int64), info


def _digits_dvs_fast(cfg: BinningConfig, sim_seed: int) -> tuple[dict, dict]:
    """digits-dvs binned for all samples in one vectorized pass (same result as ``bin_dataset``)."""
    from neuro_agmm.events.binning import time_bin_index

    sim, splits = _simulated(sim_seed)
    out = {}
    info = {"n_nonzero_counts": 0, "n_clipped_counts": 0, "events": len(sim.events), "skipped": {}}
    o = downsampled_size(sim.sensor_size, cfg.downsample)
    per = o.P * o.H * o.W
    sample_of = sim.sample_index()
    b = time_bin_index(sim.events["t"], cfg.time_steps, 0, sim.config.duration_us)
    pix = ((sim.events["p"].astype(np.int64) * o.H + sim.events["y"] // cfg.downsample) * o.W
           + sim.events["x"] // cfg.downsample)
    for split, idx in splits.items():
        pos = np.full(len(sim), -1, np.int64)
        pos[idx] = np.arange(len(idx))
        smp = pos[sample_of]
        keep = smp >= 0
        counts = np.bincount((smp[keep] * cfg.time_steps + b[keep]) * per + pix[keep],
                             minlength=len(idx) * cfg.time_steps * per)
        info["n_nonzero_counts"] += int(np.count_nonzero(counts))
        info["n_clipped_counts"] += int(np.count_nonzero(counts > cfg.clip))
        out[f"{split}_x"] = np.minimum(counts, cfg.clip).astype(np.uint8).reshape(len(idx), cfg.time_steps,
                                                                                   o.P, o.H, o.W)
        out[f"{split}_y"] = sim.labels[idx].astype(np.int64)
    return out, info


CACHE_VERSION = 2  # bump when readers or binning change what a cache holds (2: memory-mapped .npy directory)
CACHE_ARRAYS = ("train_x", "train_y", "test_x", "test_y")


def cache_path(name: str, root: str | os.PathLike, cfg: BinningConfig, sim_seed: int = 0) -> Path:
    """Cache file of a binned split; digits-dvs names carry a hash of the simulator config."""
    extra = ""
    if name == "digits-dvs":
        from dataclasses import asdict

        from neuro_agmm.data.dvs_sim import DVSSimConfig
        h = hashlib.sha1(json.dumps(asdict(DVSSimConfig(seed=sim_seed)), sort_keys=True).encode()).hexdigest()[:8]
        extra = f"_sim{sim_seed}-{h}"
    return Path(root) / name / "cache" / f"{name}_{cfg.key()}{extra}_v{CACHE_VERSION}"


def _build(name: str, root: Path, cfg: BinningConfig, sim_seed: int, progress: bool,
           limit: Optional[int], into: Optional[Path] = None) -> tuple[dict, dict]:
    """Bin both splits; with ``into`` (a directory) the frames are written there as memory-mapped ``.npy``."""
    if name == "digits-dvs" and limit is None and cfg.binning == "time":
        arrays, info = _digits_dvs_fast(cfg, sim_seed)
        if into is not None:
            for k, v in arrays.items():
                np.save(into / f"{k}.npy", v)
        return arrays, info
    arrays: dict = {}
    info = {"n_nonzero_counts": 0, "n_clipped_counts": 0, "events": 0, "skipped": {}}
    for split in ("train", "test"):
        ds = open_event_dataset(name, root, split, sim_seed)
        out = None
        if into is not None:
            out = np.lib.format.open_memmap(into / f"{split}_x.npy", mode="w+", dtype=np.uint8,
                                            shape=frames_shape(ds, cfg, limit))
        x, y, inf = bin_dataset(ds, cfg, progress=progress, limit=limit, out=out)
        if into is not None:
            x.flush()
            np.save(into / f"{split}_y.npy", y)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x, y
        for k in ("n_nonzero_counts", "n_clipped_counts", "events"):
            info[k] += inf[k]
        for k, v in inf["skipped"].items():
            info["skipped"][k] = info["skipped"].get(k, 0) + v
    return arrays, info


def _to_split(name: str, arrays: dict, info: dict, cfg: BinningConfig, sensor: SensorSize) -> DatasetSplit:
    o = downsampled_size(sensor, cfg.downsample)
    from neuro_agmm.data.dvs_sim import DVSSimConfig

    span = DVSSimConfig().duration_us if name == "digits-dvs" else None  # binned over a fixed span
    meta = {"binning": cfg.binning, "downsample": cfg.downsample, "clip": cfg.clip, "sensor_size": list(sensor),
            "fixed_span_us": span, "clipped_fraction": info["n_clipped_counts"] / max(1, info["n_nonzero_counts"]), **info}
    split = DatasetSplit(name=name, train_x=arrays["train_x"], train_y=arrays["train_y"], test_x=arrays["test_x"],
                         test_y=arrays["test_y"], input_shape=(o.P, o.H, o.W), n_classes=N_CLASSES[name],
                         input_scale=1.0 / cfg.clip, input_max=cfg.clip, encoding="events", meta=meta)
    split.check()
    return split


N_CLASSES = {"digits-dvs": 10, "nmnist": 10, "dvsgesture": 11, "cifar10dvs": 10}
SENSORS = {"digits-dvs": SensorSize(34, 34, 2), "nmnist": SensorSize(34, 34, 2),
           "dvsgesture": SensorSize(128, 128, 2), "cifar10dvs": SensorSize(128, 128, 2)}


def prepare(name: str, root: str | os.PathLike = "datasets", time_steps: int = 8, binning: str = "time",
            downsample: Optional[int] = None, clip: int = DEFAULT_CLIP, sim_seed: int = 0, progress: bool = True,
            limit: Optional[int] = None) -> Path:
    """Bin dataset ``name`` and write the cache file (atomic). Returns its path."""
    if name not in EVENT_DATASETS:
        raise ValueError(f"unknown event dataset {name!r}; choose from {', '.join(EVENT_DATASETS)}")
    cfg = BinningConfig(time_steps, binning, DEFAULT_DOWNSAMPLE[name] if downsample is None else downsample, clip)
    path = cache_path(name, root, cfg, sim_seed)
    write_cache_dir(path, lambda tmp: _build(name, Path(root), cfg, sim_seed, progress, limit, into=tmp)[1])
    return path


def read_cache(path: Path) -> tuple[dict, dict]:
    """``(arrays, info)`` of a cache directory; the frames memory-mapped read-only."""
    return read_cache_dir(path, CACHE_ARRAYS, lambda k: k.endswith("_x"))


def load_event_split(name: str, root: str | os.PathLike = "datasets", time_steps: int = 8, seed: int = 0,
                     binning: str = "time", downsample: Optional[int] = None, clip: int = DEFAULT_CLIP,
                     sim_seed: int = 0, use_cache: bool = True, progress: bool = False) -> DatasetSplit:
    """Event dataset ``name`` as integer count frames ``(N, T, P, H, W)`` (see module docstring).

    ``seed`` is accepted for the common loader signature; recordings do not depend on it.
    """
    del seed
    if name not in EVENT_DATASETS:
        raise ValueError(f"unknown event dataset {name!r}; choose from {', '.join(EVENT_DATASETS)}")
    cfg = BinningConfig(time_steps, binning, DEFAULT_DOWNSAMPLE[name] if downsample is None else downsample, clip)
    path = cache_path(name, root, cfg, sim_seed)
    if use_cache and not (path / "info.json").exists():
        try:
            write_cache_dir(path, lambda tmp: _build(name, Path(root), cfg, sim_seed, progress, None, into=tmp)[1])
        except OSError:
            pass  # read-only data root: fine, just not cached
    if use_cache and (path / "info.json").exists():
        arrays, info = read_cache(path)
        info["cache"] = str(path)
    else:
        arrays, info = _build(name, Path(root), cfg, sim_seed, progress, None)
        info["cache"] = None
    return _to_split(name, arrays, info, cfg, SENSORS[name])


def fingerprint(split: DatasetSplit) -> str:
    """Short hash of a split's arrays (to check that two runs saw the same data)."""
    h = hashlib.sha1()
    for a in (split.train_x, split.train_y, split.test_x, split.test_y):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]
