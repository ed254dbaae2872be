"""tonic's preprocessed DVS Gesture layout: one ``.npy`` per gesture sample.

tonic (``tonic.datasets.DVSGesture``) downloads a re-packaged DVS Gesture:
``ibmGestureTrain/<userXX_lighting>/<label>.npy`` and ``ibmGestureTest/...``, each
file a float array of shape ``(N, 4)`` with columns ``x, y, p, t`` where ``t`` is in
**milliseconds**; tonic multiplies by 1000 to get µs, and the label is the file stem
(0..10). We read it the same way (``t_us = round(t_ms * 1000)``) and check every
column holds whole numbers in range, so a different layout fails loudly.

Left out: tonic's other preprocessed datasets (they use other layouts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import atomic_write
from neuro_agmm.events.types import EVENT_DTYPE, EventFileError, ReadStats, SensorSize, make_events, sort_by_time

DVS_GESTURE_SENSOR = SensorSize(128, 128, 2)
TRAIN_DIR, TEST_DIR = "ibmGestureTrain", "ibmGestureTest"


def read_tonic_gesture_npy(path: str | os.PathLike, sensor_size: SensorSize = DVS_GESTURE_SENSOR,
                           stats: Optional[ReadStats] = None) -> tuple[np.ndarray, SensorSize]:
    """Read one tonic DVS Gesture ``.npy`` sample; returns events sorted by time."""
    from neuro_agmm.events.structured import load_npy

    path = Path(path)
    arr = load_npy(path)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise EventFileError(path, f"expected an (N, 4) array of x, y, p, t_ms; got shape {arr.shape}")
    x, y, p = arr[:, 0], arr[:, 1], arr[:, 2]
    for name, col, hi in (("x", x, sensor_size.W), ("y", y, sensor_size.H), ("p", p, 2)):
        if col.size and (np.any(col != np.round(col)) or col.min() < 0 or col.max() >= hi):
            raise EventFileError(path, f"column {name} is not whole numbers in [0, {hi})")
    t_ms = arr[:, 3].astype(np.float64)
    if t_ms.size and (not np.all(np.isfinite(t_ms)) or t_ms.min() < 0 or t_ms.max() > 2.0 ** 52 / 1000):
        i = int(np.argmax(~np.isfinite(t_ms) | (t_ms < 0) | (t_ms > 2.0 ** 52 / 1000)))
        raise EventFileError(path, f"row {i}: t = {t_ms[i]!r} ms is not a finite, non-negative time")
    t = np.round(t_ms * 1000.0).astype(np.int64)
    ev = sort_by_time(make_events(x, y, t, p))
    if stats is not None:
        stats.n_events += len(ev)
    return ev, SensorSize(*sensor_size)


def label_of(path: str | os.PathLike) -> int:
    """The gesture label (file stem, 0..10) of a tonic ``.npy`` sample."""
    stem = Path(path).stem
    if not stem.isdigit() or not 0 <= int(stem) <= 10:
        raise EventFileError(path, "file name is not '<label 0..10>.npy'")
    return int(stem)


def write_tonic_gesture_npy(path: str | os.PathLike, events: np.ndarray) -> Path:
    """Write ``events`` in tonic's layout (float32 columns x, y, p, t_ms; atomic)."""
    if events.dtype != EVENT_DTYPE:
        raise ValueError(f"events must have dtype {EVENT_DTYPE}")
    arr = np.stack([events["x"], events["y"], events["p"], events["t"] / 1000.0], axis=1).astype(np.float64)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    return atomic_write(path, write)
