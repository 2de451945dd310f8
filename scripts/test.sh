#!/usr/bin/env bash
# Runs the whole test suite in a host venv made by scripts/setup-dev.sh:
#   scripts/test.sh                  .venv (ComfyUI 0.3.75, or your COMFYUI_PATH tree)
#   scripts/test.sh --host 0.12.1    .venv-0.12.1 (ComfyUI 0.12.1)
# Further arguments go to pytest, e.g. scripts/test.sh --host 0.12.1 -k entmax.
# The exit status is pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/host.sh   # --host NAME -> $host, $venv
if [ ! -x "$venv/bin/python" ]; then
    echo "no $venv: run scripts/setup-dev.sh$host_option first" >&2
    exit 1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$venv/bin/python" -m pytest "$@"
