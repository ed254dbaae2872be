import numpy as np

from neuro_agmm.data.dvs_sim import DVSSimConfig, saccade_path, simulate


def _images():
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.images[:40] / 16.0, d.target[:40]


def test_deterministic_and_seed_dependent():
    x, y = _images()
    a = simulate(x, y, DVSSimConfig(seed=3))
    b = simulate(x, y, DVSSimConfig(seed=3))
    c = simulate(x, y, DVSSimConfig(seed=4))
    np.testing.assert_array_equal(a.events, b.events)
    assert len(a.events) != len(c.events) or not np.array_equal(a.events, c.events)


def test_events_well_formed():
    x, y = _images()
    cfg = DVSSimConfig()
    s = simulate(x, y, cfg)
    assert s.sensor_size == (34, 34, 2) and len(s) == 40
    counts = np.diff(s.offsets)
    assert counts.min() > 500  # every digit produces a real stream (N-MNIST: a few thousand)
    for i in range(len(s)):
        e = s.sample(i)
        assert np.all(np.diff(e["t"]) >= 0)
    e = s.events
    assert e["x"].min() >= 0 and e["x"].max() < 34 and e["t"].min() >= 0 and e["t"].max() < cfg.duration_us
    on = (e["p"] == 1).mean()
    assert 0.35 < on < 0.65  # the digit returns to its start: ON and OFF roughly balance


def test_static_image_gives_no_events_and_edges_do():
    blank = np.zeros((2, 8, 8))
    blank[1, 2:6, 2:6] = 1.0  # a bright square
    s = simulate(blank, np.array([0, 1]), DVSSimConfig(jitter=0.0))
    assert s.offsets[1] == 0  # a uniform image does not change under motion
    e = s.sample(1)
    assert len(e) > 100
    # during the first saccade (moving right/down) the square's leading edges brighten: ON dominates there
    first = e[e["t"] < 100_000]
    ys, xs = first["y"][first["p"] == 1], first["x"][first["p"] == 1]
    off = first[first["p"] == 0]
    assert xs.mean() > off["x"].mean() and ys.mean() > off["y"].mean()


def test_path_triangle():
    p = saccade_path(DVSSimConfig(jitter=0.0, steps_per_saccade=4), np.random.default_rng(0))
    assert p.shape == (13, 2)
    np.testing.assert_allclose(p[0], p[-1])
    np.testing.assert_allclose(p[4], [3.0, 1.5])
