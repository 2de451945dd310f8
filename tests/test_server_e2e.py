"""End to end through the real ComfyUI server (``main.py --cpu``, loopback only).

The pack is loaded from the server's ``custom_nodes/`` (a symlink to this repository), with
the test-only stand-in loader (devtools/tiny_stand_in) in place of real weights. See
tests/server_fixture.py for the server's life cycle.
"""

import io
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from devtools import comfy_host, demo
from devtools.comfy_host import REPO_ROOT
from devtools.comfy_server import PromptRejected
from devtools.launch import PACK_LINK_NAME
from devtools.workflow_api import to_api
from devtools.workflow_validate import input_specs, validate
from server_fixture import comfy_server_fixture, server_fixture, unavailable  # noqa: F401  (fixtures)

EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))
SETTINGS_WIDGETS = ["lam", "zeta", "tau", "cap", "alpha", "mode", "pladis_scale", "start_percent",
                    "end_percent", "blocks", "cond_only", "diagnostics"]


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.object_info()


def cached_nodes(entry: dict) -> list:
    """Node ids the server answered from its cache for a finished prompt."""
    return [node for event, data in entry["status"]["messages"] if event == "execution_cached"
            for node in data["nodes"]]


def test_object_info_lists_the_gag_nodes(server, object_info):
    settings, apply = object_info["GAGSettings"], object_info["ApplyGAG"]
    assert list(input_specs(settings)) == SETTINGS_WIDGETS
    assert input_specs(settings)["mode"][1]["options"] == ["GAG", "PLADIS"]
    assert settings["output"] == ["GAG_SETTINGS"]
    assert apply["input"]["required"]["model"][0] == "MODEL"
    assert apply["input"]["optional"]["settings"][0] == "GAG_SETTINGS"
    assert apply["output"] == ["MODEL"]
    for info in (settings, apply):
        assert info["category"] == "advanced/guidance"
        assert info["python_module"] == f"custom_nodes.{PACK_LINK_NAME}"


def test_validator_accepts_comfyuis_own_default_workflow(server, object_info):
    report = validate(server.get_json("/templates/default.json"), object_info)
    assert report.ok, report.problems
    assert report.missing_files  # its checkpoint is not on this server


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_workflow_validates(server, object_info, path):
    workflow = json.loads(path.read_text())
    report = validate(workflow, object_info)
    assert report.ok, "\n".join(report.problems)
    assert {"GAGSettings", "ApplyGAG"} <= {node["class_type"] for node in to_api(workflow, object_info).values()}


def test_apply_gag_prompt_runs_and_saves_an_image(server, object_info):
    prompt = demo.sdxl_prompt(object_info, gag=True, seed=1, prefix="e2e_gag")
    entry = server.wait_for(server.queue_prompt(prompt))
    assert "6" not in cached_nodes(entry)  # Apply GAG ran
    (file,) = demo.output_files(entry)
    saved = server.home / "output" / file["subfolder"] / file["filename"]
    assert saved.read_bytes() == server.view(file)
    image = Image.open(io.BytesIO(saved.read_bytes()))
    assert (image.format, image.size) == ("PNG", (demo.SIZE, demo.SIZE))


def test_queued_prompts_do_not_leak_guidance(server, object_info):
    """A GAG-free prompt queued right after a GAG prompt on the same (cached) model gives
    exactly the latent of the same GAG-free prompt run alone."""
    def latent_prompt(gag, prefix):
        return demo.sdxl_prompt(object_info, gag=gag, seed=7, save="latent", prefix=prefix)

    alone = server.wait_for(server.queue_prompt(latent_prompt(False, "e2e_alone")))
    guided_id = server.queue_prompt(latent_prompt(True, "e2e_guided"))
    plain_id = server.queue_prompt(latent_prompt(False, "e2e_plain"))
    guided, plain = server.wait_for(guided_id), server.wait_for(plain_id)

    assert "1" in cached_nodes(plain)      # the loader's model object is shared ...
    assert "7" not in cached_nodes(plain)  # ... and the sampler really ran again
    reference = demo.saved_latent(server, alone)
    assert torch.equal(demo.saved_latent(server, plain), reference)
    assert not torch.allclose(demo.saved_latent(server, guided), reference)


def test_out_of_range_widget_is_rejected_naming_the_input(server, object_info):
    prompt = demo.sdxl_prompt(object_info, settings={"lam": 99.0}, prefix="e2e_bad")
    with pytest.raises(PromptRejected) as rejected:
        server.queue_prompt(prompt)
    errors = rejected.value.body["node_errors"]["5"]["errors"]
    assert any(error["extra_info"]["input_name"] == "lam" and "lam" in error["details"] for error in errors), errors


def test_workflow_templates_lists_the_examples(server):
    listed = server.get_json("/api/workflow_templates")
    assert sorted(listed.get(PACK_LINK_NAME, [])) == sorted(path.stem for path in EXAMPLES)
    for path in EXAMPLES:
        served = server.get_bytes(f"/api/workflow_templates/{PACK_LINK_NAME}/{path.name}")
        assert json.loads(served) == json.loads(path.read_text())


def test_demo_command_writes_an_image(tmp_path):
    """``scripts/run-comfyui.sh --demo``: its own server, the SDXL example on the stand-in, a PNG."""
    if comfy_host.comfyui_root() is None:
        unavailable("no ComfyUI tree: run scripts/setup-dev.sh or set COMFYUI_PATH")
    output = tmp_path / "demo.png"
    command = ["bash", str(REPO_ROOT / "scripts" / "run-comfyui.sh"), "--demo", "--output", str(output)]
    finished = subprocess.run(command, env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                              text=True, timeout=300, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert f"demo image: {output}" in finished.stdout
    assert Image.open(output).size == (demo.SIZE, demo.SIZE)


def test_diagnostics_plot_through_the_server(server, object_info):
    """GAG Settings with diagnostics → Apply GAG → KSampler → GAG Diagnostics Plot: the chart is
    saved and its JSON (shown by PreviewAny) holds exactly this prompt's steps."""
    def diagnostics_prompt(steps, prefix):
        prompt = demo.sdxl_prompt(object_info, settings={"diagnostics": True, "start_percent": 0.25},
                                  seed=11 + steps, steps=steps, prefix=prefix)
        prompt["10"] = {"class_type": "GAGDiagnosticsPlot", "inputs": {"model": ["6", 0], "samples": ["7", 0]}}
        prompt["11"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": prefix + "_plot"}}
        prompt["12"] = {"class_type": "PreviewAny", "inputs": {"source": ["10", 1]}}
        return prompt

    first_id = server.queue_prompt(diagnostics_prompt(4, "e2e_diag4"))
    second_id = server.queue_prompt(diagnostics_prompt(2, "e2e_diag2"))
    for entry, steps in ((server.wait_for(first_id), 4), (server.wait_for(second_id), 2)):
        plots = [f for f in demo.output_files(entry) if "_plot" in f["filename"]]
        assert len(plots) == 1
        image = Image.open(io.BytesIO(server.view(plots[0])))
        assert image.size == (1024, 768)
        data = json.loads(entry["outputs"]["12"]["text"][0])
        assert data["steps"] == steps
        assert sorted({r["step"] for r in data["records"]}) == list(range(steps))
        assert {r["block"] for r in data["records"]} == {"input", "output"}
        assert not data["records"][0]["active"] and data["records"][-1]["active"]
