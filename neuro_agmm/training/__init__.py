"""The training side (needs torch and Norse): LIF neurons, binary layers, models, AGMM, the loop, checkpoints.

Nothing outside this package imports it except the ``train``/``export``/``plots`` jobs and the
torch float stepper of ``neuro_agmm.streaming``; deployment runs without torch.
"""
