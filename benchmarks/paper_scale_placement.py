"""Placement of the paper-scale networks on Loihi 1 and Loihi 2 chip profiles (issue 13, item 4).

Why: VGG-11 / ResNet-19 on CIFAR-size input and a VGG-style net on 128×128×2 DVS input are the networks
binary-SNN papers report; this says how many cores and chips they take under our placer's rules, which
limit binds per layer, and where a layer cannot be stored at all (and by how much). Geometry comes from
the torch modules the trainer builds (``neuro_agmm.deploy.paper_scale``); no training needed.

Usage::

    .venv/bin/python benchmarks/paper_scale_placement.py            # writes docs/paper_scale_placement.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hw_models.mapping.scale_report import scale_report  # noqa: E402
from neuro_agmm.artifact import atomic_write  # noqa: E402
from neuro_agmm.deploy.paper_scale import PAPER_NETWORKS, paper_network_blocks  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doc", default=str(ROOT / "docs" / "paper_scale_placement.md"))
    ap.add_argument("--chips", nargs="+", default=["loihi1", "loihi2"])
    a = ap.parse_args(argv)
    parts = ["# Paper-scale networks on Loihi-class chips", "",
             "Command: `.venv/bin/python benchmarks/paper_scale_placement.py` "
             f"(Python {platform.python_version()}, {platform.machine()}).", "",
             "Binary hidden layers store 1-bit synapses, the int8 first layer and readout 8 bits. *cores (placed)* is "
             "the placer's own per-layer rule (`hw_models.mapping.placer.place_layer`: neurons in C order, i.e. "
             "channel-major runs, greedy first-fit under the neuron, synaptic-memory and input-axon limits). "
             "*position-major* is an estimate of the same layer if a core held all channels of a few neighbouring "
             "positions instead (they share most inputs). *With weight sharing* stores each distinct weight once "
             "instead of one synapse per connection. A residual shortcut feeds the neurons of its block's conv2: "
             "its fan-in counts toward theirs.", ""]
    n_head = len(parts)
    summary = ["| network | chip | cores (placed, blocks that fit) | chips | blocks that do not fit | "
               "cores, position-major estimate (blocks that fit) | synaptic memory expanded → shared |", "|---|---|---|---|---|---|---|"]
    for net in PAPER_NETWORKS:
        blocks = paper_network_blocks(net)
        for chip in a.chips:
            t = time.perf_counter()
            r = scale_report(net, blocks, chip)
            print(f"{net} on {chip}: {r.cores} cores, {r.chips} chips, fits={r.fits} "
                  f"({time.perf_counter() - t:.1f}s)", file=sys.stderr, flush=True)
            parts += [r.markdown(), ""]
            bad = [b.name for b in r.blocks if b.violations]
            pm = sum(b.cores_position_major or b.cores or 0 for b in r.blocks)
            exp = sum(b.synaptic_bits for b in r.blocks) / 8 / 2**20
            sh = sum(b.shared_bits for b in r.blocks) / 8 / 2**20
            summary.append(f"| {net} | {chip} | {r.cores:,} | {r.chips:,} | {len(bad)} ({', '.join(bad) or '–'}) | "
                           f"{pm:,} | {exp:,.1f} → {sh:,.2f} MiB |")
    text = "\n".join(parts[:n_head] + ["## Summary", ""] + summary + ["", "## Per layer", ""] + parts[n_head:]) + "\n"
    atomic_write(Path(a.doc), lambda p: p.write_text(text))
    print(f"wrote {a.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
