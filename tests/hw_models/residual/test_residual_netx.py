"""netx cannot hold a residual add (lava-dl's reader chains blocks): every netx path refuses by name."""

import numpy as np
import pytest

from hw_models.backends.emulator import random_residual_network
from hw_models.mapping.netx import export_netx
from hw_models.mapping.netx_quantizer import quantize_for_netx
from hw_models.mapping.netx_rules import NetxRuleError
from random_nets import residual_artifact


def test_netx_refuses_residual_networks(tmp_path):
    with pytest.raises(NetxRuleError, match="layer 'b.conv1' has residual shortcuts.*connects each block only"):
        quantize_for_netx(residual_artifact())
    with pytest.raises(NetxRuleError, match="residual shortcuts"):
        export_netx(random_residual_network(np.random.default_rng(0)), tmp_path / "n.h5")
    assert not (tmp_path / "n.h5").exists()


def test_map_cli_says_why(tmp_path, capsys):
    from neuro_agmm.artifact import write_artifact
    from neuro_agmm.map import main

    path = write_artifact(residual_artifact(), tmp_path / "r.h5")
    code = main([str(path), "--to", "netx", "--out", str(tmp_path / "r.netx.h5"), "--no-progress"])
    assert code != 0 and "--to lava" in capsys.readouterr().err
    assert main([str(path), "--to", "nir", "--out", str(tmp_path / "r.nir"), "--no-progress"]) == 0
    assert (tmp_path / "r.nir").exists()
