"""The study's statistics and frontier: known answers."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from neuro_agmm.study.arms import AGMM_VARIANTS, FRONTIER_SCALES, SGD_LRS, arm_overrides, frontier_arm, sgd_arm
from neuro_agmm.study.frontier import interpolate, margins
from neuro_agmm.study.protocol import choose, selection_arms
from neuro_agmm.study.stats import one_sample, paired, verdict
from neuro_agmm.training.loop import TrainConfig


def test_paired_counts_seeds_and_matches_scipy():
    rng = np.random.default_rng(0)
    b = rng.normal(0.9, 0.01, 10)
    a = b - 0.004 + rng.normal(0, 0.001, 10)
    p = paired(a, b)
    assert p.n == 10 and p.a_lower == 10 and p.a_higher == 0 and p.diff == pytest.approx(float(np.mean(a - b)))
    assert p.p_t == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert p.p_wilcoxon == pytest.approx(2 / 2 ** 10)  # every seed lower: the smallest two-sided Wilcoxon p
    assert verdict(p, "lower") == "reproduced" and verdict(p, "higher") == "refuted"


def test_five_seeds_cannot_pass_the_wilcoxon_bar():
    """With 5 seeds the Wilcoxon p is at least 0.0625, so no verdict can be 'reproduced' however small p_t is."""
    p = paired([1.0, 1.1, 1.2, 1.3, 1.4], [2.0, 2.1, 2.2, 2.3, 2.45])
    assert p.p_t < 1e-4 and p.p_wilcoxon == pytest.approx(0.0625)
    assert verdict(p, "lower") == "not reproduced"


def test_ties_nans_and_empty():
    p = paired([1.0, 2.0, float("nan")], [1.0, 2.0, 3.0])
    assert p.n == 2 and p.ties == 2 and p.p_wilcoxon == 1.0 and p.p_t == 1.0
    assert verdict(p, "higher") == "not reproduced"
    assert verdict(paired([], []), "lower") == "not reproduced"
    assert one_sample([0.1] * 10).p_t == 0.0  # a constant non-zero margin: degenerate but certain
    with pytest.raises(ValueError):
        verdict(p, "sideways")


def test_frontier_interpolates_in_log_flips_and_holds_its_ends():
    f = [(4e-3, 0.94), (1e-3, 0.90)]
    assert interpolate(f, 2e-3) == pytest.approx(0.90 + 0.04 * math.log(2) / math.log(4))
    assert interpolate(f, 1e-4) == pytest.approx(0.90) and interpolate(f, 1.0) == pytest.approx(0.94)
    assert math.isnan(interpolate(f, 0.0)) and math.isnan(interpolate([], 1e-3))
    m = margins({0: f, 1: f}, {0: (2e-3, 0.93), 1: (2e-3, 0.91), 2: (2e-3, 0.99)})
    assert m[0] == pytest.approx(0.93 - interpolate(f, 2e-3)) and m[1] < 0 and 2 not in m  # seed 2 has no frontier
    rate = margins({0: [(1e-3, 0.10), (4e-3, 0.12)]}, {0: (2e-3, 0.09)}, higher_is_better=False)
    assert rate[0] == pytest.approx(0.11 - 0.09)  # lower firing rate than the frontier: a positive margin


def test_every_arm_is_a_valid_training_config():
    arms = selection_arms() + ["agmm-sgd", "fp"]
    assert len(set(arms)) == len(FRONTIER_SCALES) + len(AGMM_VARIANTS) + len(SGD_LRS) + 2
    for arm in arms:
        cfg = TrainConfig(**arm_overrides(arm, sgd_lr=3.0))
        cfg.validate()
    assert arm_overrides("vanilla@x0.25")["binary_lr_scale"] == 0.25
    assert arm_overrides("agmm-forward") == {"method": "agmm", "agmm_where": "forward"}
    with pytest.raises(ValueError, match="SGD learning rate"):
        arm_overrides("agmm-sgd")
    with pytest.raises(ValueError, match="unknown arm"):
        arm_overrides("agmm-magic")


def test_choices_are_made_on_validation_accuracy_not_test():
    recs = []
    for arm in selection_arms():
        val = 0.9
        test = 0.9
        if arm == frontier_arm(0.5) or arm == "agmm-damp" or arm == sgd_arm(3.0):
            val = 0.95  # best on validation
        if arm == frontier_arm(2.0) or arm == "agmm" or arm == sgd_arm(10.0):
            test = 0.99  # best on test: must not be chosen
        recs += [{"arm": arm, "val_acc": val, "test_acc": test}] * 2
    ch = choose(recs)
    assert ch == {"vanilla_tuned": "vanilla@x0.5", "agmm_selected": "agmm-damp", "sgd_arm": "vanilla-sgd@lr3",
                  "sgd_lr": 3.0}
