"""The nodes as the host sees them: V3 classes on this host, V1 mappings on hosts without V3."""

import asyncio
import importlib
import inspect
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


def test_widgets_keep_their_saved_names_and_show_plain_labels(pack):
    from comfyui_gag.gag_core.settings import RANGES
    from comfyui_gag.nodes.definitions import SETTINGS_WIDGETS, TAU_WIDGET_MIN

    inputs = v3_nodes(pack)["GAGSettings"].GET_NODE_INFO_V1()["input"]["required"]
    assert list(inputs) == ["lam", "zeta", "tau", "cap", "alpha", "mode", "pladis_scale", "start_percent",
                            "end_percent", "blocks", "cond_only", "diagnostics"]  # saved in every workflow
    labels = {name: options.get("display_name") for name, (_, options) in inputs.items()}
    assert labels["lam"] == "strength (λ)" and labels["tau"] == "max step (τ)" and labels["alpha"] == "sparsity (α)"
    assert labels["start_percent"] is None  # ComfyUI's own name, as on core nodes
    for widget in SETTINGS_WIDGETS:  # the widgets' bounds are gag_core's ranges
        if widget.name in RANGES:
            allowed = RANGES[widget.name]
            assert (widget.min, widget.max) == (TAU_WIDGET_MIN if allowed.low_open else allowed.low, allowed.high)


@pytest.mark.parametrize("api", ["v3", "v1"])
def test_queue_time_check_is_registered_for_both_apis(pack, monkeypatch, api):
    """The host calls validate_inputs (V3) / VALIDATE_INPUTS (V1) before it queues a prompt."""
    if api == "v3":
        settings_cls = v3_nodes(pack)["GAGSettings"]
        check = settings_cls.validate_inputs
        required = settings_cls.GET_NODE_INFO_V1()["input"]["required"]
    else:
        monkeypatch.setitem(sys.modules, "comfy_api.latest", None)
        module = importlib.reload(importlib.import_module("comfyui_gag.nodes.registration"))
        settings_cls = module.NODE_CLASS_MAPPINGS["GAGSettings"]
        check = settings_cls.VALIDATE_INPUTS
        required = settings_cls.INPUT_TYPES()["required"]
        assert settings_cls.SEARCH_ALIASES and "guidance" in settings_cls.SEARCH_ALIASES
    try:
        # as the host does: pass the inputs the check names; it checks the others (mode's options) itself
        named = inspect.getfullargspec(check).args
        assert set(named) == {"cls", "input_types", "lam", "zeta", "tau", "alpha", "mode", "pladis_scale",
                              "start_percent", "end_percent", "blocks"}
        defaults = {name: options["default"] for name, (_, options) in required.items() if name in named}
        assert check(**defaults) is True
        # a linked input arrives as None with its output type in input_types: its value waits for the run
        assert check(**dict(defaults, lam=None), input_types={"lam": "FLOAT"}) is True
        assert "lam: a STRING output cannot feed this FLOAT input" in check(**defaults, input_types={"lam": "STRING"})
        assert "got None" in check(**dict(defaults, mode=None))  # a null written in the prompt is no link
        message = check(**dict(defaults, lam=float("nan")))
        assert "lam" in message and "[0, 50]" in message and "nan" in message and "strength (λ)" in message
        message = check(**dict(defaults, blocks="input:3 mid"))
        assert "cannot read 'mid' in 'input:3 mid'" in message and "'double:0-9 single'" in message  # its syntax
    finally:
        if api == "v1":
            monkeypatch.undo()
            importlib.reload(importlib.import_module("comfyui_gag.nodes.registration"))


def test_search_aliases_go_out_where_the_host_schema_has_them(pack, monkeypatch):
    import dataclasses

    from comfy_api.latest import io

    from comfyui_gag.nodes.definitions import SEARCH_ALIASES

    nodes = v3_nodes(pack)
    has_field = "search_aliases" in {f.name for f in dataclasses.fields(io.Schema)}
    schema = nodes["ApplyGAG"].define_schema()  # this host (0.3.75: no such field) must still build it
    assert getattr(schema, "search_aliases", None) == (list(SEARCH_ALIASES) if has_field else None)
    newer = dataclasses.make_dataclass("Schema", [("search_aliases", list, dataclasses.field(default=None))],
                                       bases=(io.Schema,))
    monkeypatch.setattr(io, "Schema", newer)  # a host whose Schema has the field (ComfyUI 0.12.1)
    for node_id in ("GAGSettings", "ApplyGAG"):
        aliases = nodes[node_id].define_schema().search_aliases
        assert {"guidance", "attention guidance", "sparse attention", "geometry", "PLADIS", "entmax"} <= set(aliases)
