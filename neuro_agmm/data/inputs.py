"""Test inputs for deployment jobs: an ``.npz`` the user gives, or the test split of the artifact's own dataset.

Checked against the artifact (shape, integer levels within ``input_max``) before any backend sees them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from neuro_agmm.artifact import ModelArtifact


class InputsError(ValueError):
    """The inputs file or dataset does not fit the artifact."""


def load_inputs(art: ModelArtifact, n_samples: int, inputs_file: Optional[str | os.PathLike] = None,
                data_root: str | os.PathLike = "datasets") -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Test inputs ``(N, T, ...)`` and labels: from ``inputs_file`` (npz with ``x``, optional ``y``) or the
    artifact's dataset (``provenance["dataset"]`` via ``neuro_agmm.data.load_dataset``)."""
    if n_samples <= 0 and inputs_file is None:
        return None, None
    if inputs_file is not None:
        p = Path(inputs_file)
        if not p.exists():
            raise InputsError(f"inputs file {p} does not exist")
        with np.load(p) as z:
            if "x" not in z:
                raise InputsError(f"inputs file {p} has no array 'x' (expected x: (N, T, *input_shape), y: (N,))")
            x = z["x"]
            y = z["y"] if "y" in z else None
    else:
        name = str(art.provenance.get("dataset", ""))
        if not name:
            raise InputsError("the artifact names no dataset (provenance 'dataset'); pass --inputs FILE.npz")
        from neuro_agmm.data import load_dataset

        try:
            split = load_dataset(name, root=data_root, time_steps=art.time_steps, encoding=art.encoding,
                                 seed=int(art.provenance.get("seed", 0)))
        except (ValueError, OSError, FileNotFoundError) as e:
            raise InputsError(f"cannot load dataset {name!r}: {e}") from e
        x, y = split.test_x, split.test_y
    if n_samples > 0:
        x = x[:n_samples]
        y = y[:n_samples] if y is not None else None
    if tuple(x.shape[2:]) != tuple(art.input_shape):
        raise InputsError(f"inputs have shape {x.shape}, the artifact expects (N, T, *{tuple(art.input_shape)})")
    if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < 0 or x.max() > art.input_max)):
        raise InputsError(f"inputs must be integers in [0, {art.input_max}]")
    return x, y
