#!/usr/bin/env bash
# Runs the whole test suite with the contributor .venv (made by scripts/setup-dev.sh).
# Extra arguments go to pytest, e.g. scripts/test.sh -k entmax
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest "$@"
