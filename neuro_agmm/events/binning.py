"""Events -> integer count frames ``(T, P, H, W)``, keeping every event.

Why: networks consume one frame per time step; the two common binning conventions
lose events at the edges (tonic's ``ToFrame`` drops the last event, SpikingJelly's and
tonic's count bins drop or misplace the remainder). Ours keeps all of them:

* ``bin_by_time``: the span is ``[t_start, t_end)`` with integer µs. By default
  ``t_start = t_min`` and ``t_end = t_max + 1`` (the last event's microsecond is
  included, so nothing needs a closed last bin). Bin ``k`` holds the events with
  ``k*D <= (t - t_start)*T < (k+1)*D`` where ``D = t_end - t_start``: the bins are
  ``[t_start + k*D/T, t_start + (k+1)*D/T)`` with exact rational edges (integer
  arithmetic, no float rounding). An event exactly on an edge goes to the later bin.
  If ``t_start``/``t_end`` are given, an event outside ``[t_start, t_end)`` is an
  error, never silently dropped. All events at one timestamp -> all in bin 0.
* ``bin_by_count``: SpikingJelly's ``split_by="number"``: events in time order, bins of
  ``N // T`` events, the last bin also takes the ``N % T`` remainder (so with
  ``N < T`` every event lands in the last bin).

Frames count events per ``(polarity, y, x)``; ``downsample=f`` maps ``x -> x // f``,
``y -> y // f`` on a ``ceil(W/f) x ceil(H/f)`` grid and sums counts. An empty stream
gives all-zero frames. Sensors with ``P == 1`` count both polarities in channel 0.

Left out: clipping and scaling (the dataset decides), decay/time-surface encodings.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from neuro_agmm.events.types import SensorSize


def downsampled_size(sensor_size: SensorSize, downsample: int = 1) -> SensorSize:
    w, h, p = sensor_size
    return SensorSize(-(-int(w) // downsample), -(-int(h) // downsample), int(p))


def _frame_index(events: np.ndarray, sensor_size: SensorSize, downsample: int) -> tuple[np.ndarray, SensorSize]:
    if downsample < 1:
        raise ValueError(f"downsample must be >= 1, got {downsample}")
    out = downsampled_size(sensor_size, downsample)
    x = events["x"].astype(np.int64) // downsample
    y = events["y"].astype(np.int64) // downsample
    p = events["p"].astype(np.int64) if out.P > 1 else np.zeros(len(events), np.int64)
    if events.size and (x.min() < 0 or x.max() >= out.W or y.min() < 0 or y.max() >= out.H
                        or p.min() < 0 or p.max() >= out.P):
        raise ValueError(f"events outside sensor {tuple(sensor_size)} (W, H, P)")
    return (p * out.H + y) * out.W + x, out


def time_bin_index(t: np.ndarray, n_bins: int, t_start: int, t_end: int) -> np.ndarray:
    """Bin index of each timestamp under the ``bin_by_time`` convention (raises if outside the span)."""
    t = np.asarray(t, np.int64)
    span = int(t_end) - int(t_start)
    if span <= 0:
        raise ValueError(f"empty time span [{t_start}, {t_end})")
    if t.size and (t.min() < t_start or t.max() >= t_end):
        raise ValueError(f"{int(np.sum((t < t_start) | (t >= t_end)))} events lie outside [{t_start}, {t_end}) µs; "
                         "widen the span instead of dropping them")
    return ((t - int(t_start)) * int(n_bins)) // span


def _accumulate(bin_idx: np.ndarray, pix: np.ndarray, n_bins: int, out: SensorSize, dtype) -> np.ndarray:
    n_pix = out.P * out.H * out.W
    counts = np.bincount(bin_idx * n_pix + pix, minlength=n_bins * n_pix)
    return counts.astype(dtype, copy=False).reshape(n_bins, out.P, out.H, out.W)


def bin_by_time(events: np.ndarray, sensor_size: SensorSize, n_bins: int, t_start: Optional[int] = None,
                t_end: Optional[int] = None, downsample: int = 1, dtype=np.int32) -> np.ndarray:
    """Count frames ``(n_bins, P, H', W')`` over ``[t_start, t_end)`` µs (see module docstring)."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    pix, out = _frame_index(events, sensor_size, downsample)
    if events.size == 0:
        return np.zeros((n_bins, out.P, out.H, out.W), dtype)
    t = events["t"].astype(np.int64)
    t0 = int(t.min()) if t_start is None else int(t_start)
    t1 = int(t.max()) + 1 if t_end is None else int(t_end)
    return _accumulate(time_bin_index(t, n_bins, t0, t1), pix, n_bins, out, dtype)


def count_bin_index(n_events: int, n_bins: int) -> np.ndarray:
    """Bin of the i-th event (time order) under SpikingJelly's ``split_by='number'`` convention."""
    per = n_events // n_bins
    idx = np.arange(n_events, dtype=np.int64)
    if per == 0:
        return np.full(n_events, n_bins - 1, np.int64)
    return np.minimum(idx // per, n_bins - 1)


def bin_by_count(events: np.ndarray, sensor_size: SensorSize, n_bins: int, downsample: int = 1,
                 dtype=np.int32) -> np.ndarray:
    """Count frames with ``N // n_bins`` events per bin and the remainder in the last bin."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    order = np.argsort(events["t"], kind="stable")
    pix, out = _frame_index(events[order], sensor_size, downsample)
    return _accumulate(count_bin_index(len(events), n_bins), pix, n_bins, out, dtype)
