"""Energy report of a trained artifact: ``python -m neuro_agmm.report ARTIFACT --out DIR``.

Why it exists: one command that turns an artifact and test inputs into the numbers a
neuromorphic paper reports — energy per inference for the BSNN on Loihi-style cores next
to the same network under the 45 nm model, a full-precision SNN and the equivalent ANN;
the breakdown by layer and by operation kind; synapse memory (1-bit vs float32); firing
rates — as Markdown, JSON and PNG charts, with the assumptions written beside the numbers.

The activity comes from the bit-exact emulator (``hw_models.emulator``) on the quantized
network (``hw_models.quantizer.quantize``); Lava and Brian2 give identical counts
(``neuro_agmm.crosscheck`` proves it per run). What it leaves out: measurements on a real
chip, memory-access energy (see ``neuro_agmm.energy``). No torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from hw_models.integer_network import IntegerNetwork
from neuro_agmm.artifact import ModelArtifact, atomic_write, read_artifact
from neuro_agmm.deploy.energy import (EnergyAssumptions, EnergyResult, MemoryFootprint, energy_per_inference,
                               measure_activity, memory_footprint)


@dataclass
class EnergyReport:
    artifact: str
    energy: EnergyResult
    memory: MemoryFootprint
    accuracy: Optional[float] = None  # integer network (emulator) on the labelled inputs
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"artifact": self.artifact, "accuracy_integer": self.accuracy, "energy": self.energy.to_dict(),
                "memory": self.memory.to_dict()}

    def markdown(self) -> str:
        e, act = self.energy, self.energy.activity
        base = e.scenario("bsnn_loihi").total_pj
        md = [f"# Energy report: `{self.artifact}`", "",
              f"{act.n_samples} inferences of T = {act.time_steps} steps, activity from the bit-exact NumPy "
              f"emulator on the quantized network" + (f"; integer accuracy {self.accuracy:.4f}" if
                                                       self.accuracy is not None else "") + ".", "",
              "## Energy per inference", "",
              "| scenario | total (nJ) | synaptic (nJ) | neuron (nJ) | spikes (nJ) | × BSNN-Loihi | what |",
              "|---|---:|---:|---:|---:|---:|---|"]
        for s in e.scenarios:
            k = s.by_kind
            md.append(f"| {s.name} | {s.total_pj / 1e3:.3f} | {k['synaptic'] / 1e3:.3f} | {k['neuron'] / 1e3:.3f} "
                      f"| {k['spikes'] / 1e3:.3f} | {s.total_pj / base if base else float('nan'):.2f} "
                      f"| {s.description} |")
        md += ["", "Assumptions:", ""] + [f"- {a}" for a in e.assumptions.lines()]
        md += ["", "## Activity per layer (mean per inference)", "",
               "| layer | kind | neurons | synapses (= ANN MACs) | input events | SynOps | neuron updates "
               "(active) | spikes | firing rate | BSNN-Loihi (nJ) |",
               "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        lo = e.scenario("bsnn_loihi").per_layer
        for l, le in zip(act.layers, lo):
            md.append(f"| {l.name} | {l.kind} | {l.n_out} | {l.n_synapses} | {l.input_events:.1f} | {l.synops:.1f} "
                      f"| {l.neuron_updates:.0f} ({l.active_updates:.1f}) | {l.spikes:.1f} | {l.firing_rate:.4f} "
                      f"| {sum(le.values()) / 1e3:.3f} |")
        mem = self.memory.to_dict()
        md += ["", "## Synapse memory", "",
               "| layer | stored weights | bits/weight | storage | as float32 | synapses if expanded |",
               "|---|---:|---:|---:|---:|---:|"]
        for r in self.memory.layers:
            md.append(f"| {r['name']} | {r['params']} | {r['weight_bits']} | {r['bits'] / 8 / 1024:.2f} KiB "
                      f"| {r['float32_bits'] / 8 / 1024:.2f} KiB | {r['expanded_synapses']} |")
        md.append(f"| **total** | | | **{mem['total_bytes'] / 1024:.2f} KiB** | "
                  f"**{mem['total_float32_bytes'] / 1024:.2f} KiB** | ({mem['compression']:.1f}× smaller) |")
        md += ["", "Figures: " + ", ".join(f"`{p.name}`" for k, p in self.files.items() if k.startswith("png")), "",
               "Produced by `python -m neuro_agmm.report` (see docs/energy.md for the model)."]
        return "\n".join(md)


def _plots(rep: EnergyReport, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = {}
    e = rep.energy
    names = [s.name for s in e.scenarios]
    kinds = ("synaptic", "neuron", "spikes")

    def save(fig, name):
        p = atomic_write(out / name, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
        plt.close(fig)
        return p

    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = np.arange(len(names))
    width = 0.2
    for i, kind in enumerate(("total",) + kinds):
        vals = np.array([(s.total_pj if kind == "total" else s.by_kind[kind]) / 1e3 for s in e.scenarios])
        vals = np.where(vals > 0, vals, np.nan)  # nothing to draw on a log axis
        bars = ax.bar(xs + (i - 1.5) * width, vals, width, label=kind)
        if kind == "total":
            ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(xs, names)
    ax.set_yscale("log")
    ax.set_ylabel("nJ per inference (log)")
    ax.set_title("Energy per inference by scenario and operation kind")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=15, ha="right")
    files["png_energy"] = save(fig, "energy_by_scenario.png")

    layers = [l.name for l in e.activity.layers]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    lo = e.scenario("bsnn_loihi").per_layer
    bottom = np.zeros(len(layers))
    for kind in kinds:
        vals = np.array([r[kind] / 1e3 for r in lo])
        ax.bar(layers, vals, bottom=bottom, label=kind)
        bottom += vals
    ax.set_ylabel("nJ per inference")
    ax.set_title("BSNN on Loihi-style cores: energy by layer")
    ax.legend()
    files["png_layers"] = save(fig, "energy_by_layer.png")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].bar(layers, [l.firing_rate for l in e.activity.layers])
    axes[0].set_ylabel("spikes / neuron / step")
    axes[0].set_title("Firing rate per layer")
    mem = rep.memory.layers
    xs = np.arange(len(mem))
    axes[1].bar(xs - 0.2, [r["bits"] / 8 / 1024 for r in mem], 0.4, label="stored (1-bit / 8-bit)")
    axes[1].bar(xs + 0.2, [r["float32_bits"] / 8 / 1024 for r in mem], 0.4, label="float32")
    axes[1].set_xticks(xs, [r["name"] for r in mem])
    axes[1].set_ylabel("KiB")
    axes[1].set_title("Synapse memory")
    axes[1].legend()
    files["png_activity"] = save(fig, "activity_memory.png")
    return files


def energy_report(artifact_path: str | os.PathLike, inputs: Optional[np.ndarray] = None,
                  labels: Optional[np.ndarray] = None, *, net: Optional[IntegerNetwork] = None,
                  out_dir: Optional[str | os.PathLike] = None, samples: int = 100, data_root: str = "datasets",
                  assumptions: Optional[EnergyAssumptions] = None, batch_size: int = 256) -> EnergyReport:
    """Energy report of the artifact at ``artifact_path`` on ``inputs`` ``(N, T, *input_shape)``.

    Without ``inputs`` the first ``samples`` test samples of the artifact's dataset are used
    (``neuro_agmm.data.inputs.load_inputs``). ``net`` overrides the quantized network (default
    ``hw_models.quantizer.quantize(artifact)``). With ``out_dir`` it writes ``energy.md``,
    ``energy.json`` and PNG charts there (atomically).
    """
    art: ModelArtifact = read_artifact(artifact_path)
    if inputs is None:
        from neuro_agmm.data.inputs import load_inputs

        inputs, labels = load_inputs(art, samples, data_root=data_root)
        if inputs is None:
            raise ValueError("no inputs: pass inputs or samples > 0")
    x = np.asarray(inputs)
    if not np.issubdtype(x.dtype, np.integer) or x.ndim != len(art.input_shape) + 2:
        raise ValueError(f"inputs must be integer levels of shape (N, T, *{tuple(art.input_shape)}), "
                         f"got {x.dtype} {x.shape}")
    if net is None:
        from neuro_agmm.deploy.network import integer_network

        net, _, _ = integer_network(artifact_path, time_steps=max(int(art.time_steps), int(x.shape[1])))
    from hw_models.backends.emulator import run_batch

    act = measure_activity(net, x, batch_size=batch_size)
    accuracy = None
    if labels is not None:
        preds = np.concatenate([run_batch(net, x[s:s + batch_size]).predictions
                                for s in range(0, x.shape[0], batch_size)])
        accuracy = float((preds == np.asarray(labels)[:x.shape[0]]).mean())
    rep = EnergyReport(artifact=str(artifact_path), energy=energy_per_inference(act, assumptions),
                       memory=memory_footprint(net), accuracy=accuracy)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rep.files.update(_plots(rep, out))
        text = json.dumps(rep.to_dict(), indent=2)
        rep.files["json"] = atomic_write(out / "energy.json", lambda tmp: Path(tmp).write_text(text))
        md = rep.markdown()
        rep.files["markdown"] = atomic_write(out / "energy.md", lambda tmp: Path(tmp).write_text(md))
    return rep
