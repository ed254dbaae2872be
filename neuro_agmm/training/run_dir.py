"""One writer per run directory, and nothing half-written left behind.

Why: two trainings started into one run directory at once would both report success while one
overwrote the other's checkpoint and artifact; an interrupted atomic write leaves a ``.NAME.*.tmp``
file. ``RunLock`` holds an exclusive ``fcntl`` lock on ``RUN_DIR/.lock`` (released by the kernel when the
process dies, so a killed run never blocks the next one) and, on entry, removes the temporaries an
interrupted write left (they are never read: ``atomic_write`` renames only finished files).
``write_failure`` turns an ``OSError`` while writing into one line that names the file and says
"no space left" for ``ENOSPC``.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Optional

LOCK_NAME = ".lock"


class RunDirError(ValueError):
    """The run directory is in use by another writer, or cannot be written."""


class RunLock:
    """``with RunLock(run_dir):`` — refuse a second writer with ``RunDirError``; clean stale temporaries."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self._fd: Optional[int] = None
        self.removed_tmp: list[str] = []

    def __enter__(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirError(f"{self.run_dir} is in use by {holder}; wait for it or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
        self._fd = fd
        for tmp in sorted(self.run_dir.glob(".*.tmp")):  # atomic_write's temporaries of an interrupted write
            tmp.unlink(missing_ok=True)
            self.removed_tmp.append(tmp.name)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


FULL_DEVICE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def device_failure(run_dir: str | os.PathLike, e: BaseException) -> Optional[RunDirError]:
    """A one-line ``RunDirError`` when ``e`` means the run directory's device cannot take writes (full, quota,
    read-only, I/O error); None for anything else (e.g. a missing input file)."""
    if isinstance(e, OSError) and e.errno in FULL_DEVICE:
        return write_failure(getattr(e, "filename", None) or run_dir, e)
    if isinstance(e, RuntimeError) and "error code: 28" in str(e):
        return write_failure(run_dir, e)
    return None


def write_failure(path: str | os.PathLike, e: BaseException) -> Optional[RunDirError]:
    """A one-line ``RunDirError`` for an I/O failure while writing ``path`` (None if ``e`` is not one)."""
    err = e if isinstance(e, OSError) else None
    if err is None and isinstance(e, RuntimeError) and "error code: 28" in str(e):  # torch's writer on ENOSPC
        err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if err is None:
        return None
    what = "no space left on the device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return RunDirError(f"cannot write {path}: {what}; the last complete file there is kept")
