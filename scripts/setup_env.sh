#!/usr/bin/env bash
# Create (idempotently) the project environment in .venv/ with everything pinned.
# Re-runs are instant: a stamp keyed on the requirement files skips a finished install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$ver" != "3.11" ]; then
  for cand in python3.11 "$HOME/.pyenv/versions/3.11.7/bin/python3"; do
    if command -v "$cand" >/dev/null 2>&1; then py="$cand"; ver=3.11; break; fi
  done
fi
[ "$ver" = "3.11" ] || { echo "setup_env: need Python 3.11 (found $ver)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.setup-$(cat requirements/lock.txt scripts/setup_env.sh pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  pipi() { .venv/bin/python -m pip install --disable-pip-version-check -q "$@"; }
  links=(); [ -d /opt/wheels ] && links=(--find-links /opt/wheels)
  pipi "${links[@]}" torch==2.13.0
  pipi -r requirements/lock.txt
  pipi --no-deps norse==1.1.0 snntorch==1.0.0 tonic==1.7.0 mlxtend==0.25.0
  pipi --no-deps --ignore-requires-python lava-nc==0.10.0
  pipi --no-deps -e .
  rm -f .venv/.setup-*
  touch "$stamp"
fi
