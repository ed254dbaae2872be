"""The model artifact (HDF5): the one hand-off between training and hardware.

Needs NumPy and h5py only (no torch), so ``hw_models`` and deployment tools can read it.

Float semantics the artifact defines (the trained model and every reader agree on it):

* input: ``x = input_scale * x_int`` where ``x_int`` are non-negative integer graded
  spikes per time step (pixel levels, event counts, or 0/1 spikes);
* a layer: ``z = W x`` (dense or conv2d with stride/padding) where ``W`` is ±1 for
  ``precision="binary"`` and integer codes in [-127, 127] for ``precision="int8"``;
  ``I = scale[c] * z + bias[c]``; then, if batch norm is present,
  ``I = gamma[c] * (I - mean[c]) / sqrt(var[c] + eps) + beta[c]``;
* a spiking neuron: ``v[t] = leak * v[t-1] + input_gain * I[t]``; spike when
  ``v[t] > threshold``; a spike resets ``v`` to 0 (hard reset);
* a residual add (format 3): a layer's ``shortcuts`` add their branch currents
  ``scale_b[c] * (W_b x_b) + bias_b[c]`` [each with its own batch norm] to ``I`` before the
  neuron, ``x_b`` being the spikes of the earlier layer named ``source`` (or the scaled input,
  ``source = "input"``); the layers form a DAG of named nodes in topological order, each
  reading the node before it plus its shortcuts' sources;
* the readout layer (``spiking=False``) integrates ``v[t] = leak * v[t-1] + input_gain * I[t]``
  without spiking; the prediction is ``argmax v[T-1]``.

Layout (format ``neuro_agmm.bsnn``, version ``FORMAT_VERSION``)::

    /                attrs: format, format_version, package_version, created,
                           input_shape, input_scale, input_max, time_steps, encoding
    /provenance      attrs: config (JSON), dataset, metrics (JSON), method, seed
    /layers/<i>      attrs: name, kind, precision, in_shape, out_shape, stride, padding,
                           weight_shape, leak, threshold, input_gain, spiking
                     datasets: sign_bits (uint8, packbits of W > 0) for binary,
                               weight (int8) for int8, scale, bias, [bn/gamma, beta, mean, var; attr eps]
    /layers/<i>/shortcuts/<j>  (format 3) attrs: name, source, kind, precision, in_shape, stride,
                           padding, weight_shape; datasets as a layer's
    /hardware        (optional, written by ``neuro_agmm.map``): integer network, placement
"""

from neuro_agmm.artifact.encoding import InputEncoding
from neuro_agmm.artifact.files import atomic_write
from neuro_agmm.artifact.h5 import check_format, open_h5, require_attr, require_dataset
from neuro_agmm.artifact.io import read_artifact, write_artifact
from neuro_agmm.artifact.schema import (FORMAT_NAME, FORMAT_VERSION, INPUT_NODE, READABLE_VERSIONS, ArtifactError,
                                        BatchNormSpec, LayerSpec, ModelArtifact, Precision, ShortcutSpec)

__all__ = ["InputEncoding", "atomic_write", "check_format", "open_h5", "require_attr", "require_dataset",
           "read_artifact", "write_artifact", "FORMAT_NAME", "FORMAT_VERSION", "INPUT_NODE", "READABLE_VERSIONS",
           "ArtifactError", "BatchNormSpec", "LayerSpec", "ModelArtifact", "Precision", "ShortcutSpec"]
