"""Example workflows, their thumbnails, the web presets and help pages, checked offline against the
real host: node types, sockets and widget values as the running ComfyUI (0.3.75 or 0.12.1) and this
pack define them."""

import asyncio
import json
import os
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKFLOW_DIR = REPO / "example_workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.json"))
PRESET_FILE = REPO / "web" / "presets.json"
# file name -> the preset its GAG Settings node must match (the names are fixed: docs and README use them)
WORKFLOW_PRESETS = {
    "gag_sdxl_base": "SDXL",
    "gag_sdxl_4step_distilled": "SDXL distilled (4-step)",
    "gag_flux1_schnell": "FLUX.1",
    "gag_flux1_dev": "FLUX.1",
    "gag_flux2_klein": "FLUX.2",
    "gag_qwen_image": "Qwen-Image",
    "gag_sd35_large": "SD3.5",
    "gag_z_image_turbo": "Z-Image Turbo",
    "gag_wan22_t2v": "Wan 2.2",
    "gag_hunyuan_video15": "HunyuanVideo 1.5",
}
SAMPLERS = ("KSampler", "KSamplerAdvanced")
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_CONTROL = ("control_after_generate", "COMBO", {}, ["fixed", "increment", "decrement", "randomize"])
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".sft", ".gguf", ".bin")


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def host_nodes(pack):
    """Node id -> class for ComfyUI's core and comfy_extras nodes plus this pack's, as the server
    registers them (V3 pack: comfy_entrypoint; V1 pack: NODE_CLASS_MAPPINGS)."""
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    found = dict(nodes.NODE_CLASS_MAPPINGS)
    if hasattr(pack, "comfy_entrypoint"):
        extension = asyncio.run(pack.comfy_entrypoint())
        found.update({cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())})
    else:
        found.update(pack.NODE_CLASS_MAPPINGS)
    return found


@pytest.fixture(scope="module")
def frontend_nodes():
    """Node types that only the front end defines (Note, MarkdownNote, ...), read from its bundle."""
    package = pytest.importorskip("comfyui_frontend_package")
    static = pathlib.Path(package.__file__).parent / "static"
    names = set()
    for script in static.rglob("*.js"):
        names.update(re.findall(r'registerNodeType\("(\w+)"', script.read_text(encoding="utf-8", errors="ignore")))
    assert {"Note", "MarkdownNote"} <= names
    return names


@pytest.fixture(scope="module")
def settings_api(pack, host_nodes):
    """(widget names of GAG Settings in front-end order, their defaults, settings_from_widgets)."""
    from comfyui_gag.nodes.definitions import settings_from_widgets

    widgets = widget_inputs(host_nodes["GAGSettings"])
    return [w[0] for w in widgets], {w[0]: w[2].get("default") for w in widgets}, settings_from_widgets


def widget_inputs(cls):
    """(name, kind, options, combo values) for each widget the front end shows, in widgets_values order."""
    spec = cls.INPUT_TYPES()
    found = []
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind, info = entry[0], (entry[1] if len(entry) > 1 and entry[1] else {})
            if isinstance(kind, (list, tuple)):
                found.append((name, "COMBO", info, list(kind)))
            elif kind in WIDGET_KINDS and not info.get("forceInput"):
                found.append((name, kind, info, info.get("options")))
            else:
                continue
            if info.get("control_after_generate"):
                found.append(SEED_CONTROL)
    return found


def socket_inputs(cls):
    """Input name -> (type, required) for the inputs that take a link."""
    spec = cls.INPUT_TYPES()
    return {name: (entry[0], section == "required")
            for section in ("required", "optional") for name, entry in spec.get(section, {}).items()
            if isinstance(entry[0], str) and entry[0] not in WIDGET_KINDS}


def check_widget(node, name, kind, info, values, value):
    where = f"node {node['id']} {node['type']}.{name} = {value!r}"
    if kind == "COMBO":
        assert isinstance(value, str), where
        if values and not value.endswith(MODEL_FILE_SUFFIXES):  # model files are the user's, not the host's
            assert value in values, f"{where}: not one of {values}"
    elif kind in ("INT", "FLOAT"):
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
        assert kind == "FLOAT" or isinstance(value, int), where
        assert info.get("min", value) <= value <= info.get("max", value), f"{where}: outside the input's range"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    else:
        assert isinstance(value, str), where


def test_the_fixed_set_of_examples_is_there():
    assert {path.stem for path in WORKFLOWS} == set(WORKFLOW_PRESETS)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_uses_host_nodes_with_valid_sockets_and_widgets(path, host_nodes, frontend_nodes):
    workflow = load(path)
    assert workflow["version"] == 0.4
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert workflow["last_node_id"] == max(nodes) and workflow["last_link_id"] == max(l[0] for l in workflow["links"])

    for node in nodes.values():
        if node["type"] in frontend_nodes and node["type"] not in host_nodes:
            assert not node.get("inputs") and not node.get("outputs"), f"{node['type']} is a note-like node"
            continue
        assert node["type"] in host_nodes, f"{path.name}: {node['type']} is not a node of the host or this pack"
        cls = host_nodes[node["type"]]

        widgets = widget_inputs(cls)
        assert len(node["widgets_values"]) == len(widgets), f"{node['type']}: widgets are {[w[0] for w in widgets]}"
        for (name, kind, info, values), value in zip(widgets, node["widgets_values"]):
            check_widget(node, name, kind, info, values, value)

        sockets = socket_inputs(cls)
        linked = {slot["name"] for slot in node.get("inputs", []) if slot.get("link") is not None}
        for slot in node.get("inputs", []):
            assert slot["name"] in sockets and slot["type"] == sockets[slot["name"]][0], f"{node['type']}: {slot}"
        missing = {name for name, (_, required) in sockets.items() if required} - linked
        assert not missing, f"{node['type']} (node {node['id']}): required inputs not connected: {missing}"
        assert [out["type"] for out in node.get("outputs", [])] == list(cls.RETURN_TYPES), node["type"]

    for link_id, origin, origin_slot, target, target_slot, type_ in workflow["links"]:
        output, target_input = nodes[origin]["outputs"][origin_slot], nodes[target]["inputs"][target_slot]
        assert output["type"] == type_ == target_input["type"], f"link {link_id}"
        assert link_id in output["links"] and target_input["link"] == link_id, f"link {link_id}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_gag_settings_are_valid_and_match_the_preset(path, settings_api):
    names, _, settings_from_widgets = settings_api
    workflow = load(path)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    by_type = {}
    for node in nodes.values():
        by_type.setdefault(node["type"], []).append(node)
    (settings,) = by_type["GAGSettings"]

    values = dict(zip(names, settings["widgets_values"], strict=True))
    settings_from_widgets(**values)  # raises ValueError naming the input when out of range
    preset = next(p for p in load(PRESET_FILE)["presets"] if p["name"] == WORKFLOW_PRESETS[path.stem])
    assert {key: values[key] for key in preset["values"]} == preset["values"]
    assert settings["properties"].get("gag_preset") == preset["name"]  # shown by the front end's selector

    # loaders -> ... -> Apply GAG (settings from GAG Settings) -> sampler(s) -> VAE Decode -> Save Image, or
    # -> Create Video -> Save Video. Two-expert models (Wan 2.2 A14B) chain two samplers, each on its own
    # Apply GAG, both fed by the one GAG Settings node.
    source = {(link[3], nodes[link[3]]["inputs"][link[4]]["name"]): nodes[link[1]] for link in workflow["links"]}
    samplers = [node for kind in SAMPLERS for node in by_type.get(kind, [])]
    assert samplers and {source[(s["id"], "model")]["type"] for s in samplers} == {"ApplyGAG"}
    assert sorted(source[(s["id"], "model")]["id"] for s in samplers) == sorted(a["id"] for a in by_type["ApplyGAG"])
    assert all(source[(apply["id"], "settings")] is settings for apply in by_type["ApplyGAG"])
    last = [s for s in samplers if s["id"] not in {source[(t["id"], "latent_image")]["id"] for t in samplers}]
    assert len(last) == 1, "the samplers form one chain"
    (decode,) = by_type["VAEDecode"]
    assert source[(decode["id"], "samples")] is last[0]
    if "SaveVideo" in by_type:
        (create,), (save,) = by_type["CreateVideo"], by_type["SaveVideo"]
        assert source[(create["id"], "images")] is decode and source[(save["id"], "video")] is create
    else:
        (save,) = by_type["SaveImage"]
        assert source[(save["id"], "images")] is decode

    notes = by_type.get("MarkdownNote", []) + by_type.get("Note", [])
    assert notes and any(preset["name"] in note["widgets_values"][0] for note in notes), "a note explains the preset"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_has_a_jpeg_thumbnail(path):
    # the template browser requests /api/workflow_templates/<pack>/<name>.jpg
    from PIL import Image

    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"run devtools/render_thumbnails.py to create {thumbnail.name}"
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG" and min(image.size) >= 256


def test_examples_workflows_is_a_relative_symlink():
    link = REPO / "examples_workflows"
    assert link.is_symlink() and os.readlink(link) == "example_workflows"
    assert link.resolve() == WORKFLOW_DIR.resolve()


def test_web_presets_are_valid_settings(settings_api):
    names, defaults, settings_from_widgets = settings_api
    presets = load(PRESET_FILE)["presets"]
    assert [p["name"] for p in presets] == ["SDXL", "SDXL distilled (4-step)", "FLUX.1", "FLUX.2", "Qwen-Image",
                                            "SD3.5", "Z-Image Turbo", "Wan 2.2", "HunyuanVideo 1.5"]
    for preset in presets:
        assert preset["basis"] in ("paper", "ours")
        assert set(preset["values"]) == {"lam", "zeta", "tau", "cap", "alpha", "mode", "start_percent",
                                         "end_percent", "blocks"}, preset["name"]
        assert set(preset["values"]) <= set(names)
        settings_from_widgets(**{**defaults, **preset["values"]})
    paper = next(p for p in presets if p["basis"] == "paper")["values"]
    assert (paper["lam"], paper["zeta"], paper["tau"], paper["alpha"]) == (5.0, 0.0, 15.0, 1.5)
    # one source of truth: the extension reads presets.json and holds no table of its own
    script = (REPO / "web" / "js" / "gag.js").read_text(encoding="utf-8")
    assert "presets.json" in script and not any(f'"{p["name"]}"' in script for p in presets)


def test_help_pages_cover_every_input(host_nodes):
    # the front end fetches /extensions/<pack>/docs/<NodeId>.md, served from web/docs/
    for node_id in ("GAGSettings", "ApplyGAG"):
        page = (REPO / "web" / "docs" / f"{node_id}.md").read_text(encoding="utf-8")
        spec = host_nodes[node_id].INPUT_TYPES()
        for name in [*spec.get("required", {}), *spec.get("optional", {})]:
            assert f"**{name}**" in page, f"{node_id}.md does not describe {name}"
