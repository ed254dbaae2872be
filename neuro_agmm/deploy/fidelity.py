"""Float model against the integer network: how much the quantizer's rounding costs, layer by layer.

Lives in ``deploy`` (not in ``hw_models.mapping``) because it runs the NumPy float model of the
artifact (``neuro_agmm.deploy.float_model``); the quantizer itself never needs it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from hw_models.backends.reference import run_reference
from hw_models.integer_network import IntegerNetwork
from hw_models.mapping.quantizer import QuantReport
from neuro_agmm.artifact import ModelArtifact
from neuro_agmm.deploy.float_model import run_float


def fill_agreement(report: QuantReport, art: ModelArtifact, net: IntegerNetwork, inputs: np.ndarray,
                   labels: Optional[np.ndarray] = None, traces: Optional[list] = None) -> list:
    """Compare float model and integer reference on ``inputs`` (B, T, ...); store the figures in ``report``.

    ``traces`` may hold precomputed ``run_reference`` traces, one per sample; returns the traces used.
    """
    x = np.asarray(inputs)
    ftr = run_float(art, x)
    n_spiking = sum(1 for l in net.layers if not l.readout)
    agree = np.zeros(n_spiking)
    int_pred = np.zeros(len(x), np.int64)
    traces = list(traces) if traces is not None else [run_reference(net, x[b]) for b in range(len(x))]
    for b in range(len(x)):
        tr = traces[b]
        int_pred[b] = tr.prediction()
        for li in range(n_spiking):
            agree[li] += np.mean(tr.spikes[li] == ftr.spikes[li][b])
    report.n_samples = int(len(x))
    report.spike_agreement = [float(a / len(x)) for a in agree]
    f_pred = ftr.predictions()
    report.prediction_agreement = float(np.mean(f_pred == int_pred))
    if labels is not None:
        labels = np.asarray(labels)
        report.float_accuracy = float(np.mean(f_pred == labels))
        report.int_accuracy = float(np.mean(int_pred == labels))
    return traces
