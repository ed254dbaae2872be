"""Lava Processes for our Loihi-style core: what they are (ports, variables, shapes).

No import-time side effects (Lava's compiler executes this file under a bare module
name while it looks for ProcessModels); absolute imports only.
"""

from __future__ import annotations

import typing as ty

import numpy as np

from hw_models import core_spec
from hw_models.geometry import conv_output_hw
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


def _int_array(name: str, value, shape: tuple[int, ...], lo: int, hi: int, owner: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{owner}: {name} must be integers, got {arr.dtype}")
    arr = np.broadcast_to(arr, shape).astype(np.int32)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{owner}: {name} values {int(arr.min())}..{int(arr.max())} outside [{lo}, {hi}]")
    return arr.copy()


def _int_scalar(name: str, value, lo: int, hi: int, owner: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: {name}={value!r} must be an integer")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{owner}: {name}={value} outside [{lo}, {hi}]")
    return int(value)


class _ValidatedProcess(AbstractProcess):
    """Validates its registers before ``AbstractProcess.__init__``; a refused process has no runtime,
    so Lava's ``__del__`` (which calls ``stop()``) must not run for it."""

    def __del__(self):
        if hasattr(self, "_runtime"):
            super().__del__()


class BinaryDense(_ValidatedProcess):
    """Dense synapses storing integer mantissas (±1 for binary layers) and one weight exponent.

    ``a_out[t+1] = apply_weight_exp(weights @ s_in[t], weight_exp)`` (``core_spec`` step 1,
    with Lava's one-step buffer). Unlike Lava's stock ``Dense`` no clip/truncation is
    applied to the mantissas, so ±1 stays ±1.

    ``num_message_bits > 0`` marks graded input (integer payloads), 0 binary spikes.
    ``pipeline_delay`` holds every activation that many extra steps (a residual shortcut that skips
    layers must arrive with the main branch, which is one step later per layer it passes).
    """

    def __init__(self, *, weights: np.ndarray, weight_exp: int = 0, num_message_bits: int = 0,
                 delays: ty.Optional[np.ndarray] = None, pipeline_delay: int = 0,
                 name: ty.Optional[str] = None) -> None:
        owner = f"BinaryDense {name!r}"
        pipeline_delay = _int_scalar("pipeline_delay", pipeline_delay, 0, 1 << 16, owner)
        w = np.asarray(weights)
        if w.ndim != 2:
            raise ValueError(f"{owner}: weights must be 2-D (n_out, n_in), got shape {w.shape}")
        w = _int_array("weights", w, w.shape, core_spec.WEIGHT_MANT_MIN, core_spec.WEIGHT_MANT_MAX, owner)
        weight_exp = _int_scalar("weight_exp", weight_exp, -31, 31, owner)
        if delays is not None:  # per-synapse delays (core_spec rule 1), as Lava's DelayDense
            delays = _int_array("delays", delays, w.shape, 0, core_spec.DELAY_MAX, owner)
            if weight_exp < 0:
                raise ValueError(f"{owner}: delays need weight_exp >= 0")
        super().__init__(weights=w, weight_exp=weight_exp, num_message_bits=num_message_bits, delays=delays,
                         pipeline_delay=pipeline_delay, name=name)
        n_out, n_in = w.shape
        self.s_in = InPort(shape=(n_in,))
        self.a_out = OutPort(shape=(n_out,))
        self.weights = Var(shape=w.shape, init=w)
        self.weight_exp = Var(shape=(1,), init=weight_exp)
        self.a_buff = Var(shape=(n_out,), init=0)
        self.num_message_bits = Var(shape=(1,), init=int(num_message_bits))


class BinaryConv(_ValidatedProcess):
    """2-D convolution synapses (cross-correlation, torch's convention) on C-order flat ports.

    ``weights`` ``(C_out, C_in, kH, kW)`` integer mantissas, ``in_shape`` ``(C, H, W)``;
    the ports are flat (``n_in``, ``n_out``) so they connect to ``CoreLIF`` directly;
    ``pipeline_delay`` as in ``BinaryDense``.
    """

    def __init__(self, *, weights: np.ndarray, in_shape: tuple[int, int, int], stride=(1, 1), padding=(0, 0),
                 weight_exp: int = 0, num_message_bits: int = 0, pipeline_delay: int = 0,
                 name: ty.Optional[str] = None) -> None:
        owner = f"BinaryConv {name!r}"
        pipeline_delay = _int_scalar("pipeline_delay", pipeline_delay, 0, 1 << 16, owner)
        w = np.asarray(weights)
        if w.ndim != 4 or len(in_shape) != 3 or w.shape[1] != in_shape[0]:
            raise ValueError(f"{owner}: weights {w.shape} do not fit input (C, H, W) = {tuple(in_shape)}")
        w = _int_array("weights", w, w.shape, core_spec.WEIGHT_MANT_MIN, core_spec.WEIGHT_MANT_MAX, owner)
        weight_exp = _int_scalar("weight_exp", weight_exp, -31, 31, owner)
        c, h, wd = (int(x) for x in in_shape)
        sh, sw = (int(x) for x in stride)
        ph, pw = (int(x) for x in padding)
        ho, wo = conv_output_hw(h, wd, w.shape[2:], (sh, sw), (ph, pw))
        if ho < 1 or wo < 1:
            raise ValueError(f"{owner}: empty output for input {tuple(in_shape)} and kernel {w.shape[2:]}")
        out_shape = (w.shape[0], ho, wo)
        super().__init__(weights=w, in_shape=(c, h, wd), out_shape=out_shape, stride=(sh, sw), padding=(ph, pw),
                         weight_exp=weight_exp, num_message_bits=num_message_bits, pipeline_delay=pipeline_delay,
                         name=name)
        self.in_shape = (c, h, wd)
        self.out_shape = out_shape
        self.s_in = InPort(shape=(c * h * wd,))
        self.a_out = OutPort(shape=(int(np.prod(out_shape)),))
        self.weights = Var(shape=w.shape, init=w)
        self.weight_exp = Var(shape=(1,), init=weight_exp)
        self.a_buff = Var(shape=(int(np.prod(out_shape)),), init=0)
        self.num_message_bits = Var(shape=(1,), init=int(num_message_bits))


class CoreLIF(_ValidatedProcess):
    """Loihi-style LIF with per-neuron ``vth``/``bias``, per-sample reset and in-process recording.

    Parameters
    ----------
    shape : (n,)
    du, dv : 12-bit decays (per population); vth, bias_mant, bias_exp : per neuron.
    period, offset, n_windows : the run is ``n_windows`` back-to-back samples of ``period``
        steps; sample ``b`` step ``t`` is integrated at Lava ``time_step = offset + b*period + t``,
        where ``u`` and ``v`` are zeroed at ``t == 0`` (before integrating). Outside the
        windows the neuron runs freely and nothing is recorded.
    record : ``"all"`` keeps ``s``, ``v``, ``u`` of every windowed step in ``s_rec``/``v_rec``/
        ``u_rec`` ``(n, n_windows*period)``; ``"window"`` keeps, per sample, the voltage after
        its last step (``v_win``) and its spike count (``s_cnt``), both ``(n, n_windows)``;
        ``"none"`` keeps nothing. (Lava reads Vars back one element at a time — ~50 µs each
        here — so large recordings are slow to ``get()``.)
    dump_path : optional file name; after the last windowed step the model also writes its
        recordings there (``numpy.savez``, atomically), which is far faster to read back than
        ``Var.get()`` for large recordings.
    """

    def __init__(self, *, shape: tuple[int], du: int, dv: int, vth, bias_mant=0, bias_exp=0,
                 period: int = 1, offset: int = 1, n_windows: int = 1, record: str = "all",
                 dump_path: ty.Optional[str] = None, name: ty.Optional[str] = None) -> None:
        owner = f"CoreLIF {name!r}"
        shape = tuple(int(x) for x in shape)
        if len(shape) != 1:
            raise ValueError(f"{owner}: shape must be (n,), got {shape}")
        du = _int_scalar("du", du, 0, core_spec.DECAY_MAX, owner)
        dv = _int_scalar("dv", dv, 0, core_spec.DECAY_MAX, owner)
        vth = _int_array("vth", vth, shape, 0, core_spec.VTH_MAX, owner)
        bias_mant = _int_array("bias_mant", bias_mant, shape, core_spec.BIAS_MANT_MIN, core_spec.BIAS_MANT_MAX, owner)
        bias_exp = _int_array("bias_exp", bias_exp, shape, core_spec.BIAS_EXP_MIN, core_spec.BIAS_EXP_MAX, owner)
        if record not in ("all", "window", "none"):
            raise ValueError(f"{owner}: record={record!r} is not one of 'all', 'window', 'none'")
        for k, val in (("period", period), ("offset", offset), ("n_windows", n_windows)):
            _int_scalar(k, val, 1 if k != "offset" else 0, 1 << 30, owner)
        super().__init__(shape=shape, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                         period=int(period), offset=int(offset), n_windows=int(n_windows), record=record,
                         dump_path=None if dump_path is None else str(dump_path), name=name)
        n = shape[0]
        n_rec = int(period) * int(n_windows) if record == "all" else 1
        n_win = int(n_windows) if record == "window" else 1
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=du)
        self.dv = Var(shape=(1,), init=dv)
        self.vth = Var(shape=shape, init=vth)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.s_rec = Var(shape=(n, n_rec), init=0)
        self.v_rec = Var(shape=(n, n_rec), init=0)
        self.u_rec = Var(shape=(n, n_rec), init=0)
        self.v_win = Var(shape=(n, n_win), init=0)
        self.s_cnt = Var(shape=(n, n_win), init=0)
