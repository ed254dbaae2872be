"""Event-camera data: readers for the field's file formats, binning, a DVS simulator, datasets.

Every reader returns ``(events, sensor_size)`` with ``events`` a structured array of
``EVENT_DTYPE`` (x, y, t µs, p) and ``sensor_size = (W, H, P)``; every format has a
writer of our own (tests round-trip through it). ``read_events(path)`` picks the reader
by file name. No torch here. Conventions (orientation, polarity, binning edges):
``docs/events.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.events.types import (EVENT_DTYPE, EventFileError, ReadStats, SensorSize, check_events,
                                     empty_events, make_events, sort_by_time)


def read_events(path: str | os.PathLike, stats: Optional[ReadStats] = None,
                sensor_size: Optional[SensorSize] = None) -> tuple[np.ndarray, SensorSize]:
    """Read any supported event file, choosing the reader by extension and magic bytes.

    ``.bin`` N-MNIST/ATIS; ``.aedat`` AEDAT 2.0 or 3.1 (by header); ``.aedat4`` AEDAT 4.0;
    ``.dat`` Prophesee EventCD; ``.raw`` Prophesee EVT 2.0 / 3.0 (by header);
    ``.npy`` a tonic-style structured x, y, t, p array (``neuro_agmm.events.structured``) or a tonic
    DVS Gesture sample ((N, 4) floats); ``.npz``/``.h5``/``.hdf5`` plain x, y, t, p arrays.
    ``sensor_size`` is used by formats that do not state one (structured ``.npy``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bin":
        from neuro_agmm.events.nmnist import read_nmnist
        return read_nmnist(path, stats=stats)
    if suffix in (".aedat", ".aedat4", ".aedat2", ".aedat3"):
        try:
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as e:
            raise EventFileError(path, f"cannot read ({e})") from e
        if head.startswith(b"#!AER-DAT2.0"):
            from neuro_agmm.events.aedat2 import read_aedat2
            return read_aedat2(path, stats=stats)
        if head.startswith(b"#!AER-DAT3.1"):
            from neuro_agmm.events.aedat3 import read_aedat3
            return read_aedat3(path, stats=stats)
        if head.startswith(b"#!AER-DAT4.0"):
            from neuro_agmm.events.aedat4 import read_aedat4
            return read_aedat4(path, stats=stats)
        raise EventFileError(path, f"unknown AEDAT version (header {head!r})", offset=0)
    if suffix == ".npy":
        from neuro_agmm.events.structured import is_structured_npy, read_structured_npy
        if is_structured_npy(path):
            return read_structured_npy(path, sensor_size, stats=stats)
        from neuro_agmm.events.tonic_npy import read_tonic_gesture_npy
        return read_tonic_gesture_npy(path, stats=stats)
    if suffix == ".dat":
        from neuro_agmm.events.prophesee import read_prophesee_dat
        return read_prophesee_dat(path, sensor_size, stats=stats)
    if suffix == ".raw":
        from neuro_agmm.events.prophesee import read_prophesee_raw
        return read_prophesee_raw(path, sensor_size, stats=stats)
    if suffix in (".npz", ".h5", ".hdf5"):
        from neuro_agmm.events.h5npz import read_event_file
        return read_event_file(path, stats=stats)
    raise EventFileError(path, "unknown event file type (expected .bin, .aedat, .aedat4, .dat, .raw, .npy, .npz, .h5)")


EVENT_SUFFIXES = (".bin", ".aedat", ".aedat4", ".dat", ".raw", ".npy", ".npz", ".h5", ".hdf5")

__all__ = ["EVENT_DTYPE", "EventFileError", "ReadStats", "SensorSize", "check_events", "empty_events",
           "make_events", "sort_by_time", "read_events", "EVENT_SUFFIXES"]
