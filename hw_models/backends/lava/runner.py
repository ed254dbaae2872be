"""Run an ``IntegerNetwork`` in Lava (``Loihi2SimCfg(select_tag="fixed_pt")``), safely.

Why: Lava is the reference simulator for Loihi-style cores. This module builds the Lava
process graph of an integer network (a graded-spike source, then per layer a synapse
block and a LIF population), runs it bit-accurately, and returns a ``RunTrace`` in the
CANONICAL time of ``hw_models.reference`` so the two compare element for element.

Three Lava traps it handles (see docs/hardware.md):

* **Hangs.** A ProcessModel that raises inside its worker makes Lava block forever.
  Every run happens in a forked child (its own session/process group) under a
  watchdog: on timeout, a failed worker (detected as a zombie child of the job), or a
  crash of the job, the whole group is killed, the shared-memory segments the job
  created (logged by the child as they are made) are unlinked, and ``LavaRunError`` is
  raised within ``timeout`` (+ a few seconds).
* **Delays.** Every synapse block sends the previous step's activation, so canonical
  step ``t`` of layer ``k`` (0-based) is integrated at Lava ``time_step = t + 2 + k``
  (time steps count from 1 and the source sends column ``time_step - 1``).
  ``layer_offset`` gives this; traces are cut back to canonical time.
* **Silent weight corruption.** Lava's stock bit-accurate ``Dense`` clips and truncates
  mantissas (±1 would become 0/−2). Our ``BinaryDense``/``BinaryConv`` store mantissas
  exactly. With ``stock=True`` the builder emits Lava's stock ``Dense`` + ``LIF`` (or
  ``LIFReset`` for layers with a nonzero bias, which would otherwise integrate the bias
  during the steps before the layer's first input arrives) instead, encoding ±w as ±2w with ``weight_exp - 1`` (exact: even mantissas survive the
  1-bit truncation, and ``(2z) << (k-1) == z << k``, ``(2z) >> (1-k) == z >> -k``), which
  needs a scalar ``vth`` per layer and dense layers only.

Batches (``run_lava_batch``) run as ONE Lava run: samples are laid back to back, each LIF
zeroes ``u``/``v`` at the first step of each sample's window (the synapse buffers only
carry the pipeline), and records per sample its spike counts and final voltage. This
pays Lava's start-up once per batch instead of once per sample.

What it leaves out: Lava's hardware back ends (``Loihi2HwCfg``) — this is the CPU
simulator only.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from hw_models import core_spec
from hw_models.integer_network import IntegerNetwork
from hw_models.results import RunTrace

SHM_DIR = Path("/dev/shm")
ZOMBIE_GRACE_S = 10.0  # a worker gone this long while others still run means a failed process model


class LavaRunError(RuntimeError):
    """A Lava run failed, hung, or was killed by the watchdog; nothing is left running."""

    def __init__(self, message: str, shm_names: tuple[str, ...] = ()):
        super().__init__(message)
        self.shm_names = shm_names


@dataclass
class LavaBatchResult:
    """Per-sample outputs of ``run_lava_batch``."""

    predictions: np.ndarray  # (B,) argmax of the readout voltage after each sample's last step
    readout_v: np.ndarray  # (B, n_out) last-layer voltage after each sample's last step
    spike_counts: list[np.ndarray]  # per layer (B, n) spikes per sample
    n_steps: int  # Lava time steps run
    run_s: float  # wall time of proc.run (excludes compile/start-up)
    total_s: float  # wall time of the whole job (compile, start-up, run, read-back)

    @property
    def time_per_step_ms(self) -> float:
        return 1000.0 * self.run_s / max(self.n_steps, 1)


def layer_offset(k: int) -> int:
    """Lava ``time_step`` at which layer ``k`` integrates canonical step 0 (``k = -1``: the source sends it)."""
    return 2 + k * core_spec.LAVA_DELAY_PER_LAYER


def shortcut_delay(k: int, source: int) -> int:
    """Extra steps a shortcut from node ``source`` into layer ``k`` holds its activation: its spikes leave
    ``k - 1 - source`` layers earlier than the main branch's, and must reach layer ``k`` in the same step."""
    return layer_offset(k) - layer_offset(source) - core_spec.LAVA_DELAY_PER_LAYER


# --------------------------------------------------------------------------------------
# watchdog
# --------------------------------------------------------------------------------------

def _job_children(pid: int) -> dict[int, bool]:
    """Direct children of ``pid`` (any thread) -> whether each is still running (not a zombie). Linux /proc."""
    kids: dict[int, bool] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for c in pids:
            try:
                with open(f"/proc/{c}/stat", "rb") as f:
                    state = f.read().decode(errors="replace").rsplit(")", 1)[-1].split()[0]
            except (OSError, IndexError):
                state = "X"
            kids[c] = state not in ("Z", "X")
    return kids


ORPHAN_POLL_S = 0.2  # how often a job checks that its caller still lives


def _die_with_parent(parent: int, shm_log: str) -> None:
    """In the job: if the caller dies (SIGKILL, SIGTERM, a crash), unlink the job's shared memory and kill the
    job's whole process group (every Lava worker), so nothing outlives the caller.

    Two triggers: ``PR_SET_PDEATHSIG`` (Linux; the kernel sends SIGTERM at once) and a daemon thread that
    polls ``getppid()`` (any POSIX system; within ``ORPHAN_POLL_S``)."""
    import threading

    job = os.getpid()

    def reap(*_):
        if os.getpid() != job:  # a Lava worker inherited the handler: SIGTERM keeps its default meaning there
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        _cleanup_shm(shm_log)
        os.killpg(job, signal.SIGKILL)

    signal.signal(signal.SIGTERM, reap)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the caller died before the signal was armed
        reap()

    def watch() -> None:
        while True:
            time.sleep(ORPHAN_POLL_S)
            if os.getppid() != parent:
                reap()

    threading.Thread(target=watch, name="orphan-guard", daemon=True).start()


def _child_main(fn: Callable, args: tuple, conn, shm_log: str, fail_log: str, parent: int) -> None:
    os.setsid()  # own process group: the watchdog can kill the job and every Lava worker at once
    _die_with_parent(parent, shm_log)
    from multiprocessing import shared_memory

    from lava.magma.runtime import runtime as lava_runtime

    original_target = lava_runtime.target_fn

    def reporting_target(*a, **kw):  # runs in each forked Lava worker: report a raising process model
        try:
            return original_target(*a, **kw)
        except BaseException:
            with open(fail_log, "a") as f:
                f.write(traceback.format_exc())
            raise

    lava_runtime.target_fn = reporting_target  # Runtime looks the name up at call time

    original_init = shared_memory.SharedMemory.__init__

    def logging_init(self, name=None, create=False, size=0):  # record every segment the job creates
        original_init(self, name, create, size)
        if create:
            with open(shm_log, "a") as f:
                f.write(self.name + "\n")

    shared_memory.SharedMemory.__init__ = logging_init
    try:
        result = ("ok", fn(*args))
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        result = ("err", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    try:
        conn.send(result)
        conn.close()
    finally:
        os._exit(0)


def _read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _cleanup_shm(shm_log: str) -> tuple[str, ...]:
    names: tuple[str, ...] = ()
    try:
        with open(shm_log) as f:
            names = tuple(n.strip() for n in f if n.strip())
    except OSError:
        pass
    for name in names:
        path = SHM_DIR / name
        if path.exists():
            try:
                from multiprocessing import shared_memory
                seg = shared_memory.SharedMemory(name=name)
                seg.close()
                seg.unlink()
            except (OSError, ValueError):
                try:
                    path.unlink()
                except OSError:
                    pass
    return names


def run_guarded(fn: Callable, args: tuple, timeout: float, what: str = "Lava run",
                grace: float = ZOMBIE_GRACE_S) -> Any:
    """Run ``fn(*args)`` in a forked child under a watchdog; return its result or raise ``LavaRunError``.

    The child gets its own session, so on failure the watchdog kills it with every Lava
    worker it started (``killpg``); shared-memory segments it created are unlinked. A worker
    that ended while others still run for ``grace`` seconds counts as a failed process model.
    If the caller itself is killed, the job notices (``_die_with_parent``) and takes its workers
    and segments with it.
    """
    _ensure_lava()
    ctx = mp.get_context("fork")
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    fd, shm_log = tempfile.mkstemp(prefix="lava_shm_", suffix=".log")
    os.close(fd)
    fd, fail_log = tempfile.mkstemp(prefix="lava_fail_", suffix=".log")
    os.close(fd)
    proc = ctx.Process(target=_child_main, args=(fn, args, send_conn, shm_log, fail_log, os.getpid()),
                       daemon=False)
    t0 = time.monotonic()
    proc.start()
    send_conn.close()
    result = None
    failure: Optional[str] = None
    zombie_since: Optional[float] = None
    prev_alive: set[int] = set()
    ended_mid_run = False
    try:
        while True:
            if recv_conn.poll(0.2):
                try:
                    result = recv_conn.recv()
                except EOFError:
                    failure = f"{what}: the job exited without a result (exit code {proc.exitcode})"
                break
            elapsed = time.monotonic() - t0
            if not proc.is_alive():
                if recv_conn.poll(0.5):
                    continue
                failure = f"{what}: the job died (exit code {proc.exitcode}) without a result"
                break
            worker_trace = _read_text(fail_log)
            if worker_trace:
                last = worker_trace.strip().splitlines()[-1]
                failure = f"{what}: a Lava worker process ended after {elapsed:.1f} s: its process model raised " \
                          f"({last}); stopped the run"
                break
            if elapsed > timeout:
                failure = f"{what}: no result within the {timeout:.0f} s watchdog bound (Lava hangs when a " \
                          f"process model fails); stopped it"
                break
            kids = _job_children(proc.pid)
            alive = {c for c, running in kids.items() if running}
            # a child that was running at the last poll and has ended while >= 2 others still run is a
            # worker that died mid-run (short-lived helpers that end before the workers start do not count)
            if len(alive) >= 2 and (prev_alive - alive):
                ended_mid_run = True
            prev_alive = alive
            if ended_mid_run and alive:  # Lava is now stuck joining the healthy workers
                zombie_since = zombie_since or time.monotonic()
                if time.monotonic() - zombie_since > grace:
                    failure = f"{what}: a Lava worker process ended after {elapsed:.1f} s while the others kept " \
                              f"running (its process model raised or it exited; see stderr); stopped the run"
                    break
            else:
                zombie_since = None
    finally:
        if failure is not None or proc.is_alive():
            proc.join(2.0 if failure is None else 0.0)
            if proc.is_alive() or failure is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.kill()
        proc.join(10.0)
        recv_conn.close()
        names = _cleanup_shm(shm_log)
        for log in (shm_log, fail_log):
            try:
                os.unlink(log)
            except OSError:
                pass
    if failure is not None:
        raise LavaRunError(failure, names)
    status, payload = result
    if status != "ok":
        raise LavaRunError(f"{what} failed: {payload}", names)
    return payload


# --------------------------------------------------------------------------------------
# building and running (inside the child)
# --------------------------------------------------------------------------------------

def check_stock_compatible(net: IntegerNetwork) -> None:
    """Raise ``ValueError`` naming the layer if Lava's stock Dense + LIFReset cannot run ``net`` exactly."""
    for layer in net.layers:
        if layer.delay is not None:
            raise ValueError(f"layer {layer.name!r}: stock=True has no delays (use the default processes)")
        if layer.shortcuts:
            raise ValueError(f"layer {layer.name!r}: stock=True has no residual shortcuts (Lava's stock Dense cannot "
                             f"hold a shortcut's activation for the layers it skips; use the default processes)")
        if layer.kind != "dense":
            raise ValueError(f"layer {layer.name!r}: stock=True supports dense layers only (Lava's stock Conv "
                             f"ignores weight_exp in fixed_pt, flips the kernel and imports torch)")
        if np.unique(layer.vth).size > 1:
            raise ValueError(f"layer {layer.name!r}: stock LIF has one scalar vth per population; this layer has "
                             f"{np.unique(layer.vth).size} different thresholds")
        w2 = 2 * layer.weight_mant.astype(np.int64)
        if w2.size and (w2.min() < -256 or w2.max() > 254):
            raise ValueError(f"layer {layer.name!r}: 2*weight {int(w2.min())}..{int(w2.max())} does not survive "
                             f"the stock Dense clip to [-256, 255] with even mantissas")


def _build(net: IntegerNetwork, data: np.ndarray, period: int, n_windows: int, record: str, stock: bool,
           dump_dir: Optional[str] = None):
    """Create and connect the processes; ``data`` is ``(n_in, n_steps)`` int32. Returns (source, layers, probes).

    With ``dump_dir`` each ``CoreLIF`` writes its recordings to ``dump_dir/<k>.npz`` after its last window.
    """
    from lava.proc.io.source import RingBuffer as Source

    source = Source(data=data.astype(np.int32))
    prev_out = source.s_out
    built = []
    probes = []
    shortcut_procs = []  # kept alive with the graph
    for k, layer in enumerate(net.layers):
        nmb = 8 if k == 0 and net.input_max > 1 else 0
        if stock:
            from lava.proc.dense.process import Dense
            from lava.proc.io.sink import RingBuffer as Sink
            from lava.proc.lif.process import LIF, LIFReset
            from lava.proc.monitor.process import Monitor

            syn = Dense(weights=2 * layer.weight_mant.astype(np.int32), weight_exp=int(layer.weight_exp) - 1,
                        num_weight_bits=8, num_message_bits=nmb, name=f"{layer.name}_syn")
            lif_args = dict(shape=(layer.n_out,), du=int(layer.du), dv=int(layer.dv), vth=int(layer.vth[0]),
                            bias_mant=layer.bias_mant.astype(np.int32), bias_exp=layer.bias_exp.astype(np.int32),
                            name=f"{layer.name}_lif")
            if np.any(layer.bias != 0):  # zero u, v at the window start (the bias acts before the input arrives)
                lif = LIFReset(reset_interval=period, reset_offset=layer_offset(k) % period, **lif_args)
            else:  # u = v = 0 until the first input arrives: the plain stock LIF is exact
                lif = LIF(**lif_args)
            sink = Sink(shape=(layer.n_out,), buffer=data.shape[1])
            lif.s_out.connect(sink.a_in)
            mon_v, mon_u = Monitor(), Monitor()
            mon_v.probe(lif.v, data.shape[1])
            mon_u.probe(lif.u, data.shape[1])
            probes.append((sink, mon_v, mon_u))
        else:
            from hw_models.backends.lava.procs.process import BinaryConv, BinaryDense, CoreLIF

            if layer.kind == "dense":
                syn = BinaryDense(weights=layer.weight_mant, weight_exp=int(layer.weight_exp), num_message_bits=nmb,
                                  delays=layer.delay, name=f"{layer.name}_syn")
            else:
                syn = BinaryConv(weights=layer.weight_mant, in_shape=layer.in_shape, stride=layer.stride,
                                 padding=layer.padding, weight_exp=int(layer.weight_exp), num_message_bits=nmb,
                                 name=f"{layer.name}_syn")
            lif = CoreLIF(shape=(layer.n_out,), du=int(layer.du), dv=int(layer.dv), vth=layer.vth,
                          bias_mant=layer.bias_mant, bias_exp=layer.bias_exp, period=period,
                          offset=layer_offset(k), n_windows=n_windows, record=record,
                          dump_path=None if dump_dir is None else os.path.join(dump_dir, f"{k}.npz"),
                          name=f"{layer.name}_lif")
        prev_out.connect(syn.s_in)
        syn.a_out.connect(lif.a_in)
        for sc in layer.shortcuts:  # rule 1b: more blocks into the same a_in, which sums them (never stock)
            args = dict(weights=sc.weight_mant, weight_exp=int(sc.weight_exp),
                        num_message_bits=8 if sc.source < 0 and net.input_max > 1 else 0,
                        pipeline_delay=shortcut_delay(k, sc.source), name=f"{layer.name}_{sc.name}_syn")
            blk = BinaryDense(**args) if sc.kind == "dense" else \
                BinaryConv(in_shape=sc.in_shape, stride=sc.stride, padding=sc.padding, **args)
            (source.s_out if sc.source < 0 else built[sc.source][1].s_out).connect(blk.s_in)
            blk.a_out.connect(lif.a_in)
            shortcut_procs.append(blk)
        prev_out = lif.s_out
        built.append((syn, lif))
    return source, built, probes


def _read_lif(lif, k: int, record: str, dump_dir: Optional[str], last: bool) -> dict:
    """Recordings of ``CoreLIF`` ``k``: from its dump file if written, else through ``Var.get()``."""
    rec = None
    if dump_dir is not None:
        path = os.path.join(dump_dir, f"{k}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                rec = {key: z[key] for key in z.files}

    def get(name: str) -> np.ndarray:
        arr = rec[name] if rec is not None else np.asarray(getattr(lif, name).get())
        return arr.T.astype(np.int64)

    if record == "window":
        return {"s_cnt": get("s_cnt"), "v_win": get("v_win") if last else None}
    if record == "all":
        return {"s": get("s_rec"), "v": get("v_rec"), "u": get("u_rec")}
    return {}


def _run_job(net: IntegerNetwork, data: np.ndarray, period: int, n_windows: int, record: str, stock: bool,
             select_tag: str, dump_dir: Optional[str] = None) -> dict:
    """Build, run and read back (runs inside the watchdog's child).

    Runs one step first, so that compile/start-up (``startup_s``) is apart from the
    stepping time (``run_s`` over ``run_steps``).
    """
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    t0 = time.perf_counter()
    source, built, probes = _build(net, data, period, n_windows, record, stock, None if stock else dump_dir)
    n_steps = int(data.shape[1])
    out: dict = {"layers": []}
    try:
        cfg = Loihi2SimCfg(select_tag=select_tag)
        source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        t1 = time.perf_counter()
        if n_steps > 1:
            source.run(condition=RunSteps(num_steps=n_steps - 1), run_cfg=cfg)
        t2 = time.perf_counter()
        for k, (syn, lif) in enumerate(built):
            if stock:
                sink, mon_v, mon_u = probes[k]
                out["layers"].append({"s": np.asarray(sink.data.get()).astype(np.int64).T,
                                      "v": np.asarray(mon_v.get_data()[lif.name]["v"]).astype(np.int64),
                                      "u": np.asarray(mon_u.get_data()[lif.name]["u"]).astype(np.int64)})
            else:
                out["layers"].append(_read_lif(lif, k, record, dump_dir, k == len(built) - 1))
    finally:
        source.stop()
    out["startup_s"] = t1 - t0
    out["run_s"] = t2 - t1
    out["run_steps"] = max(n_steps - 1, 0)
    out["total_s"] = time.perf_counter() - t0
    return out


def _ensure_lava() -> None:
    """Import Lava and our process package in the parent, so forked jobs start warm.

    Lava's ``message_infrastructure/multiprocessing.py`` calls ``mp.set_start_method('fork')``
    at import and fails if the start method was already fixed; when it was fixed to
    ``fork`` (the same choice) we clear it and import again.
    """
    try:
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    except RuntimeError as e:
        if "context has already been set" not in str(e) or mp.get_start_method() != "fork":
            raise
        mp.context._default_context._actual_context = None  # type: ignore[attr-defined]
        import lava.magma.runtime.message_infrastructure.multiprocessing  # noqa: F401
    import hw_models.backends.lava.procs.models  # noqa: F401
    import lava.magma.core.run_configs  # noqa: F401
    import lava.proc.io.source  # noqa: F401


def _input_matrix(net: IntegerNetwork, inputs: np.ndarray, n_steps: int) -> np.ndarray:
    x = np.asarray(inputs)
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise ValueError(f"inputs must be integers (graded spikes), got {x.dtype}")
    flat = x.reshape(x.shape[0], -1).astype(np.int64)
    if flat.shape[1] != int(np.prod(net.input_shape)):
        raise ValueError(f"inputs have {flat.shape[1]} values per step, network expects {net.input_shape}")
    if flat.size and (flat.min() < 0 or flat.max() > net.input_max):
        raise ValueError(f"inputs outside [0, input_max={net.input_max}]")
    data = np.zeros((flat.shape[1], n_steps), np.int32)
    data[:, :flat.shape[0]] = flat.T
    return data


def default_timeout(net: IntegerNetwork, n_steps: int) -> float:
    """A generous bound: start-up plus ~10 ms per step per process (measured ~1.3 ms here)."""
    n_procs = 1 + 2 * len(net.layers) + sum(len(l.shortcuts) for l in net.layers)
    return 60.0 + 0.01 * n_steps * n_procs


def check_core_limits(net: IntegerNetwork, chip) -> None:
    """Every path into Lava places the network first: ``PlacementError`` if it exceeds ``chip``'s core limits."""
    from hw_models.mapping.placer import place

    place(net, chip)


def run_lava(net: IntegerNetwork, inputs: np.ndarray, *, timeout: Optional[float] = None, stock: bool = False,
             select_tag: str = "fixed_pt", chip="loihi2") -> RunTrace:
    """Run ``net`` on one sample ``(T, *input_shape)`` in Lava; return the trace in canonical time.

    ``stock=True`` uses Lava's stock ``Dense`` + ``LIFReset`` (see ``check_stock_compatible``).
    Raises ``LavaRunError`` if the run fails or exceeds ``timeout`` seconds, ``PlacementError`` (before
    starting Lava) if the network does not fit ``chip``'s cores (``hw_models.core_limits``).
    """
    net.validate()
    check_core_limits(net, chip)
    x = np.asarray(inputs)
    t_steps = int(x.shape[0])
    if t_steps < 1:
        raise ValueError("inputs need at least one time step")
    if stock:
        check_stock_compatible(net)
    n_layers = len(net.layers)
    n_steps = t_steps + layer_offset(n_layers - 1) - 1
    data = _input_matrix(net, x, n_steps)
    timeout = default_timeout(net, n_steps) if timeout is None else timeout
    _ensure_lava()
    with tempfile.TemporaryDirectory(prefix="lava_rec_") as dump_dir:
        out = run_guarded(_run_job, (net, data, t_steps, 1, "all", stock, select_tag, dump_dir), timeout)
    spikes, volts, currents = [], [], []
    for k, rec in enumerate(out["layers"]):
        if stock:  # raw Lava time: cut the layer's window (time_step = offset + t  ->  index offset - 1 + t)
            lo = layer_offset(k) - 1
            rec = {key: val[lo:lo + t_steps] for key, val in rec.items()}
        spikes.append(rec["s"].astype(bool))
        volts.append(rec["v"].astype(np.int32))
        currents.append(rec["u"].astype(np.int32))
    return RunTrace(spikes=spikes, v=volts, u=currents)


def run_lava_batch(net: IntegerNetwork, inputs: np.ndarray, *, timeout: Optional[float] = None,
                   select_tag: str = "fixed_pt", chip="loihi2") -> LavaBatchResult:
    """Run ``B`` samples ``(B, T, *input_shape)`` in one Lava run (state reset between samples).

    Returns per-sample predictions, final readout voltages and per-layer spike counts,
    which equal those of ``run_reference`` on each sample. ``PlacementError`` if ``net`` exceeds
    ``chip``'s core limits.
    """
    net.validate()
    check_core_limits(net, chip)
    if any(l.delay is not None for l in net.layers):
        raise ValueError("run_lava_batch lays samples back to back, and delayed synapses would carry one sample's "
                         "input into the next; run delayed networks with run_lava, one sample per run")
    x = np.asarray(inputs)
    if x.ndim != len(net.input_shape) + 2:
        raise ValueError(f"inputs have shape {x.shape}, expected (B, T, *{tuple(net.input_shape)})")
    b, t_steps = int(x.shape[0]), int(x.shape[1])
    if b < 1 or t_steps < 1:
        raise ValueError("need at least one sample and one time step")
    seq = x.reshape((b * t_steps,) + tuple(x.shape[2:]))
    n_steps = b * t_steps + layer_offset(len(net.layers) - 1) - 1
    data = _input_matrix(net, seq, n_steps)
    timeout = default_timeout(net, n_steps) if timeout is None else timeout
    _ensure_lava()
    with tempfile.TemporaryDirectory(prefix="lava_rec_") as dump_dir:
        out = run_guarded(_run_job, (net, data, t_steps, b, "window", False, select_tag, dump_dir), timeout,
                          what=f"Lava batch run ({b} samples x {t_steps} steps)")
    readout_v = out["layers"][-1]["v_win"].astype(np.int64)
    return LavaBatchResult(predictions=np.argmax(readout_v, axis=1), readout_v=readout_v,
                           spike_counts=[rec["s_cnt"] for rec in out["layers"]], n_steps=int(out["run_steps"]),
                           run_s=float(out["run_s"]), total_s=float(out["total_s"]))
