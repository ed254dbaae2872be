"""Windows of a stream and how raw events become network input frames.

``event_windows`` hands out the events of consecutive windows as they would arrive; ``InputMapping``
bins a window into count frames with the encoding the network was trained with (read from the
artifact's ``InputEncoding``: step length, downsample factor, clip, sensor size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from hw_models.backends import compiled
from neuro_agmm.events import SensorSize
from neuro_agmm.events.types import EVENT_DTYPE, make_events
from neuro_agmm.events.binning import bin_by_time, downsampled_size


class InferError(ValueError):
    """A user-facing problem (bad flags, incompatible model and stream)."""


def window_bounds(t: np.ndarray, window_us: int, t0: int, t_end: Optional[int] = None
                  ) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(start, end, lo, hi)``: window ``[t0 + k*w, t0 + (k+1)*w)`` µs holds events ``lo:hi``.

    ``t`` is the recording's sorted, contiguous timestamp column (take ``np.ascontiguousarray(events["t"])``
    once: ``events["t"]`` is a strided field, and ``searchsorted`` on it copies the whole column on every
    call, which made a window's cost grow with the recording's length). Windows continue until ``t_end``
    (default: one µs after the last event), so every event is in exactly one window; empty windows are
    yielded too. Each window costs one binary search: O(log N), whatever the position in the recording.
    """
    if window_us < 1:
        raise ValueError(f"window_us must be >= 1, got {window_us}")
    if t.size and t[0] < t0:
        raise ValueError(f"events start at {int(t[0])} µs, before the stream origin {t0}")
    end = (int(t[-1]) + 1 if t.size else t0 + 1) if t_end is None else int(t_end)
    lo = 0
    start = int(t0)
    while start < end:
        stop = start + window_us
        hi = int(np.searchsorted(t, stop, "left"))
        yield start, stop, lo, hi
        lo, start = hi, stop


def event_windows(events: np.ndarray, window_us: int, t0: int, t_end: Optional[int] = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, end, events)`` of consecutive windows (``window_bounds`` on ``events``; time-sorted)."""
    for start, stop, lo, hi in window_bounds(np.ascontiguousarray(events["t"]), window_us, t0, t_end):
        yield start, stop, events[lo:hi]


@dataclass
class InputMapping:
    """How raw events become network inputs: sensor, downsampling, clip, step length."""

    sensor_size: SensorSize
    downsample: int
    clip: int
    step_us: int

    @classmethod
    def from_encoding(cls, art, sensor: SensorSize, step_us: int) -> "InputMapping":
        """The mapping of ``art``'s encoding record for a stream from ``sensor``; ``InferError`` if they disagree."""
        enc = art.input_encoding
        m = cls.fit(SensorSize(*sensor), tuple(art.input_shape), int(enc.clip or art.input_max), step_us)
        if enc.downsample and m.downsample != int(enc.downsample):
            raise InferError(f"the stream's sensor {tuple(sensor)} needs downsample {m.downsample} to reach the "
                             f"model's input {tuple(art.input_shape)}, but the model was trained with downsample "
                             f"{enc.downsample} (sensor {enc.sensor_size}); pass --sensor-size")
        return m

    @classmethod
    def fit(cls, sensor: SensorSize, input_shape: tuple[int, ...], clip: int, step_us: int) -> "InputMapping":
        if len(input_shape) != 3:
            raise InferError(f"the model's input shape {tuple(input_shape)} is not (P, H, W) event frames")
        p, h, w = input_shape
        if p != sensor.P:
            raise InferError(f"the model expects {p} polarity channels, the stream has {sensor.P}")
        f = max(1, -(-sensor.W // w))
        if tuple(downsampled_size(sensor, f)) != (w, h, p):
            raise InferError(f"the stream's sensor {tuple(sensor)} (W, H, P) does not downsample by an integer "
                             f"factor to the model's input (P, H, W) = {tuple(input_shape)}")
        return cls(SensorSize(*sensor), f, int(clip), int(step_us))

    def frames(self, events: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Events of ``[start, stop)`` -> ``((stop-start)//step_us, P, H, W)`` clipped counts."""
        n = (stop - start) // self.step_us
        f = bin_by_time(events, self.sensor_size, n, start, stop, self.downsample)
        return np.minimum(f, self.clip)

    def binner(self, events: np.ndarray) -> "WindowBinner":
        """A binner for consecutive windows of one recording (columns taken once)."""
        return WindowBinner(self, events)


class WindowBinner:
    """``InputMapping.frames`` for windows ``lo:hi`` of one recording, reading its records in place.

    With numba, one compiled pass over the window's events (``compiled.bin_events_u8``) counts straight into a
    uint8 frame, saturating at the clip (the NumPy route builds int64 index arrays, a bincount over every pixel
    and a clip: ten calls per window). The records are used as they are when they are ``EVENT_DTYPE`` and
    contiguous (no column copies: those cost a tenth of a 1 s DVS128 stream's wall time); other integer layouts
    are converted once, values checked to fit first. The emulator stepper takes ``records`` and ``binning`` to
    bin and run a window in one call (``EmulatorStepper.run_window``). Results equal ``frames`` (tested); any
    event outside the span or the sensor goes to ``frames``, which raises its error. Clips above 255 use
    ``frames``.
    """

    def __init__(self, mapping: InputMapping, events: np.ndarray):
        self.mapping = mapping
        self.events = events
        self.records = _event_records(events)
        self.out_size = downsampled_size(mapping.sensor_size, mapping.downsample)
        self.compiled = compiled.HAVE_NUMBA and mapping.clip <= 255 and self.records is not None
        f = mapping.downsample
        self.f_shift = f.bit_length() - 1 if f & (f - 1) == 0 else -1  # a power of two divides by a shift
        w, h, p = self.out_size
        self.binning = (f, self.f_shift, w, h, p, mapping.clip)  # compiled.CompiledRun.advance_events's spec
        self._t: Optional[np.ndarray] = None

    @property
    def t(self) -> np.ndarray:
        """The contiguous timestamp column (copied on first use; ``window_bounds`` takes it)."""
        if self._t is None:
            self._t = np.ascontiguousarray(self.events["t"])
        return self._t

    def window_end(self, lo: int, stop: int) -> int:
        """The first event index ``>= lo`` at or after ``stop`` µs (events are time-sorted): O(log N)."""
        if self.compiled:
            return int(compiled.search_time(self.records, lo, stop))
        return int(np.searchsorted(self.t, stop, "left"))

    def time_at(self, i: int) -> int:
        return int(self.events["t"][i])

    def frames(self, lo: int, hi: int, start: int, stop: int) -> np.ndarray:
        m = self.mapping
        n = (stop - start) // m.step_us
        if self.compiled:
            w, h, p = self.out_size
            out = np.zeros((n, p, h, w), np.uint8)
            bad, _ = compiled.bin_events_u8(self.records, lo, hi, start, stop, n, m.downsample, self.f_shift, w, h, p,
                                            m.clip, out)
            if bad < 0:
                return out
        return m.frames(self.events[lo:hi], start, stop)


def _event_records(events: np.ndarray) -> Optional[np.ndarray]:
    """``events`` as contiguous ``EVENT_DTYPE`` records (itself when it already is), or None where a value does
    not fit (the NumPy route then reports it)."""
    if events.dtype == EVENT_DTYPE and events.flags.c_contiguous:
        return events
    names = events.dtype.names or ()
    if not all(f in names and events.dtype[f].kind in "iub" for f in ("x", "y", "t", "p")):
        return None
    for f in ("x", "y", "t", "p"):
        col = events[f]
        info = np.iinfo(EVENT_DTYPE[f])
        if col.size and (int(col.min()) < info.min or int(col.max()) > info.max):
            return None
    return make_events(events["x"], events["y"], events["t"], events["p"])
