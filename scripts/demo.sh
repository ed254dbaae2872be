#!/usr/bin/env bash
# Set up .venv (idempotent) and run the main job on the embedded default data (digits).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
exec .venv/bin/python -m neuro_agmm.demo "$@"
