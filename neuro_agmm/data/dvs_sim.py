"""A DVS sensor simulated on the real sklearn ``digits`` images: the embedded event dataset.

Why: no event dataset can be downloaded here, but the pipeline (readers -> binning ->
training -> streaming inference) needs real-looking event streams. N-MNIST was made by
moving an ATIS camera in three saccades in front of MNIST digits on a monitor; we do
the same in simulation with the 1797 8x8 scikit-learn digits.

Model (per sample, all samples vectorized together):

1. The 8x8 image (levels 0..16 -> intensity 0..1) is upsampled bilinearly to
   ``digit_px`` x ``digit_px`` and placed on a dark background in a ``sensor`` x
   ``sensor`` field of view, centred on the mean position of the motion path.
2. Motion: three straight saccades of ``saccade_us`` each along a triangle
   (right-down, right-up, back left; ``amplitude`` px), its vertices jittered by
   ``jitter`` px from the seed; ``steps_per_saccade`` sub-frames per saccade,
   rendered with bilinear sub-pixel shifts.
3. Each pixel compares its log intensity ``L = log(I + eps)`` with its reference level
   (initialised at ``t = 0``): every crossing of ``ref ± C`` emits an ON / OFF event and
   moves the reference by ``C``. ``C`` is per pixel and per sample,
   ``contrast * (1 + mismatch * N(0, 1))`` (clipped to >= 0.25 contrast), drawn from the
   seed. Within a sub-frame the log intensity is taken as linear in time, so each event
   gets the µs at which its level is crossed.

Everything is deterministic given the seed. Left out: sensor noise (shot noise, leak
events), refractory period, bandwidth limits, the monitor's refresh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from neuro_agmm.events.types import EVENT_DTYPE, SensorSize


@dataclass(frozen=True)
class DVSSimConfig:
    sensor: int = 34  # square field of view, px (N-MNIST: 34)
    digit_px: int = 24  # upsampled digit size, px
    amplitude: float = 3.0  # saccade size, px
    jitter: float = 0.3  # px, seed-dependent vertex jitter
    saccade_us: int = 100_000  # N-MNIST: ~100 ms per saccade
    steps_per_saccade: int = 15
    contrast: float = 0.25  # log-intensity threshold C
    mismatch: float = 0.05  # relative per-pixel threshold spread
    eps: float = 0.1  # dark level added before the log
    seed: int = 0

    @property
    def duration_us(self) -> int:
        return 3 * self.saccade_us


@dataclass
class SimulatedEvents:
    """All samples' events concatenated; sample ``i`` is ``events[offsets[i]:offsets[i+1]]`` (time-sorted)."""

    events: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    sensor_size: SensorSize
    config: DVSSimConfig
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, i: int) -> np.ndarray:
        return self.events[self.offsets[i]:self.offsets[i + 1]]

    def sample_index(self) -> np.ndarray:
        """Sample id of every event, ``(n_events,)``."""
        return np.repeat(np.arange(len(self.labels)), np.diff(self.offsets))


def _upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (N, h, w) -> (N, size, size), pixel centres aligned (align_corners=False)."""
    n, h, w = images.shape

    def axis(src: int):
        c = (np.arange(size) + 0.5) * src / size - 0.5
        c = np.clip(c, 0, src - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, src - 1)
        return i0, i1, (c - i0).astype(np.float32)

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    rows = images[:, y0, :] * (1 - fy)[None, :, None] + images[:, y1, :] * fy[None, :, None]
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def saccade_path(cfg: DVSSimConfig, rng: np.random.Generator) -> np.ndarray:
    """Positions (dy, dx) in px at each sub-frame boundary, shape (3 * steps + 1, 2)."""
    a = cfg.amplitude
    verts = np.array([[0, 0], [a, a / 2], [0, a], [0, 0]], np.float64)
    verts[1:3] += rng.normal(0, cfg.jitter, (2, 2))
    s = cfg.steps_per_saccade
    frac = np.arange(s) / s
    path = [verts[k] + frac[:, None] * (verts[k + 1] - verts[k]) for k in range(3)]
    return np.concatenate(path + [verts[3:4]])


def _render(canvas: np.ndarray, pad: int, sensor: int, pos: np.ndarray) -> np.ndarray:
    """View of the padded canvas shifted by ``pos`` (dy, dx) px with bilinear interpolation."""
    iy, ix = int(np.floor(pos[0])), int(np.floor(pos[1]))
    fy, fx = pos[0] - iy, pos[1] - ix

    def view(dy: int, dx: int) -> np.ndarray:
        oy, ox = pad - iy - dy, pad - ix - dx
        return canvas[:, oy:oy + sensor, ox:ox + sensor]

    return ((1 - fy) * ((1 - fx) * view(0, 0) + fx * view(0, 1))
            + fy * ((1 - fx) * view(1, 0) + fx * view(1, 1)))


def simulate(images: np.ndarray, labels: np.ndarray, cfg: DVSSimConfig = DVSSimConfig()) -> SimulatedEvents:
    """Simulate a DVS watching ``images`` (N, h, w) in [0, 1] move through three saccades."""
    rng = np.random.default_rng(cfg.seed)
    n = len(images)
    s = cfg.sensor
    digit = _upsample(np.asarray(images, np.float32), cfg.digit_px)
    path = saccade_path(cfg, rng)
    pad = int(np.ceil(np.abs(path).max())) + 2
    canvas = np.zeros((n, s + 2 * pad, s + 2 * pad), np.float32)
    centre = path.mean(axis=0)
    top = pad + (s - cfg.digit_px) // 2 - int(round(centre[0]))
    left = pad + (s - cfg.digit_px) // 2 - int(round(centre[1]))
    canvas[:, top:top + cfg.digit_px, left:left + cfg.digit_px] = digit
    c = (cfg.contrast * (1 + cfg.mismatch * rng.standard_normal((n, s, s)))).astype(np.float32)
    c = np.maximum(c, 0.25 * cfg.contrast)
    dt = cfg.saccade_us / cfg.steps_per_saccade
    eps = np.float32(cfg.eps)
    log_prev = np.log(_render(canvas, pad, s, path[0]) + eps).reshape(-1)
    ref = log_prev.copy()
    c_flat = c.reshape(-1)
    parts = []
    for k in range(1, len(path)):
        log_now = np.log(_render(canvas, pad, s, path[k]) + eps).reshape(-1)
        steps = ((log_now - ref) / c_flat).astype(np.int8)  # signed number of threshold crossings
        idx = np.flatnonzero(steps)
        if idx.size:
            m = steps[idx].astype(np.int64)
            cnt = np.abs(m)
            rep = np.repeat(idx, cnt)
            sign = np.repeat(np.sign(m), cnt).astype(np.float32)
            j = np.arange(len(rep)) - np.repeat(np.cumsum(cnt) - cnt, cnt) + 1  # 1..m within each pixel
            level = ref[rep] + sign * j * c_flat[rep]
            lp, ln = log_prev[rep], log_now[rep]
            denom = np.where(ln != lp, ln - lp, np.float32(1.0))
            frac = np.clip((level - lp) / denom, 0.0, 1.0)
            t = np.minimum(np.floor((k - 1 + frac) * dt).astype(np.int64), cfg.duration_us - 1)
            order = np.argsort((t - int((k - 1) * dt)).astype(np.int16), kind="stable")  # radix sort
            parts.append((rep[order], t[order], (sign[order] > 0).astype(np.int8)))
            ref += steps * c_flat
        log_prev = log_now
    rep = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    t = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    pp = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int8)
    smp, rem = np.divmod(rep, s * s)
    # frames are appended in time order and each is time-sorted: a stable sort by sample id
    # (int16 -> radix sort) gives (sample, t) order
    order = np.argsort(smp.astype(np.int16 if n < 32768 else np.int64), kind="stable")
    smp, rem, t, pp = smp[order], rem[order], t[order], pp[order]
    ev = np.empty(len(order), EVENT_DTYPE)
    ev["y"], ev["x"] = np.divmod(rem, s)
    ev["t"], ev["p"] = t, pp
    offsets = np.concatenate([[0], np.cumsum(np.bincount(smp, minlength=n))]).astype(np.int64)
    return SimulatedEvents(ev, offsets, np.asarray(labels, np.int64), SensorSize(s, s, 2), cfg,
                           meta={"source": "sklearn.datasets.load_digits", "config": asdict(cfg)})


def simulate_digits(cfg: DVSSimConfig = DVSSimConfig()) -> SimulatedEvents:
    """The embedded "digits-dvs" event dataset: all 1797 sklearn digits through ``simulate``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return simulate(d.images / 16.0, d.target, cfg)
