"""``comfy node validate`` (comfy-cli, pinned in requirements-dev.txt): the checks the Comfy
Registry runs when the pack is published, on this checkout, without network.

comfy-cli reads pyproject.toml with the same parser as the Registry and runs its ruff security
rules (exec / eval / several statements on one line; warnings today, errors "soon" by its own
words, so a warning fails here). It gets a throwaway HOME (its config and telemetry consent live
there), telemetry off, and, where the test runs as root, no network namespace at all
(``unshare -n``), so a check that needed the network would fail instead of passing quietly.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from devtools.comfy_host import REPO_ROOT
from server_fixture import unavailable


def validate(directory: pathlib.Path, home: pathlib.Path) -> subprocess.CompletedProcess:
    comfy = pathlib.Path(sys.executable).parent / "comfy"
    if not comfy.is_file():
        unavailable("comfy-cli is missing: run scripts/setup-dev.sh (requirements-dev.txt pins it)")
    offline = ["unshare", "-n"] if os.geteuid() == 0 and shutil.which("unshare") else []
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "POSTHOG_API_KEY": ""}
    return subprocess.run([*offline, str(comfy), "--skip-prompt", "--no-enable-telemetry", "node", "validate"],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_comfy_node_validate_passes(tmp_path):
    finished = validate(REPO_ROOT, tmp_path)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    assert "All validation checks passed" in output and "Security warnings" not in output, output


@pytest.mark.parametrize("breakage", ["no version", "exec"])
def test_comfy_node_validate_catches_what_the_registry_refuses(tmp_path, breakage):
    """Controls: the same command on a copy with an empty version fails, and one with exec() warns."""
    copy = tmp_path / "pack"
    copy.mkdir()
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    if breakage == "no version":
        pyproject = pyproject.replace('version = "', 'version_was = "', 1)
    else:
        (copy / "snippet.py").write_text("exec('print(1)')\n")
    (copy / "pyproject.toml").write_text(pyproject)
    shutil.copy(REPO_ROOT / "LICENSE", copy / "LICENSE")
    finished = validate(copy, tmp_path / "home")
    output = finished.stdout + finished.stderr
    if breakage == "no version":
        assert finished.returncode != 0 and "project version is empty" in output, output
    else:
        assert "Security warnings" in output and "S102" in output, output
