"""The integer network of an artifact: the one way every deployment job gets it.

``neuro_agmm.map`` writes the quantized, placed network into the artifact's ``/hardware`` group;
everything downstream (infer, report, crosscheck) reads it from there, so they all run the very
network that was mapped. Only when the group is absent, or stale (the float layers changed since
mapping, or the run is longer than the overflow guarantees cover), is the artifact re-quantized —
and the returned notes say so.
"""

from __future__ import annotations

import os
from typing import Optional

from hw_models.integer_network import IntegerNetwork
from hw_models.mapping.hardware_section import load_hardware
from hw_models.mapping.placer import Placement
from hw_models.mapping.quantizer import quantize
from neuro_agmm.artifact import ModelArtifact, read_artifact

DIGEST_KEY = "artifact_digest"


def integer_network(artifact: str | os.PathLike | ModelArtifact, time_steps: Optional[int] = None
                    ) -> tuple[IntegerNetwork, ModelArtifact, list[str]]:
    """``(net, artifact, notes)``: ``/hardware`` if present and current, else a fresh ``quantize``.

    ``time_steps`` (default the artifact's) is the longest run the caller needs the no-overflow
    guarantee for; a stored network proven for fewer steps counts as stale.
    """
    net, art, notes, _ = mapped_network(artifact, time_steps)
    return net, art, notes


def mapped_network(artifact: str | os.PathLike | ModelArtifact, time_steps: Optional[int] = None
                   ) -> tuple[IntegerNetwork, ModelArtifact, list[str], Optional[Placement]]:
    """``integer_network`` plus the placement ``/hardware`` records (None without one), from one read of it."""
    path = None if isinstance(artifact, ModelArtifact) else artifact
    art = artifact if isinstance(artifact, ModelArtifact) else read_artifact(artifact)
    t_needed = int(time_steps if time_steps is not None else art.time_steps)
    why = "no /hardware section"
    placement = None
    if path is not None and art.hardware is not None:
        hw = load_hardware(path)
        net, placement = hw.net, hw.placement
        stored_t = int(net.meta.get("max_time_steps", 0))
        if net.meta.get(DIGEST_KEY) != art.digest():
            why = "/hardware is stale (the float layers changed since mapping)"
        elif stored_t < t_needed:
            why = f"/hardware is proven for {stored_t} steps, this run needs {t_needed}"
        else:
            return net, art, [f"integer network read from {path}:/hardware"], placement
    net, _ = quantize(art, time_steps=t_needed)
    return net, art, [f"integer network re-quantized ({why})"], placement


def stamp(net: IntegerNetwork, art: ModelArtifact) -> IntegerNetwork:
    """Record in ``net.meta`` which float network it was quantized from (checked by ``integer_network``)."""
    net.meta[DIGEST_KEY] = art.digest()
    return net
