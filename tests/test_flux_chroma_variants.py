"""Chroma Radiance and Ovis-Image, where the host has them, are guided by the FLUX/Chroma adapters.

ComfyUI builds Chroma Radiance's diffusion model as a subclass of Chroma's
(``comfy.ldm.chroma_radiance.model.ChromaRadiance``) and Ovis-Image's as FLUX's own class
(``comfy.ldm.flux.model.Flux`` with ``yak_mlp``/``txt_norm``), so the architecture table
already covers them; these tests keep it so.
"""

import collections
import importlib.util

import pytest
import torch

from devtools import tiny_models
from test_apply_gag import Calls, nodes_api, settings  # noqa: F401  (fixture)

STEPS = 2
# variant -> the table entry (its host class) that must guide it
VARIANTS = {"chroma_radiance": "comfy.ldm.chroma.model.Chroma", "ovis_image": "comfy.ldm.flux.model.Flux"}


def host_has(variant: str) -> bool:
    if variant == "chroma_radiance":
        return importlib.util.find_spec("comfy.ldm.chroma_radiance") is not None
    from comfy.ldm.flux.model import FluxParams

    return "yak_mlp" in FluxParams.__dataclass_fields__  # Ovis-Image's gated MLP


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_is_guided_by_the_flux_chroma_adapter(variant, nodes_api):
    from comfyui_gag.nodes.architectures import detect

    if not host_has(variant):
        pytest.skip(f"this ComfyUI has no {variant}")
    tiny = getattr(tiny_models, variant)()
    model = tiny.patcher.model.diffusion_model
    assert detect(model).model_class == VARIANTS[variant]
    plain = tiny_models.sample(tiny.patcher, tiny, steps=STEPS)
    identity = tiny_models.sample(nodes_api["apply_gag"](tiny.patcher, settings(nodes_api, alpha=1.0)), tiny,
                                  steps=STEPS)
    torch.testing.assert_close(identity, plain, atol=1e-4, rtol=1e-4)
    calls = Calls()
    guided = tiny_models.sample(nodes_api["apply_gag"](tiny.patcher, settings(nodes_api), observer=calls), tiny,
                                steps=STEPS)
    blocks = collections.Counter(double=len(model.double_blocks), single=len(model.single_blocks))
    assert calls.kinds() == collections.Counter({kind: n * STEPS for kind, n in blocks.items()})
    assert (guided - plain).abs().max() > max(20 * (identity - plain).abs().max(), 1e-4)
