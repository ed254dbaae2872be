import subprocess
import sys

import numpy as np

from neuro_agmm.data.__main__ import main
from neuro_agmm.events import read_events
from neuro_agmm.events.nmnist import write_nmnist
from neuro_agmm.events.types import make_events


def test_prepare_nmnist_and_info(tmp_path, capsys):
    ev = make_events([1, 2, 3], [1, 2, 3], [0, 10, 20], [1, 0, 1])
    for split in ("Train", "Test"):
        for d in (0, 1):
            write_nmnist(tmp_path / "nmnist" / split / str(d) / "a.bin", ev)
    assert main(["prepare", "--dataset", "nmnist", "--data-root", str(tmp_path), "-T", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nmnist_T3_time_ds1_clip15_v2" in out and "train (2, 3, 2, 34, 34)" in out
    cache = tmp_path / "nmnist" / "cache" / "nmnist_T3_time_ds1_clip15_v2"
    assert np.load(cache / "train_x.npy").sum() == 6 and np.load(cache / "test_y.npy").tolist() == [0, 1]
    assert main(["info", "--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| nmnist | 2 | 2 |" in out and "| dvsgesture | missing" in out


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["prepare", "--dataset", "cifar10dvs", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cifar10dvs:") and "README.md" in err and len(err.splitlines()) == 1
    (tmp_path / "nmnist" / "Train" / "0").mkdir(parents=True)
    (tmp_path / "nmnist" / "Train" / "0" / "x.bin").write_bytes(b"\0" * 6)
    (tmp_path / "nmnist" / "Test" / "0").mkdir(parents=True)
    assert main(["prepare", "--dataset", "nmnist", "--data-root", str(tmp_path), "--no-progress"]) == 2
    assert "at byte 5" in capsys.readouterr().err


def test_module_help_and_digits_samples(tmp_path):
    r = subprocess.run([sys.executable, "-m", "neuro_agmm.data", "prepare", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--time-steps" in r.stdout
    from neuro_agmm.data.__main__ import write_digits_samples
    files = write_digits_samples(tmp_path, n=3)
    assert len(files) == 3
    ev, sensor = read_events(files[0])
    assert sensor == (34, 34, 2) and len(ev) > 1000 and files[0].parent.name.isdigit()
