"""Property tests (hypothesis) for the integer arithmetic of ``hw_models.core_spec``."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hw_models import core_spec
from random_nets import lif_step as _lif_step

INT24 = st.integers(-(1 << 23) + 1, (1 << 23) - 1)
DECAY = st.integers(0, 4096)


@settings(deadline=None, max_examples=60)
@given(st.lists(INT24, min_size=1, max_size=20), DECAY)
def test_decay_truncates_toward_zero(xs, d):
    x = np.array(xs, np.int32)
    got = core_spec.decay(x, d)
    for xi, gi in zip(xs, got.tolist()):
        mag = (abs(xi) * (4096 - d)) >> 12  # exact integer arithmetic
        assert gi == (mag if xi >= 0 else -mag)
        assert abs(gi) <= abs(xi)


@settings(deadline=None, max_examples=60)
@given(st.lists(INT24, min_size=1, max_size=20))
def test_full_decay_clears_and_zero_decay_keeps(xs):
    x = np.array(xs, np.int32)
    assert np.all(core_spec.decay(x, 4096) == 0)  # du = 4095 (+ offset 1) clears the current
    assert np.array_equal(core_spec.decay(x, 0), x)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(-3 * (1 << 23), 3 * (1 << 23)), min_size=1, max_size=20))
def test_wrap24_is_congruent_and_in_range(xs):
    # Lava wraps once, from the unwrapped value: within one wrap of the range the result is in
    # [-2**23, 2**23] (its asymmetry lets -2**23 itself through for x = -3 * 2**23).
    x = np.array(xs, np.int64)
    w = core_spec.wrap24(x).astype(np.int64)
    assert np.all((w - x) % (1 << 24) == 0)
    assert np.all(w >= -(1 << 23)) and np.all(w <= (1 << 23))
    inside = (x > -(1 << 23)) & (x <= (1 << 23))
    assert np.array_equal(w[inside], x[inside])


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(-(1 << 20), 1 << 20), min_size=1, max_size=20), st.integers(-8, 8))
def test_weight_exp_is_shift_with_floor(xs, e):
    got = core_spec.apply_weight_exp(np.array(xs, np.int64), e).tolist()
    want = [x << e if e > 0 else x >> -e for x in xs]  # Python >> floors, like numpy's arithmetic shift
    assert got == want


@settings(deadline=None, max_examples=60)
@given(st.lists(st.tuples(st.integers(-4096, 4095), st.integers(0, 7)), min_size=1, max_size=20))
def test_effective_bias(pairs):
    mant = np.array([p[0] for p in pairs])
    exp = np.array([p[1] for p in pairs])
    assert core_spec.effective_bias(mant, exp).tolist() == [m * (1 << e) for m, e in pairs]


@settings(deadline=None, max_examples=60)
@given(st.integers(0, 2**31 - 1), st.integers(0, 4095), st.integers(0, 4095))
def test_lif_step_invariants(seed, du, dv):
    rng = np.random.default_rng(seed)
    n = 16
    u = rng.integers(-(1 << 23) + 1, 1 << 23, n).astype(np.int32)
    v = rng.integers(-(1 << 23) + 1, 1 << 23, n).astype(np.int32)
    a = rng.integers(-(1 << 18), 1 << 18, n).astype(np.int32)
    bias = core_spec.effective_bias(rng.integers(-4096, 4096, n), rng.integers(0, 8, n))
    vth = rng.integers(0, core_spec.VTH_MAX + 1, n)
    u2, v2, s = _lif_step(u, v, a, du, dv, bias, vth)
    # the inputs are not modified, the registers stay 24-bit, spiking neurons are reset
    assert np.all(np.abs(v2.astype(np.int64)) <= (1 << 23) - 1)
    assert np.all((u2 > -(1 << 23)) & (u2 <= (1 << 23)))
    assert np.all(v2[s] == 0)
    # the spike decision is made on the pre-reset voltage, against vth << 6
    pre = np.clip(core_spec.decay(v, dv).astype(np.int64) + u2 + bias, -(1 << 23) + 1, (1 << 23) - 1)
    assert np.array_equal(s, pre > (vth.astype(np.int64) << 6))
    assert np.array_equal(v2[~s], pre[~s])


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(-(1 << 16), 1 << 16), min_size=1, max_size=10))
def test_instant_current_with_du_4095(acts):
    a = np.array(acts, np.int32)
    u = np.full(a.shape, 12345, np.int32)
    u2, _, _ = _lif_step(u, np.zeros_like(u), a, 4095, 0, np.zeros_like(u), np.full(a.shape, 1))
    assert np.array_equal(u2, a.astype(np.int64) << 6)
