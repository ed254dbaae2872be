"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Why: a run killed mid-epoch (``kill -9``, a lost machine) must resume with ``--resume`` and end
with the same weights as an uninterrupted run. A checkpoint therefore holds the model,
optimizer and scheduler states, the RNG states of torch / NumPy / ``random``, the position
(``epoch`` = epochs completed, ``step`` = batches done in the current epoch), the running
sums of the current epoch's metrics, every callback's ``state_dict`` and the metrics log so far.

Files are written atomically (temp file + rename, ``neuro_agmm.artifact.atomic_write``), so a
kill during the write leaves the previous checkpoint intact. Refuses to save non-finite
parameters so a diverged run never overwrites a good checkpoint. Loading uses
``torch.load(weights_only=True)``: a checkpoint from an untrusted run directory cannot run code
(every value is a tensor or a plain Python value; the NumPy RNG state is stored as a tensor). Left out: keeping a history
of checkpoints (only the latest is kept), cross-version compatibility of pickled states.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from neuro_agmm.artifact import atomic_write

CHECKPOINT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not one of ours."""


@dataclass
class Checkpoint:
    """The content of one checkpoint file (plain values and state dicts)."""

    config: dict  # the TrainConfig as a dict
    model_config: dict  # neuro_agmm.models.ModelConfig as a dict
    data_info: dict  # input_shape, n_classes, input_scale, input_max, time_steps, encoding, dataset
    model: dict
    optimizer: dict
    scheduler: Optional[dict]
    epoch: int  # completed epochs
    step: int  # batches completed in epoch ``epoch`` (0 at an epoch boundary)
    epoch_acc: dict = field(default_factory=dict)  # running sums of the current epoch (loss, correct, n, seconds)
    callbacks: list = field(default_factory=list)  # state_dict() of each callback, in order
    metrics: list = field(default_factory=list)  # per-epoch metric dicts so far
    rng: dict = field(default_factory=dict)
    version: int = CHECKPOINT_VERSION


def capture_rng() -> dict[str, Any]:
    """RNG states of torch (CPU), NumPy's global generator and Python's ``random``, as tensors and plain
    values only (so the checkpoint loads with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate()}


def restore_rng(state: dict[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        n = state["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "python" in state:
        random.setstate(state["python"])


def _check_finite(state: dict, where: str) -> None:
    for k, v in state.items():
        if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{where}: tensor {k!r} contains NaN or inf; refusing to write the checkpoint")


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically to ``path`` (``torch.save``). Raises ``CheckpointError`` on NaN/inf weights and
    ``RunDirError`` (one line; the previous checkpoint kept) when the write fails, e.g. a full disk."""
    from neuro_agmm.training.run_dir import write_failure

    _check_finite(ckpt.model, f"checkpoint {path}")
    payload = dict(ckpt.__dict__)
    payload["format"] = "neuro_agmm.training.checkpoint"
    try:
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))
    except (OSError, RuntimeError) as e:
        clear = write_failure(path, e)
        if clear is None:
            raise
        raise clear from e


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; ``CheckpointError`` names what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain values, no code
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != "neuro_agmm.training.checkpoint":
        raise CheckpointError(f"{path}: not a neuro_agmm checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')} is not supported "
                              f"(this reader: {CHECKPOINT_VERSION})")
    payload.pop("format")
    try:
        return Checkpoint(**payload)
    except TypeError as e:
        raise CheckpointError(f"{path}: malformed checkpoint ({e})") from e
