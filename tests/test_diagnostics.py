"""Guidance diagnostics (ISSUE 7): the trace, its numbers, the plot node, zero cost when off."""

import json
import math

import pytest
import torch

from devtools import tiny_models
from gag_reference import reference_entmax
from test_apply_gag import capture_guided_calls, settings, split


@pytest.fixture(scope="module")
def api(pack):
    from comfyui_gag.gag_core import GAGSettings, GuidanceStats
    from comfyui_gag.nodes import apply, definitions, diagnostics, options

    return dict(apply_gag=apply.apply_gag, NodeSettings=options.NodeSettings, GAGSettings=GAGSettings,
                BlockSelection=options.BlockSelection, diagnostics=diagnostics, GuidanceStats=GuidanceStats,
                nodes={spec.node_id: spec for spec in definitions.NODES})


def diag_settings(api, **kwargs):
    base = settings(api, **kwargs)
    return api["NodeSettings"](guidance=base.guidance, start_percent=base.start_percent,
                               end_percent=base.end_percent, blocks=base.blocks, cond_only=base.cond_only,
                               diagnostics=True)


def records_of(model):
    from comfyui_gag.nodes.diagnostics import trace_of

    return json.loads(trace_of(model).to_json())["records"]


def test_one_entry_per_step_and_block_kind(api):
    tiny = tiny_models.sdxl()
    patched = api["apply_gag"](tiny.patcher, diag_settings(api))
    tiny_models.sample(patched, tiny, steps=3, cfg=3.0)
    records = records_of(patched)
    assert [(r["step"], r["block"]) for r in records] == [(s, k) for s in range(3) for k in ("input", "output")]
    assert all(r["active"] and r["delta_norm"] > 0 for r in records)
    # a second run replaces the trace instead of adding to it
    tiny_models.sample(patched, tiny, steps=2, cfg=3.0)
    expected = [(step, kind) for step in range(2) for kind in ("input", "output")]
    assert [(r["step"], r["block"]) for r in records_of(patched)] == expected


def test_steps_outside_the_window_are_marked_inactive(api):
    tiny = tiny_models.flux()
    patched = api["apply_gag"](tiny.patcher, diag_settings(api, start=0.5, end=1.0))
    tiny_models.sample(patched, tiny, steps=4)
    records = records_of(patched)
    assert {r["block"] for r in records} == {"double", "single"}
    active = {r["step"]: r["active"] for r in records}
    assert active[0] is False and active[3] is True
    assert all(r["delta_norm"] is None for r in records if not r["active"])


def brute_force_stats(dense, sparse, zeta, tau):
    delta = sparse - dense
    dn, sn, dot = delta.norm(dim=-1), sparse.norm(dim=-1), (delta * sparse).sum(-1)
    parallel = dot / sn**2
    update = parallel.unsqueeze(-1) * sparse * (1 - zeta) + zeta * delta
    return dict(delta_norm=dn.mean().item(), parallel_share=(parallel.abs() * sn / dn).mean().item(),
                cosine=(dot / (dn * sn)).mean().item(),
                capped_fraction=0.0 if tau is None else (update.norm(dim=-1) > tau).double().mean().item())


@pytest.mark.parametrize("tau", [None, 0.05])
def test_values_match_brute_force_on_one_layer(api, tau):
    tiny = tiny_models.sdxl()
    layer = next(n for n, _ in tiny.patcher.model.diffusion_model.named_modules() if n.endswith("attn2")
                 and n.startswith("output_blocks"))
    number = int(layer.split(".")[1])
    patched = api["apply_gag"](tiny.patcher, diag_settings(api, blocks=f"output:{number}", zeta=0.3, tau=tau))
    calls = capture_guided_calls(patched, "sdxl")
    tiny_models.sample(patched, tiny, steps=1, cfg=3.0)
    assert len(calls) == 1
    call = calls[0]
    q, k, v = (split(call[t], call["options"]["n_heads"]).double() for t in "qkv")
    z = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    dense, sparse = torch.softmax(z, -1) @ v, reference_entmax(z, 1.5) @ v
    expected = brute_force_stats(dense, sparse, 0.3, tau)
    (record,) = records_of(patched)
    for name, value in expected.items():
        assert record[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    if tau is None:
        assert record["capped_fraction"] == 0.0
    else:
        assert record["capped_fraction"] > 0.0


def test_plot_node_returns_an_image_and_json(api):
    from PIL import Image

    tiny = tiny_models.sdxl()
    patched = api["apply_gag"](tiny.patcher, diag_settings(api, start=0.3, tau=2.0))
    latent = tiny_models.sample(patched, tiny, steps=4, cfg=3.0)
    image, data = api["nodes"]["GAGDiagnosticsPlot"].run(model=patched, samples={"samples": latent})
    assert image.shape == (1, 768, 1024, 3) and image.dtype == torch.float32
    output = tiny_models.TEST_OUTPUT / "diagnostics_plot.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((image[0].numpy() * 255).round().astype("uint8")).save(output)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0 and float(image.std()) > 0.01
    parsed = json.loads(data)
    assert parsed["steps"] == 4 and len(parsed["records"]) == 8
    with pytest.raises(ValueError, match="diagnostics"):
        api["nodes"]["GAGDiagnosticsPlot"].run(model=api["apply_gag"](tiny.patcher, settings(api)), samples={})


def test_no_recording_code_runs_when_off(api, monkeypatch):
    calls = []
    for cls, names in ((api["diagnostics"].GAGTrace, ("guided", "skipped", "begin_run")),
                       (api["GuidanceStats"], ("add",))):
        for name in names:
            original = getattr(cls, name)
            monkeypatch.setattr(cls, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    tiny = tiny_models.sdxl()
    plain = api["apply_gag"](tiny.patcher, settings(api, start=0.5))
    tiny_models.sample(plain, tiny, steps=3, cfg=3.0)
    assert calls == []
    assert api["diagnostics"].trace_of(plain) is None
    recorded = api["apply_gag"](tiny.patcher, diag_settings(api, start=0.5))
    tiny_models.sample(recorded, tiny, steps=3, cfg=3.0)
    assert {"guided", "skipped", "begin_run", "add"} <= set(calls)


def synthetic_trace(steps, inactive, kinds=("input", "output")):
    """A trace as GAGTrace.to_json() writes it, with made-up but plausible values."""
    records = [dict(step=step, block=kind, active=step not in inactive, calls=2,
                    **{metric: None if step in inactive else value
                       for metric, value in (("delta_norm", 0.1 / (1 + step) + 0.01 * i), ("parallel_share", 0.5),
                                             ("cosine", 0.3 - 0.1 * i), ("capped_fraction", 0.1 * i))})
               for step in range(steps) for i, kind in enumerate(kinds)]
    return {"steps": steps, "records": records}


@pytest.mark.parametrize("steps,inactive", [(1, set()), (2, {0}), (4, {0}), (6, {0, 1, 5}), (40, set(range(10)))])
def test_plot_shades_exactly_the_steps_outside_the_window(pack, steps, inactive):
    from comfyui_gag.nodes import diagnostics_plot as plot

    image = plot.render(synthetic_trace(steps, inactive))
    assert image.size == (plot.WIDTH, plot.HEIGHT)
    pixels = image.load()
    for box in plot.panel_boxes():
        left, top, right, bottom = box
        bands = [plot.step_band(box, steps, step) for step in range(steps)]
        assert bands[0][0] == left and bands[-1][1] == pytest.approx(right)  # the steps fill the x axis
        for step, (start, end) in enumerate(bands):
            x = int((start + end) / 2)
            shaded = sum(pixels[x, y] == plot.SHADE for y in range(top + 3, bottom - 2))
            if step in inactive:
                assert shaded > 0.8 * (bottom - top), (step, box)
            else:
                assert shaded == 0, (step, box)


def test_plot_font_draws_greek_or_falls_back_to_ascii(pack, monkeypatch):
    from PIL import ImageFont

    from comfyui_gag.nodes import diagnostics_plot as plot

    assert not plot._draws(ImageFont.load_default(20), "Δ")  # Pillow's own font: no Greek (a real check)
    dejavu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    try:
        with_greek = ImageFont.truetype(dejavu, 20)
    except OSError:
        pytest.skip(f"{dejavu} is not installed")
    assert plot._draws(with_greek, plot.GREEK_SAMPLE)
    assert plot.fonts_have_greek()  # found by plot.font as well
    monkeypatch.setattr(plot, "_font_files", lambda: iter(()))
    plot.font.cache_clear()
    try:
        assert not plot.fonts_have_greek()
        assert plot.render(synthetic_trace(3, {0})).size == (plot.WIDTH, plot.HEIGHT)  # ASCII labels
    finally:
        monkeypatch.undo()
        plot.font.cache_clear()
