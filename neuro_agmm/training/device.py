"""Where training runs: ``--device cpu | cuda | cuda:N | auto``.

Why one place: the model, every batch, AGMM's per-step factors and the instrumentation's sums must
live on the same device, and a user's mistake (asking for CUDA where there is none) must be one clear
line. ``auto`` takes CUDA when torch sees a GPU, else the CPU; under torchrun with NCCL the rank's own
GPU (``distributed.DistEnv.device``) wins. The CPU path is the one every result in this repository
was measured on and stays byte-identical; on CUDA the trainer asks for deterministic kernels and sets
``CUBLAS_WORKSPACE_CONFIG`` (cuBLAS needs it for reproducible matrix products).
"""

from __future__ import annotations

import os

import torch

DEVICES = ("cpu", "cuda", "auto")


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is one of ``DEVICES`` or ``cuda:N``."""
    if not (name in DEVICES or name.startswith("cuda:")):
        raise ValueError(f"device={name!r} is not one of cpu, cuda, cuda:N, auto")


def resolve_device(name: str, dist_device: str = "cpu") -> torch.device:
    """The ``torch.device`` for ``--device name`` (``dist_device``: the distributed rank's device, if a GPU)."""
    check_name(name)
    if dist_device.startswith("cuda"):
        return torch.device(dist_device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():  # cuda or cuda:N from here on
        raise ValueError(f"device={name!r}: CUDA is not available here (torch {torch.__version__}, "
                         f"built with CUDA {torch.version.cuda or 'none'}); use --device cpu or auto")
    dev = torch.device(name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def prepare(device: torch.device) -> None:
    """Determinism settings a device needs before its first kernel runs."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


def deterministic_warn_only(device: torch.device) -> bool:
    """On CUDA a few kernels have no deterministic version: warn there instead of failing the run."""
    return device.type == "cuda"
