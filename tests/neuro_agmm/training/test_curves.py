"""Curve plots from run directories: grouping, mean ± std, PNG output and CLI errors."""

import json

import numpy as np
import pytest

from neuro_agmm.plots import main
from neuro_agmm.training.curves import Run, load_run, mean_std_curves


def _run_dir(tmp_path, name, method, accs, flips=None, csv=False):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"method": method}))
    ms = []
    for i, a in enumerate(accs):
        m = {"epoch": i + 1, "train_loss": 1.0 / (i + 1), "test_acc": a}
        if flips is not None:
            m.update({"flip/mean": flips[i], "grad_absmean/mean": 1e-4, "grad_var/mean": 1e-8, "rate/mean": 0.1})
        ms.append(m)
    if csv:
        keys = list(ms[0])
        (d / "metrics.csv").write_text(",".join(keys) + "\n" + "".join(",".join(str(m[k]) for k in keys) + "\n"
                                                                       for m in ms))
    else:
        (d / "metrics.json").write_text(json.dumps(ms))
    return d


def test_mean_std_over_runs_of_a_group():
    runs = [Run(None, "a", [{"x": 1.0}, {"x": 2.0}]), Run(None, "a", [{"x": 3.0}])]
    ep, mu, sd = mean_std_curves(runs, "x")
    assert ep.tolist() == [1, 2] and mu.tolist() == [2.0, 2.0] and sd.tolist() == [1.0, 0.0]
    ep, _, _ = mean_std_curves(runs, "missing")
    assert len(ep) == 0


def test_cli_writes_png_grouped_by_method(tmp_path):
    dirs = [_run_dir(tmp_path, "v0", "vanilla", [0.5, 0.8], [0.01, 0.005]),
            _run_dir(tmp_path, "v1", "vanilla", [0.6, 0.85], [0.02, 0.004], csv=True),
            _run_dir(tmp_path, "a0", "agmm", [0.6, 0.9], [0.005, 0.002]),
            _run_dir(tmp_path, "f0", "fp", [0.7, 0.95])]
    assert load_run(dirs[1]).metrics[1]["flip/mean"] == pytest.approx(0.004)
    out = tmp_path / "fig.png"
    assert main([str(d) for d in dirs] + ["--out", str(out), "--title", "t"]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    import matplotlib.image as mpimg
    img = mpimg.imread(out)
    assert img.shape[0] > 500 and img.shape[1] > 1000 and np.std(img) > 0.01  # not a blank canvas


def test_cli_rejects_missing_run_dir(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "f.png")]) == 2
    assert "no such run directory" in capsys.readouterr().err
