"""Placer: partition an ``IntegerNetwork`` onto neuro cores within every published limit.

Why: a layer of a few thousand neurons with a few hundred inputs each does not fit one
core; how many cores it needs, and whether the network fits a chip at all, decides
whether it can be deployed. ``place`` answers that and reports the utilisation.

Rules
-----
* A core holds neurons of ONE layer (no mixing), a contiguous run of the layer's
  neurons in C order (for conv: channel-major, so a core holds whole rows of one or
  more feature maps).
* Per core, all of these must hold (``hw_models.core_limits.CoreSpec``):
  neurons ``<= max_neurons``; synaptic memory ``sum over its neurons of
  (connections * (weight_bits + synapse_overhead_bits)) <= synaptic_memory_bits``
  (conv synapses are stored expanded, one per connection, as on Loihi 1 without
  weight sharing; padding taps store nothing); input axons = distinct presynaptic
  neurons feeding the core ``<= max_fan_in_axons``; output axons = sum over its neurons
  of the number of distinct cores of the next layer each neuron projects to
  ``<= max_fan_out_axons``.
* Greedy: each core is filled with as many consecutive neurons as the limits allow
  (exact for dense layers, where every neuron has the same fan-in; first-fit for conv).
* Total cores ``<= cores_per_chip * max_chips``.

* A layer with residual shortcuts (several synapse blocks into its neurons) counts every
  block: its synapses at each block's weight width, and as input axons the distinct
  presynaptic neurons of every source node; the shortcut's source cores add the shortcut's
  destinations to their fan-out (a source reaching one core by two blocks is counted twice,
  a conservative bound).

Anything that cannot fit raises ``PlacementError`` naming the layer, the limit and the
amount (e.g. a neuron whose fan-in alone exceeds the axon limit).

What it leaves out: multi-compartment neurons, splitting one neuron's fan-in over
cores (Loihi can, with dendritic trees), the input encoder cores / host, routing
congestion between cores, and the weight-sharing synapse formats of Loihi 2.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from hw_models.core_limits import ChipSpec, get_chip
from hw_models.integer_network import IntegerNetwork, IntLayer


class PlacementError(ValueError):
    """The network does not fit the cores/chips; the message names the layer, limit and excess."""


@dataclass
class CoreAssignment:
    """One core: a contiguous neuron range of one layer and what it uses."""

    core: int
    layer: str
    layer_index: int
    neuron_start: int
    neuron_stop: int
    synapses: int
    synaptic_bits: int
    fan_in_axons: int
    fan_out_axons: int = 0

    @property
    def neurons(self) -> int:
        return self.neuron_stop - self.neuron_start


@dataclass
class Placement:
    """The result of ``place``: per-core assignments and the limits they were checked against."""

    chip: ChipSpec
    cores: list[CoreAssignment]
    layer_names: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def n_cores(self) -> int:
        return len(self.cores)

    @property
    def n_chips(self) -> int:
        return max(1, -(-self.n_cores // self.chip.cores_per_chip))

    def cores_per_layer(self) -> dict[str, int]:
        out = {n: 0 for n in self.layer_names}
        for c in self.cores:
            out[c.layer] += 1
        return out

    def utilisation(self) -> dict[str, np.ndarray]:
        """Per core, fraction of each limit used."""
        spec = self.chip.core
        return {
            "neurons": np.array([c.neurons / spec.max_neurons for c in self.cores]),
            "synaptic_memory": np.array([c.synaptic_bits / spec.synaptic_memory_bits for c in self.cores]),
            "fan_in": np.array([c.fan_in_axons / spec.max_fan_in_axons for c in self.cores]),
            "fan_out": np.array([c.fan_out_axons / spec.max_fan_out_axons for c in self.cores]),
        }

    def to_dict(self) -> dict:
        util = self.utilisation()
        return {
            "chip": self.chip.to_dict(), "n_cores": self.n_cores, "n_chips": self.n_chips,
            "cores_per_layer": self.cores_per_layer(), "layer_names": list(self.layer_names),
            "cores": [asdict(c) | {"neurons": c.neurons} for c in self.cores],
            "mean_utilisation": {k: float(v.mean()) if v.size else 0.0 for k, v in util.items()},
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Placement":
        from hw_models.core_limits import ChipSpec, CoreSpec

        cd = d["chip"]
        core = dict(cd["core"])
        core["unsure"] = tuple(core.get("unsure", ()))
        chip = ChipSpec(name=cd["name"], core=CoreSpec(**core), cores_per_chip=int(cd["cores_per_chip"]),
                        max_chips=int(cd["max_chips"]), source=cd.get("source", ""), notes=dict(cd.get("notes", {})))
        cores = [CoreAssignment(**{k: v for k, v in c.items() if k != "neurons"}) for c in d["cores"]]
        return cls(chip=chip, cores=cores, layer_names=list(d["layer_names"]), meta=dict(d.get("meta", {})))

    def summary(self) -> str:
        spec = self.chip.core
        w = max([12] + [len(n) + 1 for n in self.layer_names])  # the layer-name column
        lines = [f"placement on {self.chip.name}: {self.n_cores} cores on {self.n_chips} chip(s) "
                 f"(limit {self.chip.max_cores} cores)",
                 f"{'layer':<{w}}{'cores':>6}{'neurons/core':>14}{'syn mem %':>11}{'fan-in':>8}{'fan-out':>9}"]
        for li, name in enumerate(self.layer_names):
            cs = [c for c in self.cores if c.layer_index == li]
            if not cs:
                continue
            mem = max(c.synaptic_bits for c in cs) / spec.synaptic_memory_bits * 100
            lines.append(f"{name:<{w}}{len(cs):>6}{max(c.neurons for c in cs):>14}{mem:>10.1f}%"
                         f"{max(c.fan_in_axons for c in cs):>8}{max(c.fan_out_axons for c in cs):>9}")
        util = self.utilisation()
        lines.append("mean utilisation: " + ", ".join(f"{k} {100 * v.mean():.1f}%" for k, v in util.items()))
        return "\n".join(lines)

    def to_json(self, path: str | Path) -> Path:
        from neuro_agmm.artifact import atomic_write

        return atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(self.to_dict(), indent=2)))

    def plot(self, path: str | Path) -> Path:
        """PNG: per-core utilisation of each limit (bars), cores grouped by layer."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from neuro_agmm.artifact import atomic_write

        util = self.utilisation()
        x = np.arange(self.n_cores)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * self.n_cores + 2), 3.5))
        width = 0.2
        for i, (k, v) in enumerate(util.items()):
            ax.bar(x + (i - 1.5) * width, 100 * v, width, label=k)
        for li, name in enumerate(self.layer_names):
            idx = [c.core for c in self.cores if c.layer_index == li]
            if idx:
                ax.axvspan(min(idx) - 0.5, max(idx) + 0.5, color=f"C{li % 10}", alpha=0.06)
                ax.text((min(idx) + max(idx)) / 2, 102, name, ha="center", va="bottom", fontsize=8)
        ax.set_xlabel("core")
        if self.n_cores <= 40:
            ax.set_xticks(x)
        ax.set_ylabel("utilisation (%)")
        ax.set_ylim(0, 112)
        ax.set_title(f"{self.chip.name}: {self.n_cores} cores")
        ax.legend(fontsize=7, ncol=4, loc="upper right")
        fig.tight_layout()

        def write(tmp: Path) -> None:
            fig.savefig(tmp, format="png", dpi=100)

        try:
            return atomic_write(path, write)
        finally:
            plt.close(fig)


def _conv_receptive(layer: IntLayer) -> tuple[np.ndarray, np.ndarray]:
    """For each output position (ho*wo): the flat input spatial positions it reads and how many taps are valid."""
    c, h, w = layer.in_shape
    _, kh, kw = layer.weight_mant.shape[1:]
    _, ho, wo = layer.out_shape
    (sh, sw), (ph, pw) = layer.stride, layer.padding
    oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
    iy = oy.reshape(-1, 1, 1) * sh - ph + np.arange(kh).reshape(1, -1, 1)
    ix = ox.reshape(-1, 1, 1) * sw - pw + np.arange(kw).reshape(1, 1, -1)
    iy, ix = np.broadcast_arrays(iy, ix)
    valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    pos = np.where(valid, iy * w + ix, -1).reshape(ho * wo, -1)
    return pos, valid.reshape(ho * wo, -1).sum(axis=1)


def _block_bits(blk, spec, owner: str) -> int:
    """Synaptic-memory bits per synapse of one block (checked against the core's synapse width)."""
    if blk.weight_bits > spec.max_weight_bits:
        raise PlacementError(f"layer {owner!r}: {blk.weight_bits}-bit weights exceed the core's "
                             f"{spec.max_weight_bits}-bit synapses")
    return int(blk.weight_bits) + int(spec.synapse_overhead_bits)


def _place_residual(li: int, layer: IntLayer, sources: list[int], chip: ChipSpec, first_core: int,
                    cap: int) -> list[CoreAssignment]:
    """A layer fed by several synapse blocks (a residual add): the greedy fill counts every block's synapses
    (each at its own weight width) and the distinct presynaptic neurons of every source node as input axons."""
    from hw_models.geometry import synapse_list

    spec = chip.core
    max_neurons = min(spec.max_neurons, cap)
    blocks = []  # (source node, per-neuron presynaptic lists as CSR, bits per synapse)
    n_syn = np.zeros(layer.n_out, np.int64)
    n_bits = np.zeros(layer.n_out, np.int64)
    for blk, src in zip(layer.blocks(), sources):
        bits = _block_bits(blk, spec, layer.name)
        if blk is layer and layer.delay is not None:
            bits += int(spec.delay_bits)
        pre, post, _ = synapse_list(blk)
        order = np.argsort(post, kind="stable")
        cnt = np.bincount(post, minlength=layer.n_out)
        indptr = np.zeros(layer.n_out + 1, np.int64)
        np.cumsum(cnt, out=indptr[1:])
        blocks.append((src, indptr, pre[order], blk.n_in))
        n_syn += cnt
        n_bits += cnt * bits
    by_src: dict[int, list] = {}
    for src, indptr, pre, n_in in blocks:
        by_src.setdefault(src, []).append((indptr, pre, n_in))
    if int(n_bits.max(initial=0)) > spec.synaptic_memory_bits:
        o = int(np.argmax(n_bits))
        raise PlacementError(f"layer {layer.name!r}: one neuron's synapses (all blocks) need {int(n_bits[o])} bits, "
                             f"more than the core's {spec.synaptic_memory_bits}-bit synaptic memory")
    masks = {src: np.zeros(parts[0][2], bool) for src, parts in by_src.items()}
    cores: list[CoreAssignment] = []
    start, syn, bits_used, axons = 0, 0, 0, 0
    for o in range(layer.n_out):
        new = {src: np.unique(np.concatenate([pre[indptr[o]:indptr[o + 1]] for indptr, pre, _ in parts]))
               for src, parts in by_src.items()}
        own = sum(int(v.size) for v in new.values())
        if own > spec.max_fan_in_axons:
            raise PlacementError(f"layer {layer.name!r}: one neuron's fan-in of {own} axons (all blocks) exceeds the "
                                 f"{spec.max_fan_in_axons}-axon input limit by {own - spec.max_fan_in_axons}")
        add = {src: v[~masks[src][v]] for src, v in new.items()}
        n_add = sum(int(v.size) for v in add.values())
        fits = ((o - start + 1) <= max_neurons and axons + n_add <= spec.max_fan_in_axons
                and bits_used + int(n_bits[o]) <= spec.synaptic_memory_bits)
        if not fits:
            cores.append(CoreAssignment(first_core + len(cores), layer.name, li, start, o, syn, bits_used, axons))
            start, syn, bits_used, axons = o, 0, 0, 0
            for m in masks.values():
                m[:] = False
            add, n_add = new, own
        for src, v in add.items():
            masks[src][v] = True
        axons += n_add
        syn += int(n_syn[o])
        bits_used += int(n_bits[o])
    cores.append(CoreAssignment(first_core + len(cores), layer.name, li, start, layer.n_out, syn, bits_used, axons))
    return cores


def _place_layer(li: int, layer: IntLayer, chip: ChipSpec, first_core: int, cap: int) -> list[CoreAssignment]:
    spec = chip.core
    max_neurons = min(spec.max_neurons, cap)
    bits = int(layer.weight_bits) + int(spec.synapse_overhead_bits)
    if layer.delay is not None:  # per-synapse delays take their own bits in synaptic memory
        if layer.max_delay > spec.max_synaptic_delay:
            raise PlacementError(f"layer {layer.name!r}: synaptic delay {layer.max_delay} exceeds the core's "
                                 f"{spec.max_synaptic_delay}-step range")
        bits += int(spec.delay_bits)
    if layer.weight_bits > spec.max_weight_bits:
        raise PlacementError(f"layer {layer.name!r}: {layer.weight_bits}-bit weights exceed the core's "
                             f"{spec.max_weight_bits}-bit synapses")
    cores: list[CoreAssignment] = []
    if layer.kind == "dense":
        fan_in = layer.n_in
        if fan_in > spec.max_fan_in_axons:
            raise PlacementError(f"layer {layer.name!r}: one neuron's fan-in of {fan_in} axons exceeds the "
                                 f"{spec.max_fan_in_axons}-axon input limit by {fan_in - spec.max_fan_in_axons}")
        per_neuron_bits = fan_in * bits
        if per_neuron_bits > spec.synaptic_memory_bits:
            raise PlacementError(f"layer {layer.name!r}: one neuron's synapses need {per_neuron_bits} bits, "
                                 f"{per_neuron_bits - spec.synaptic_memory_bits} more than the core's "
                                 f"{spec.synaptic_memory_bits}-bit synaptic memory")
        per_core = min(max_neurons, spec.synaptic_memory_bits // per_neuron_bits)
        for start in range(0, layer.n_out, per_core):
            stop = min(layer.n_out, start + per_core)
            cores.append(CoreAssignment(first_core + len(cores), layer.name, li, start, stop,
                                        (stop - start) * fan_in, (stop - start) * per_neuron_bits, fan_in))
        return cores
    # conv: neurons o = (ch, y, x) in C order; inputs are all input channels at the receptive positions
    c_in = layer.in_shape[0]
    pos, taps = _conv_receptive(layer)
    n_pos = pos.shape[0]
    n_in_pos = layer.in_shape[1] * layer.in_shape[2]
    syn_per_neuron = taps * c_in  # indexed by spatial position
    if int(syn_per_neuron.max()) * bits > spec.synaptic_memory_bits:
        raise PlacementError(f"layer {layer.name!r}: one neuron's synapses need {int(syn_per_neuron.max()) * bits} "
                             f"bits, more than the core's {spec.synaptic_memory_bits}-bit synaptic memory")
    if int(taps.max()) * c_in > spec.max_fan_in_axons:
        raise PlacementError(f"layer {layer.name!r}: one neuron's fan-in of {int(taps.max()) * c_in} axons exceeds "
                             f"the {spec.max_fan_in_axons}-axon input limit by "
                             f"{int(taps.max()) * c_in - spec.max_fan_in_axons}")
    start = 0
    mask = np.zeros(n_in_pos, bool)
    n_mask = 0
    syn = 0
    for o in range(layer.n_out):
        p = o % n_pos
        new = pos[p][pos[p] >= 0]
        add = new[~mask[new]]
        add_u = np.unique(add)
        fits = ((o - start + 1) <= max_neurons
                and (n_mask + add_u.size) * c_in <= spec.max_fan_in_axons
                and (syn + int(syn_per_neuron[p])) * bits <= spec.synaptic_memory_bits)
        if not fits:
            cores.append(CoreAssignment(first_core + len(cores), layer.name, li, start, o, syn, syn * bits,
                                        n_mask * c_in))
            start, syn = o, 0
            mask[:] = False
            add_u = np.unique(new)
            n_mask = 0
        mask[add_u] = True
        n_mask += add_u.size
        syn += int(syn_per_neuron[p])
    cores.append(CoreAssignment(first_core + len(cores), layer.name, li, start, layer.n_out, syn, syn * bits,
                                n_mask * c_in))
    return cores


def place_layer(layer: IntLayer, chip: ChipSpec | str = "loihi1") -> list[CoreAssignment]:
    """The cores one layer alone needs on ``chip`` (the per-layer rule of ``place``, fan-out not checked)."""
    chip = get_chip(chip) if isinstance(chip, str) else chip
    return _place_layer(0, layer, chip, 0, chip.core.max_neurons)


def _fan_out(src_cores: list[CoreAssignment], dst, dst_cores: list[CoreAssignment], add: bool = False) -> None:
    """Fill ``fan_out_axons`` of ``src_cores``: per source neuron, the number of cores of block ``dst`` (a layer
    or a shortcut into ``dst_cores``' layer) it reaches; ``add=True`` adds to what other blocks already need."""
    if dst.kind == "dense":
        for c in src_cores:
            c.fan_out_axons = (c.fan_out_axons if add else 0) + c.neurons * len(dst_cores)
        return
    # conv: source neuron (ci, y, x) reaches output positions whose window covers (y, x), all channels
    pos, _ = _conv_receptive(dst)
    n_pos = pos.shape[0]
    n_in_pos = dst.in_shape[1] * dst.in_shape[2]
    # core ids (per destination neuron) -> for each output position, the set of cores holding any channel there
    core_of = np.empty(dst.n_out, np.int64)
    for j, c in enumerate(dst_cores):
        core_of[c.neuron_start:c.neuron_stop] = j
    core_at_pos = core_of.reshape(-1, n_pos)  # (C_out, n_pos)
    reach: list[set] = [set() for _ in range(n_in_pos)]
    for p in range(n_pos):
        cs = set(np.unique(core_at_pos[:, p]).tolist())
        for q in pos[p][pos[p] >= 0]:
            reach[q] |= cs
    per_in_pos = np.array([len(r) for r in reach])
    per_src = np.tile(per_in_pos, dst.in_shape[0])  # C-order: (ci, y, x)
    for c in src_cores:
        c.fan_out_axons = (c.fan_out_axons if add else 0) + int(per_src[c.neuron_start:c.neuron_stop].sum())


def place(net: IntegerNetwork, chip: ChipSpec | str = "loihi1", max_chips: Optional[int] = None) -> Placement:
    """Place ``net`` on cores of ``chip`` (a ``ChipSpec`` or ``"loihi1"``/``"loihi2"``).

    ``max_chips`` overrides the chip's count. Raises ``PlacementError`` when any limit is exceeded.
    """
    if isinstance(chip, str):
        chip = get_chip(chip)
    if max_chips is not None:
        chip = chip.with_chips(max_chips)
    net.validate()
    spec = chip.core
    caps = [spec.max_neurons] * len(net.layers)  # lowered where a core's fan-out is too large
    placed: dict[tuple[int, int], list[CoreAssignment]] = {}  # (layer, cap) -> its cores from core 0
    for _ in range(64):
        per_layer: list[list[CoreAssignment]] = []
        n = 0
        for li, layer in enumerate(net.layers):
            key = (li, caps[li])
            if key not in placed:  # a round lowers one layer's cap: only that layer is placed again
                placed[key] = (_place_residual(li, layer, net.sources(li), chip, 0, caps[li]) if layer.shortcuts
                               else _place_layer(li, layer, chip, 0, caps[li]))
            cs = [replace(c, core=c.core + n, fan_out_axons=0) for c in placed[key]]
            per_layer.append(cs)
            n += len(cs)
        for li in range(len(net.layers) - 1):
            _fan_out(per_layer[li], net.layers[li + 1], per_layer[li + 1])
        for li, layer in enumerate(net.layers):  # shortcut blocks: their sources' cores project here too
            for sc in layer.shortcuts:
                if sc.source >= 0:
                    _fan_out(per_layer[sc.source], sc, per_layer[li], add=True)
        worst = [(c.fan_out_axons, c) for cs in per_layer for c in cs if c.fan_out_axons > spec.max_fan_out_axons]
        if not worst:
            break
        _, c = max(worst, key=lambda t: t[0])
        per_neuron = c.fan_out_axons / c.neurons
        if per_neuron > spec.max_fan_out_axons or c.neurons == 1:
            raise PlacementError(f"layer {c.layer!r}: one neuron projects to {per_neuron:.0f} cores, more than the "
                                 f"{spec.max_fan_out_axons}-axon fan-out limit")
        caps[c.layer_index] = max(1, min(c.neurons - 1, int(spec.max_fan_out_axons // per_neuron)))
    else:
        raise PlacementError(f"fan-out limit of {spec.max_fan_out_axons} axons could not be met by splitting cores")
    cores = [c for cs in per_layer for c in cs]
    if len(cores) > chip.max_cores:
        raise PlacementError(f"network needs {len(cores)} cores, {len(cores) - chip.max_cores} more than the "
                             f"{chip.max_cores} of {chip.max_chips} {chip.name} chip(s) "
                             f"({chip.cores_per_chip} cores each)")
    return Placement(chip=chip, cores=cores, layer_names=[l.name for l in net.layers],
                     meta={"neuron_caps": caps, "n_neurons": int(sum(l.n_out for l in net.layers)),
                           "n_synapses": int(sum(c.synapses for c in cores))})
