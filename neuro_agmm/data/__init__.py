"""Dataset readers: every dataset becomes a ``DatasetSplit`` of integer graded spikes ``(N, T, *shape)``.

``load_dataset`` is the one entry point training and evaluation use. Frame datasets live here
(``digits``, ``cifar``); event-camera datasets are read by ``neuro_agmm.data.event_datasets``
(imported lazily). No torch in this package.
"""

from __future__ import annotations

from pathlib import Path

from neuro_agmm.data.split import DatasetSplit

FRAME_DATASETS = ("digits", "mnist5k", "cifar10", "cifar100")
EVENT_DATASETS = ("digits-dvs", "nmnist", "dvsgesture", "cifar10dvs")
DATASETS = FRAME_DATASETS + EVENT_DATASETS


def load_dataset(name: str, root: str | Path = "datasets", time_steps: int = 4, encoding: str = "direct",
                 seed: int = 0) -> DatasetSplit:
    """Load dataset ``name`` (see ``DATASETS``) binned/encoded into ``time_steps`` steps."""
    if name == "digits":
        from neuro_agmm.data.digits import load_digits_split
        return load_digits_split(time_steps=time_steps, encoding=encoding, seed=seed)
    if name == "mnist5k":
        from neuro_agmm.data.mnist5k import load_mnist5k_split
        return load_mnist5k_split(root=root, time_steps=time_steps, encoding=encoding, seed=seed)
    if name in ("cifar10", "cifar100"):
        from neuro_agmm.data.cifar import load_cifar_split
        return load_cifar_split(name, root=root, time_steps=time_steps, encoding=encoding, seed=seed)
    if name in EVENT_DATASETS:
        from neuro_agmm.data.event_datasets import load_event_split
        return load_event_split(name, root=root, time_steps=time_steps, seed=seed)
    raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")


__all__ = ["DatasetSplit", "load_dataset", "DATASETS", "FRAME_DATASETS", "EVENT_DATASETS"]
