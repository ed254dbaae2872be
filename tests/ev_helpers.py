"""Shared helpers for the event tests: random event arrays."""

import numpy as np

from neuro_agmm.events.types import make_events, sort_by_time


def random_events(rng: np.random.Generator, n: int, w: int, h: int, t_max: int = 1_000_000) -> np.ndarray:
    return sort_by_time(make_events(rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, t_max, n),
                                    rng.integers(0, 2, n)))
