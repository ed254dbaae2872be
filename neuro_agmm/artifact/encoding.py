"""The input encoding a network was trained with, carried in the artifact so deployment never guesses it.

A small record that describes the callable turning raw input into the integer graded spikes the
network sees (tonic's habit: a transform is a named callable with parameters). For event data that
is ``neuro_agmm.events.binning.bin_by_time`` (or ``bin_by_count``) with its step length, window,
downsample factor, clip and sensor size; for frame data (``direct``/``rate``) there is nothing to
re-do at deployment and the record only states it.

Stored as the JSON attribute ``encoding_record`` at the artifact root (format version 2). A v1
artifact has none: ``encoding_for_v1`` rebuilds it from the documented defaults (a typical span per
dataset, the downsample factor from the sensor and input shapes, the clip from ``input_max``) and
says so in ``notes``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional

# Typical recording span per event dataset (µs): the step length of a stream is span / T when the
# training binned each recording over its own span. Documented defaults for v1 artifacts.
DEFAULT_SPAN_US = {"digits-dvs": 300_000, "nmnist": 300_000, "dvsgesture": 6_000_000, "cifar10dvs": 1_300_000}

@dataclass
class InputEncoding:
    """How raw input becomes the network's integer inputs ``(T, *input_shape)``.

    ``kind``: ``"events"`` (binned event counts), ``"direct"`` (pixel levels each step) or ``"rate"``.
    For events: ``transform`` names the binning callable; ``binning`` is ``"time"`` (bins of
    ``step_us``; ``span_us`` fixed when the training used a fixed span, else each recording's own)
    or ``"count"``; an event on a bin edge goes to the later bin and the last bin ends one µs
    after the last event (nothing is dropped); ``downsample`` divides x and y (0: derive it from
    the stream's sensor and the input shape, the v1 default); counts are
    clipped to ``clip``; ``sensor_size`` is (W, H, P); ``polarity`` is ``"channels"`` (ON and OFF
    are separate input channels, P = 2) or ``"merged"`` (P = 1).
    """

    kind: str
    time_steps: int
    transform: Optional[str] = None
    binning: Optional[str] = None
    step_us: Optional[int] = None
    span_us: Optional[int] = None
    downsample: int = 1
    clip: Optional[int] = None
    sensor_size: Optional[tuple[int, int, int]] = None
    polarity: Optional[str] = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("notes")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "InputEncoding":
        d = json.loads(text)
        if not isinstance(d, dict) or "kind" not in d or "time_steps" not in d:
            raise ValueError("encoding_record needs at least 'kind' and 'time_steps'")
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "notes"}
        if known.get("sensor_size") is not None:
            known["sensor_size"] = tuple(int(x) for x in known["sensor_size"])
        return cls(**known)


def events_encoding(time_steps: int, binning: str, downsample: int, clip: int, sensor_size, dataset: str,
                    span_us: Optional[int] = None) -> InputEncoding:
    """The record of an event dataset binned by ``neuro_agmm.data.event_datasets`` (training side)."""
    span = span_us if span_us is not None else DEFAULT_SPAN_US.get(dataset)
    step = max(1, int(span) // int(time_steps)) if span else None
    p = int(sensor_size[2])
    return InputEncoding(kind="events", time_steps=int(time_steps),
                         transform=f"neuro_agmm.events.binning.bin_by_{binning}", binning=binning, step_us=step,
                         span_us=span_us, downsample=int(downsample), clip=int(clip),
                         sensor_size=tuple(int(x) for x in sensor_size), polarity="channels" if p == 2 else "merged")


def encoding_for_v1(kind: str, time_steps: int, input_shape: tuple[int, ...], input_max: int,
                    dataset: str) -> InputEncoding:
    """The documented defaults for an artifact written before the encoding was stored (format v1)."""
    if kind != "events":
        return InputEncoding(kind=kind, time_steps=int(time_steps),
                             notes=["format v1 artifact: no encoding record; frame input needs none"])
    p = int(input_shape[0]) if len(input_shape) == 3 else 2
    enc = events_encoding(time_steps, "time", 0, int(input_max), (0, 0, p), dataset,
                          span_us=DEFAULT_SPAN_US.get(dataset) if dataset == "digits-dvs" else None)
    enc.sensor_size = None
    enc.notes.append(f"format v1 artifact: encoding rebuilt from defaults (span {DEFAULT_SPAN_US.get(dataset)} µs "
                     f"for {dataset!r}, downsample from the stream's sensor and the input shape, "
                     f"clip = input_max = {input_max})")
    return enc
