"""Energy accounting: activity counts -> energy per inference, side by side with the assumptions.

Why it exists: "a BSNN on neuromorphic hardware is cheap" is a claim about counts times
published figures. This module makes both explicit: it counts, per layer and per
inference, input events, synaptic operations, neuron updates (active and inactive) and
spikes from the spike trains any backend produced (emulator, Brian2, Lava: the counts are
a function of the spike trains and the network structure, so equal trains give equal
counts), and multiplies them by the figures in ``hw_models.energy_figures``.

Definitions (the project's conventions):

* synaptic operation (SynOp): one synapse delivering one nonzero input event; a graded
  value counts once. Fan-out is structural and exact per input neuron
  (``hw_models.emulator.fan_out``: conv borders and stride included).
* neuron update: every neuron of every layer, every time step (Loihi updates all
  compartments each step). An update is *active* when the neuron received at least one
  synaptic event in that step, else *inactive* (Davies et al. give different energies).
* spikes: events a layer sends; the network input counts as the events of "layer -1".
* ANN equivalent: the same layers evaluated once, one MAC per structural synapse
  (so conv MACs skip padded positions).

Scenarios (energy per inference, pJ):

1. ``bsnn_loihi`` — SynOps x 23.6 + active updates x 81 + inactive updates x 52 +
   sent events x (1.7 + hops x 3.5); hops per spike default 0 (all within a tile).
2. ``bsnn_45nm`` — the same activity on a 45 nm digital datapath: an int32 add per SynOp
   (binary/8-bit weights added to an integer accumulator), plus an int8 multiply where the
   layer's input is graded (> 1); a neuron update = one int32 multiply + two int32 adds.
3. ``snn_fp32_45nm`` — a full-precision SNN with the same activity: an fp32 add (AC) per
   SynOp (fp32 MAC for graded input); a neuron update = one fp32 multiply + two fp32 adds.
4. ``ann_fp32_45nm`` / ``ann_int8_45nm`` — the equivalent ANN: MACs x 4.6 pJ (fp32) or
   x 0.23 pJ (int8 multiply + int8 add, Horowitz's figures); activations not counted.

Left out: memory access energy (dominant on real chips for ANNs, see Horowitz), static
power, spike routing beyond the hop count, host I/O. No torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import numpy as np

from hw_models import energy_figures as ef
from hw_models.results import BatchTrace, LayerCounts, active_updates, counts_from_spikes
from hw_models.geometry import fan_out
from hw_models.backends.emulator import run_batch
from hw_models.integer_network import IntegerNetwork

SCENARIOS = ("bsnn_loihi", "bsnn_45nm", "snn_fp32_45nm", "ann_fp32_45nm", "ann_int8_45nm")


@dataclass
class LayerActivity:
    """Counts of one layer, mean per inference (floats), and its structure."""

    name: str
    kind: str
    n_in: int
    n_out: int
    n_synapses: int  # structural synapses (= ANN MACs per evaluation)
    n_params: int  # stored weights (conv kernels shared)
    weight_bits: int
    graded_input: bool  # input values can exceed 1 (needs a multiply per SynOp)
    input_events: float
    synops: float
    neuron_updates: float
    active_updates: float
    spikes: float
    firing_rate: float  # spikes per neuron per time step

    @property
    def inactive_updates(self) -> float:
        return self.neuron_updates - self.active_updates


@dataclass
class Activity:
    """Per-layer activity of ``n_samples`` inferences of ``time_steps`` steps (means per inference)."""

    layers: list[LayerActivity]
    n_samples: int
    time_steps: int
    per_sample_synops: Optional[np.ndarray] = None  # (B,) total SynOps per sample

    def totals(self) -> dict[str, float]:
        keys = ("input_events", "synops", "neuron_updates", "active_updates", "spikes")
        return {k: float(sum(getattr(l, k) for l in self.layers)) for k in keys}

    def to_dict(self) -> dict:
        return {"n_samples": self.n_samples, "time_steps": self.time_steps,
                "layers": [asdict(l) for l in self.layers], "totals": self.totals()}


def activity_from_counts(net: IntegerNetwork, counts: Sequence[LayerCounts], active: Sequence[np.ndarray],
                         time_steps: int) -> Activity:
    """Activity from per-sample counters: ``counts[k]`` (a backend's ``LayerCounts``, ``(B,)`` each) and
    ``active[k]`` ``(B,)`` active neuron updates (``hw_models.results.active_updates``) of ``time_steps`` steps.

    The emulator keeps both as running totals, so a stream of any length is accounted without storing its
    spike trains."""
    b = len(np.asarray(counts[0].synops)) if counts else 0
    graded = int(net.input_max) > 1
    out, per_sample = [], np.zeros(b, np.int64)
    for k, (layer, c, act) in enumerate(zip(net.layers, counts, active)):
        per_sample += np.asarray(c.synops, np.int64)
        spikes = float(np.sum(c.spikes))
        out.append(LayerActivity(
            name=layer.name, kind=layer.kind, n_in=layer.n_in, n_out=layer.n_out,
            n_synapses=int(sum(fan_out(blk).sum() for blk in layer.blocks())),
            n_params=int(sum(np.asarray(blk.weight_mant).size for blk in layer.blocks())),
            weight_bits=int(layer.weight_bits), graded_input=graded and k == 0,
            input_events=float(np.sum(c.input_events)) / b, synops=float(np.sum(c.synops)) / b,
            neuron_updates=float(time_steps * layer.n_out), active_updates=float(np.sum(act)) / b,
            spikes=spikes / b, firing_rate=spikes / (b * time_steps * layer.n_out) if layer.n_out else 0.0))
    return Activity(layers=out, n_samples=b, time_steps=int(time_steps), per_sample_synops=per_sample)


def activity_from_spikes(net: IntegerNetwork, inputs: np.ndarray, spikes: Sequence[np.ndarray]) -> Activity:
    """Counts from spike trains: ``inputs`` ``(B, T, *input_shape)``, ``spikes[k]`` ``(B, T, n_k)`` bool.

    Also accepts one sample: ``inputs`` ``(T, ...)`` with ``spikes[k]`` ``(T, n_k)`` (a ``RunTrace``'s).
    """
    x = np.asarray(inputs)
    if x.ndim == len(net.input_shape) + 1:
        x = x[None]
        spikes = [np.asarray(s)[None] for s in spikes]
    b, t = x.shape[:2]
    if len(spikes) != len(net.layers):
        raise ValueError(f"{len(spikes)} spike trains for {len(net.layers)} layers")
    trains = [np.asarray(sp_k).reshape(b, t, -1).astype(bool) for sp_k in spikes]
    for layer, s in zip(net.layers, trains):
        if s.shape[2] != layer.n_out:
            raise ValueError(f"layer {layer.name!r}: spike train has {s.shape[2]} neurons, expected {layer.n_out}")
    counts = counts_from_spikes(net, x, trains)  # input events, SynOps, spikes: the backends' own rule
    nodes = [x.reshape(b, t, -1)] + trains  # node k + 1 is layer k; node 0 the input
    active = [active_updates(layer, nodes[k].reshape(b * t, -1),
                             shortcut_rows=[nodes[sc.source + 1].reshape(b * t, -1) for sc in layer.shortcuts]
                             ).reshape(b, t).sum(axis=1)
              for k, layer in enumerate(net.layers)]
    return activity_from_counts(net, counts, active, t)


def activity_from_trace(net: IntegerNetwork, inputs: np.ndarray, trace: BatchTrace) -> Activity:
    """Counts from an emulator ``BatchTrace`` (checks them against the emulator's own counters)."""
    act = activity_from_spikes(net, inputs, trace.spikes)
    for la, c in zip(act.layers, trace.counts):
        if abs(la.synops * act.n_samples - int(c.synops.sum())) > 0.5:
            raise AssertionError(f"layer {la.name}: SynOps from spikes {la.synops} != emulator counter")
    return act


def measure_activity(net: IntegerNetwork, inputs: np.ndarray, batch_size: int = 256) -> Activity:
    """Run the emulator over ``inputs`` ``(N, T, ...)`` in batches and count (means over all N)."""
    x = np.asarray(inputs)
    parts = []
    for s in range(0, x.shape[0], batch_size):
        chunk = x[s:s + batch_size]
        parts.append((chunk.shape[0], activity_from_trace(net, chunk, run_batch(net, chunk))))
    return merge_activities(parts)


def merge_activities(parts: Sequence[tuple[int, Activity]]) -> Activity:
    """Weighted mean of activities over sample counts."""
    n = sum(p[0] for p in parts)
    first = parts[0][1]
    layers = []
    for k, l0 in enumerate(first.layers):
        vals = {key: sum(w * getattr(a.layers[k], key) for w, a in parts) / n
                for key in ("input_events", "synops", "neuron_updates", "active_updates", "spikes", "firing_rate")}
        layers.append(LayerActivity(**{**asdict(l0), **vals}))
    per = np.concatenate([a.per_sample_synops for _, a in parts if a.per_sample_synops is not None])
    return Activity(layers=layers, n_samples=n, time_steps=first.time_steps, per_sample_synops=per)


# --- energy ---------------------------------------------------------------------------------
@dataclass
class EnergyAssumptions:
    """The knobs of the energy model (printed with every result)."""

    loihi_hops_per_spike: float = 0.0  # average tile hops a spike travels (0: same tile)
    count_input_events_as_spikes: bool = True  # host events injected into the first core

    def lines(self) -> list[str]:
        lo, cm = ef.LOIHI, ef.CMOS45
        hop = (lo["tile_hop_ew"].pj + lo["tile_hop_ns"].pj) / 2
        return [
            f"Loihi (Davies et al. 2018, Table 2): SynOp {lo['synop'].pj} pJ (minimum), neuron update "
            f"{lo['neuron_update_active'].pj} pJ active / {lo['neuron_update_inactive'].pj} pJ inactive, "
            f"spike within tile {lo['spike_in_tile'].pj} pJ, {self.loihi_hops_per_spike:g} tile hops per spike "
            f"at {hop:g} pJ (mean of E-W/N-S)",
            f"45 nm (Horowitz ISSCC 2014): int32 add {cm['int32_add'].pj}, int8 mult {cm['int8_mult'].pj}, "
            f"int32 mult {cm['int32_mult'].pj}, fp32 add {cm['fp32_add'].pj}, fp32 mult {cm['fp32_mult'].pj}, "
            f"int8 add {cm['int8_add'].pj} pJ",
            "BSNN 45 nm: SynOp = int32 add (+ int8 mult for graded input); neuron update = int32 mult + 2 int32 add",
            "fp32 SNN: SynOp = fp32 add (fp32 MAC for graded input); neuron update = fp32 mult + 2 fp32 add",
            "ANN: one MAC per structural synapse, once per inference (fp32 4.6 pJ; int8 0.23 pJ); "
            "activation functions, memory access and static power not counted",
            "active neuron update = received >= 1 synaptic event in that step; events sent = input events of "
            "every layer" + (" (network input included)" if self.count_input_events_as_spikes else ""),
        ]


@dataclass
class ScenarioEnergy:
    """Energy of one scenario per inference (pJ), per layer and per operation kind."""

    name: str
    description: str
    per_layer: list[dict[str, float]]  # each: synaptic, neuron, spikes (pJ)

    @property
    def by_kind(self) -> dict[str, float]:
        return {k: float(sum(l[k] for l in self.per_layer)) for k in ("synaptic", "neuron", "spikes")}

    @property
    def total_pj(self) -> float:
        return float(sum(self.by_kind.values()))


@dataclass
class EnergyResult:
    activity: Activity
    scenarios: list[ScenarioEnergy]
    assumptions: EnergyAssumptions = field(default_factory=EnergyAssumptions)

    def scenario(self, name: str) -> ScenarioEnergy:
        for s in self.scenarios:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"activity": self.activity.to_dict(),
                "scenarios": [{"name": s.name, "description": s.description, "total_pj": s.total_pj,
                               "by_kind_pj": s.by_kind, "per_layer_pj": s.per_layer} for s in self.scenarios],
                "assumptions": self.assumptions.lines(), "figures": [f.to_dict() for f in ef.all_figures()]}

    def table(self) -> str:
        """Plain-text side-by-side table with the assumptions underneath."""
        base = self.scenario("bsnn_loihi").total_pj
        lines = [f"Energy per inference ({self.activity.n_samples} samples, T={self.activity.time_steps})",
                 f"{'scenario':16s} {'total nJ':>10s} {'synaptic':>10s} {'neuron':>10s} {'spikes':>10s} "
                 f"{'x Loihi':>8s}  description"]
        for s in self.scenarios:
            k = s.by_kind
            lines.append(f"{s.name:16s} {s.total_pj / 1e3:10.3f} {k['synaptic'] / 1e3:10.3f} "
                         f"{k['neuron'] / 1e3:10.3f} {k['spikes'] / 1e3:10.3f} "
                         f"{s.total_pj / base if base else float('nan'):8.2f}  {s.description}")
        tot = self.activity.totals()
        lines.append(f"activity per inference: {tot['synops']:.1f} SynOps, {tot['spikes']:.1f} spikes, "
                     f"{tot['neuron_updates']:.0f} neuron updates ({tot['active_updates']:.1f} active)")
        lines += ["assumptions:"] + [f"  - {a}" for a in self.assumptions.lines()]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def energy_per_inference(activity: Activity, assumptions: Optional[EnergyAssumptions] = None) -> EnergyResult:
    """Energy per inference of every scenario in ``SCENARIOS`` from ``activity``."""
    a = assumptions or EnergyAssumptions()
    lo, cm = ef.LOIHI, ef.CMOS45
    hop = (lo["tile_hop_ew"].pj + lo["tile_hop_ns"].pj) / 2
    spike_pj = lo["spike_in_tile"].pj + a.loihi_hops_per_spike * hop
    int_upd = cm["int32_mult"].pj + 2 * cm["int32_add"].pj
    fp_upd = cm["fp32_mult"].pj + 2 * cm["fp32_add"].pj
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in SCENARIOS}
    for k, l in enumerate(activity.layers):
        sent = l.input_events if (k > 0 or a.count_input_events_as_spikes) else 0.0
        rows["bsnn_loihi"].append({
            "synaptic": l.synops * lo["synop"].pj,
            "neuron": l.active_updates * lo["neuron_update_active"].pj
            + l.inactive_updates * lo["neuron_update_inactive"].pj,
            "spikes": sent * spike_pj})
        syn_int = cm["int32_add"].pj + (cm["int8_mult"].pj if l.graded_input else 0.0)
        rows["bsnn_45nm"].append({"synaptic": l.synops * syn_int, "neuron": l.neuron_updates * int_upd,
                                  "spikes": 0.0})
        syn_fp = ef.FP32_MAC if l.graded_input else ef.FP32_AC
        rows["snn_fp32_45nm"].append({"synaptic": l.synops * syn_fp, "neuron": l.neuron_updates * fp_upd,
                                      "spikes": 0.0})
        rows["ann_fp32_45nm"].append({"synaptic": l.n_synapses * ef.FP32_MAC, "neuron": 0.0, "spikes": 0.0})
        rows["ann_int8_45nm"].append({"synaptic": l.n_synapses * ef.INT8_MAC, "neuron": 0.0, "spikes": 0.0})
    desc = {
        "bsnn_loihi": "BSNN on Loihi-style cores (SynOps, neuron updates, spikes)",
        "bsnn_45nm": "same BSNN, 45 nm integer accumulate (AC) model",
        "snn_fp32_45nm": "full-precision SNN, same activity, fp32 AC",
        "ann_fp32_45nm": "equivalent ANN, fp32 MACs once per inference",
        "ann_int8_45nm": "equivalent ANN, int8 MACs once per inference",
    }
    return EnergyResult(activity=activity, assumptions=a,
                        scenarios=[ScenarioEnergy(s, desc[s], rows[s]) for s in SCENARIOS])


# --- memory ---------------------------------------------------------------------------------
@dataclass
class MemoryFootprint:
    """Synapse storage per layer: stored weights at their bit width vs float32."""

    layers: list[dict]

    @property
    def total_bits(self) -> int:
        return int(sum(l["bits"] for l in self.layers))

    @property
    def total_float32_bits(self) -> int:
        return int(sum(l["float32_bits"] for l in self.layers))

    def to_dict(self) -> dict:
        return {"layers": self.layers, "total_bytes": self.total_bits / 8,
                "total_float32_bytes": self.total_float32_bits / 8,
                "compression": self.total_float32_bits / max(self.total_bits, 1)}


def memory_footprint(net: IntegerNetwork) -> MemoryFootprint:
    """Weight storage of ``net``: ``weight_bits`` per stored weight (1 for binary) vs 32; conv kernels shared.

    ``expanded_synapses`` is the structural synapse count a core without weight sharing stores.
    """
    rows = []
    for layer in net.layers:
        for blk in layer.blocks():  # a shortcut is a row of its own: its weights have their own width
            n = int(np.asarray(blk.weight_mant).size)
            name = layer.name if blk is layer else f"{layer.name}.{blk.name}"
            rows.append({"name": name, "kind": blk.kind, "params": n, "weight_bits": int(blk.weight_bits),
                         "bits": n * int(blk.weight_bits), "float32_bits": 32 * n,
                         "expanded_synapses": int(fan_out(blk).sum())})
    return MemoryFootprint(rows)
