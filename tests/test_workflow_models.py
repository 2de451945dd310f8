"""Every model file a shipped workflow loads carries its download link and folder, in the form the
ComfyUI front end reads to offer missing models for download, and the workflow's note says where
it goes. No URL is fetched: they are checked as text, the folders against the real host."""

import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
MODEL_FILE = re.compile(r"\.(safetensors|sft|ckpt|pt|pth|gguf|bin)$")
# what front end 1.32.9's missing-models dialog accepts (MissingModelsWarning): anything else is
# listed as an error instead of a download button
ALLOWED_SOURCES = ("https://huggingface.co/", "https://civitai.com/")
ALLOWED_SUFFIXES = (".safetensors", ".sft")


def model_nodes(workflow):
    """(node, the model file names among its widget values) for every node that loads a file."""
    for node in workflow["nodes"]:
        names = [v for v in node.get("widgets_values") or [] if isinstance(v, str) and MODEL_FILE.search(v)]
        if names:
            yield node, names


def notes(workflow) -> str:
    return "\n".join(node["widgets_values"][0] for node in workflow["nodes"]
                     if node["type"] in ("MarkdownNote", "Note"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_loader_carries_download_link_and_folder(path):
    workflow = json.loads(path.read_text(encoding="utf-8"))
    loaders = list(model_nodes(workflow))
    assert loaders, "the workflow loads no model file?"
    for node, names in loaders:
        models = node.get("properties", {}).get("models")
        assert models, f"{node['type']} (node {node['id']}) has no properties.models"
        assert [m["name"] for m in models] == names, node["type"]  # the front end matches them by name
        for model in models:
            assert set(model) == {"name", "url", "directory"}, model
            assert model["url"].startswith(ALLOWED_SOURCES) and model["name"].endswith(ALLOWED_SUFFIXES), model
            assert re.fullmatch(r"https://huggingface\.co/[\w.-]+/[\w.-]+/resolve/main/([\w./-]+/)?" + re.escape(
                model["name"]), model["url"]), f"not a direct file link: {model['url']}"
            where = f"ComfyUI/models/{model['directory']}/{model['name']}"
            assert where in notes(workflow) and model["url"] in notes(workflow), f"the note does not say {where}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_each_folder_is_the_one_its_loader_lists(path, comfy, tmp_path, monkeypatch):
    """A file put in the declared folder shows up in the loader's own list of choices."""
    import folder_paths
    import nodes  # ComfyUI's nodes.py (tests/conftest.py puts the host first on sys.path)

    workflow = json.loads(path.read_text(encoding="utf-8"))
    for node, _ in model_nodes(workflow):
        loader = nodes.NODE_CLASS_MAPPINGS[node["type"]]
        for model in node["properties"]["models"]:
            assert model["directory"] in folder_paths.folder_names_and_paths, model  # a folder the server knows
            folder = tmp_path / model["directory"]
            folder.mkdir(exist_ok=True)
            (folder / model["name"]).write_bytes(b"")
            monkeypatch.setitem(folder_paths.folder_names_and_paths, model["directory"],
                                ([str(folder)], folder_paths.supported_pt_extensions))
            choices = {value for spec in loader.INPUT_TYPES()["required"].values()
                       if isinstance(spec[0], list) for value in spec[0]}
            assert model["name"] in choices, f"{node['type']} does not list files of {model['directory']}"
            monkeypatch.undo()
