"""Apply GAG on tiny random-weight models of the newer families, through the real sampler.

Each family is built from the running host's own classes (devtools/tiny_zoo.py) with
token counts chosen so that every kind of attention call has its own key count: the tests
tell the calls apart by shape, independently of the pack's architecture table, and check
that GAG changed exactly the text attention calls and nothing else (self-attention,
CLIP-image, image-only calls and refiners untouched). A family whose class this host
lacks is skipped with the class named; on ComfyUI 0.12.1 (CI's second host) none is.
"""

import collections
import copy
import dataclasses
import os

import pytest
import torch
from gag_reference import reference_cross_attention, reference_joint_attention

from devtools import comfy_host, tiny_models, tiny_zoo
from test_apply_gag import STEPS, nodes_api, run, settings  # noqa: F401  (nodes_api: fixture)

PARAMS = dict(lam=4.0, zeta=0.3, tau=0.5, alpha=1.5)
DEFAULTS = dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5)


@dataclasses.dataclass(frozen=True)
class Family:
    """What the tests know about one tiny model, independently of the pack.

    roles: key count, or (query count, key count), → role of the call (``text`` for the
    guided call). text: for joint
    families, (first text token, text tokens) in the joint sequence, else None.
    blocks: the block listing the ``blocks`` error must show; blocks_per_step: text calls
    per model evaluation."""

    name: str
    roles: dict
    blocks: str
    blocks_per_step: int
    text: tuple | None = None


FAMILIES = {
    "wan_t2v": Family("wan_t2v", {32: "self", 24: "text"}, r"Wan 2\.1 / 2\.2; it has 'double:0-1'", 2),
    "wan_i2v": Family("wan_i2v", {32: "self", 8: "clip-image", 24: "text"},
                      r"Wan 2\.1 image-to-video; it has 'double:0-1'", 2),
    "sd3": Family("sd3", {86: "text", 64: "image-only"}, r"SD3 / SD3\.5 \(MMDiT, MMDiT-X\); it has 'double:0-1'",
                  2, text=(0, 22)),
    "z_image": Family("z_image", {56: "text", 16: "context refiner", 40: "noise refiner"},
                      r"Lumina 2 / Z-Image \(NextDiT\); it has 'double:0-1'", 2, text=(0, 16)),
    "hunyuan_video": Family("hunyuan_video", {44: "text", 12: "token refiner"},
                            r"HunyuanVideo / HunyuanVideo 1\.5 / HunyuanImage 2\.1"
                            r"; it has 'double:0-1 single:0-1'", 4, text=(32, 12)),
    "auraflow": Family("auraflow", {92: "text"}, r"AuraFlow; it has 'double:0-1 single:0-1'", 4, text=(0, 28)),
    "cosmos_predict2": Family("cosmos_predict2", {64: "self", 24: "text"},
                              r"Cosmos Predict2 / Anima \(MiniTrainDIT\); it has 'double:0-1'", 2),
    "kandinsky5": Family("kandinsky5", {64: "self", (64, 20): "text", (20, 20): "text encoder"},
                         r"Kandinsky 5; it has 'double:0-1'", 2),
    "ltxv": Family("ltxv", {32: "self", 20: "text"}, r"LTXV; it has 'double:0-1'", 2),
    "hidream": Family("hidream", {88: "text"}, r"HiDream; it has 'double:0-1 single:0-1'", 4, text=(64, 24)),
}


def require(name):
    """Family ``name``, skipping (on older hosts only) when this host lacks what it needs."""
    lacking = tiny_zoo.missing(name)
    if lacking is not None:
        version = ".".join(map(str, comfy_host.host_version()))
        if version.startswith("0.12") or os.environ.get("GAG_REQUIRE_ZOO"):
            pytest.fail(f"ComfyUI {version} lacks {lacking}, which {name} needs")
        pytest.skip(f"ComfyUI {version} lacks {lacking} ({name} needs ComfyUI 0.12.1)")
    return FAMILIES[name]


@pytest.fixture(params=sorted(FAMILIES))
def family(request, pack):
    return require(request.param)


@pytest.fixture
def api(nodes_api):
    return nodes_api


def heads_first(t, heads, kwargs):
    if kwargs.get("skip_reshape", False):
        return t
    return (t if t.ndim == 4 else t.unflatten(-1, (heads, -1))).transpose(1, 2)


class Recorder:
    """Wraps the patched model's attention override: for every call, the inputs, the
    pack's output and what ComfyUI's own backend gives for the same inputs."""

    def __init__(self, patched, family):
        self.model, self.family, self.calls = patched, family, []
        options = patched.model_options["transformer_options"]
        self.override = options["optimized_attention_override"]
        options["optimized_attention_override"] = self

    def __call__(self, func, q, k, v, heads, mask=None, **kwargs):
        out = self.override(func, q, k, v, heads, mask=mask, **kwargs)
        plain = func(q, k, v, heads, mask=mask, **kwargs)
        qh, kh, vh = (heads_first(t, heads, kwargs) for t in (q, k, v))
        options = kwargs["transformer_options"]
        role = self.family.roles.get((qh.shape[-2], kh.shape[-2])) or self.family.roles[kh.shape[-2]]
        self.calls.append(dict(role=role, q=qh, k=kh, v=vh, mask=mask, out=out, plain=plain,
                               changed=not torch.equal(out, plain), heads_first=kwargs.get("skip_output_reshape"),
                               cond_or_uncond=list(options["cond_or_uncond"])))
        return out

    def roles(self, changed):
        return collections.Counter(c["role"] for c in self.calls if c["changed"] == changed)


def keep_mask(mask):
    """A bool or additive attention mask, (Nk,) to (B, H, Nq, Nk), as a 4-D keep mask: ComfyUI
    models mask padding additively with −inf or −finfo.max."""
    keep = mask if mask.dtype == torch.bool else mask > -1e30
    while keep.ndim < 4:
        keep = keep.unsqueeze(0) if keep.ndim < 3 else keep.unsqueeze(1)
    return keep


def reference(call, family, params):
    """Float64 brute force of SPEC §1/§2 on a recorded call, in its output layout."""
    keep = None if call["mask"] is None else keep_mask(call["mask"])
    if family.text is None:
        out = reference_cross_attention(call["q"], call["k"], call["v"], mask=keep, **params)
    else:
        start, count = family.text
        n = call["q"].shape[-2]
        order = list(range(start, start + count)) + [i for i in range(n) if not start <= i < start + count]
        if keep is not None:
            keep = keep[..., order]
            keep = keep if keep.shape[-2] == 1 else keep[..., order, :]
        out = reference_joint_attention(*(call[t][..., order, :] for t in "qkv"), text_len=count, keep=keep,
                                        **params)
        out = out[..., sorted(range(n), key=order.__getitem__), :]
    return out if call["heads_first"] else out.transpose(1, 2).reshape(call["out"].shape)


def test_alpha_one_is_exact_and_defaults_change_the_output(family, api):
    tiny = tiny_zoo.BUILDERS[family.name]()
    plain = run(tiny.patcher, tiny, steps=1)
    identity = run(api["apply_gag"](tiny.patcher, settings(api, alpha=1.0)), tiny, steps=1)
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)
    guided = run(api["apply_gag"](tiny.patcher, settings(api)), tiny, steps=1)
    assert (guided - plain).abs().max() > max(20 * (identity - plain).abs().max(), 1e-4)


class Kinds(list):
    """A test observer: the block kind diagnostics files each guided call under."""

    def guided(self, options):
        from comfyui_gag.nodes.diagnostics import block_kind

        self.append(block_kind(options))

    def skipped(self, options):
        pass


def test_only_text_attention_changes_and_matches_the_reference(family, api):
    tiny = tiny_zoo.BUILDERS[family.name]()
    kinds = Kinds()
    recorder = Recorder(api["apply_gag"](tiny.patcher, settings(api, **PARAMS), observer=kinds), family)
    run(recorder.model, tiny, steps=1)
    text_calls = family.blocks_per_step  # one evaluation: cond and uncond share a batch
    assert recorder.roles(changed=True) == {"text": text_calls}
    assert len(kinds) == text_calls and set(kinds) <= {"double", "single"}
    assert recorder.roles(changed=False).keys() == set(family.roles.values()) - {"text"}
    for call in [c for c in recorder.calls if c["changed"]]:
        expected = reference(call, family, PARAMS)
        torch.testing.assert_close(call["out"].double(), expected, atol=1e-4, rtol=1e-4)
        assert (expected - reference(call, family, dict(PARAMS, alpha=1.0))).abs().max() > 1e-2  # GAG shows


def test_blocks_select_and_name_the_family_blocks(family, api):
    tiny = tiny_zoo.BUILDERS[family.name]()
    recorder = Recorder(api["apply_gag"](tiny.patcher, settings(api, blocks="double:1", **PARAMS)), family)
    run(recorder.model, tiny, steps=1)  # one model evaluation: its text calls come block by block, doubles first
    assert [c["changed"] for c in recorder.calls if c["role"] == "text"] == [
        i == 1 for i in range(family.blocks_per_step)]
    assert recorder.roles(changed=True) == {"text": 1}
    with pytest.raises(ValueError, match=f"blocks 'input output' selects no attention layer of {family.blocks}"):
        api["apply_gag"](tiny.patcher, settings(api, blocks="input output"))


def test_step_window_and_no_leak(family, api):
    tiny = tiny_zoo.BUILDERS[family.name]()
    parallel_clone = tiny.patcher.clone()
    pristine = (copy.deepcopy(tiny.patcher.model_options), dict(tiny.patcher.wrappers))
    plain = run(tiny.patcher, tiny)
    outside = Recorder(api["apply_gag"](tiny.patcher, settings(api, start=1.0, end=1.0)), family)
    assert torch.equal(run(outside.model, tiny), plain)
    assert not any(c["changed"] for c in outside.calls)
    first_step = Recorder(api["apply_gag"](tiny.patcher, settings(api, start=0.0, end=0.1)), family)
    run(first_step.model, tiny)
    evaluations = len(first_step.calls) // STEPS
    assert any(c["changed"] for c in first_step.calls[:evaluations])
    assert not any(c["changed"] for c in first_step.calls[evaluations:])
    # the patched clones left the model they came from, and a clone made before, as they were
    assert (tiny.patcher.model_options, dict(tiny.patcher.wrappers)) == pristine
    assert torch.equal(run(tiny.patcher, tiny), plain)
    assert torch.equal(run(parallel_clone, tiny), plain)


def test_cond_only_leaves_uncond_rows_unchanged(family, api):
    tiny = tiny_zoo.BUILDERS[family.name]()
    recorder = Recorder(api["apply_gag"](tiny.patcher, settings(api, cond_only=True)), family)
    run(recorder.model, tiny, steps=1, cfg=3.0)
    guided = [c for c in recorder.calls if c["role"] == "text"]
    assert guided
    for call in guided:
        chunks = call["cond_or_uncond"]
        assert sorted(chunks) == [0, 1]
        per_chunk = call["q"].shape[0] // 2
        dense, full = reference(call, family, dict(DEFAULTS, alpha=1.0)), reference(call, family, DEFAULTS)
        for i, kind in enumerate(chunks):
            rows = slice(i * per_chunk, (i + 1) * per_chunk)
            expected = full[rows] if kind == 0 else dense[rows]
            torch.testing.assert_close(call["out"][rows].double(), expected, atol=1e-4, rtol=1e-4)


def test_another_override_is_chained(family, api):
    tiny = tiny_zoo.BUILDERS[family.name]()
    prior_calls = []

    def prior(func, *args, **kwargs):
        prior_calls.append(kwargs["transformer_options"].get("block_index"))
        return func(*args, **kwargs)

    base = tiny_models.with_attention_override(tiny.patcher, prior)
    plain = run(base, tiny, steps=1)
    n_prior = len(prior_calls)
    assert n_prior > 0
    identity = run(api["apply_gag"](base, settings(api, alpha=1.0)), tiny, steps=1)
    assert len(prior_calls) == 2 * n_prior  # every call, guided or not, still goes through it
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)
    recorder = Recorder(api["apply_gag"](base, settings(api, **PARAMS)), family)
    guided = run(recorder.model, tiny, steps=1)
    assert len(prior_calls) == 3 * n_prior
    assert (guided - plain).abs().max() > max(20 * (identity - plain).abs().max(), 1e-4)
    # on the text calls, GAG's correction lands on the prior override's output
    for call in [c for c in recorder.calls if c["role"] == "text"]:
        torch.testing.assert_close(call["out"].double(), reference(call, family, PARAMS), atol=1e-4, rtol=1e-4)


def test_a_host_without_block_ids_warns_and_leaves_the_model_alone(pack, api, caplog):
    """ComfyUI 0.3.75's NextDiT gives its layers no block ids: the layers cannot be told
    from the refiners, and Apply GAG says so instead of guessing."""
    reason = tiny_zoo.missing("z_image")
    if reason is None or not reason.startswith("block ids"):
        version = ".".join(map(str, comfy_host.host_version()))
        pytest.skip(f"ComfyUI {version} passes block ids to NextDiT's attention (or lacks NextDiT)")
    tiny = tiny_zoo.BUILDERS["z_image"]()
    plain = run(tiny.patcher, tiny)
    with caplog.at_level("WARNING"):
        assert torch.equal(run(api["apply_gag"](tiny.patcher, settings(api)), tiny), plain)
    assert "passes no block ids" in caplog.text


def test_hunyuan_video_text_padding_mask(pack, api):
    """HunyuanVideo's additive text mask (text last): padded text keys get no weight in the
    dense or the sparse map, as in the float64 reference."""
    family = require("hunyuan_video")
    tiny = tiny_zoo.hunyuan_video(padded_tokens=3)
    recorder = Recorder(api["apply_gag"](tiny.patcher, settings(api, **PARAMS)), family)
    run(recorder.model, tiny, steps=1, cfg=1.0)  # HunyuanVideo is guidance-distilled: CFG 1
    guided = [c for c in recorder.calls if c["changed"]]
    assert len(guided) == family.blocks_per_step
    for call in guided:
        assert not keep_mask(call["mask"]).all()
        torch.testing.assert_close(call["out"].double(), reference(call, family, PARAMS), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, model_class", [("PixArt", "comfy.ldm.pixart.pixartms.PixArtMS"),
                                               ("HunyuanDiT", "comfy.ldm.hydit.models.HunYuanDiT")])
def test_families_out_of_reach_are_refused_with_the_reason(name, model_class, pack):
    from comfyui_gag.nodes.architectures import UnsupportedModelError, detect

    module_name, _, class_name = model_class.rpartition(".")
    model = object.__new__(getattr(__import__(module_name, fromlist=[class_name]), class_name))  # only its class counts
    with pytest.raises(UnsupportedModelError, match=f"cannot guide {name} .*get no transformer_options"):
        detect(model)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_stays_finite(family, dtype, api):
    tiny = tiny_zoo.BUILDERS[family.name](dtype=dtype)
    recorder = Recorder(api["apply_gag"](tiny.patcher, settings(api)), family)
    out = run(recorder.model, tiny, steps=1)
    assert bool(torch.isfinite(out).all())
    guided = [c for c in recorder.calls if c["changed"]]
    assert len(guided) == family.blocks_per_step and all(c["out"].dtype == dtype for c in guided)


def test_z_image_with_reference_latents_warns_and_stays_unguided(pack, api, caplog):
    """With reference latents NextDiT puts more captions into the text stream than the table
    can count: Apply GAG leaves those evaluations unguided and says why."""
    require("z_image")
    tiny = tiny_zoo.z_image()
    reference = torch.randn(1, 16, 12, 12, generator=torch.Generator().manual_seed(7))
    for conditioning in (tiny.positive, tiny.negative):
        conditioning[0][1]["reference_latents"] = [reference]
    plain = run(tiny.patcher, tiny, steps=1)
    with caplog.at_level("WARNING"):
        assert torch.equal(run(api["apply_gag"](tiny.patcher, settings(api)), tiny, steps=1), plain)
    assert "with ref_latents its text length is unknown" in caplog.text
