"""Resource limits of a Loihi-style neuro core and chip, as data with their sources.

Why: the placer (``hw_models.placer``) must refuse networks that a real core could not
hold, and say which limit and by how much. The figures live here, once, each with the
publication it comes from, so a reader can check them and a new chip is one more entry.

What it leaves out: the limits are the coarse, published ones (neurons, synaptic
memory, axon routes, cores, chips). Loihi's real synapse encodings (sparse / dense /
population formats with per-list headers), dendritic accumulator sharing, compartment
trees and the barrier-synchronisation network are not modelled; our synaptic-memory
count is ``synapses * weight_bits`` (+ an optional per-synapse overhead), i.e. a lower
bound on what the hardware would use.

Sources
-------
* ``LOIHI1`` — M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with
  On-Chip Learning", IEEE Micro 38(1), 2018, doi:10.1109/MM.2018.112130359.
  As published: 128 neuromorphic cores per chip; up to 1,024 neural compartments
  per core; 16 MB of synaptic memory per chip, i.e. 128 KB per core; 4,096 fan-in
  and 4,096 fan-out axon routes per core; 1- to 9-bit synaptic weights.
  (The paper itself could not be re-read on this offline machine, so ``verified=False``.
  Secondary sources agree: IEEE Circuits and Systems Magazine Q2 2022 restates 128
  neuromorphic cores + 3 x86 cores and 16 MB of synaptic memory; NengoLoihi's build
  limits are ``IN_AXONS_MAX = 4096`` and ``MAX_SYNAPSE_BITS = 1048576`` (= 128 KB) per core
  and 131,072 neurons (= 128 x 1,024) per chip. NengoLoihi counts index/format bits on top
  of the weight bits, so real synapse lists use more memory than our lower bound.)
* ``LOIHI2`` — Intel, "Taking Neuromorphic Computing to the Next Level with Loihi 2",
  technology brief, 2021. As published: 128 neuromorphic cores per chip, up to
  1 million neurons and 120 million synapses per chip, up to 8,192 neurons per
  core, 192 KB of flexible memory per core shared between neuron state and
  synapses. No per-core axon-route limits are published there: we reuse the Loihi 1
  values and mark them ``unsure``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class CoreSpec:
    """Limits of one neuro core."""

    name: str
    max_neurons: int  # neurons (compartments) per core
    synaptic_memory_bits: int  # bits available for synaptic weights per core
    max_fan_in_axons: int  # distinct presynaptic sources (input axons) per core
    max_fan_out_axons: int  # output axon routes (neuron -> destination core) per core
    max_weight_bits: int = 8  # widest weight a synapse stores
    synapse_overhead_bits: int = 0  # extra bits per stored synapse (0: ideal dense encoding)
    max_synaptic_delay: int = 62  # steps; a delayed synapse stores delay_bits more
    delay_bits: int = 6
    source: str = ""
    unsure: tuple[str, ...] = ()  # fields whose figures are assumptions, not published for this core
    verified: bool = False  # True only if the figures were re-checked against the source here

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unsure"] = list(self.unsure)
        return d


@dataclass(frozen=True)
class ChipSpec:
    """A chip: a number of identical cores (and how many chips a system may use)."""

    name: str
    core: CoreSpec
    cores_per_chip: int
    max_chips: int = 1  # chips available to one network (Loihi boards: 1, 2 (Kapoho Bay), 32 (Nahuku), ...)
    source: str = ""
    notes: dict = field(default_factory=dict)

    @property
    def max_cores(self) -> int:
        return self.cores_per_chip * self.max_chips

    def with_chips(self, n: int) -> "ChipSpec":
        """The same chip with ``n`` chips available."""
        if n < 1:
            raise ValueError(f"max_chips must be >= 1, got {n}")
        return ChipSpec(self.name, self.core, self.cores_per_chip, n, self.source, dict(self.notes))

    def to_dict(self) -> dict:
        return {"name": self.name, "core": self.core.to_dict(), "cores_per_chip": self.cores_per_chip,
                "max_chips": self.max_chips, "source": self.source, "notes": dict(self.notes)}


_DAVIES = ("Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
           "IEEE Micro 38(1):82-99, 2018 (as published)")
_LOIHI2_BRIEF = ("Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', "
                 "technology brief, 2021 (as published)")

LOIHI1_CORE = CoreSpec(
    name="loihi1-core", max_neurons=1024, synaptic_memory_bits=128 * 1024 * 8,
    max_fan_in_axons=4096, max_fan_out_axons=4096, max_weight_bits=9, source=_DAVIES,
    unsure=("max_synaptic_delay", "delay_bits"),
)
LOIHI1 = ChipSpec(name="loihi1", core=LOIHI1_CORE, cores_per_chip=128, max_chips=1, source=_DAVIES,
                  notes={"synaptic_memory_per_chip": "16 MB", "x86_cores_per_chip": 3})

LOIHI2_CORE = CoreSpec(
    name="loihi2-core", max_neurons=8192, synaptic_memory_bits=192 * 1024 * 8,
    max_fan_in_axons=4096, max_fan_out_axons=4096, max_weight_bits=8, source=_LOIHI2_BRIEF,
    unsure=("synaptic_memory_bits", "max_fan_in_axons", "max_fan_out_axons", "max_weight_bits",
            "max_synaptic_delay", "delay_bits"),
)
LOIHI2 = ChipSpec(name="loihi2", core=LOIHI2_CORE, cores_per_chip=128, max_chips=1, source=_LOIHI2_BRIEF,
                  notes={"memory": "192 KB per core is shared by neuron state and synapses; we give all of it "
                                   "to synapses (an upper bound, marked unsure)",
                         "neurons_per_chip": "1M (as published)", "synapses_per_chip": "120M (as published)"})

CHIPS: dict[str, ChipSpec] = {"loihi1": LOIHI1, "loihi2": LOIHI2}


def get_chip(name: str) -> ChipSpec:
    """Look up a chip profile by name (``loihi1`` or ``loihi2``)."""
    try:
        return CHIPS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown chip {name!r}; known: {', '.join(sorted(CHIPS))}") from None
