"""The weight-free demo (``scripts/run-comfyui.sh --demo``) and the prompts the e2e tests submit.

The SDXL example graph runs through the real server on the test-only tiny stand-in
(devtools/tiny_stand_in): ``example_workflows/gag_sdxl_base.json`` converted to API format,
or, while that file is absent, the same graph built by ``sdxl_prompt``. Its checkpoint
loader becomes ``GAGTinyCheckpointLoader`` and the image size and step count shrink, so
it finishes in seconds on a CPU with no weights and no network.
"""

import json
import pathlib
import tempfile
import time

from safetensors.torch import load_file

from .comfy_host import REPO_ROOT
from .comfy_server import ComfyServer
from .workflow_api import to_api
from .workflow_validate import input_specs, is_widget

EXAMPLE = REPO_ROOT / "example_workflows" / "gag_sdxl_base.json"
STAND_IN_LOADER = "GAGTinyCheckpointLoader"
SIZE = 128   # pixels; the stand-in VAE maps a 16×16 latent to 128×128
STEPS = 4


def widget_defaults(node_info: dict) -> dict:
    """Default value of every widget input of a node class (from ``/object_info``)."""
    return {name: spec[1].get("default") for name, spec in input_specs(node_info).items()
            if is_widget(spec) and len(spec) > 1}


def sdxl_prompt(object_info: dict, *, gag: bool = True, settings: dict | None = None, seed: int = 0,
                steps: int = STEPS, size: int = SIZE, save: str = "image", prefix: str = "gag_demo") -> dict:
    """API-format text-to-image graph on the stand-in: loader → prompts → [GAG Settings → Apply
    GAG] → KSampler → VAE Decode + Save Image (``save="image"``) or Save Latent (``"latent"``).

    ``settings`` overrides GAG Settings widgets (the rest keep the server's defaults).
    """
    model = ["6", 0] if gag else ["1", 0]
    prompt = {
        "1": {"class_type": STAND_IN_LOADER, "inputs": {}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a lighthouse at dusk"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
            "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
    }
    if gag:
        values = {**widget_defaults(object_info["GAGSettings"]), **(settings or {})}
        prompt["5"] = {"class_type": "GAGSettings", "inputs": values}
        prompt["6"] = {"class_type": "ApplyGAG", "inputs": {"model": ["1", 0], "settings": ["5", 0]}}
    if save == "latent":
        prompt["9"] = {"class_type": "SaveLatent", "inputs": {"samples": ["7", 0], "filename_prefix": prefix}}
    else:
        prompt["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}}
        prompt["9"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": prefix}}
    return prompt


def on_stand_in(prompt: dict, *, size: int = SIZE, steps: int = STEPS) -> dict:
    """``prompt`` with every CheckpointLoaderSimple replaced by the stand-in loader, image
    width/height set to ``size`` and batch size 1, and at most ``steps`` sampling steps."""
    shrunk = {}
    for node_id, node in prompt.items():
        if node["class_type"] == "CheckpointLoaderSimple":
            shrunk[node_id] = {"class_type": STAND_IN_LOADER, "inputs": {}}
            continue
        inputs = dict(node["inputs"])
        for name, value in inputs.items():
            if isinstance(value, list):
                continue  # a link
            if name in ("width", "height"):
                inputs[name] = size
            elif name == "batch_size":
                inputs[name] = 1
            elif name == "steps":
                inputs[name] = min(value, steps)
        shrunk[node_id] = {**node, "inputs": inputs}
    return shrunk


def example_prompt(object_info: dict) -> tuple[dict, str]:
    """The demo prompt and where it came from."""
    if EXAMPLE.is_file():
        workflow = json.loads(EXAMPLE.read_text())
        return on_stand_in(to_api(workflow, object_info)), str(EXAMPLE.relative_to(REPO_ROOT))
    return sdxl_prompt(object_info), "devtools/demo.py:sdxl_prompt (no example_workflows/gag_sdxl_base.json)"


def output_files(entry: dict, kind: str = "images") -> list:
    """The files (``filename``, ``subfolder``, ``type``) a finished prompt's nodes reported."""
    return [file for node_output in entry["outputs"].values() for file in node_output.get(kind, [])]


def saved_latent(server, entry: dict):
    """The latent tensor the one Save Latent node of a finished prompt wrote on ``server``."""
    (file,) = output_files(entry, "latents")
    return load_file(server.home / "output" / file["subfolder"] / file["filename"])["latent_tensor"]


def run(output: pathlib.Path, port: int | None = None) -> pathlib.Path:
    """Start a server on a temporary home with the stand-in, run the demo prompt, save its image."""
    with tempfile.TemporaryDirectory(prefix="gag-demo-") as home:
        print("starting ComfyUI (CPU, tiny stand-in model)...", flush=True)
        with ComfyServer(home, port=port, stand_in=True) as server:
            print(f"server ready on {server.base_url} after {server.startup_seconds:.1f} s", flush=True)
            prompt, source = example_prompt(server.object_info())
            began = time.monotonic()
            entry = server.wait_for(server.queue_prompt(prompt), timeout=300)
            print(f"ran {source} in {time.monotonic() - began:.1f} s", flush=True)
            images = output_files(entry)
            if not images:
                raise RuntimeError(f"{source} produced no image (its outputs: {entry['outputs']})")
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(server.view(images[0]))
    return output
