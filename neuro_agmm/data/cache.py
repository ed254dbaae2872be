"""Dataset caches on disk: a directory of plain ``.npy`` arrays plus ``info.json``, written atomically.

Why: datasets at their real size (CIFAR-10's 50,000 images, CIFAR10-DVS's binned frames) should not be held in
memory to train on them: the frames are opened memory-mapped (``np.load(mmap_mode="r")``), so a run reads
only the batches it draws. A cache is written into a temporary directory next to its place and renamed into
it, so a reader never sees half a cache, and an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable


def write_cache_dir(path: Path, fill: Callable[[Path], dict]) -> None:
    """``fill(tmp_dir)`` writes the arrays and returns the info; the directory is renamed into place (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        info = fill(tmp)
        (tmp / "info.json").write_text(json.dumps(info))
        if path.exists():  # a finished cache is replaced as a whole
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_cache_dir(path: Path, names: Iterable[str], mapped: Callable[[str], bool]) -> tuple[dict, dict]:
    """``(arrays, info)`` of a cache directory; arrays whose name ``mapped`` accepts are memory-mapped read-only."""
    import numpy as np

    path = Path(path)
    arrays = {k: np.load(path / f"{k}.npy", mmap_mode="r" if mapped(k) else None, allow_pickle=False) for k in names}
    return arrays, json.loads((path / "info.json").read_text())


def file_stamps(files: Iterable[Path]) -> list[list]:
    """``[name, size, mtime_ns]`` per source file: a cache built from them is stale when any differs."""
    out = []
    for f in files:
        st = Path(f).stat()
        out.append([Path(f).name, st.st_size, st.st_mtime_ns])
    return out
