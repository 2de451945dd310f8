"""Apply GAG on tiny random-weight models of every supported family, through the real sampler.

One parametrised suite for SDXL, SD1.5, FLUX.1, FLUX.2, Chroma and Qwen-Image (ISSUE 4 acceptance).
"""

import collections
import re

import pytest
import torch

from devtools import tiny_models
from gag_reference import reference_cross_attention, reference_joint_attention

FAMILIES = ["sdxl", "sd15", "flux", "flux2", "chroma", "qwen_image"]
UNET_FAMILIES = {"sdxl", "sd15"}
STEPS = 2


@pytest.fixture(scope="module")
def nodes_api(pack):
    from comfyui_gag.gag_core import GAGSettings
    from comfyui_gag.nodes import apply, options

    return dict(apply_gag=apply.apply_gag, NodeSettings=options.NodeSettings, GAGSettings=GAGSettings,
                BlockSelection=options.BlockSelection)


def settings(api, blocks="auto", start=0.0, end=1.0, cond_only=False, **guidance):
    return api["NodeSettings"](guidance=api["GAGSettings"](**guidance), start_percent=start, end_percent=end,
                               blocks=api["BlockSelection"].parse(blocks), cond_only=cond_only)


def expected_layers(family, diffusion_model):
    """Guidable layers per block kind for the default selection, found independently of the pack."""
    if family in UNET_FAMILIES:
        names = [n for n, _ in diffusion_model.named_modules()
                 if re.fullmatch(r"(input|output)_blocks\.\d+\.\d+\.transformer_blocks\.\d+\.attn2", n)]
        return collections.Counter(n.split("_")[0] for n in names)
    if family == "qwen_image":
        return collections.Counter(double=len(diffusion_model.transformer_blocks))
    return collections.Counter(double=len(diffusion_model.double_blocks), single=len(diffusion_model.single_blocks))


def call_kind(options):
    return options["block"][0] if "block" in options else options["block_type"]


class Calls(list):
    """A test observer: records the transformer_options of every guided call."""

    def guided(self, options):
        self.append(dict(options))  # the host mutates the dict as it moves through the blocks

    def skipped(self, options):
        pass

    def kinds(self):
        return collections.Counter(call_kind(o) for o in self)


def run(model, tiny, **kwargs):
    return tiny_models.sample(model, tiny, steps=kwargs.pop("steps", STEPS), **kwargs)


@pytest.mark.parametrize("family", FAMILIES)
def test_patch_runs_on_exactly_the_intended_layers(family, nodes_api):
    tiny = tiny_models.BUILDERS[family]()
    calls = Calls()
    patched = nodes_api["apply_gag"](tiny.patcher, settings(nodes_api), observer=calls)
    run(patched, tiny, cfg=2.0)
    layers = expected_layers(family, tiny.patcher.model.diffusion_model)
    assert sum(layers.values()) > 0
    # cond and uncond go through the model in one batched call per step
    assert calls.kinds() == collections.Counter({kind: n * STEPS for kind, n in layers.items()})


@pytest.mark.parametrize("family", FAMILIES)
def test_alpha_one_is_exact_and_defaults_change_the_output(family, nodes_api):
    tiny = tiny_models.BUILDERS[family]()
    plain = run(tiny.patcher, tiny)
    identity = run(nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, alpha=1.0)), tiny)
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)
    guided = run(nodes_api["apply_gag"](tiny.patcher, settings(nodes_api)), tiny)
    hook_error = (identity - plain).abs().max()
    assert (guided - plain).abs().max() > max(20 * hook_error, 1e-4)


def capture_guided_calls(patched, family):
    """Wrap the installed patch(es) to record (inputs, output) of guided calls."""
    records = []
    options = patched.model_options["transformer_options"]
    if family in UNET_FAMILIES:
        replacements = options["patches_replace"]["attn2"]
        for key, patch in list(replacements.items()):
            def recording(q, k, v, extra, _patch=patch, **kw):
                out = _patch(q, k, v, extra, **kw)
                records.append(dict(q=q, k=k, v=v, options=extra, out=out))
                return out
            replacements[key] = recording
    else:
        override = options["optimized_attention_override"]

        def recording(func, q, k, v, heads, *args, **kwargs):
            out = override(func, q, k, v, heads, *args, **kwargs)
            records.append(dict(q=q, k=k, v=v, heads=heads, options=kwargs["transformer_options"], out=out,
                                kwargs=kwargs))
            return out
        options["optimized_attention_override"] = recording
    return records


def split(x, heads):
    b, n, _ = x.shape
    return x.view(b, n, heads, -1).transpose(1, 2)


def reference_for(record, family, params):
    """Float64 brute force of SPEC §1/§2 on the recorded inputs, in the layer's output layout."""
    if family in UNET_FAMILIES:
        heads = record["options"]["n_heads"]
        out = reference_cross_attention(*(split(record[t], heads) for t in "qkv"), **params)
        return out.transpose(1, 2).reshape(record["out"].shape)
    text_len = record["options"]["gag_text_len"]
    out = reference_joint_attention(record["q"], record["k"], record["v"], text_len=text_len, **params)
    return out.transpose(1, 2).reshape(record["out"].shape)


@pytest.mark.parametrize("family", FAMILIES)
def test_patched_layer_matches_float64_reference(family, nodes_api):
    tiny = tiny_models.BUILDERS[family]()
    params = dict(lam=4.0, zeta=0.3, tau=0.5, alpha=1.5)
    patched = nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, **params))
    records = capture_guided_calls(patched, family)
    run(patched, tiny, steps=1)
    guided = [r for r in records if family in UNET_FAMILIES or "gag_text_len" in r["options"]]
    assert guided
    for record in guided[:3]:
        expected = reference_for(record, family, params)
        torch.testing.assert_close(record["out"].double(), expected, atol=1e-4, rtol=1e-4)
        plain = reference_for(record, family, dict(params, alpha=1.0))
        assert (expected - plain).abs().max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_outside_the_window_nothing_changes_and_nothing_leaks(family, nodes_api):
    tiny = tiny_models.BUILDERS[family]()
    parallel_clone = tiny.patcher.clone()
    plain = run(tiny.patcher, tiny)
    calls = Calls()
    outside = nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, start=1.0, end=1.0), observer=calls)
    assert torch.equal(run(outside, tiny), plain)
    assert calls == []
    # a window holding only the first step guides only that step
    first_step = nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, start=0.0, end=0.1), observer=calls)
    run(first_step, tiny)
    assert calls and {float(o["sigmas"].max()) for o in calls} == {float(calls[0]["sample_sigmas"][0])}
    # sampling with patched models left the input model and a parallel clone untouched
    guided = run(nodes_api["apply_gag"](tiny.patcher, settings(nodes_api)), tiny)
    assert not torch.equal(guided, plain)
    assert torch.equal(run(tiny.patcher, tiny), plain)
    assert torch.equal(run(parallel_clone, tiny), plain)
    transformer_options = tiny.patcher.model_options["transformer_options"]
    assert "optimized_attention_override" not in transformer_options
    assert "attn2" not in transformer_options.get("patches_replace", {})
    assert not tiny.patcher.wrappers


@pytest.mark.parametrize("family", FAMILIES)
def test_existing_attention_patch_is_chained(family, nodes_api):
    tiny = tiny_models.BUILDERS[family]()
    prior_calls = []
    if family in UNET_FAMILIES:
        from comfy.ldm.modules.attention import optimized_attention

        def prior(q, k, v, extra):
            prior_calls.append(extra["block"])
            return optimized_attention(q, k, v, extra["n_heads"])
        base = tiny.patcher.clone()
        first_output = next(n for n, _ in base.model.diffusion_model.named_modules()
                            if re.fullmatch(r"output_blocks\.\d+\.\d+\.transformer_blocks\.0\.attn2", n))
        base.set_model_attn2_replace(prior, "output", int(first_output.split(".")[1]), 0)
    else:
        def prior(func, *args, **kwargs):
            prior_calls.append(kwargs["transformer_options"].get("block_type"))
            return func(*args, **kwargs)
        base = tiny_models.with_attention_override(tiny.patcher, prior)
    plain = run(base, tiny)
    n_prior = len(prior_calls)
    assert n_prior > 0
    identity = run(nodes_api["apply_gag"](base, settings(nodes_api, alpha=1.0)), tiny)
    assert len(prior_calls) == 2 * n_prior
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)
    guided = run(nodes_api["apply_gag"](base, settings(nodes_api)), tiny)
    assert len(prior_calls) == 3 * n_prior
    assert (guided - plain).abs().max() > max(20 * (identity - plain).abs().max(), 1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_cond_only_leaves_uncond_rows_unchanged(family, nodes_api):
    tiny = tiny_models.BUILDERS[family]()
    patched = nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, cond_only=True))
    records = capture_guided_calls(patched, family)
    run(patched, tiny, steps=1, cfg=3.0)
    guided = [r for r in records if family in UNET_FAMILIES or "gag_text_len" in r["options"]]
    assert guided
    params = dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5)
    for record in guided[:3]:
        chunks = record["options"]["cond_or_uncond"]
        assert sorted(chunks) == [0, 1]
        per_chunk = record["q"].shape[0] // 2
        dense = reference_for(record, family, dict(params, alpha=1.0))
        full = reference_for(record, family, params)
        for i, kind in enumerate(chunks):
            rows = slice(i * per_chunk, (i + 1) * per_chunk)
            expected = full[rows] if kind == 0 else dense[rows]
            torch.testing.assert_close(record["out"][rows].double(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("cfg", [1.0, 4.0])
def test_sampling_cfg_batch_and_dtypes(family, dtype, cfg, nodes_api):
    tiny = tiny_models.BUILDERS[family](dtype=dtype, batch=2)
    calls = Calls()
    patched = nodes_api["apply_gag"](tiny.patcher, settings(nodes_api), observer=calls)
    out = run(patched, tiny, cfg=cfg)
    assert out.shape[0] == 2
    assert bool(torch.isfinite(out).all())
    assert calls
    chunks = {tuple(o["cond_or_uncond"]) for o in calls}
    if cfg == 1.0:  # ComfyUI skips the unconditional pass at CFG 1
        assert chunks == {(0,)}
    else:
        assert all(sorted(c) == [0, 1] for c in chunks)


def test_invalid_settings_name_the_input(nodes_api, pack):
    from comfyui_gag.nodes.definitions import settings_from_widgets

    good = dict(lam=5.0, zeta=0.0, tau=15.0, cap=True, alpha=1.5, mode="GAG", pladis_scale=2.0,
                start_percent=0.0, end_percent=1.0, blocks="auto", cond_only=False)
    cases = [("lam", 60.0, r"lam must be in \[0, 50\]"), ("alpha", 2.5, r"alpha must be in \[1, 2\]"),
             ("tau", 0.0, r"tau must be in \(0, 1000\]"), ("zeta", -1.0, r"zeta must be in \[0, 1\]"),
             ("end_percent", 1.5, r"end_percent must be in \[0, 1\]"), ("mode", "CFG", "mode must be one of"),
             ("blocks", "input:3-1", "blocks"), ("blocks", "attn:1", "blocks: cannot read")]
    for name, value, message in cases:
        with pytest.raises(ValueError, match=message):
            settings_from_widgets(**dict(good, **{name: value}))
    with pytest.raises(ValueError, match="start_percent"):
        settings_from_widgets(**dict(good, start_percent=0.8, end_percent=0.2))
    assert settings_from_widgets(**dict(good, cap=False)).guidance.tau is None
    tiny = tiny_models.flux()
    with pytest.raises(ValueError, match=r"blocks 'input output' selects no attention layer of FLUX.*; "
                                         r"it has 'double:0-1 single:0-1'"):
        nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, blocks="input output"))


def test_unsupported_model_names_its_class(nodes_api, pack):
    from comfyui_gag.nodes.architectures import UnsupportedModelError

    tiny = tiny_models.sdxl()
    patcher = tiny.patcher.clone()
    patcher.model = type("Holder", (), {})()
    patcher.model.diffusion_model = torch.nn.Linear(2, 2)
    with pytest.raises(UnsupportedModelError, match=r"does not support torch\.nn\.modules\.linear\.Linear"):
        nodes_api["apply_gag"](patcher, settings(nodes_api))


@pytest.mark.parametrize("family", sorted(UNET_FAMILIES))
def test_unet_keeps_another_packs_attention_override(family, nodes_api):
    """An optimized_attention_override set by another pack still runs on the guided attn2
    layers (as the base output GAG corrects), not only on the layers GAG leaves alone."""
    tiny = tiny_models.BUILDERS[family]()
    seen = collections.Counter()

    def other_pack(func, q, k, v, heads, *args, **kwargs):
        seen["cross" if k.shape[1] != q.shape[1] else "self"] += 1
        return func(q, k, v, heads, *args, **kwargs)

    base = tiny_models.with_attention_override(tiny.patcher, other_pack)
    plain = run(base, tiny)
    plain_cross = seen["cross"]
    identity = run(nodes_api["apply_gag"](base, settings(nodes_api, alpha=1.0)), tiny)
    assert seen["cross"] == 2 * plain_cross
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)


def test_cond_only_never_guides_rows_it_cannot_identify(pack):
    from comfyui_gag.nodes.gate import GuidanceGate

    gate = GuidanceGate(sigma_start=1e9, sigma_end=0.0, cond_only=True)
    assert gate.rows({}, 4) == ()                                  # layout unknown: guide nothing
    assert gate.rows({"cond_or_uncond": [0, 1]}, 3) == ()           # batch does not split into chunks
    assert gate.rows({"cond_or_uncond": [0]}, 2) is None            # CFG 1: all rows are cond
    assert gate.rows({"cond_or_uncond": [1, 0]}, 4) == (slice(2, 4),)
    assert gate.rows({"cond_or_uncond": [0, 0, 1]}, 6) == (slice(0, 4),)  # adjacent cond chunks: one slice
    assert gate.rows({"cond_or_uncond": [0, 1, 0]}, 3) == (slice(0, 1), slice(2, 3))
    assert GuidanceGate(1e9, 0.0, cond_only=False).rows({"cond_or_uncond": [1, 0]}, 4) is None


def test_apply_gag_says_which_attention_backend_runs(nodes_api, caplog, monkeypatch):
    monkeypatch.delenv("GAG_BACKEND", raising=False)
    tiny = tiny_models.sdxl()
    with caplog.at_level("INFO"):
        nodes_api["apply_gag"](tiny.patcher, settings(nodes_api))
    assert "runs the torch attention backend (cpu device)" in caplog.text
    monkeypatch.setenv("GAG_BACKEND", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # as the interpreter tests may have set it
    caplog.clear()
    nodes_api["apply_gag"](tiny.patcher, settings(nodes_api))
    assert "backend 'triton' cannot run this call: cpu tensors" in caplog.text
