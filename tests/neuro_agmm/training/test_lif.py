"""LIF layer: the float equation of neuro_agmm.artifact, computed through Norse."""

import numpy as np
import pytest
import torch

from neuro_agmm.training.lif import LIF, LIFConfig, lif_sequence, lif_step, readout_sequence


def reference_lif(currents: np.ndarray, leak: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The artifact docstring's equation in float64: v = leak*v + (1-leak)*I, spike v > th, reset 0."""
    v = np.zeros(currents.shape[1:])
    spikes, volts = [], []
    for i in currents:
        v = leak * v + (1 - leak) * i
        s = v > threshold
        v = np.where(s, 0.0, v)
        spikes.append(s)
        volts.append(v.copy())
    return np.array(spikes), np.array(volts)


@pytest.mark.parametrize("leak,threshold", [(0.5, 1.0), (0.25, 0.7), (0.0, 1.0), (0.9, 2.0)])
def test_matches_artifact_equation(leak, threshold):
    rng = np.random.default_rng(1)
    cur = rng.normal(1.0, 1.5, size=(12, 5, 40)).astype(np.float32)
    s_ref, v_ref = reference_lif(cur.astype(np.float64), leak, threshold)
    cfg = LIFConfig(leak=leak, threshold=threshold)
    s = lif_sequence(torch.as_tensor(cur), cfg).numpy()
    assert set(np.unique(s)) <= {0.0, 1.0}
    # float32 vs float64: only elements whose voltage is within rounding of the threshold may differ
    assert (s.astype(bool) != s_ref).mean() < 1e-3
    # step-wise voltages agree where spike trains agree so far
    params = cfg.norse_parameters()
    v = torch.zeros(5, 40)
    for t in range(12):
        z, v = lif_step(torch.as_tensor(cur[t]), v, params)
        same = (s[: t + 1].astype(bool) == s_ref[: t + 1]).all(0)
        np.testing.assert_allclose(v.numpy()[same], v_ref[t][same], rtol=1e-5, atol=1e-5)


def test_strict_threshold_and_hard_reset():
    cfg = LIFConfig(leak=0.5, threshold=1.0)
    # I = 2: v1 = 1.0 (== threshold, no spike), v2 = 1.5 -> spike and reset to 0, v3 = 1.0 again
    s = lif_sequence(torch.full((4, 1), 2.0), cfg)[:, 0].tolist()
    assert s == [0.0, 1.0, 0.0, 1.0]
    z, v = lif_step(torch.tensor([3.0]), torch.tensor([0.0]), cfg.norse_parameters())
    assert z.item() == 1.0 and v.item() == 0.0


def test_norse_parameter_mapping():
    cfg = LIFConfig(leak=0.5, threshold=1.0)
    p = cfg.norse_parameters()
    assert float(p.tau_mem_inv) == pytest.approx(0.5)
    assert float(p.v_th) == 1.0 and float(p.v_reset) == 0.0 and float(p.v_leak) == 0.0
    assert cfg.input_gain == 0.5


def test_surrogate_gradient_flows():
    cur = torch.full((3, 4), 0.8, requires_grad=True)
    lif_sequence(cur, LIFConfig()).sum().backward()
    assert cur.grad is not None and torch.all(cur.grad != 0)


def test_readout_integrates_without_leak():
    cur = torch.arange(12, dtype=torch.float32).reshape(4, 1, 3)
    np.testing.assert_array_equal(readout_sequence(cur).numpy(), cur.sum(0).numpy())


def test_bad_parameters():
    with pytest.raises(ValueError, match="leak"):
        LIFConfig(leak=1.0)
    with pytest.raises(ValueError, match="threshold"):
        LIFConfig(threshold=0.0)
    assert "leak=0.5" in repr(LIF())
