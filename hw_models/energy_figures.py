"""Published per-operation energy figures, as data with their sources.

Why it exists: energy per inference is only as good as the figures it multiplies, so they
live in one place, each with the paper, table and conditions it comes from, and every
report prints them next to its numbers.

What it leaves out: anything we did not find published (static/leakage power, off-chip
I/O, host-to-chip spike injection, Loihi 2 figures — Intel has not published a comparable
per-operation table for Loihi 2). Numbers are in picojoules per operation.

Sources
-------
* Loihi: M. Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip
  Learning", IEEE Micro 38(1):82-99, 2018, doi:10.1109/MM.2018.112130359, Table 2
  ("Loihi neuron core performance and energy", 14 nm, nominal 0.75 V). The synaptic figure
  is the table's *minimum* energy per synaptic spike operation; the neuron figures are per
  neuron update, for active and inactive neurons.
* 45 nm CMOS: M. Horowitz, "1.1 Computing's energy problem (and what we can do about it)",
  ISSCC 2014, pp. 10-14, doi:10.1109/ISSCC.2014.6757323, Figure/Table of energy per
  operation at 45 nm, 0.9 V (integer add 8 bit 0.03 pJ, 32 bit 0.1 pJ; integer multiply
  8 bit 0.2 pJ, 32 bit 3.1 pJ; float add 16 bit 0.4 pJ, 32 bit 0.9 pJ; float multiply
  16 bit 1.1 pJ, 32 bit 3.7 pJ). A multiply-accumulate (MAC) is taken as one multiply plus
  one add of the same format (fp32: 3.7 + 0.9 = 4.6 pJ), the convention of the SNN
  energy literature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DAVIES_2018 = ("M. Davies et al., Loihi: A Neuromorphic Manycore Processor with On-Chip Learning, "
               "IEEE Micro 38(1):82-99, 2018, Table 2")
HOROWITZ_2014 = ("M. Horowitz, Computing's energy problem (and what we can do about it), "
                 "ISSCC 2014, energy per operation at 45 nm, 0.9 V")


@dataclass(frozen=True)
class EnergyFigure:
    """One published energy per operation."""

    key: str
    pj: float
    what: str
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


LOIHI = {
    "synop": EnergyFigure("synop", 23.6, "synaptic spike operation (minimum)", DAVIES_2018),
    "neuron_update_active": EnergyFigure("neuron_update_active", 81.0, "neuron update, active neuron", DAVIES_2018),
    "neuron_update_inactive": EnergyFigure("neuron_update_inactive", 52.0, "neuron update, inactive neuron",
                                           DAVIES_2018),
    "spike_in_tile": EnergyFigure("spike_in_tile", 1.7, "spike sent within a tile", DAVIES_2018),
    "tile_hop_ew": EnergyFigure("tile_hop_ew", 3.0, "spike energy per tile hop, east-west", DAVIES_2018),
    "tile_hop_ns": EnergyFigure("tile_hop_ns", 4.0, "spike energy per tile hop, north-south", DAVIES_2018),
    "synaptic_update": EnergyFigure("synaptic_update", 120.0, "synaptic update (learning; unused here)",
                                    DAVIES_2018),
}

CMOS45 = {
    "int8_add": EnergyFigure("int8_add", 0.03, "8-bit integer add", HOROWITZ_2014),
    "int32_add": EnergyFigure("int32_add", 0.1, "32-bit integer add", HOROWITZ_2014),
    "int8_mult": EnergyFigure("int8_mult", 0.2, "8-bit integer multiply", HOROWITZ_2014),
    "int32_mult": EnergyFigure("int32_mult", 3.1, "32-bit integer multiply", HOROWITZ_2014),
    "fp16_add": EnergyFigure("fp16_add", 0.4, "16-bit float add", HOROWITZ_2014),
    "fp32_add": EnergyFigure("fp32_add", 0.9, "32-bit float add", HOROWITZ_2014),
    "fp16_mult": EnergyFigure("fp16_mult", 1.1, "16-bit float multiply", HOROWITZ_2014),
    "fp32_mult": EnergyFigure("fp32_mult", 3.7, "32-bit float multiply", HOROWITZ_2014),
}


def pj(table: dict[str, EnergyFigure], *keys: str) -> float:
    """Sum of the named figures of ``table`` in pJ (e.g. ``pj(CMOS45, "fp32_mult", "fp32_add")`` = a fp32 MAC)."""
    return float(sum(table[k].pj for k in keys))


FP32_MAC = pj(CMOS45, "fp32_mult", "fp32_add")  # 4.6 pJ
FP32_AC = pj(CMOS45, "fp32_add")  # 0.9 pJ
INT8_MAC = pj(CMOS45, "int8_mult", "int8_add")  # 0.23 pJ (8-bit accumulator, as in the table)
INT32_AC = pj(CMOS45, "int32_add")  # 0.1 pJ


def all_figures() -> list[EnergyFigure]:
    """Every figure, Loihi first."""
    return list(LOIHI.values()) + list(CMOS45.values())
