"""ProcessModels for ``hw_models.backends.lava.procs.process``: ``fixed_pt`` (bit-accurate) and ``floating_pt``.

The ``fixed_pt`` models do not re-implement the integer rules: they call
``hw_models.core_spec`` (``apply_weight_exp``, ``step``) and ``hw_models.geometry.conv2d_int``,
so Lava runs the very same arithmetic as the reference. The ``floating_pt`` models read
the same integer registers as real numbers (no truncation, wrap or clip), for quick
what-if runs; they are not bit-accurate.

No import-time side effects (Lava's compiler executes this file under the bare module
name ``models``); absolute imports only.
"""

from __future__ import annotations

import os

import numpy as np

from hw_models import core_spec
from hw_models.backends.lava.procs.process import BinaryConv, BinaryDense, CoreLIF
from hw_models.geometry import conv2d, conv2d_int
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class _Pipelined:
    """A residual shortcut's synapses hold their activations ``pipeline_delay`` extra steps (a FIFO, zeros until
    it fills), so that they reach the target layer with the main branch, which is one step later per layer."""

    def _pipeline(self, a: np.ndarray) -> np.ndarray:
        d = int(self.proc_params.get("pipeline_delay", 0) or 0)
        if d == 0:
            return a
        if getattr(self, "_fifo", None) is None:
            self._fifo = [np.zeros_like(a) for _ in range(d)]
        self._fifo.append(a)
        return self._fifo.pop(0)


class _SynapseFixedBase(_Pipelined, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=32)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=9)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)

    def accumulate(self, s_in: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_spk(self) -> None:
        # Like Lava's Dense: send the previous step's accumulation first (one-step delay).
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        if int(self.num_message_bits.item()) == 0:
            s_in = (s_in != 0)
        delays = self.proc_params.get("delays")
        if delays is None:
            acc = self.accumulate(s_in.astype(np.int64))
        else:  # as Lava's DelayDense: a ring of future sums, one slot per delay
            acc = self._delayed(s_in.astype(np.int64), delays)
        self.a_buff = self._pipeline(core_spec.apply_weight_exp(acc, int(self.weight_exp.item())))

    def _delayed(self, s_in: np.ndarray, delays: np.ndarray) -> np.ndarray:
        if getattr(self, "_ring", None) is None:
            self._ring = np.zeros((int(delays.max()) + 1, self.weights.shape[0]), np.int64)
            self._buckets = [(int(d), np.where(delays == d, self.weights, 0).astype(np.int64))
                             for d in np.unique(delays)]
        for d, w in self._buckets:
            self._ring[d] += w @ s_in
        now = self._ring[0].copy()
        self._ring = np.roll(self._ring, -1, axis=0)
        self._ring[-1] = 0
        return now


@implements(proc=BinaryDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBinaryDenseFixed(_SynapseFixedBase):
    """Bit-accurate: ``core_spec.apply_weight_exp(weights @ s_in, weight_exp)``."""

    def accumulate(self, s_in: np.ndarray) -> np.ndarray:
        return self.weights.astype(np.int64) @ s_in


@implements(proc=BinaryConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBinaryConvFixed(_SynapseFixedBase):
    """Bit-accurate: ``core_spec.apply_weight_exp(conv2d_int(s_in), weight_exp)``."""

    def accumulate(self, s_in: np.ndarray) -> np.ndarray:
        p = self.proc_params
        return conv2d_int(s_in.reshape(p["in_shape"]), self.weights, p["stride"], p["padding"]).reshape(-1)


class _SynapseFloatBase(_Pipelined, PyLoihiProcessModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    weight_exp: np.ndarray = LavaPyType(np.ndarray, float)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def accumulate(self, s_in: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run_spk(self) -> None:
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv().astype(float)
        self.a_buff = self._pipeline(self.accumulate(s_in) * 2.0 ** float(self.weight_exp.item()))


@implements(proc=BinaryDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBinaryDenseFloat(_SynapseFloatBase):
    def accumulate(self, s_in: np.ndarray) -> np.ndarray:
        return self.weights @ s_in


@implements(proc=BinaryConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBinaryConvFloat(_SynapseFloatBase):
    def accumulate(self, s_in: np.ndarray) -> np.ndarray:
        p = self.proc_params
        return conv2d(s_in.reshape(p["in_shape"]), self.weights, p["stride"], p["padding"], dtype=float).reshape(-1)


class _CoreLifBase(PyLoihiProcessModel):
    """Window bookkeeping and recording shared by the fixed and float models."""

    def window(self) -> tuple[int, int, bool]:
        """``(sample, step, inside)`` of the current Lava time step for this layer."""
        p = self.proc_params
        rel = self.time_step - p["offset"]
        inside = 0 <= rel < p["period"] * p["n_windows"]
        b, t = divmod(rel, p["period"]) if inside else (-1, -1)
        return b, t, inside

    def record(self, b: int, t: int, s: np.ndarray) -> None:
        p = self.proc_params
        if p["record"] == "all":
            i = b * p["period"] + t
            self.s_rec[:, i] = s
            self.v_rec[:, i] = self.v
            self.u_rec[:, i] = self.u
        elif p["record"] == "window":
            self.s_cnt[:, b] += s
            if t == p["period"] - 1:
                self.v_win[:, b] = self.v
        if p.get("dump_path") and b == p["n_windows"] - 1 and t == p["period"] - 1:
            self.dump(p["dump_path"])

    def dump(self, path: str) -> None:
        """Write the recordings to ``path`` (npz) atomically: a reader never sees half a file."""
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, s_rec=self.s_rec, v_rec=self.v_rec, u_rec=self.u_rec, v_win=self.v_win, s_cnt=self.s_cnt)
        os.replace(tmp, path)


@implements(proc=CoreLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyCoreLifFixed(_CoreLifBase):
    """Bit-accurate: one ``core_spec.step`` (rules 2-4) per Lava time step."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=1)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    s_rec: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    v_rec: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    u_rec: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v_win: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s_cnt: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=32)

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(np.int64)
        b, t, inside = self.window()
        if inside and t == 0:
            self.u[:] = 0
            self.v[:] = 0
        bias = core_spec.effective_bias(self.bias_mant, self.bias_exp)
        params = core_spec.CoreParams(int(self.du.item()), int(self.dv.item()), bias, self.vth)
        s, (u, v) = core_spec.step(core_spec.CoreState(self.u, self.v), a_in, params)
        self.u[:] = u
        self.v[:] = v
        if inside:
            self.record(b, t, s)
        self.s_out.send(s.astype(np.int32) * inside)  # nothing leaves outside the windows (delays)


@implements(proc=CoreLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCoreLifFloat(_CoreLifBase):
    """The same registers read as real numbers: no truncation, wrap or clip (not bit-accurate)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)
    s_rec: np.ndarray = LavaPyType(np.ndarray, float)
    v_rec: np.ndarray = LavaPyType(np.ndarray, float)
    u_rec: np.ndarray = LavaPyType(np.ndarray, float)
    v_win: np.ndarray = LavaPyType(np.ndarray, float)
    s_cnt: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        a_in = self.a_in.recv().astype(float)
        b, t, inside = self.window()
        if inside and t == 0:
            self.u[:] = 0
            self.v[:] = 0
        unity = float(core_spec.DECAY_UNITY)
        self.u[:] = self.u * (core_spec.current_decay_factor(self.du.item()) / unity) + a_in * 2.0 ** core_spec.ACT_SHIFT
        self.v[:] = (self.v * (core_spec.voltage_decay_factor(self.dv.item()) / unity) + self.u + self.bias_mant * 2.0 ** self.bias_exp)
        s = self.v > self.vth * 2.0 ** core_spec.VTH_SHIFT
        self.v[s] = 0
        if inside:
            self.record(b, t, s)
        self.s_out.send(s.astype(float) * inside)
