"""neuro_agmm: train binary SNNs with AGMM (a reconstruction) and carry them to Loihi-style hardware.

Importing the package imports no torch: the artifact, data readers and energy accounting
stay usable on a deployment machine without a training stack.
"""

__version__ = "0.1.0"
