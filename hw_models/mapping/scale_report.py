"""Placement of paper-scale networks: cores, chips, memory and fan-in/out per layer, and the binding limit.

Why: a network that does not fit must say where and by how much, not just fail. ``scale_report`` places
each synapse block of a network with the placer's own per-layer rule (``placer.place_layer``: the same
greedy first-fit, the same limits) and, where a layer breaks a limit the placer cannot work around
(a neuron's fan-in above the core's input axons, a neuron's synapses above a core's memory), it reports
the excess instead of raising, together with what weight sharing would store instead of the expanded
synapse list.

Layers are described by ``BlockGeometry`` (shapes, kernel, stride, padding, weight bits), so a network
with residual additions can be reported before the artifact can carry it: a residual add is a second
synapse block onto the **same** neurons (``into`` names the block whose neurons it feeds); its fan-in
adds to theirs for the input-axon limit and its synapses to the memory totals, but the target block's
cores are placed on its own synapses (a lower bound where the shortcut's memory would tip a core over).

Leaves out: routing congestion, fan-in splitting over cores (dendritic accumulation, which Loihi can do
and which would lift the fan-in violations at the cost of extra compartments), and on-chip encoders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from hw_models.core_limits import ChipSpec, get_chip
from hw_models.integer_network import IntLayer
from hw_models.mapping.placer import PlacementError, place_layer


@dataclass(frozen=True)
class BlockGeometry:
    """One synapse block: ``kind`` "dense" or "conv", shapes as ``IntLayer``'s, ``weight_bits`` per synapse."""

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight_bits: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    into: Optional[str] = None  # a residual block feeding the neurons of block ``into`` (no neurons of its own)

    @property
    def neurons(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def fan_in(self) -> int:
        """Inputs of one neuron (interior: every kernel tap valid)."""
        return int(np.prod(self.in_shape)) if self.kind == "dense" else int(self.in_shape[0] * np.prod(self.kernel))

    def synapses(self) -> int:
        """Stored synapses when expanded (padding taps store nothing)."""
        if self.kind == "dense":
            return self.neurons * self.fan_in
        c, h, w = self.in_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        _, ho, wo = self.out_shape
        ty = sum(1 for oy in range(ho) for k in range(kh) if 0 <= oy * sh - ph + k < h)
        tx = sum(1 for ox in range(wo) for k in range(kw) if 0 <= ox * sw - pw + k < w)
        return int(self.out_shape[0] * c * ty * tx)

    def unique_weights(self) -> int:
        return int(np.prod(self.out_shape[:1]) * self.fan_in) if self.kind == "conv" else self.synapses()

    def int_layer(self) -> IntLayer:
        """A stand-in ``IntLayer`` (all weights +1) with this geometry, for the placer."""
        n = self.neurons
        shape = (self.out_shape[0], self.in_shape[0], *self.kernel) if self.kind == "conv" else \
            (n, int(np.prod(self.in_shape)))
        zeros = np.zeros(n, np.int32)
        return IntLayer(name=self.name, kind=self.kind, weight_mant=np.ones(shape, np.int8), weight_exp=0,
                        weight_bits=self.weight_bits, vth=zeros + 1, bias_mant=zeros, bias_exp=zeros, du=0, dv=0,
                        in_shape=tuple(self.in_shape), out_shape=tuple(self.out_shape), stride=self.stride,
                        padding=self.padding)


@dataclass
class BlockReport:
    name: str
    neurons: int
    fan_in: int  # per neuron, residual inputs included
    synapses: int
    synaptic_bits: int  # expanded, weight + overhead bits per synapse
    shared_bits: int  # with weight sharing: each distinct weight stored once
    cores: Optional[int]  # placed cores (None where a limit is broken)
    binding: str  # the limit that set the core count, or the one broken
    cores_position_major: Optional[int] = None  # estimate: cores if a core held all channels of a few positions
    violations: list[str] = field(default_factory=list)


@dataclass
class ScaleReport:
    network: str
    chip: ChipSpec
    blocks: list[BlockReport]

    @property
    def cores(self) -> int:
        return sum(b.cores or 0 for b in self.blocks)

    @property
    def fits(self) -> bool:
        return not any(b.violations for b in self.blocks)

    @property
    def chips(self) -> int:
        return max(1, math.ceil(self.cores / self.chip.cores_per_chip))

    def markdown(self) -> str:
        spec = self.chip.core
        head = (f"**{self.network} on {self.chip.name}** ({spec.max_neurons} neurons, "
                f"{spec.synaptic_memory_bits // 8192} KiB synaptic memory, {spec.max_fan_in_axons} input axons, "
                f"{spec.max_fan_out_axons} output axons per core; {self.chip.cores_per_chip} cores per chip): "
                f"{self.cores} cores on the blocks that fit = **{self.chips} chip(s)**"
                + ("" if self.fits else f"; **{sum(bool(b.violations) for b in self.blocks)} block(s) do not fit** "
                   "(see the last column)"))
        rows = ["| block | neurons | fan-in | synapses | synaptic memory, expanded | with weight sharing | "
                "cores (placed) | binding limit / excess | cores, position-major (estimate) |",
                "|---|---|---|---|---|---|---|---|---|"]
        for b in self.blocks:
            cores = "–" if b.cores is None else f"{b.cores:,}"
            why = "; ".join(b.violations) if b.violations else b.binding
            pm = "–" if b.cores_position_major is None else f"{b.cores_position_major:,}"
            rows.append(f"| {b.name} | {b.neurons:,} | {b.fan_in:,} | {b.synapses:,} | {_mib(b.synaptic_bits)} | "
                        f"{_mib(b.shared_bits)} | {cores} | {why} | {pm} |")
        tot = sum(b.synaptic_bits for b in self.blocks), sum(b.shared_bits for b in self.blocks)
        pm_tot = sum(b.cores_position_major or b.cores or 0 for b in self.blocks)
        rows.append(f"| **total** | {sum(b.neurons for b in self.blocks):,} | | {sum(b.synapses for b in self.blocks):,} "
                    f"| {_mib(tot[0])} | {_mib(tot[1])} | {self.cores:,} | | {pm_tot:,} |")
        return head + "\n\n" + "\n".join(rows) + "\n"


def _mib(bits: int) -> str:
    return f"{bits / 8 / 2**20:,.2f} MiB"


def _binding(b: BlockGeometry, cores: int, spec) -> str:
    """Which limit alone would need as many cores as were placed (the first that does, in this order)."""
    bits = b.weight_bits + spec.synapse_overhead_bits
    by = {"neurons": math.ceil(b.neurons / spec.max_neurons),
          "synaptic memory": math.ceil(b.synapses() * bits / spec.synaptic_memory_bits)}
    name, need = max(by.items(), key=lambda kv: kv[1])
    return name if need >= cores else "input axons (distinct inputs per core)"


def position_major_plan(b: BlockGeometry, spec, fan_in: int) -> Optional[tuple[int, int, int]]:
    """``(cores, r, c)`` if each core held ``c`` output channels at ``r`` consecutive positions of one output row.

    An estimate, not a placement: neighbouring output positions share most of their inputs, so this order needs
    far fewer input axons than the placer's channel-major runs. Takes the ``r`` (and the largest ``c`` for it)
    that meets the neuron, memory and input-axon limits with the fewest cores; None where nothing fits.
    """
    if b.kind != "conv" or fan_in > spec.max_fan_in_axons:
        return None
    cout, ho, wo = b.out_shape
    cin = b.in_shape[0]
    (kh, kw), sw = b.kernel, b.stride[1]
    bits = b.weight_bits + spec.synapse_overhead_bits
    best = None
    for r in range(1, wo + 1):
        axons = cin * min(kh, b.in_shape[1]) * min(b.in_shape[2], (r - 1) * sw + kw)
        if axons > spec.max_fan_in_axons:
            break
        c = min(cout, spec.max_neurons // r, spec.synaptic_memory_bits // max(1, r * fan_in * bits))
        if c < 1:
            break
        n = math.ceil(wo / r) * ho * math.ceil(cout / c)
        if best is None or n < best[0]:
            best = (n, r, c)
    return best


def scale_report(network: str, blocks: list[BlockGeometry], chip: ChipSpec | str = "loihi1") -> ScaleReport:
    """Place every block of ``blocks`` on ``chip`` cores (see the module docstring)."""
    chip = get_chip(chip) if isinstance(chip, str) else chip
    spec = chip.core
    extra = {}
    for b in blocks:
        if b.into is not None:
            extra[b.into] = extra.get(b.into, 0) + b.fan_in
    out = []
    for b in blocks:
        bits = b.weight_bits + spec.synapse_overhead_bits
        fan_in = b.fan_in + extra.get(b.name, 0)
        rep = BlockReport(name=b.name + (f" (into {b.into})" if b.into else ""), neurons=0 if b.into else b.neurons,
                          fan_in=fan_in if not b.into else b.fan_in, synapses=b.synapses(),
                          synaptic_bits=b.synapses() * bits, shared_bits=b.unique_weights() * bits, cores=None,
                          binding="")
        if fan_in > spec.max_fan_in_axons:
            rep.violations.append(f"fan-in {fan_in:,} exceeds the {spec.max_fan_in_axons:,}-axon input limit by "
                                  f"{fan_in - spec.max_fan_in_axons:,} (needs fan-in splitting over cores)")
        if b.weight_bits > spec.max_weight_bits:
            rep.violations.append(f"{b.weight_bits}-bit weights exceed the core's {spec.max_weight_bits} bits")
        if b.into is not None:  # synapses live on the cores of the block it feeds
            rep.binding = "shares the cores of " + b.into
        elif not rep.violations:
            plan = position_major_plan(b, spec, fan_in)
            rep.cores_position_major = plan[0] if plan else None
            try:
                cores = place_layer(b.int_layer(), chip)
                rep.cores = len(cores)
                rep.binding = _binding(b, rep.cores, spec)
            except PlacementError as e:
                rep.violations.append(str(e).split(": ", 1)[-1])
        out.append(rep)
    return ScaleReport(network=network, chip=chip, blocks=out)
