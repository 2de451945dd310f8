"""Tiny random-weight models of the newer families (Wan, SD3, Lumina2 / Z-Image, …).

Built like ``tiny_models`` (same ``TinyModel``, seeded ``random_weight_patcher``, same
sampler call) from the running host's own ``comfy.supported_models`` configs and
``comfy.model_base`` classes with shrunk sizes. ``BUILDERS[name]`` builds one;
``missing(name)`` says which host class a family needs when the host lacks it.
"""

import functools
import importlib

import torch

from .tiny_models import TinyModel, random_weight_patcher

REQUIRED_CLASSES = {
    "wan_t2v": ("comfy.supported_models.WAN21_T2V", "comfy.ldm.wan.model.WanModel"),
    "wan_i2v": ("comfy.supported_models.WAN21_I2V", "comfy.ldm.wan.model.WanModel"),
    "sd3": ("comfy.supported_models.SD3", "comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper"),
}


def missing(name: str) -> str | None:
    """The first host class family ``name`` needs that this ComfyUI lacks, or None."""
    for dotted in REQUIRED_CLASSES[name]:
        module_name, _, attribute = dotted.rpartition(".")
        try:
            getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            return dotted
    return None


def _text(tokens, width, seed, **extra):
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, width, generator=generator), dict(extra)]]


class _ClipVisionOutput:
    """What ``CLIPVisionEncode`` hands Wan image-to-video: only the penultimate states are read."""

    def __init__(self, tokens: int, seed: int):
        self.penultimate_hidden_states = torch.randn(1, tokens, 1280, generator=torch.Generator().manual_seed(seed))


def _wan(config_name: str, model_type: str, in_dim: int, extra: dict, *, image_to_video: bool):
    import comfy.model_base
    import comfy.supported_models

    config = getattr(comfy.supported_models, config_name)({
        "image_model": "wan2.1", "model_type": model_type, "patch_size": (1, 2, 2), "in_dim": in_dim,
        "dim": 64, "ffn_dim": 128, "freq_dim": 64, "text_dim": 32, "out_dim": 16, "num_heads": 2,
        "num_layers": 2, "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6,
    })
    model_class = functools.partial(comfy.model_base.WAN21, image_to_video=image_to_video)
    # 24 text tokens and 2 × 4 × 4 = 32 video tokens: the text call is the only one with 24 keys
    return TinyModel(random_weight_patcher(config, model_class), _text(24, 32, 1, **extra), _text(24, 32, 2, **extra),
                     torch.zeros(1, 16, 2, 8, 8))


def wan_t2v():
    """Wan 2.1 / 2.2 text-to-video (the class Wan 2.2's image-to-video A14B loads as, too)."""
    return _wan("WAN21_T2V", "t2v", 16, {}, image_to_video=False)


def wan_i2v():
    """Wan 2.1 image-to-video: a CLIP-image call before the text call in every block."""
    return _wan("WAN21_I2V", "i2v", 36, {"clip_vision_output": _ClipVisionOutput(8, 3)}, image_to_video=True)


def sd3():
    """SD3.5-shaped MMDiT-X: 2 register tokens before the text, block 0 with the extra
    image-only self-attention of SD3.5 Medium, RMS q/k norms."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.SD3({
        "in_channels": 16, "out_channels": 16, "pos_embed_scaling_factor": None, "patch_size": 2, "depth": 2,
        "adm_in_channels": 32, "pos_embed_max_size": 16, "num_patches": 256, "register_length": 2,
        "qk_norm": "rms", "x_block_self_attn_layers": [0],
        "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 48, "out_features": 128}},
    })
    patcher = random_weight_patcher(config, comfy.model_base.SD3)
    with torch.no_grad():  # a buffer, so left uninitialised by the model and by random_weight_patcher
        pos_embed = patcher.model.diffusion_model.pos_embed
        pos_embed.copy_(torch.randn(pos_embed.shape, generator=torch.Generator().manual_seed(4)))
    pooled = {"pooled_output": torch.randn(1, 32, generator=torch.Generator().manual_seed(5))}
    # 2 registers + 20 text tokens + 8 × 8 image tokens: joint calls have 86 keys, image-only calls 64
    return TinyModel(patcher, _text(20, 48, 1, **pooled), _text(20, 48, 2, **pooled), torch.zeros(1, 16, 16, 16))


BUILDERS = {"wan_t2v": wan_t2v, "wan_i2v": wan_i2v, "sd3": sd3}
