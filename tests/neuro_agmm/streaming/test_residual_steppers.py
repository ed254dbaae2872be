"""Streaming steppers on a residual network: window by window they give what the whole-sample models give."""

import numpy as np

from hw_models.backends.reference import run_reference
from hw_models.mapping.quantizer import quantize
from neuro_agmm.deploy.float_model import run_float
from neuro_agmm.streaming.steppers import EmulatorStepper, TorchFloatStepper
from random_nets import residual_artifact


def test_torch_and_emulator_steppers_add_the_shortcuts():
    art = residual_artifact()
    x = np.random.default_rng(7).integers(0, 4, size=(3, 5, 2, 6, 6))
    net, _ = quantize(art)
    ft = run_float(art, x)
    torch_s, emu_s = TorchFloatStepper(art), EmulatorStepper(net)
    for b in range(len(x)):
        torch_s.reset()
        emu_s.reset()
        for lo, hi in ((0, 2), (2, 3), (3, 5)):  # uneven windows: state and node outputs carried across calls
            v_float = torch_s.run(x[b, lo:hi])
            v_int = emu_s.run(x[b, lo:hi])
        np.testing.assert_allclose(v_float, ft.v[-1][b, -1], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(v_int, run_reference(net, x[b]).v[-1][-1])
    assert emu_s.emu.kernel == "numpy"  # the compiled kernel runs chains; auto falls back for the DAG
