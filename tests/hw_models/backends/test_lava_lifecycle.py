"""Lava jobs never outlive their caller and never hang: a killed caller takes every Lava worker and shared-memory
segment with it; a worker that vanishes mid-run is detected within the grace period; core limits are checked
before Lava starts."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hw_models.backends.lava import runner
from hw_models.mapping.placer import PlacementError
from random_nets import random_inputs, random_int_network

ROOT = Path(__file__).parents[3]
CALLER = r'''# MARK-lifecycle-test
import sys; sys.path.insert(0, "tests")
import numpy as np
from random_nets import random_int_network, random_inputs
from hw_models.backends.lava.runner import run_lava
rng = np.random.default_rng(0)
net = random_int_network(rng, "dense", depth=2)
print("start", flush=True)
run_lava(net, random_inputs(rng, net, 200000), timeout=600)  # MARK-lifecycle-test
'''


def _processes(mark: str) -> list[int]:
    out = subprocess.run(["ps", "-e", "-ww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if mark in line]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_caller_leaves_no_lava_process_and_no_shared_memory(sig):
    shm_before = set(os.listdir("/dev/shm"))
    caller = subprocess.Popen([sys.executable, "-c", CALLER], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1"))
    try:
        _kill_caller_when_running(caller, sig)
    finally:
        left = _processes("MARK-lifecycle-test")
        for pid in left:  # never leak into later tests, whatever happened
            os.kill(pid, signal.SIGKILL)
    assert left == []
    assert set(os.listdir("/dev/shm")) - shm_before == set()


def _kill_caller_when_running(caller, sig):
    assert caller.stdout.readline().strip() == "start"
    deadline = time.monotonic() + 60
    while len(_processes("MARK-lifecycle-test")) < 4 and time.monotonic() < deadline:  # caller, job, workers
        time.sleep(0.2)
    assert len(_processes("MARK-lifecycle-test")) >= 4, "the Lava job did not start"
    time.sleep(1.0)
    caller.send_signal(sig)
    caller.wait(10)
    deadline = time.monotonic() + 10
    while _processes("MARK-lifecycle-test") and time.monotonic() < deadline:
        time.sleep(0.2)


def _job_losing_a_worker(net, data):
    def killer():
        time.sleep(3)
        os.kill(max(runner._job_children(os.getpid())), signal.SIGKILL)  # a worker vanishes (like os._exit)
    threading.Thread(target=killer, daemon=True).start()
    return runner._run_job(net, data, data.shape[1], 1, "window", False, "fixed_pt", None)


def test_a_vanished_worker_is_detected_within_the_grace_period():
    rng = np.random.default_rng(0)
    net = random_int_network(rng, "dense", depth=2)
    data = runner._input_matrix(net, random_inputs(rng, net, 100_000), 100_003)
    t0 = time.monotonic()
    with pytest.raises(runner.LavaRunError, match="worker process ended"):
        runner.run_guarded(_job_losing_a_worker, (net, data), timeout=300)
    assert time.monotonic() - t0 < 3 + runner.ZOMBIE_GRACE_S + 10  # not the 300 s watchdog


def test_core_limits_are_checked_before_lava_starts():
    rng = np.random.default_rng(1)
    net = random_int_network(rng, "dense", depth=2, n_in=5000)  # fan-in 5000 > 4096 axons per core
    x = random_inputs(rng, net, 2)
    with pytest.raises(PlacementError, match="fan-in"):
        runner.run_lava(net, x)
    with pytest.raises(PlacementError, match="fan-in"):
        runner.run_lava_batch(net, x[None])
