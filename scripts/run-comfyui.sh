#!/usr/bin/env bash
# Start ComfyUI with this pack loaded on http://127.0.0.1:8188 (see devtools/launch.py).
#   scripts/run-comfyui.sh                      contributor .venv and its ComfyUI tree
#   scripts/run-comfyui.sh --models DIR         also use the weights in DIR (checkpoints/, loras/...)
#   scripts/run-comfyui.sh --demo               weight-free end-to-end demo; prints the image path
#   COMFYUI_PATH=/path/to/ComfyUI PYTHON=/path/to/its/python scripts/run-comfyui.sh
#                                               a user's own install (its models/ are used)
# Arguments after -- go to ComfyUI's main.py. scripts/run-comfyui.sh --help lists the options.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
if [ ! -x "$python" ]; then
    echo "no $python: run scripts/setup-dev.sh first, or set PYTHON to the Python of your ComfyUI install" >&2
    exit 1
fi
exec "$python" "$repo/devtools/launch.py" "$@"
