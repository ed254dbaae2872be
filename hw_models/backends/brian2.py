"""The integer network as Brian2 groups and synapses: a second, independent implementation of ``core_spec``.

Why it exists: Brian2 is the field's reference simulator; building the same integer
dynamics from Brian2's equation strings (instead of calling our NumPy code) gives an
independent check of the hardware semantics, and Brian2 counts the synaptic operations
itself (every ``on_pre`` increments a per-synapse counter), so the energy model's
counts are not inferred after the fact.

How the network maps:

* Input: a ``NeuronGroup`` with an integer variable ``g`` set every step from a
  ``TimedArray`` of the graded inputs; it emits an event where ``g > 0``.
* Layer ``k``: a ``NeuronGroup`` with integer state ``u``, ``v`` (int64 while the
  network runs), an accumulator ``acc``, and the ``core_spec`` update written as Brian2
  statements: weight exponent as ``* 2**e`` or floor ``// 2**-e`` (an arithmetic shift),
  int32 wrap of the activation, decays rounded toward zero, Lava's 24-bit current wrap,
  the ±(2**23 - 1) voltage clip, threshold ``v > vth*64``, reset ``v = 0``. Brian2 rejects
  ``int()`` of relational expressions, so indicators of integer conditions are written as
  ``clip(x, 0, 1)`` (exact for integers) and ``trunc(p / 4096)`` as
  ``(p + 4095 * clip(-p, 0, 1)) // 4096``.
* Synapses: explicit lists ``(pre, post, w)`` from ``emulator.synapse_list`` (conv layers
  expanded with their borders and stride); ``on_pre: acc_post += w * g_pre; count += 1``.
  Per-synapse delays are Brian2's own synaptic ``delay`` (whole steps); a delayed graded
  input reads its value at emission time, ``inp_values(t - delay, i)``.
* Schedule: every object runs in the ``groups`` slot with an explicit ``order`` — input,
  its synapses, layer 0's update, threshold, reset, layer 0's synapses, layer 1, ... — so a
  spike reaches the next layer in the same step: the canonical no-delay schedule of
  ``reference.run_reference``, not Lava's one-step-per-layer delay.

Code generation targets ``numpy`` (starts at once) and ``cython`` (compiles once, about
20 s, cached under ``~/.cython``); the result records which one ran. What it leaves out:
batching (one sample per run; use the emulator for batches), Brian2's standalone devices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from hw_models import core_spec
from hw_models.results import LayerCounts
from hw_models.geometry import synapse_list
from hw_models.integer_network import IntegerNetwork
from hw_models.results import RunTrace

TARGETS = ("numpy", "cython")
_I32 = 1 << 31


@dataclass
class Brian2Trace(RunTrace):
    """``RunTrace`` (canonical time) plus the counts Brian2 made and how it ran."""

    counts: list[LayerCounts] = None  # per layer, batch of one
    synops_per_synapse: list[np.ndarray] = None  # Brian2's per-synapse ``count`` after the run
    target: str = "numpy"
    build_s: float = 0.0
    run_s: float = 0.0


def _trunc_div(expr: str, k: str) -> str:
    """Brian2 expression for ``trunc(expr * k / 4096)``, ``expr`` an integer variable, ``k >= 0``."""
    p = f"({expr} * {k})"
    return f"(({p} + {core_spec.DECAY_UNITY - 1} * clip(-{expr}, 0, 1)) // {core_spec.DECAY_UNITY})"


def _block_suffix(i: int) -> str:
    """Variable suffix of synapse block ``i`` of a layer (0 = the main block: ``acc``, ``wmul``, ``wdiv``)."""
    return "" if i == 0 else str(i)


def layer_update_code(n_blocks: int = 1) -> str:
    """``core_spec.step`` (rules 1-3; rule 4 is the group's threshold/reset) as Brian2 statements.

    Layer constants are shared variables, not literals, so every layer and every network
    generates the same code (the cython target compiles it once and caches it):
    ``n_blocks`` synapse blocks (a layer with residual shortcuts has more than one, each with
    its own accumulator ``acc<i>`` and exponent ``wmul<i>``/``wdiv<i>``, rule 1b);
    ``wmul``/``wdiv`` the weight exponent (``2**e`` / ``2**-e``, the other one 1), ``ku``/``kv``
    the decay factors ``4096 - (du + 1)`` and ``4096 - dv``.
    """
    m = core_spec.MAX_UV

    def block(i: int) -> str:  # apply_weight_exp of block i, int32
        x = _block_suffix(i)
        return f"((((acc{x} * wmul{x}) // wdiv{x} + {_I32}) % {2 * _I32}) - {_I32})"

    total = " + ".join(block(i) for i in range(n_blocks))
    lines = [
        f"act = (({total} + {_I32}) % {2 * _I32}) - {_I32}",  # rule 1b: the int32 sum of the blocks
        f"cur = act * {1 << core_spec.ACT_SHIFT} + {_trunc_div('u', 'ku')}",
        f"cur = cur - {2 * m} * clip(cur - {m}, 0, 1) + {2 * m} * clip({1 - m} - cur, 0, 1)",  # wrap24
        f"u = ((cur + {_I32}) % {2 * _I32}) - {_I32}",  # int32 register
        f"v = clip({_trunc_div('v', 'kv')} + u + bias, {1 - m}, {m - 1})",
        *[f"acc{_block_suffix(i)} = 0" for i in range(n_blocks)],
        "n_upd += 1",
    ]
    return "\n".join(lines)


def _check_inputs(net: IntegerNetwork, inputs: np.ndarray) -> np.ndarray:
    inputs = np.asarray(inputs)
    if inputs.dtype != bool and not np.issubdtype(inputs.dtype, np.integer):
        raise ValueError(f"inputs must be integers (graded spikes), got {inputs.dtype}")
    if inputs.ndim < 1 or int(np.prod(inputs.shape[1:])) != int(np.prod(net.input_shape)):
        raise ValueError(f"inputs have shape {inputs.shape}, expected (T, *{tuple(net.input_shape)})")
    if inputs.size and inputs.min() < 0:
        raise ValueError("inputs must be non-negative (graded spikes)")
    if inputs.size and inputs.max() >= 1 << 52:
        raise ValueError("inputs too large for Brian2's float TimedArray")
    return inputs.reshape(inputs.shape[0], -1).astype(np.int64)


def run_brian2(net: IntegerNetwork, inputs: np.ndarray, target: str = "numpy", record_v: bool = True) -> Brian2Trace:
    """Build ``net`` in Brian2 and run one sample ``inputs`` ``(T, *input_shape)``; canonical time.

    ``target`` is Brian2's code generation target (``"numpy"`` or ``"cython"``). With
    ``record_v=False`` the returned ``v``/``u`` lists hold only the final state (shape
    ``(1, n)``), saving memory on long runs.
    """
    import brian2 as b2

    if target not in TARGETS:
        raise ValueError(f"unknown Brian2 target {target!r}; choose one of {TARGETS}")
    net.validate()
    x = _check_inputs(net, inputs)
    t_steps = x.shape[0]
    old_target = b2.prefs.codegen.target
    old_int = b2.prefs.core.default_integer_dtype
    b2.prefs.codegen.target = target
    b2.prefs.core.default_integer_dtype = np.int64  # the decay products need 36 bits
    t0 = time.perf_counter()
    try:
        dt = 1 * b2.ms
        order = iter(range(10_000))
        objs: list = []

        def place(obj, slot="groups"):
            obj.when = slot
            obj.order = next(order)
            return obj

        inp = b2.TimedArray(x.astype(np.float64), dt=dt, name="inp_values")
        src = b2.NeuronGroup(x.shape[1], "g : integer", threshold="g > 0", reset="", dt=dt, name="inp")
        objs += [src, place(src.run_regularly("g = int(inp_values(t, i) + 0.5)", dt=dt, name="inp_set")),
                 place(src.thresholder["spike"])]
        mon_in = b2.SpikeMonitor(src, when="end", name="inp_spikes")
        objs.append(mon_in)
        groups, syns, smons, vmons = [], [], [], []
        shortcut_syns: list[list] = []
        prev, graded = src, True
        for k, layer in enumerate(net.layers):
            blocks = layer.blocks()
            block_vars = "".join(f"acc{x} : integer\nwmul{x} : integer (constant, shared)\n"
                                 f"wdiv{x} : integer (constant, shared)\n"
                                 for x in map(_block_suffix, range(len(blocks))))
            g = b2.NeuronGroup(
                layer.n_out,
                "u : integer\nv : integer\nact : integer\ncur : integer\n"
                "bias : integer (constant)\nvth64 : integer (constant)\nn_upd : integer\n" + block_vars +
                "ku : integer (constant, shared)\nkv : integer (constant, shared)",
                threshold="v > vth64", reset="v = 0", dt=dt, name=f"layer{k}")
            g.bias = layer.bias.astype(np.int64)
            g.vth64 = core_spec.scaled_threshold(layer.vth)
            for i, blk in enumerate(blocks):
                e = int(blk.weight_exp)
                setattr(g, f"wmul{_block_suffix(i)}", (1 << e) if e >= 0 else 1)
                setattr(g, f"wdiv{_block_suffix(i)}", 1 if e >= 0 else (1 << -e))
            g.ku = core_spec.current_decay_factor(layer.du)
            g.kv = core_spec.voltage_decay_factor(layer.dv)
            pre, post, w = synapse_list(layer)
            # a delayed graded input is read at its emission time, t - delay, from the input's TimedArray
            value = ("int(inp_values(t - delay, i) + 0.5)" if layer.delay is not None else "g_pre") if graded else None
            s = b2.Synapses(prev, g, "w : integer (constant)\ncount : integer",
                            on_pre=(f"acc_post += w * {value}" if graded else "acc_post += w") + "\ncount += 1",
                            dt=dt, name=f"syn{k}")
            s.connect(i=pre, j=post)
            s.w = w
            if layer.delay is not None:  # per-synapse delays in whole steps (core_spec rule 1)
                s.delay = np.asarray(layer.delay)[post, pre] * dt
            place(s.pre)
            extra = []
            for i, sc in enumerate(layer.shortcuts, start=1):  # a shortcut: synapses from an earlier group
                src_group = src if sc.source < 0 else groups[sc.source]
                pre_s, post_s, w_s = synapse_list(sc)
                val = "g_pre" if sc.source < 0 else None
                syn_s = b2.Synapses(src_group, g, "w : integer (constant)\ncount : integer",
                                    on_pre=(f"acc{i}_post += w * {val}" if val else f"acc{i}_post += w") +
                                    "\ncount += 1", dt=dt, name=f"syn{k}_{i}")
                syn_s.connect(i=pre_s, j=post_s)
                syn_s.w = w_s
                place(syn_s.pre)  # after its source's threshold and reset (it is an earlier group), same step
                extra.append(syn_s)
                objs.append(syn_s)
            shortcut_syns.append(extra)
            upd = place(g.run_regularly(layer_update_code(len(blocks)), dt=dt, name=f"layer{k}_update"))
            place(g.thresholder["spike"])
            place(g.resetter["spike"])
            smon = b2.SpikeMonitor(g, when="end", name=f"layer{k}_spikes")
            objs += [s, g, upd, smon]
            if record_v:
                vmon = b2.StateMonitor(g, ["v", "u"], record=True, when="end", name=f"layer{k}_state")
                objs.append(vmon)
                vmons.append(vmon)
            groups.append(g)
            syns.append(s)
            smons.append(smon)
            prev, graded = g, False
        network = b2.Network(*objs)
        t1 = time.perf_counter()
        network.run(t_steps * dt, namespace={"inp_values": inp})
        t2 = time.perf_counter()

        spikes, volts, currents, counts, per_syn = [], [], [], [], []
        node_events = [int(mon_in.num_spikes)]  # per node: the input, then every layer
        for k, layer in enumerate(net.layers):
            in_events = node_events[k] + sum(node_events[sc.source + 1] for sc in layer.shortcuts)
            s_rec = np.zeros((t_steps, layer.n_out), bool)
            st = np.rint(np.asarray(smons[k].t / dt)).astype(np.int64)
            s_rec[st, np.asarray(smons[k].i)] = True
            spikes.append(s_rec)
            if record_v:
                volts.append(np.asarray(vmons[k].v).T.astype(np.int32))
                currents.append(np.asarray(vmons[k].u).T.astype(np.int32))
            else:
                volts.append(np.asarray(groups[k].v)[None].astype(np.int32))
                currents.append(np.asarray(groups[k].u)[None].astype(np.int32))
            c = np.asarray(syns[k].count, np.int64)
            per_syn.append(c)
            n_spk = int(smons[k].num_spikes)
            synops = int(c.sum()) + sum(int(np.asarray(x.count, np.int64).sum()) for x in shortcut_syns[k])
            counts.append(LayerCounts(input_events=np.array([in_events], np.int64),
                                      synops=np.array([synops], np.int64),
                                      neuron_updates=np.array([int(np.asarray(groups[k].n_upd).sum())], np.int64),
                                      spikes=np.array([n_spk], np.int64)))
            node_events.append(n_spk)
    finally:
        b2.prefs.codegen.target = old_target
        b2.prefs.core.default_integer_dtype = old_int
    return Brian2Trace(spikes=spikes, v=volts, u=currents, counts=counts, synops_per_synapse=per_syn,
                       target=target, build_s=t1 - t0, run_s=t2 - t1)
