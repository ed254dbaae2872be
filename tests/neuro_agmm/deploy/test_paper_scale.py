"""Geometry of the paper-scale networks, read from the torch modules the trainer builds."""

import numpy as np

from hw_models.mapping.scale_report import scale_report
from neuro_agmm.deploy.paper_scale import PAPER_NETWORKS, model_blocks
from neuro_agmm.training.models import build_model


def test_resnet_blocks_carry_their_shortcuts_into_conv2():
    model = build_model("resnet19", (3, 32, 32), 10, width=0.125)
    blocks = {b.name: b for b in model_blocks(model)}
    assert blocks["layer1_0.identity"].into == "layer1_0.conv2" and blocks["layer1_0.identity"].fan_in == 1
    sc = blocks["layer2_0.shortcut"]
    assert sc.into == "layer2_0.conv2" and sc.kernel == (1, 1) and sc.stride == (2, 2) and sc.fan_in == 16
    conv = [m for n, m in model.spiking_blocks() if n.endswith("layer2_0.conv2")][0]
    assert blocks["layer2_0.conv2"].out_shape == tuple(conv.out_shape)
    assert blocks["conv1"].weight_bits == 8 and blocks["layer1_0.conv1"].weight_bits == 1
    assert blocks["readout"].weight_bits == 8
    rep = scale_report("r", list(blocks.values()), "loihi2")
    assert rep.blocks[[b.name for b in rep.blocks].index("layer2_0.conv2")].fan_in == 32 * 9 + 16


def test_vgg_neurons_match_the_model():
    model = build_model(**PAPER_NETWORKS["VGG-11, CIFAR 32×32×3"])
    blocks = model_blocks(model)
    assert sum(b.neurons for b in blocks) == sum(int(np.prod(m.out_shape)) for _, m in model.spiking_blocks()) + 10
    assert [b.name for b in blocks][:2] == ["conv1", "conv2"] and len(blocks) == 11
