"""Test harness: puts the real ComfyUI host on sys.path (see devtools/comfy_host.py).

Math tests need only torch. Tests that take the ``comfy`` fixture need the host; they skip
with a reason when it is absent on a contributor machine and fail in CI (CI=true).
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton's CPU interpreter for every test that launches the fused kernel. ``triton.jit``
    # reads this when gag_core.triton_attention is first imported, whichever test module
    # imports it first, so it is set here, before any of them (auto still picks the torch
    # path off CUDA; see gag_core/backends.py).
    os.environ.setdefault("TRITON_INTERPRET", "1")

from devtools import comfy_host  # noqa: E402

HOST_ROOT = comfy_host.comfyui_root()
if HOST_ROOT is not None:
    comfy_host.bootstrap()


@pytest.fixture(scope="session")
def comfy():
    """The ComfyUI root, with ``comfy``, ``nodes`` etc. importable."""
    if HOST_ROOT is None:
        message = "no ComfyUI tree: run scripts/setup-dev.sh or set COMFYUI_PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return HOST_ROOT


@pytest.fixture(scope="session")
def pack(comfy):
    """This repository imported as a custom-node package, as ComfyUI loads it."""
    return comfy_host.load_pack()


@pytest.fixture(params=["cpu path", "device path"])
def torch_path(request):
    """Runs a test on gag_core's CPU path and on its device path (no host sync), the latter
    forced on CPU tensors (see gag_core/execution.py)."""
    from gag_core import execution

    if request.param == "device path":
        with execution.forced_device_path():
            yield request.param
    else:
        yield request.param
