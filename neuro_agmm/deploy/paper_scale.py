"""The networks binary-SNN papers report, as synapse-block geometry for placement (``scale_report``).

Why: VGG-11 and ResNet-19 on 32×32×3 input and a VGG-style net on 128×128×2 DVS input are what the
field trains; whether they fit Loihi-class chips, and which limit binds, is a question of geometry and
weight bits alone, answerable before a trained (or exportable) model exists. The geometry is read from
the very torch modules ``neuro_agmm.training.models`` builds, residual blocks included.
"""

from __future__ import annotations

import numpy as np

from hw_models.mapping.scale_report import BlockGeometry
from neuro_agmm.training.models import ReadoutBlock, ResidualBlock, SpikingBlock, build_model

BITS = {"binary": 1, "int8": 8, "float": 8}  # stored weight bits per synapse (float layers deploy as int8)

PAPER_NETWORKS = {  # name -> build_model arguments
    "VGG-11, CIFAR 32×32×3": dict(arch="vgg11", input_shape=(3, 32, 32), n_classes=10),
    "ResNet-19, CIFAR 32×32×3": dict(arch="resnet19", input_shape=(3, 32, 32), n_classes=10),
    "VGG-11-style, DVS 128×128×2": dict(arch="vgg11", input_shape=(2, 128, 128), n_classes=11),
}


def _block(name: str, b: SpikingBlock, into: str | None = None) -> BlockGeometry:
    syn = b.synapse
    bits = BITS[syn.precision]
    if syn.kind == "conv":
        k = tuple(syn.weight.shape[2:])
        return BlockGeometry(name, "conv", tuple(b.in_shape), tuple(b.out_shape), bits, kernel=k,
                             stride=tuple(syn.stride), padding=tuple(syn.padding), into=into)
    return BlockGeometry(name, "dense", (int(b.in_shape[0]),), tuple(b.out_shape), bits, into=into)


def model_blocks(model) -> list[BlockGeometry]:
    """Synapse blocks of a ``BSNN`` in order; a residual block gives conv1, conv2 and its shortcut into conv2."""
    out: list[BlockGeometry] = []
    for name, stage in model.stages.items():
        if isinstance(stage, ResidualBlock):
            out.append(_block(f"{name}.conv1", stage.conv1))
            out.append(_block(f"{name}.conv2", stage.conv2))
            if stage.shortcut is not None:
                out.append(_block(f"{name}.shortcut", stage.shortcut, into=f"{name}.conv2"))
            else:  # identity: one synapse per neuron from the block input
                n = int(np.prod(stage.in_shape))
                out.append(BlockGeometry(f"{name}.identity", "dense", (1,), (n,), 1, into=f"{name}.conv2"))
        else:
            out.append(_block(name, stage))
    r: ReadoutBlock = model.readout
    out.append(BlockGeometry("readout", "dense", tuple(r.in_shape), tuple(r.out_shape), BITS[r.synapse.precision]))
    return out


def paper_network_blocks(name: str) -> list[BlockGeometry]:
    return model_blocks(build_model(**PAPER_NETWORKS[name]))
