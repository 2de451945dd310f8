"""Start ComfyUI with this pack loaded, ready for a browser (or run a weight-free demo).

    scripts/run-comfyui.sh [--port 8188] [--listen 127.0.0.1] [--models DIR] [--home DIR]
                           [--cpu] [--demo [--output PATH]] [-- MAIN_PY_ARGS...]

The ComfyUI tree is ``$COMFYUI_PATH`` or the contributor one made by scripts/setup-dev.sh
(see devtools/comfy_host.py). Nothing is written into that tree: ComfyUI runs with
``--base-directory HOME`` (default ``comfyui-home`` in the host venv, e.g.
``.venv/comfyui-home``), whose ``custom_nodes/`` holds a symlink to this repository, and whose
``user/``, ``input/``, ``output/`` and ``temp/`` hold everything ComfyUI writes (its sqlite
database included, via ``--database-url``).
``--models DIR`` adds DIR's model folders (``checkpoints/``, ``loras/``, ``vae/``...; DIR may
also be a ComfyUI root with a ``models/`` folder) through a generated
``--extra-model-paths-config`` file. With ``$COMFYUI_PATH`` and no ``--models``, that
install's own ``models/`` folder is used.

``main.py`` runs in this process (``runpy``) after the torchvision shim of comfy_host is
armed, with ``--cpu`` when torch sees no CUDA or MPS device. ``--stand-in`` also loads the
test-only pack ``devtools/tiny_stand_in`` (tests and the demo use it).

``--demo`` starts a server on a temporary HOME with the stand-in, submits the SDXL example
graph through ``/prompt`` on the tiny stand-in model (see devtools/demo.py), writes the
image to ``--output`` (default ``test-output/demo.png``), prints its path, stops the server
and exits 0.
"""

import argparse
import importlib.abc
import json
import os
import pathlib
import runpy
import subprocess
import sys

if __package__ in (None, ""):  # run as a script: make ``devtools`` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from devtools import comfy_host  # noqa: E402

REPO_ROOT = comfy_host.REPO_ROOT
PACK_LINK_NAME = "ComfyUI-GAG"
STAND_IN_LINK_NAME = "gag_tiny_stand_in"
STAND_IN_DIR = REPO_ROOT / "devtools" / "tiny_stand_in"
# one home per host venv (.venv, .venv-0.12.1): their databases and settings stay apart
DEFAULT_HOME = (comfy_host.VENV if comfy_host.VENV.parent == REPO_ROOT else REPO_ROOT / ".venv") / "comfyui-home"
MODEL_PATHS_FILE = "gag_extra_model_paths.yaml"
# folder_paths keys whose files ComfyUI also looks for under a legacy folder name
LEGACY_MODEL_FOLDERS = {"unet": "diffusion_models", "clip": "text_encoders", "t2i_adapter": "controlnet"}
# main.py flags that choose the device or memory mode, or the attention backend, themselves
DEVICE_FLAGS = {"--cpu", "--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--directml",
                "--cuda-device", "--default-device", "--oneapi-device-selector"}
ATTENTION_FLAGS = {"--use-split-cross-attention", "--use-quad-cross-attention", "--use-pytorch-cross-attention",
                   "--use-sage-attention", "--use-flash-attention"}
ACCELERATOR_PROBE = ("import sys, torch; sys.exit(0 if torch.cuda.is_available() "
                     "or torch.backends.mps.is_available() else 1)")


def _link(link: pathlib.Path, target: pathlib.Path) -> None:
    """Make ``link`` a symlink to ``target``, replacing an older symlink there."""
    if link.is_symlink():
        if link.resolve() == target.resolve():
            return
        link.unlink()
    elif link.exists():
        raise RuntimeError(f"{link} exists and is not a symlink; move it away or pick another --home")
    link.symlink_to(target, target_is_directory=True)


def model_paths_yaml(models: pathlib.Path) -> str:
    """An extra_model_paths config listing every sub-folder of ``models`` under its ComfyUI key."""
    folders: dict[str, list[str]] = {}
    for child in sorted(p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folders.setdefault(LEGACY_MODEL_FOLDERS.get(child.name, child.name), []).append(child.name)
    lines = ["gag_models:", f"  base_path: {json.dumps(models.as_posix())}"]  # JSON strings are YAML
    for key, names in folders.items():
        lines.append(f"  {key}: |")
        lines.extend(f"    {name}" for name in names)
    return "\n".join(lines) + "\n"


def prepare_home(home: pathlib.Path, *, stand_in: bool = False, models: pathlib.Path | None = None) -> list[str]:
    """Lay out HOME for ``--base-directory`` and return the main.py path arguments."""
    custom_nodes = home / "custom_nodes"
    custom_nodes.mkdir(parents=True, exist_ok=True)
    (home / "user").mkdir(exist_ok=True)
    _link(custom_nodes / PACK_LINK_NAME, REPO_ROOT)
    stand_in_link = custom_nodes / STAND_IN_LINK_NAME
    if stand_in:
        _link(stand_in_link, STAND_IN_DIR)
    elif stand_in_link.is_symlink():
        stand_in_link.unlink()
    arguments = ["--base-directory", str(home),
                 "--database-url", f"sqlite:///{(home / 'user' / 'comfyui.db').as_posix()}"]
    if models is not None:
        if (models / "models").is_dir():
            models = models / "models"
        config = home / MODEL_PATHS_FILE
        config.write_text(model_paths_yaml(models))
        arguments += ["--extra-model-paths-config", str(config)]
    return arguments


def has_accelerator() -> bool:
    """Whether torch sees a CUDA or MPS device (probed in a child process, so that torch is
    first imported by ComfyUI's main.py, as it expects)."""
    return subprocess.run([sys.executable, "-c", ACCELERATOR_PROBE], check=False).returncode == 0


def main_py_arguments(options) -> list[str]:
    """The full main.py command line (without the program name) for parsed ``options``."""
    home = pathlib.Path(options.home).resolve()
    models = pathlib.Path(options.models).resolve() if options.models else None
    if models is None and os.environ.get("COMFYUI_PATH"):
        own_models = pathlib.Path(os.environ["COMFYUI_PATH"]) / "models"
        models = own_models if own_models.is_dir() else None
    if models is not None and not models.is_dir():
        raise SystemExit(f"--models: {models} is not a folder")
    arguments = prepare_home(home, stand_in=options.stand_in, models=models)
    arguments += ["--listen", options.listen, "--port", str(options.port)]
    passthrough = list(options.main_args)
    flags = {arg.split("=")[0] for arg in passthrough}
    if options.cpu or (not flags & DEVICE_FLAGS and not has_accelerator()):
        arguments.append("--cpu")
        if not flags & ATTENTION_FLAGS:
            # on CPU ComfyUI would pick sub-quadratic attention; PyTorch SDPA is faster there
            arguments.append("--use-pytorch-cross-attention")
    return arguments + passthrough


class _TorchvisionShim(importlib.abc.MetaPathFinder):
    """Runs comfy_host.prepare_torchvision just before the first ``import torchvision``."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            comfy_host.prepare_torchvision()
        return None


def run_main(comfy_root: pathlib.Path, arguments: list[str], home: pathlib.Path) -> None:
    """Run ComfyUI's main.py in this process with ``arguments``; returns when the server stops.

    This repository and devtools/ are taken off ``sys.path`` first: the pack's ``nodes``
    package would shadow ComfyUI's ``nodes`` module. The working directory becomes HOME, so any
    stray relative write lands there.
    """
    ours = {str(REPO_ROOT), str(REPO_ROOT / "devtools"), ""}
    sys.path[:] = [str(comfy_root)] + [p for p in sys.path if p not in ours and p != str(comfy_root)]
    sys.meta_path.insert(0, _TorchvisionShim())
    sys.argv = [str(comfy_root / "main.py"), *arguments]
    os.chdir(home)
    runpy.run_path(str(comfy_root / "main.py"), run_name="__main__")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="scripts/run-comfyui.sh",
        description="Start ComfyUI with ComfyUI-GAG loaded (arguments after -- go to ComfyUI's main.py).")
    parser.add_argument("--port", type=int, default=None, help="port (default 8188; the demo picks a free one)")
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--models", help="folder with checkpoints/, loras/, vae/... (or a ComfyUI root)")
    parser.add_argument("--home", default=str(DEFAULT_HOME),
                        help="ComfyUI's --base-directory: custom_nodes/, user/, output/ (default %(default)s)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--stand-in", action="store_true",
                        help="also load the test-only tiny checkpoint loader (devtools/tiny_stand_in)")
    parser.add_argument("--demo", action="store_true",
                        help="run the SDXL example on a tiny random-weight stand-in, save the image, exit")
    parser.add_argument("--output", default=str(REPO_ROOT / "test-output" / "demo.png"),
                        help="where --demo writes its image (default %(default)s)")
    parser.add_argument("main_args", nargs="*", help="extra main.py arguments, after --")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    comfy_root = comfy_host.comfyui_root()
    if comfy_root is None:
        raise SystemExit("no ComfyUI tree: run scripts/setup-dev.sh, or set COMFYUI_PATH=/path/to/ComfyUI")
    if options.demo:
        from devtools import demo

        path = demo.run(pathlib.Path(options.output).resolve(), port=options.port)
        print(f"demo image: {path}")
        return 0
    if options.port is None:
        options.port = 8188
    arguments = main_py_arguments(options)
    print(f"ComfyUI {comfy_root} with ComfyUI-GAG; home {options.home}; "
          f"open http://{options.listen}:{options.port}", flush=True)
    run_main(comfy_root, arguments, pathlib.Path(options.home).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
