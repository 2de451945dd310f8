"""Make a real ComfyUI tree importable for tests, benchmarks and the launcher.

The tree is ``$COMFYUI_PATH`` when set, else the one ``scripts/setup-dev.sh`` unpacked for
the venv this Python runs in (its path is in ``<venv>/comfyui-root.txt``: ``.venv`` holds
ComfyUI 0.3.75, ``.venv-0.12.1`` ComfyUI 0.12.1). Known CPU snags are handled here, never by
editing ComfyUI's files (SPEC §4):

- PyPI's torchvision is built against CUDA torch; beside the CPU torch its C ops fail to
  load and ``import torchvision`` dies registering fake kernels for ``torchvision::nms``.
  When (and only when) its C extension cannot load, the two op schemas are defined first.
- ``comfy.cli_args.args.cpu`` must be set before ``comfy.model_management`` is imported.
"""

import importlib.util
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = pathlib.Path(sys.prefix)
"""The venv of the running Python (scripts/setup-dev.sh makes one per host)."""
PACK_MODULE_NAME = "comfyui_gag"


def comfyui_root() -> pathlib.Path | None:
    """The ComfyUI tree to run against, or None when none is installed."""
    if os.environ.get("COMFYUI_PATH"):
        return pathlib.Path(os.environ["COMFYUI_PATH"]).resolve()
    recorded = VENV / "comfyui-root.txt"
    if recorded.is_file():
        root = pathlib.Path(recorded.read_text().strip())
        if (root / "comfy").is_dir():
            return root
    return None


def host_version() -> tuple[int, ...]:
    """The running ComfyUI's release, e.g. (0, 12, 1), from its ``comfyui_version.py``
    (call after ``bootstrap``)."""
    import comfyui_version

    return tuple(int(part) for part in comfyui_version.__version__.split(".")[:3])


def prepare_torchvision() -> None:
    """Let ``import torchvision`` succeed beside a CPU-only torch (see module docstring)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules or _KEEP_ALIVE or not spec.submodule_search_locations:
        return  # nothing to do, or done by an earlier call
    libraries = list(pathlib.Path(spec.submodule_search_locations[0]).glob("_C*.so"))
    try:
        for library in libraries:
            torch.ops.load_library(str(library))
        if libraries:
            return
    except OSError:
        pass
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
    _KEEP_ALIVE.append(lib)


_KEEP_ALIVE: list = []


def bootstrap(*, cpu: bool = True, pytorch_attention: bool = True) -> pathlib.Path:
    """Put the ComfyUI tree first on ``sys.path`` and configure its CLI args for library use.

    ``pytorch_attention`` selects ComfyUI's PyTorch SDPA backend (on CPU it would
    otherwise pick sub-quadratic attention). Returns the ComfyUI root.
    """
    root = comfyui_root()
    if root is None:
        raise RuntimeError("no ComfyUI tree: run scripts/setup-dev.sh or set COMFYUI_PATH")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    prepare_torchvision()
    from comfy.cli_args import args

    args.cpu = cpu
    args.use_pytorch_cross_attention = pytorch_attention
    return root


def load_pack():
    """Import this repository as a custom-node package, the way ComfyUI's loader does
    (``spec_from_file_location`` on its ``__init__.py``, relative imports inside)."""
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module
