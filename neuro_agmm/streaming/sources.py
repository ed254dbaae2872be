"""Where recordings come from: one event file, a directory of them, or a dataset split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from neuro_agmm.events import EVENT_SUFFIXES, SensorSize, read_events
from neuro_agmm.streaming.windows import InferError


@dataclass
class Recording:
    source: str
    events: np.ndarray
    sensor_size: SensorSize
    label: Optional[int] = None
    t0: Optional[int] = None  # stream origin (default: first event)
    span_us: Optional[int] = None  # fixed stream length (default: up to the last event)


def _label_from_path(path: Path) -> Optional[int]:
    return int(path.parent.name) if path.parent.name.isdigit() else None


def iter_recordings(events: Optional[str | os.PathLike] = None, dataset: Optional[str] = None,
                    split: str = "test", root: str | os.PathLike = "datasets",
                    limit: Optional[int] = None,
                    sensor_size: Optional[SensorSize] = None) -> tuple[int, Iterator[Recording]]:
    """``(count, iterator)`` over a file, a directory of event files, or a dataset split.

    Files in a directory: every supported event file below it (sorted); the label is the
    parent folder's name when it is an integer (N-MNIST layout), else unknown. ``sensor_size``
    serves files that state none (structured ``.npy``).
    """
    if (events is None) == (dataset is None):
        raise InferError("give exactly one of --events FILE_OR_DIR or --dataset NAME")
    if dataset is not None:
        from neuro_agmm.data.event_datasets import open_event_dataset
        ds = open_event_dataset(dataset, root, split)
        n = len(ds) if limit is None else min(limit, len(ds))

        def gen_ds():
            for i in range(n):
                ev, label = ds[i]
                yield Recording(ds.sources[i], ev, ds.sensor_size, label,
                                t0=0 if ds.fixed_span_us else None, span_us=ds.fixed_span_us)
        return n, gen_ds()
    p = Path(events)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in EVENT_SUFFIXES)
        if not files:
            raise InferError(f"{p}: no event files ({', '.join(EVENT_SUFFIXES)}) in this directory")
    elif p.exists():
        files = [p]
    else:
        raise InferError(f"{p}: no such file or directory")
    files = files if limit is None else files[:limit]

    def gen_files():
        for f in files:
            ev, sensor = read_events(f, sensor_size=sensor_size)
            yield Recording(str(f), ev, sensor, _label_from_path(f))
    return len(files), gen_files()
