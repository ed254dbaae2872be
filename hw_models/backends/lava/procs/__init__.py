"""Lava Processes and ProcessModels emulating our Loihi-style cores.

* ``process.py`` — ``BinaryDense``, ``BinaryConv`` (synapse blocks storing integer
  mantissas — ±1 for binary layers — and one weight exponent, applied exactly as
  ``hw_models.core_spec`` says, with no clip/truncation) and ``CoreLIF`` (LIF with
  per-neuron ``vth``, ``bias_mant``, ``bias_exp``, a per-sample state reset, and
  in-process recording).
* ``models.py`` — their ``fixed_pt`` (bit-accurate: it calls ``core_spec``) and
  ``floating_pt`` ProcessModels.

Import-time side effects are forbidden in this package: Lava's compiler executes every
module in this folder (under a bare module name) while it looks for ProcessModels, so
modules here only define classes and use absolute imports. Lava itself must be imported
after ``hw_models`` (the Python 3.11 fix in ``hw_models.lava_compat``); importing this
package imports Lava.
"""

from hw_models.backends.lava.procs.process import BinaryConv, BinaryDense, CoreLIF

__all__ = ["BinaryDense", "BinaryConv", "CoreLIF"]
