import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuro_agmm.events.binning import bin_by_count, bin_by_time, count_bin_index, time_bin_index
from neuro_agmm.events.types import SensorSize, empty_events, make_events

from ev_helpers import random_events

S = SensorSize(4, 3, 2)


def test_time_edges_exact():
    # span [0, 10) in 5 bins of 2 µs: t=1 -> 0, t=2 (on an edge) -> 1, t=9 (last µs) -> 4
    t = np.array([0, 1, 2, 3, 8, 9])
    assert time_bin_index(t, 5, 0, 10).tolist() == [0, 0, 1, 1, 4, 4]
    # default span ends one µs after the last event: the last event is kept (tonic's ToFrame drops it)
    ev = make_events([0, 1, 2], [0, 0, 0], [100, 150, 200], [1, 1, 1])
    f = bin_by_time(ev, S, 2)
    assert f.sum() == 3 and f[:, 1, 0].tolist() == [[1, 1, 0, 0], [0, 0, 1, 0]]
    # non-integer bin width: [0, 7) in 3 bins -> edges 0, 7/3, 14/3
    assert time_bin_index(np.arange(7), 3, 0, 7).tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_time_edge_cases():
    assert bin_by_time(empty_events(), S, 4).shape == (4, 2, 3, 4)
    assert bin_by_time(empty_events(), S, 4).sum() == 0
    one = make_events([3], [2], [77], [0])
    f = bin_by_time(one, S, 3)
    assert f[0, 0, 2, 3] == 1 and f.sum() == 1
    same = make_events([0, 1, 1], [0, 0, 0], [5, 5, 5], [1, 0, 0])
    f = bin_by_time(same, S, 4)
    assert f[0].sum() == 3 and f[1:].sum() == 0 and f[0, 0, 0, 1] == 2
    with pytest.raises(ValueError, match="outside"):
        bin_by_time(one, S, 2, t_start=0, t_end=77)  # t_end is exclusive: never silently dropped
    empty_bins = make_events([0, 0], [0, 0], [0, 99], [1, 1])
    assert bin_by_time(empty_bins, S, 10).sum(axis=(1, 2, 3)).tolist() == [1] + [0] * 8 + [1]


def test_count_bins_remainder_to_last():
    assert count_bin_index(10, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert count_bin_index(2, 4).tolist() == [3, 3]  # fewer events than bins: SpikingJelly's rule
    ev = make_events([0] * 7, [0] * 7, [6, 5, 4, 3, 2, 1, 0], [1] * 7)  # unsorted input is time-sorted first
    f = bin_by_count(ev, S, 3)
    assert f[:, 1, 0, 0].tolist() == [2, 2, 3]
    assert bin_by_count(empty_events(), S, 2).sum() == 0


def test_downsample():
    ev = make_events([0, 1, 3], [0, 1, 2], [0, 0, 0], [1, 1, 0])
    f = bin_by_time(ev, S, 1, downsample=2)
    assert f.shape == (1, 2, 2, 2)
    assert f[0, 1, 0, 0] == 2 and f[0, 0, 1, 1] == 1


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 400), st.integers(1, 12), st.integers(1, 3), st.integers(0, 2**31), st.booleans())
def test_every_event_kept(n, bins, ds, seed, by_count):
    ev = random_events(np.random.default_rng(seed), n, 7, 5, t_max=int(np.random.default_rng(seed).integers(1, 10**6)))
    f = bin_by_count(ev, SensorSize(7, 5, 2), bins, ds) if by_count else bin_by_time(ev, SensorSize(7, 5, 2), bins,
                                                                                       downsample=ds)
    assert f.sum() == n
    np.testing.assert_array_equal(f.sum(axis=(0, 2, 3)), np.bincount(ev["p"], minlength=2))
