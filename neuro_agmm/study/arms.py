"""The arms of the study and its budgets.

An arm is a name and the ``TrainConfig`` overrides that make it; every arm of a dataset shares the
rest of the configuration (architecture, epochs, batch size, time steps, base learning rate).

* ``vanilla@xS`` — vanilla BSNN with the latent binary weights' learning rate ×S
  (S ∈ ``FRONTIER_SCALES``; ``vanilla`` is ×1): the step-size frontier;
* ``agmm`` — the default AGMM reconstruction (``AGMMConfig()``: gradient factor on the layer output);
  ``agmm-weight``, ``agmm-layer``, ``agmm-damp`` (``k = −2``), ``agmm-forward`` (the forward gate);
* ``vanilla-sgd@lrL`` / ``agmm-sgd`` — the latent weights trained by SGD + momentum at base rate L (the
  rest by Adam); L is chosen on validation from ``SGD_LRS`` with vanilla and used for both;
* ``fp`` — the full-precision SNN baseline.

Budgets fix epochs per dataset and the number of seeds: selection seeds (validation only) are
``SELECTION_SEED0 + i``, test seeds ``i``, so no test number comes from a seed used for a choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FRONTIER_SCALES = (0.25, 0.5, 1.0, 2.0)
SGD_LRS = (1.0, 3.0, 10.0)
SELECTION_SEED0 = 1000

AGMM_VARIANTS: dict[str, dict[str, Any]] = {
    "agmm": {},
    "agmm-weight": {"agmm_where": "weight"},
    "agmm-layer": {"agmm_where": "layer"},
    "agmm-damp": {"agmm_k": -2.0},
    "agmm-forward": {"agmm_where": "forward"},
}


def frontier_arm(scale: float) -> str:
    return "vanilla" if scale == 1.0 else f"vanilla@x{scale:g}"


def sgd_arm(lr: float) -> str:
    return f"vanilla-sgd@lr{lr:g}"


def arm_overrides(arm: str, sgd_lr: float | None = None) -> dict[str, Any]:
    """``TrainConfig`` overrides of ``arm`` (``agmm-sgd`` needs the chosen ``sgd_lr``)."""
    if arm == "fp":
        return {"method": "fp"}
    for s in FRONTIER_SCALES:
        if arm == frontier_arm(s):
            return {"method": "vanilla", "binary_lr_scale": s}
    if arm in AGMM_VARIANTS:
        return {"method": "agmm", **AGMM_VARIANTS[arm]}
    for lr in SGD_LRS:
        if arm == sgd_arm(lr):
            return {"method": "vanilla", "binary_optimizer": "sgd", "binary_lr": lr}
    if arm == "agmm-sgd":
        if sgd_lr is None:
            raise ValueError("agmm-sgd needs the SGD learning rate chosen on validation")
        return {"method": "agmm", "binary_optimizer": "sgd", "binary_lr": sgd_lr}
    raise ValueError(f"unknown arm {arm!r}")


@dataclass(frozen=True)
class Budget:
    """Epochs per dataset and seed counts of one study size."""

    name: str
    epochs: dict[str, int]
    selection_seeds: int
    test_seeds: int
    headline_seeds: int
    probe_batches: int

    def epochs_for(self, dataset: str) -> int:
        return self.epochs.get(dataset, self.epochs["default"])


BUDGETS = {
    # about 10 minutes on 2 CPU cores for the three datasets (2 workers)
    "quick": Budget("quick", {"digits": 6, "mnist5k": 4, "digits-dvs": 5, "default": 5}, selection_seeds=1,
                    test_seeds=3, headline_seeds=3, probe_batches=8),
    # about 45 minutes on 2 CPU cores for the three datasets (2 workers); 10 test seeds for every arm, so that
    # a Wilcoxon test can reach p = 0.002 on the frontier margins as well as on the headline pairs
    "full": Budget("full", {"digits": 15, "mnist5k": 10, "digits-dvs": 10, "default": 10}, selection_seeds=2,
                   test_seeds=10, headline_seeds=10, probe_batches=24),
}
