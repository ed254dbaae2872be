"""Deployment of a trained artifact (no torch): the NumPy float model, mapping to cores, cross-checks
between backends, NIR export, and energy accounting and reports."""
