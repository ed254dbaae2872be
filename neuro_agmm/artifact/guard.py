"""Read an HDF5 file once in a forked child first, so that libhdf5 hanging or crashing on a damaged file
becomes a documented error instead of a frozen or dead caller.

Why: on a damaged global heap libhdf5 1.14 (h5py 3.16) can loop forever inside C while reading a string
attribute, or crash the process (found by ``benchmarks/fuzz_readers.py``: 2 of 6,000 inputs). No check in
the reading process can interrupt C code, but a child can be killed. ``preflight(path, read, error)`` runs
``read(path)`` in a forked child under ``READ_TIMEOUT_S``; a hang or a crash raises ``error`` naming the file.
Any Python exception in the child is ignored here (the caller's own read raises it, documented). A file that
passed is remembered by path, size and modification time, so it is checked once per process.
``NEURO_AGMM_READ_GUARD=0`` turns the check off (the caller then trusts its files); POSIX only.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

T = TypeVar("T")

READ_TIMEOUT_S = float(os.environ.get("NEURO_AGMM_READ_TIMEOUT_S", 60))
_PASSED: set[tuple] = set()


def preflight(path: str | os.PathLike, read: Callable[[Path], object], error: type[Exception]) -> None:
    """Raise ``error`` if ``read(path)`` hangs past ``READ_TIMEOUT_S`` or kills its (forked) process."""
    if os.environ.get("NEURO_AGMM_READ_GUARD", "1") == "0" or not hasattr(os, "fork"):
        return
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return  # the caller's read reports the missing file
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, getattr(read, "__qualname__", repr(read)))
    if key in _PASSED:
        return
    pid = os.fork()
    if pid == 0:  # child: read, then leave without running any of the parent's cleanup
        try:
            read(path)
        except BaseException:  # noqa: BLE001 - the parent's own read reports it
            pass
        os._exit(0)
    status = wait_or_kill(pid, READ_TIMEOUT_S)
    if status is None:
        raise error(f"{path}: reading it hangs inside libhdf5 (a damaged HDF5 file); stopped after "
                    f"{READ_TIMEOUT_S:.0f} s")
    if os.WIFSIGNALED(status):
        raise error(f"{path}: libhdf5 crashed reading it (signal {os.WTERMSIG(status)}): a damaged HDF5 file")
    _PASSED.add(key)


def wait_or_kill(pid: int, timeout: float) -> Optional[int]:
    """The wait status of child ``pid``, or None after killing it when it is still running at ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def read_guarded(path: str | os.PathLike, read: Callable[[Path], T], error: type[Exception]) -> T:
    """``read(path)`` for an HDF5 reader: ``preflight`` first, then h5py/NumPy corruption errors as ``error``
    naming the file (``error`` itself passes through)."""
    from neuro_agmm.artifact.h5 import CORRUPTION_ERRORS, corrupt

    path = Path(path)
    preflight(path, read, error)
    try:
        return read(path)
    except error:
        raise
    except CORRUPTION_ERRORS as e:  # h5py/NumPy on a damaged file: one documented error naming it
        raise corrupt(path, e, error) from e
