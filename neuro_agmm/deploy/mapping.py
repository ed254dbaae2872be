"""``python -m neuro_agmm.map``: carry a trained artifact to Loihi-style hardware (Lava), NIR or netx.

Why: one command that takes the training hand-off (``.h5`` artifact) and answers "does it
still work on the chip?": it quantizes (``hw_models.quantizer``), places it on cores
(``hw_models.placer``), runs test samples bit-accurately in Lava under a watchdog
(``hw_models.lava_backend``), compares with the float model (``neuro_agmm.float_model``,
NumPy, no torch) layer by layer, writes the ``/hardware`` group into the artifact
(``hw_models.hardware_io``) and a PNG + JSON report.

Targets: ``--to lava`` (default), ``--to nir`` (``neuro_agmm.nir_export``), ``--to netx``
(``hw_models.netx``), ``--to brian2`` (delegated to ``neuro_agmm.crosscheck.run_brian2_cli``,
owned by the Brian2 cross-check, imported only when asked for).

The library entry point is ``map_to_lava(artifact_path, ...) -> MapResult``.
What it leaves out: training (never imported here) and Lava's hardware back ends.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

import hw_models  # noqa: F401  (installs the Lava import fix first)
from neuro_agmm.artifact import ArtifactError, atomic_write, read_artifact
from neuro_agmm.data.inputs import load_inputs

TARGETS = ("lava", "nir", "netx", "brian2")


class MapError(ValueError):
    """A user-facing problem (bad file, missing inputs, network that does not fit)."""


@dataclass
class MapResult:
    """What ``map_to_lava`` measured and wrote."""

    artifact: Path
    chip: str
    n_samples: int
    n_cores: int
    n_chips: int
    cores_per_layer: dict
    float_accuracy: Optional[float] = None
    integer_accuracy: Optional[float] = None  # reference run of the integer network (NumPy)
    lava_accuracy: Optional[float] = None
    prediction_agreement_float_lava: Optional[float] = None
    spike_agreement: list[float] = field(default_factory=list)  # float vs integer, per spiking layer
    lava_mismatches: Optional[int] = None  # samples whose Lava counts/voltages differ from the reference
    time_per_step_ms: Optional[float] = None
    lava_total_s: Optional[float] = None
    quant_summary: str = ""
    placement_summary: str = ""
    files: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items()}
        d["artifact"] = str(self.artifact)
        d["files"] = {k: str(v) for k, v in self.files.items()}
        return d

    def summary(self) -> str:
        def pct(x):
            return "n/a" if x is None else f"{100 * x:.2f}%"

        lines = [f"artifact {self.artifact}", self.quant_summary, self.placement_summary]
        if self.n_samples:
            lines += [
                f"on {self.n_samples} test samples:",
                f"  accuracy  float {pct(self.float_accuracy)} | integer reference {pct(self.integer_accuracy)} | "
                f"Lava fixed_pt {pct(self.lava_accuracy)}",
                f"  prediction agreement float vs Lava {pct(self.prediction_agreement_float_lava)}",
                "  spike agreement float vs integer per layer: "
                + ", ".join(f"{100 * a:.2f}%" for a in self.spike_agreement),
                f"  Lava vs integer reference: {self.lava_mismatches} sample(s) differ; "
                f"{self.time_per_step_ms:.2f} ms per Lava step (CPU simulator)",
            ]
        lines.append(f"cores used: {self.n_cores} on {self.n_chips} {self.chip} chip(s) {self.cores_per_layer}")
        for k, v in self.files.items():
            lines.append(f"wrote {k}: {v}")
        return "\n".join(l for l in lines if l)


def _plot(result: MapResult, placement, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    util = placement.utilisation()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1, 1.2, 2]})
    ax = axes[0]
    names, vals = [], []
    for n, v in (("float", result.float_accuracy), ("integer", result.integer_accuracy), ("Lava", result.lava_accuracy)):
        if v is not None:
            names.append(n)
            vals.append(100 * v)
    ax.bar(names, vals, color=["C0", "C1", "C2"][:len(vals)])
    for i, v in enumerate(vals):
        ax.text(i, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{result.n_samples} test samples")
    ax = axes[1]
    if result.spike_agreement:
        ax.bar([f"L{i}" for i in range(len(result.spike_agreement))], [100 * a for a in result.spike_agreement])
        ax.set_ylim(min(90.0, 100 * min(result.spike_agreement) - 1), 100.5)
    ax.set_ylabel("spike agreement float vs int (%)")
    ax.set_title("per spiking layer")
    ax = axes[2]
    x = np.arange(placement.n_cores)
    for i, (k, v) in enumerate(util.items()):
        ax.bar(x + (i - 1.5) * 0.2, 100 * v, 0.2, label=k)
    ax.set_xlabel("core")
    if placement.n_cores <= 40:
        ax.set_xticks(np.arange(placement.n_cores))
    ax.set_ylabel("utilisation (%)")
    ax.set_title(f"{placement.n_cores} cores on {result.chip}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def map_to_lava(artifact_path: str | os.PathLike, n_samples: int = 100, *, inputs_file: Optional[str] = None,
                inputs: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None, chip: str = "loihi1",
                max_chips: Optional[int] = None, timeout: Optional[float] = None, chunk: int = 100,
                out_dir: Optional[str | os.PathLike] = None, write_hardware: bool = True,
                data_root: str | os.PathLike = "datasets", progress: bool = True) -> MapResult:
    """Quantize, place, run on Lava (fixed_pt, watchdog), compare with float, write the hardware section.

    Inputs come from ``inputs``/``labels`` arrays, an npz ``inputs_file``, or the artifact's
    dataset (first ``n_samples`` test samples). ``n_samples=0`` without inputs maps only.
    """
    from tqdm import tqdm

    from hw_models.mapping.hardware_section import save_hardware
    from hw_models.backends.lava.runner import run_lava_batch
    from hw_models.mapping.placer import place
    from hw_models.mapping.quantizer import quantize
    from neuro_agmm.deploy.fidelity import fill_agreement
    from neuro_agmm.deploy.network import stamp
    from hw_models.backends.reference import run_reference
    from neuro_agmm.deploy.float_model import predict

    path = Path(artifact_path)
    try:
        art = read_artifact(path)
    except ArtifactError as e:
        raise MapError(str(e)) from e
    if inputs is not None:
        x = np.asarray(inputs)[:n_samples] if n_samples > 0 else np.asarray(inputs)
        y = None if labels is None else np.asarray(labels)[:len(x)]
    else:
        x, y = load_inputs(art, n_samples, inputs_file, data_root)
    t_bound = max(art.time_steps, int(x.shape[1]) if x is not None else 0)
    net, report = quantize(art, time_steps=t_bound)
    stamp(net, art)
    placement = place(net, chip, max_chips=max_chips)
    refs = []
    if x is not None and len(x):
        refs = [run_reference(net, xi) for xi in tqdm(x, desc="integer reference", unit="sample",
                                                         disable=not progress)]
        fill_agreement(report, art, net, x, y, traces=refs)
    result = MapResult(artifact=path, chip=placement.chip.name, n_samples=0 if x is None else int(len(x)),
                       n_cores=placement.n_cores, n_chips=placement.n_chips,
                       cores_per_layer=placement.cores_per_layer(), quant_summary=report.summary(),
                       placement_summary=placement.summary(), spike_agreement=list(report.spike_agreement),
                       float_accuracy=report.float_accuracy, integer_accuracy=report.int_accuracy)
    if x is not None and len(x):
        preds, mismatches, run_s, steps, total_s = [], 0, 0.0, 0, 0.0
        bar = tqdm(total=len(x), desc="Lava fixed_pt", unit="sample", disable=not progress)
        for i in range(0, len(x), chunk):
            xb = x[i:i + chunk]
            res = run_lava_batch(net, xb, timeout=timeout, chip=placement.chip)
            for j in range(len(xb)):
                ref = refs[i + j]
                same = np.array_equal(res.readout_v[j], ref.v[-1][-1]) and all(
                    np.array_equal(res.spike_counts[k][j], ref.spikes[k].sum(axis=0)) for k in range(len(net.layers)))
                mismatches += int(not same)
            preds.append(res.predictions)
            run_s += res.run_s
            steps += res.n_steps
            total_s += res.total_s
            bar.update(len(xb))
        bar.close()
        lava_pred = np.concatenate(preds)
        f_pred = predict(art, x)
        result.prediction_agreement_float_lava = float(np.mean(f_pred == lava_pred))
        result.lava_accuracy = float(np.mean(lava_pred == y)) if y is not None else None
        result.lava_mismatches = mismatches
        result.time_per_step_ms = 1000.0 * run_s / max(steps, 1)
        result.lava_total_s = total_s
    out = Path(out_dir) if out_dir is not None else path.parent / f"{path.stem}_map"
    out.mkdir(parents=True, exist_ok=True)
    if write_hardware:
        save_hardware(path, net, placement, report)
        result.files["hardware group"] = f"{path}:/hardware"
    result.files["placement plot"] = placement.plot(out / "placement.png")
    result.files["summary plot"] = _plot(result, placement, out / "map.png")
    result.files["report json"] = atomic_write(out / "map.json", lambda tmp: Path(tmp).write_text(
        json.dumps(result.to_dict() | {"placement": placement.to_dict(), "quantization": report.to_dict()},
                   indent=2, default=str)))
    return result
