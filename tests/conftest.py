"""Shared test setup: small thread counts (CI has 2 cores) and the Lava import fix."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import hw_models  # noqa: E402,F401  (installs the Lava 3.11 import fix before any test imports lava)
