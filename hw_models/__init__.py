"""Hardware side of neuro_agmm: Loihi-style core semantics, quantizer, placer, and backends.

Needs NumPy (and Lava / Brian2 for those backends), never torch, so a deployment
machine can map and run an artifact without a training stack.
"""

from hw_models import lava_compat as _lava_compat

_lava_compat.install()
