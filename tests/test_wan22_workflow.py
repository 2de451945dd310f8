"""The Wan 2.2 text-to-video example (two experts, video output) through the real server.

``gag_wan22_t2v.json`` passes the server's own validation and runs end to end on stand-in
files in the formats the real loaders read (devtools/stand_in_files.py): UNETLoader detects
the two tiny Wan experts and VAELoader the tiny Wan VAE from their weights; the text encoder
file goes through the stand-in ``GAGTinyCLIPLoader``. Each expert sits behind its own Apply
GAG, both fed by one GAG Settings node: the runs below show each of them guiding its part of
the schedule, and the video reaching Save Video.
"""

import io
import json

import av
import pytest
import torch

from devtools import demo, stand_in_files
from devtools.comfy_host import REPO_ROOT
from devtools.workflow_api import to_api
from server_fixture import running_server, server_fixture  # noqa: F401  (fixture)

WORKFLOW = json.loads((REPO_ROOT / "example_workflows" / "gag_wan22_t2v.json").read_text(encoding="utf-8"))
SIZE, FRAMES, STEPS = 32, 5, 2  # Wan latents: 1/8 of the size, (frames + 3) / 4 frames: 2 × 4 × 4
EXPERTS = ("high", "low")  # the high-noise expert samples step 0, the low-noise one step 1


def node_ids(prompt: dict) -> dict:
    """Node id by class type and by title (the example titles the nodes it has two of), in an
    API-format prompt."""
    return {key: node_id for node_id, node in prompt.items() for key in (node["class_type"], node["_meta"]["title"])}


def loader_files(workflow: dict) -> dict:
    """The file names the example's loaders ask for, as ``write_wan22``'s keywords."""
    names = {node.get("title", node["type"]): node["widgets_values"][0] for node in workflow["nodes"]
             if node["type"] in ("UNETLoader", "CLIPLoader", "VAELoader")}
    return {"high_noise": names["High-noise expert"], "low_noise": names["Low-noise expert"],
            "text_encoder": names["CLIPLoader"], "vae": names["VAELoader"]}


@pytest.fixture(scope="module", name="comfy_server")
def wan_server(pack, tmp_path_factory):
    """The real server with the stand-in pack and the files of the shipped example."""
    home = tmp_path_factory.mktemp("comfyui-home-wan")
    stand_in_files.write_wan22(home / "models", **loader_files(WORKFLOW))
    with running_server(home) as server:
        yield server


def wan_prompt(object_info: dict, *, guided: tuple, prefix: str) -> dict:
    """The shipped example at SIZE × SIZE pixels, FRAMES frames and STEPS steps (one per expert),
    its text encoder loaded by the stand-in and a Save Latent after the last sampler. Only the
    experts in ``guided`` keep their Apply GAG; the others' samplers take the unguided model."""
    prompt = to_api(WORKFLOW, object_info)
    ids = node_ids(prompt)
    prompt[ids["CLIPLoader"]]["class_type"] = "GAGTinyCLIPLoader"
    latent = prompt[ids["EmptyHunyuanLatentVideo"]]["inputs"]
    latent.update(width=SIZE, height=SIZE, length=FRAMES)
    for expert in EXPERTS:
        sampler = prompt[ids[f"KSampler ({expert} noise)"]]["inputs"]
        sampler.update(steps=STEPS, **({"end_at_step": 1} if expert == "high" else {"start_at_step": 1}))
        apply = ids[f"Apply GAG ({expert} noise)"]
        if expert not in guided:
            sampler["model"] = prompt[apply]["inputs"]["model"]
            del prompt[apply]
    last = ids["KSampler (low noise)"]
    prompt["100"] = {"class_type": "SaveLatent", "inputs": {"samples": [last, 0], "filename_prefix": prefix}}
    return prompt


def test_shipped_wan_workflow_passes_the_servers_validation(server):
    prompt = to_api(WORKFLOW, server.object_info())
    ids = node_ids(prompt)
    prompt[ids["CLIPLoader"]]["class_type"] = "GAGTinyCLIPLoader"
    answer = server.validate(prompt)
    assert answer["valid"] and not answer["node_errors"], answer
    assert answer["outputs"] == [ids["SaveVideo"]]
    # control: a file the server does not have is refused, naming the input
    prompt[ids["Low-noise expert"]]["inputs"]["unet_name"] = "wan2.2_t2v_low_noise_14B_fp16.safetensors"
    answer = server.validate(prompt)
    assert not answer["valid"]
    errors = answer["node_errors"][ids["Low-noise expert"]]["errors"]
    assert any(error["extra_info"]["input_name"] == "unet_name" for error in errors)


def test_shipped_wan_workflow_guides_both_experts_and_saves_a_video(server):
    object_info = server.object_info()
    latents = {}
    for guided in (EXPERTS, (), ("low",)):
        prefix = "wan_" + ("_".join(guided) or "plain")
        entry = server.wait_for(server.queue_prompt(wan_prompt(object_info, guided=guided, prefix=prefix)),
                                timeout=300)
        latents[guided] = demo.saved_latent(server, entry)
        if guided == EXPERTS:
            (video,) = demo.output_files(entry)
            with av.open(io.BytesIO(server.view(video))) as container:
                frames = [frame for frame in container.decode(video=0)]
            assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (SIZE, SIZE)

    assert latents[EXPERTS].shape == (1, 16, 2, SIZE // 8, SIZE // 8)
    assert all(bool(torch.isfinite(latent).all()) for latent in latents.values())
    # each Apply GAG changes the result: both against neither, and the low-noise expert's alone
    assert not torch.allclose(latents[EXPERTS], latents[()])
    assert not torch.allclose(latents[("low",)], latents[()])
    assert not torch.allclose(latents[EXPERTS], latents[("low",)])
