"""FLUX.2 [klein] on ComfyUI 0.9.2 and later, the first releases that load it.

A tiny model with Klein's layout is loaded the way UNETLoader loads a file (ComfyUI detects
its config from the weights) and guided by Apply GAG. The shipped example
``gag_flux2_klein.json`` passes the server's own validation and runs end to end through the
real server on stand-in files in the formats the real loaders read (devtools/stand_in_files.py):
UNETLoader and VAELoader load them as they are; the text encoder file goes through the
stand-in ``GAGTinyCLIPLoader``, since CLIPLoader builds Qwen3-4B at its full size.
"""

import collections
import io
import json

import pytest
import torch
from PIL import Image

from devtools import comfy_host, demo, stand_in_files, tiny_models
from devtools.comfy_host import REPO_ROOT
from devtools.workflow_api import to_api
from server_fixture import running_server, server_fixture  # noqa: F401  (fixture)
from test_apply_gag import Calls, nodes_api, settings  # noqa: F401  (fixture)

KLEIN_SINCE = (0, 9, 2)  # head count from the width since 0.9.0, Qwen3-4B text encoder type since 0.9.2
WORKFLOW = json.loads((REPO_ROOT / "example_workflows" / "gag_flux2_klein.json").read_text())
STEPS = 2   # end to end; the in-process test samples one step
SIZE = 64  # pixels: FLUX.2 latents are 1/16 of that, so 4×4 latent tokens


@pytest.fixture(scope="module")
def api(nodes_api):
    """The pack's API, on hosts that load FLUX.2 [klein] (skips elsewhere)."""
    if comfy_host.host_version() < KLEIN_SINCE:
        pytest.skip(f"FLUX.2 [klein] loads from ComfyUI {'.'.join(map(str, KLEIN_SINCE))} "
                    f"(this is {'.'.join(map(str, comfy_host.host_version()))})")
    return nodes_api


def loader_files(workflow: dict) -> dict:
    """Loader node type → its file name widget, as the workflow ships them."""
    return {node["type"]: node["widgets_values"][0] for node in workflow["nodes"]
            if node["type"] in ("UNETLoader", "CLIPLoader", "VAELoader")}


def test_tiny_klein_is_detected_from_its_weights_and_guided(api):
    tiny = tiny_models.flux2_klein()
    model = tiny.patcher.model
    params = model.diffusion_model.params
    assert type(model).__name__ == "Flux2"
    assert (params.hidden_size, params.num_heads, params.guidance_embed) == (256, 2, False)  # heads of 128
    blocks = collections.Counter(double=len(model.diffusion_model.double_blocks),
                                 single=len(model.diffusion_model.single_blocks))
    assert blocks == collections.Counter(double=1, single=4)

    plain = tiny_models.sample(tiny.patcher, tiny, steps=1, cfg=1.0)
    identity = tiny_models.sample(api["apply_gag"](tiny.patcher, settings(api, alpha=1.0)), tiny, steps=1, cfg=1.0)
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)
    calls = Calls()
    guided = tiny_models.sample(api["apply_gag"](tiny.patcher, settings(api), observer=calls), tiny, steps=1, cfg=1.0)
    assert calls.kinds() == blocks
    assert {o["gag_text_len"] for o in calls} == {512}  # model_base.Flux2 pads the text to 512 tokens
    assert bool(torch.isfinite(guided).all())
    assert (guided - plain).abs().max() > max(20 * (identity - plain).abs().max(), 1e-4)


@pytest.fixture(scope="module", name="comfy_server")
def klein_server(api, tmp_path_factory):
    """The real server with the stand-in pack and the Klein files of the shipped example."""
    home = tmp_path_factory.mktemp("comfyui-home-klein")
    files = loader_files(WORKFLOW)
    stand_in_files.write_flux2_klein(home / "models", diffusion_model=files["UNETLoader"],
                                     text_encoder=files["CLIPLoader"], vae=files["VAELoader"])
    with running_server(home) as server:
        yield server


def test_shipped_klein_workflow_passes_the_servers_validation(server):
    object_info = server.object_info()
    prompt = to_api(WORKFLOW, object_info)
    answer = server.validate(prompt)
    assert answer["valid"] and not answer["node_errors"], answer
    assert answer["outputs"] == [next(i for i, n in prompt.items() if n["class_type"] == "SaveImage")]
    # control: a file the server does not have is refused, naming the input
    unet = next(i for i, n in prompt.items() if n["class_type"] == "UNETLoader")
    prompt[unet]["inputs"]["unet_name"] = "flux-2-klein-9b.safetensors"
    answer = server.validate(prompt)
    assert not answer["valid"]
    assert any(e["extra_info"]["input_name"] == "unet_name" for e in answer["node_errors"][unet]["errors"])


def klein_prompt(object_info: dict, *, gag: bool) -> dict:
    """The shipped example at 64×64 and 2 steps, its text encoder loaded by the stand-in, with a
    Save Latent beside Save Image; ``gag=False`` connects the sampler to the loader's model."""
    prompt = demo.on_stand_in(to_api(WORKFLOW, object_info), size=SIZE, steps=STEPS)
    ids = {node["class_type"]: node_id for node_id, node in prompt.items()}
    prompt[ids["CLIPLoader"]]["class_type"] = "GAGTinyCLIPLoader"
    if not gag:
        prompt[ids["KSampler"]]["inputs"]["model"] = [ids["UNETLoader"], 0]
        del prompt[ids["ApplyGAG"]], prompt[ids["GAGSettings"]]
    prompt["100"] = {"class_type": "SaveLatent", "inputs": {"samples": [ids["KSampler"], 0],
                                                            "filename_prefix": f"klein_{'gag' if gag else 'plain'}"}}
    return prompt


def test_shipped_klein_workflow_runs_end_to_end(server):
    object_info = server.object_info()
    latents = {}
    for gag in (True, False):
        entry = server.wait_for(server.queue_prompt(klein_prompt(object_info, gag=gag)), timeout=300)
        (image,) = demo.output_files(entry)
        with Image.open(io.BytesIO(server.view(image))) as png:
            assert (png.format, png.size) == ("PNG", (SIZE, SIZE))
        latents[gag] = demo.saved_latent(server, entry)
    assert latents[True].shape == (1, 128, SIZE // 16, SIZE // 16)
    assert bool(torch.isfinite(latents[True]).all())
    assert not torch.allclose(latents[True], latents[False])  # Apply GAG changed the sampling
