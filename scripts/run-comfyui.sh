#!/usr/bin/env bash
# Start ComfyUI with this pack loaded on http://127.0.0.1:8188 (see devtools/launch.py).
#   scripts/run-comfyui.sh                      contributor .venv and its ComfyUI tree (0.3.75)
#   scripts/run-comfyui.sh --host 0.12.1        the .venv-0.12.1 made by setup-dev.sh --host 0.12.1
#   scripts/run-comfyui.sh --models DIR         also use the weights in DIR (checkpoints/, loras/...)
#   scripts/run-comfyui.sh --demo               weight-free end-to-end demo; prints the image path
#   COMFYUI_PATH=/path/to/ComfyUI PYTHON=/path/to/its/python scripts/run-comfyui.sh
#                                               a user's own install (its models/ are used)
# Arguments after -- go to ComfyUI's main.py. scripts/run-comfyui.sh --help lists the options.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source "$repo/scripts/host.sh"   # --host NAME -> $host, $venv
python=${PYTHON:-$venv/bin/python}
if [ ! -x "$python" ]; then
    echo "no $python: run scripts/setup-dev.sh$host_option first, or set PYTHON to the Python of your ComfyUI install" >&2
    exit 1
fi
exec "$python" "$repo/devtools/launch.py" "$@"
