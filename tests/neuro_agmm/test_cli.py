"""The shared CLI vocabulary: examples in every --help, the same flags, one error line with exit 2."""

import subprocess
import sys

import pytest

from neuro_agmm import cli

JOBS = ["train", "export", "map", "crosscheck", "infer", "report", "plots", "demo", "data", "convert"]


@pytest.mark.parametrize("job", JOBS)
def test_help_has_an_example(job):
    r = subprocess.run([sys.executable, "-m", f"neuro_agmm.{job}", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "examples:" in r.stdout and f"python -m neuro_agmm.{job}" in r.stdout


@pytest.mark.parametrize("job", ["map", "crosscheck", "report", "infer"])
def test_artifact_and_data_root_spelled_the_same(job):
    import importlib

    p = importlib.import_module(f"neuro_agmm.{job}").build_parser()
    dests = {a.dest for a in p._actions}
    assert {"artifact", "data_root"} <= dests


def test_user_error_is_one_line_exit_2(tmp_path, capsys):
    from neuro_agmm.report import main

    assert main([str(tmp_path / "missing.h5"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_bug_keeps_its_traceback():
    p = cli.parser("x", "d", ["python -m neuro_agmm.x"])

    def job(args):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        cli.run(job, p, [])


def test_progress_is_off_without_a_terminal(monkeypatch):
    class NotATerminal:
        def isatty(self):
            return False
    monkeypatch.setattr(sys, "stderr", NotATerminal())
    assert cli.progress_wanted(None) is False
    assert cli.progress_wanted(True) is True
