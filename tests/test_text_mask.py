"""Qwen-Image's text padding mask with Apply GAG on (ComfyUI 0.11.0 and later).

From 0.11.0 ``QwenImageTransformer2DModel`` turns a conditioning's ``attention_mask`` (1 =
token, 0 = padding) into an additive (B, 1, N_text + N_image) mask on the joint attention
(``comfy/ldm/qwen_image/model.py``; ``model_base.QwenImage.extra_conds`` passes it on).
Padded text tokens must then change nothing, GAG's image × text guidance included.
"""

import pytest
import torch

from devtools import comfy_host, tiny_models
from test_apply_gag import nodes_api, settings  # noqa: F401  (fixture)

PADDING = 7  # extra text tokens, appended as the text encoder pads (the real tokens keep their positions)


@pytest.fixture(scope="module")
def api(nodes_api):
    """The pack's API, on hosts that pass the text mask (skips elsewhere)."""
    if comfy_host.host_version() < (0, 11, 0):
        pytest.skip("ComfyUI before 0.11.0 passes no text mask into Qwen-Image's joint attention")
    return nodes_api


def padded(conditioning, seed, masked=True):
    """``conditioning`` with PADDING random text tokens appended, masked out when ``masked``."""
    generator = torch.Generator().manual_seed(seed)
    (cond, extra), = conditioning
    tokens = cond.shape[1]
    cond = torch.cat([cond, 3 * torch.randn(1, PADDING, cond.shape[2], generator=generator)], dim=1)
    if masked:
        mask = torch.cat([torch.ones(1, tokens, dtype=torch.long), torch.zeros(1, PADDING, dtype=torch.long)], 1)
        extra = {**extra, "attention_mask": mask}
    return [[cond, extra]]


def masks_seen_by_attention(model):
    """Record the mask of every joint-attention call that reaches the override of ``model``."""
    options = model.model_options["transformer_options"]
    override, seen = options["optimized_attention_override"], []

    def recording(func, q, k, v, heads, mask=None, **kwargs):  # the host passes the mask by position
        seen.append(None if mask is None else tuple(mask.shape))
        return override(func, q, k, v, heads, mask, **kwargs)

    options["optimized_attention_override"] = recording
    return seen


@pytest.mark.parametrize("cond_only", [False, True], ids=["all-rows", "cond-only"])
def test_padded_text_tokens_change_nothing_with_gag(api, cond_only):
    tiny = tiny_models.qwen_image()
    guided = api["apply_gag"](tiny.patcher, settings(api, cond_only=cond_only))
    reference = tiny_models.sample(guided, tiny, cfg=3.0)
    assert not torch.equal(reference, tiny_models.sample(tiny.patcher, tiny, cfg=3.0))  # GAG did something

    seen = masks_seen_by_attention(guided)
    with_padding = tiny_models.TinyModel(tiny.patcher, padded(tiny.positive, 1), padded(tiny.negative, 2),
                                         tiny.latent)
    out = tiny_models.sample(guided, with_padding, cfg=3.0)
    text, image = tiny.positive[0][0].shape[1] + PADDING, 8 * 8  # 16×16 latent, 2×2 patches
    assert set(seen) == {(2, 1, text + image)}  # cond and uncond batched, the host's (B, 1, N) mask
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)

    # control: the same tokens without the mask do change the result
    unmasked = tiny_models.TinyModel(tiny.patcher, padded(tiny.positive, 1, masked=False),
                                     padded(tiny.negative, 2, masked=False), tiny.latent)
    assert (tiny_models.sample(guided, unmasked, cfg=3.0) - reference).abs().max() > 1e-2
