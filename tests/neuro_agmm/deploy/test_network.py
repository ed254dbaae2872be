"""``deploy.network.integer_network``: the mapped ``/hardware`` network first, re-quantized only when absent or stale."""

import h5py
import numpy as np

from hw_models.mapping.hardware_section import save_hardware
from hw_models.mapping.quantizer import quantize
from neuro_agmm.artifact import read_artifact, write_artifact
from neuro_agmm.deploy.network import integer_network, stamp
import random_nets


def test_reads_hardware_then_notices_staleness(tmp_path):
    rng = np.random.default_rng(0)
    art = random_nets.random_artifact(rng)
    path = write_artifact(art, tmp_path / "m.h5")
    net, _, notes = integer_network(path)
    assert "re-quantized (no /hardware section)" in notes[0]

    mapped, _ = quantize(art)
    mapped.layers[0].bias_mant[:] = 7  # a marker only the stored copy has
    save_hardware(path, stamp(mapped, art))
    net, _, notes = integer_network(path)
    assert "read from" in notes[0] and np.all(net.layers[0].bias_mant == 7)

    net, _, notes = integer_network(path, time_steps=art.time_steps + 50)
    assert "proven for" in notes[0] and not np.all(net.layers[0].bias_mant == 7)

    with h5py.File(path, "r+") as f:  # the float model changes after mapping
        f["layers/0/scale"][0] *= 2
    net, _, notes = integer_network(path)
    assert "stale" in notes[0] and read_artifact(path).hardware is not None
