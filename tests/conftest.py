"""Shared test setup: small thread counts (CI has 2 cores) and the Lava import fix."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import hw_models  # noqa: E402,F401  (installs the Lava 3.11 import fix before any test imports lava)

# Shared helpers live in tests/random_nets.py; tests/ is on sys.path because pytest prepends the folder of
# this rootdir conftest (no __init__.py files under tests/).
