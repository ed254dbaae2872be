"""Windows of a stream and how raw events become network input frames.

``event_windows`` hands out the events of consecutive windows as they would arrive; ``InputMapping``
bins a window into count frames with the encoding the network was trained with (read from the
artifact's ``InputEncoding``: step length, downsample factor, clip, sensor size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from neuro_agmm.events import SensorSize
from neuro_agmm.events.binning import bin_by_time, downsampled_size


class InferError(ValueError):
    """A user-facing problem (bad flags, incompatible model and stream)."""


def event_windows(events: np.ndarray, window_us: int, t0: int, t_end: Optional[int] = None
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, end, events)`` of consecutive windows ``[t0 + k*w, t0 + (k+1)*w)`` µs.

    ``events`` must be time-sorted. Windows continue until ``t_end`` (default: one µs after
    the last event), so every event is in exactly one window; empty windows are yielded too.
    """
    if window_us < 1:
        raise ValueError(f"window_us must be >= 1, got {window_us}")
    t = events["t"]
    if t.size and t[0] < t0:
        raise ValueError(f"events start at {int(t[0])} µs, before the stream origin {t0}")
    end = (int(t[-1]) + 1 if t.size else t0 + 1) if t_end is None else int(t_end)
    lo = 0
    start = int(t0)
    while start < end:
        stop = start + window_us
        hi = int(np.searchsorted(t, stop, "left"))
        yield start, stop, events[lo:hi]
        lo, start = hi, stop


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
