"""The nodes as the host sees them: V3 classes on this host, V1 mappings on hosts without V3."""

import asyncio
import importlib
import sys

import pytest
import torch

from devtools import tiny_models

NODE_IDS = ["GAGSettings", "ApplyGAG", "GAGDiagnosticsPlot"]


def v3_nodes(pack):
    extension = asyncio.run(pack.comfy_entrypoint())
    return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}


def test_v3_nodes_have_tooltips_and_run(pack):
    nodes = v3_nodes(pack)
    assert sorted(nodes) == sorted(NODE_IDS)
    for cls in nodes.values():
        info = cls.GET_NODE_INFO_V1()
        assert info["category"] == "advanced/guidance"
        for section in ("required", "optional"):
            for name, (_, options) in info["input"].get(section, {}).items():
                assert options.get("tooltip"), f"{info['name']}.{name} has no tooltip"
    defaults = {name: options["default"] for name, (_, options) in
                nodes["GAGSettings"].GET_NODE_INFO_V1()["input"]["required"].items()}
    settings = nodes["GAGSettings"].execute(**defaults).result[0]
    tiny = tiny_models.sdxl()
    patched = nodes["ApplyGAG"].execute(model=tiny.patcher, settings=settings).result[0]
    assert patched is not tiny.patcher
    plain = tiny_models.sample(tiny.patcher, tiny)
    assert not torch.equal(tiny_models.sample(patched, tiny), plain)
    with pytest.raises(ValueError, match=r"lam must be in \[0, 50\]"):
        nodes["GAGSettings"].execute(**dict(defaults, lam=51.0))


def test_v1_fallback_for_hosts_without_the_v3_api(pack, monkeypatch):
    """With comfy_api.latest missing, the same specs become NODE_CLASS_MAPPINGS."""
    v3_info = v3_nodes(pack)["GAGSettings"].GET_NODE_INFO_V1()["input"]["required"]
    monkeypatch.setitem(sys.modules, "comfy_api.latest", None)
    module = importlib.reload(importlib.import_module("comfyui_gag.nodes.registration"))
    try:
        assert sorted(module.NODE_CLASS_MAPPINGS) == sorted(NODE_IDS)
        assert module.io is None  # (reload keeps old names, so comfy_entrypoint may linger here)
        settings_cls = module.NODE_CLASS_MAPPINGS["GAGSettings"]
        v1_inputs = settings_cls.INPUT_TYPES()["required"]
        assert list(v1_inputs) == list(v3_info)
        assert v1_inputs["mode"][0] == ["GAG", "PLADIS"] and v1_inputs["lam"][1]["max"] == 50.0
        (settings,) = settings_cls().execute(**{n: o["default"] for n, (_, o) in v1_inputs.items()})
        apply_cls = module.NODE_CLASS_MAPPINGS["ApplyGAG"]
        assert "settings" in apply_cls.INPUT_TYPES()["optional"]
        tiny = tiny_models.flux()
        (patched,) = apply_cls().execute(model=tiny.patcher, settings=settings)
        assert bool(torch.isfinite(tiny_models.sample(patched, tiny)).all())
    finally:
        monkeypatch.undo()
        importlib.reload(module)
