"""Streaming backends: one ``Stepper`` protocol, state carried from window to window.

A stepper is reset at the start of a recording, then ``run(frames)`` advances it over the frames of
one window and returns the readout voltage so far; ``counts()`` gives the stream's activity as
``hw_models.results.LayerCounts`` totals and ``activity()`` as an ``energy.Activity`` (None for the float
backend). Steppers are picked by name from ``STEPPERS``.
"""

from __future__ import annotations

from typing import Optional, Protocol

import numpy as np

from neuro_agmm.artifact import INPUT_NODE, ModelArtifact
from neuro_agmm.deploy.energy import Activity, activity_from_counts


class Stepper(Protocol):
    name: str

    def reset(self) -> None: ...

    def run(self, frames: np.ndarray) -> np.ndarray: ...

    def counts(self) -> dict: ...

    def activity(self) -> Optional[Activity]: ...


class EmulatorStepper:
    """Streaming integer backend: ``hw_models.emulator.Emulator`` with batch 1.

    Keeps no spike trains: the emulator's running counters (events, SynOps, updates, active updates,
    spikes) give the stream's activity and energy, so memory does not grow with the stream's length."""

    name = "emulator"

    def __init__(self, net, kernel: str = "auto"):
        from hw_models.backends.emulator import Emulator
        self.net = net
        self.emu = Emulator(net, 1, kernel=kernel)
        self.reset()

    def reset(self) -> None:
        self.emu.reset()

    def state(self) -> list[np.ndarray]:
        """Copies of every layer's ``u`` and ``v`` (to recognise a fixed point)."""
        return [np.array(x) for x in self.emu.u + self.emu.v]

    def idle(self, n_steps: int) -> None:
        """Account ``n_steps`` empty steps at a fixed point without running them."""
        self.emu.account_idle(n_steps)

    def run(self, frames: np.ndarray) -> np.ndarray:
        """Advance over ``frames`` (t, *input_shape); return the readout voltage (n_classes,)."""
        if len(frames):
            self.emu.advance(frames[None], keep_spikes=False)  # counters only: the cheap call
        return self.emu.readout_v()[0].astype(np.int64)

    def warm(self) -> None:
        """Load (or compile) the kernels before the first timed window, then reset: a step of zeros, and an
        empty window of event columns of ``events.types.EVENT_DTYPE`` (every recording's column types)."""
        from neuro_agmm.events.types import make_events

        shape = tuple(self.net.input_shape)
        self.run(np.zeros((1,) + shape, np.uint8))
        if len(shape) == 3:
            p, h, w = shape
            self.emu.advance_events(make_events([], [], [], []), 0, 0, 0, 1, 1, (1, 0, w, h, p, 15))
        self.reset()

    def run_window(self, binner, lo: int, hi: int, start: int, stop: int) -> Optional[np.ndarray]:
        """Events ``lo:hi`` of ``binner``'s recording as the window ``[start, stop)``, binned and run in one
        compiled call (``Emulator.advance_events``): the readout voltage, or None where that path does not apply
        (the caller bins frames and calls ``run``). Same numbers as ``run(binner.frames(...))`` (tested); it
        saves the frame's allocation and scan and most of the Python between the binning and the kernel."""
        if not binner.compiled:
            return None
        n = (stop - start) // binner.mapping.step_us
        if not self.emu.advance_events(binner.records, lo, hi, start, stop, n, binner.binning):
            return None
        return self.emu.readout_v()[0].astype(np.int64)

    def activity(self) -> Optional[Activity]:
        """The stream's activity since ``reset`` (``energy.activity_from_counts`` of the emulator's counters)."""
        if not self.emu.steps:
            return None
        return activity_from_counts(self.net, self.emu.counts, list(self.emu.active_updates), self.emu.steps)

    def counts(self) -> dict:
        return stream_totals([c.total() for c in self.emu.counts])


class TorchFloatStepper:
    """Streaming float backend: the artifact's float network stepped in torch, state carried.

    Synaptic currents come from ``neuro_agmm.export.ArtifactNet``'s layers (one definition of the
    float semantics); only the membrane state is kept here across calls.
    """

    name = "torch"

    def __init__(self, art: ModelArtifact, threads: int = 1):
        import torch

        from neuro_agmm.training.export import model_from_artifact
        torch.set_num_threads(threads)
        self.torch = torch
        self.art = art
        self.net = model_from_artifact(art)
        self.layers = list(self.net.layers)
        self.dynamics = [(float(s.leak), float(s.input_gain), float(s.threshold)) for s in art.layers]
        self.reset()

    def reset(self) -> None:
        self.v = [self.torch.zeros(int(np.prod(l.out_shape))) for l in self.layers]
        self._spikes = 0
        self._updates = 0

    def state(self) -> list[np.ndarray]:
        return [v.numpy().copy() for v in self.v]

    def idle(self, n_steps: int) -> None:
        self._updates += int(n_steps) * sum(int(v.numel()) for v in self.v)

    def run(self, frames: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(frames, np.float32)) * float(self.art.input_scale)
            t = x.shape[0]
            x = x.reshape(t, 1, -1)
            nodes = {INPUT_NODE: x}
            for k, (layer, (leak, gain, thr)) in enumerate(zip(self.layers, self.dynamics)):
                z = gain * self.net.current(k, x, nodes).reshape(t, -1)  # residual adds included, before the gain
                v = self.v[k]
                out = torch.empty_like(z)
                for s in range(t):
                    v = leak * v + z[s]
                    if layer.spiking:
                        spk = v > thr
                        v = torch.where(spk, torch.zeros_like(v), v)
                        out[s] = spk.float()
                self.v[k] = v
                self._updates += t * v.numel()
                if layer.spiking:
                    self._spikes += int(out.sum())
                x = out.reshape(t, 1, -1)
                nodes[layer.spec_name] = x
        return self.v[-1].numpy().astype(np.float64)

    def counts(self) -> dict:
        return {"synops": None, "neuron_updates": self._updates, "spikes": self._spikes}

    def activity(self) -> None:
        return None  # the float network has no integer activity to account energy for


def stream_totals(per: list[dict]) -> dict:
    """Per-layer counts of one stream -> its totals (spikes leave out the non-spiking readout)."""
    return {"synops": sum(c["synops"] for c in per), "neuron_updates": sum(c["neuron_updates"] for c in per),
            "spikes": sum(c["spikes"] for c in per[:-1]), "input_events": per[0]["input_events"] if per else 0,
            "per_layer": per}


STEPPERS = {"emulator": EmulatorStepper, "torch": TorchFloatStepper}
