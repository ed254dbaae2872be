"""Paper-scale placement report: counts checked against the explicit synapse list and the placer itself."""

import numpy as np
import pytest

from hw_models.core_limits import LOIHI1, ChipSpec, CoreSpec
from hw_models.geometry import synapse_list
from hw_models.integer_network import IntegerNetwork
from hw_models.mapping.placer import place
from hw_models.mapping.scale_report import BlockGeometry, position_major_plan, scale_report


def conv_block(name, in_shape, cout, k=3, stride=1, pad=1, bits=1, into=None):
    c, h, w = in_shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    return BlockGeometry(name, "conv", in_shape, (cout, ho, wo), bits, kernel=(k, k), stride=(stride, stride),
                         padding=(pad, pad), into=into)


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 1), (2, 0), (1, 0)])
def test_conv_synapse_count_matches_the_explicit_synapse_list(stride, pad):
    b = conv_block("c", (3, 9, 7), 4, stride=stride, pad=pad)
    pre, post, _ = synapse_list(b.int_layer())
    assert b.synapses() == pre.size
    assert b.unique_weights() == 4 * 3 * 9


def test_report_agrees_with_the_placer_where_the_network_fits():
    small = ChipSpec("small", CoreSpec("small-core", max_neurons=64, synaptic_memory_bits=8192, max_fan_in_axons=320,
                                       max_fan_out_axons=4096), cores_per_chip=16, max_chips=64)
    blocks = [conv_block("c1", (2, 12, 12), 4, stride=2, bits=8), conv_block("c2", (4, 6, 6), 8),
              BlockGeometry("fc", "dense", (288,), (20,), 1)]
    rep = scale_report("toy", blocks, small)
    pl = place(IntegerNetwork([b.int_layer() for b in blocks], input_shape=(2, 12, 12)), small)
    assert [r.cores for r in rep.blocks] == [pl.cores_per_layer()[b.name] for b in blocks]
    assert rep.fits and rep.cores == pl.n_cores
    assert rep.blocks[0].synaptic_bits == blocks[0].synapses() * 8


def test_a_block_that_cannot_be_stored_is_reported_with_its_excess_not_raised():
    blocks = [conv_block("wide", (512, 4, 4), 16), BlockGeometry("fc", "dense", (256,), (10,), 8)]
    rep = scale_report("vgg-tail", blocks, LOIHI1)
    wide = rep.blocks[0]
    assert wide.cores is None and not rep.fits
    assert "fan-in 4,608 exceeds the 4,096-axon input limit by 512" in wide.violations[0]
    assert rep.blocks[1].cores == 1 and "do not fit" in rep.markdown()


def test_residual_shortcut_fan_in_adds_to_its_target():
    b2 = conv_block("blk.conv2", (448, 4, 4), 8)  # 448 * 9 = 4032 axons: fits alone
    sc = conv_block("blk.shortcut", (128, 4, 4), 8, k=1, pad=0, into="blk.conv2")
    rep = scale_report("res", [b2, sc], LOIHI1)
    assert rep.blocks[0].fan_in == 4032 + 128 and "by 64" in rep.blocks[0].violations[0]
    assert rep.blocks[1].neurons == 0 and "shares the cores" in rep.blocks[1].binding


def test_position_major_plan_meets_the_limits_it_claims():
    spec = CoreSpec("s", max_neurons=128, synaptic_memory_bits=1 << 20, max_fan_in_axons=512, max_fan_out_axons=4096)
    b = conv_block("c", (16, 10, 10), 32)
    cores, r, c = position_major_plan(b, spec, b.fan_in)
    pre, post, _ = synapse_list(b.int_layer())
    # the worst group: c channels at the r positions starting at column 0 of an interior row
    cout, ho, wo = b.out_shape
    group = [(ch * ho + 5) * wo + x for ch in range(c) for x in range(r)]
    distinct = np.unique(pre[np.isin(post, group)]).size
    assert r * c <= spec.max_neurons and distinct <= spec.max_fan_in_axons
    assert cores == -(-wo // r) * ho * -(-cout // c)
    placed = scale_report("c", [b], ChipSpec("s", spec, 1024)).blocks[0].cores
    assert cores <= placed
