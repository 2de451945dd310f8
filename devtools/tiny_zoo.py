"""Tiny random-weight models of the newer families (Wan, SD3, Lumina2 / Z-Image, …).

Built like ``tiny_models`` (same ``TinyModel``, seeded ``random_weight_patcher``, same
sampler call) from the running host's own ``comfy.supported_models`` configs and
``comfy.model_base`` classes with shrunk sizes. ``BUILDERS[name]`` builds one;
``missing(name)`` says which host class a family needs when the host lacks it. Builders take
the weights' ``dtype`` (float32 by default).
"""

import functools
import inspect
import pkgutil

import torch

from .tiny_models import TinyModel, _text, for_host, random_weight_patcher

REQUIRED_CLASSES = {
    "wan_t2v": ("comfy.supported_models.WAN21_T2V", "comfy.ldm.wan.model.WanModel"),
    "wan_i2v": ("comfy.supported_models.WAN21_I2V", "comfy.ldm.wan.model.WanModel"),
    "sd3": ("comfy.supported_models.SD3", "comfy.ldm.modules.diffusionmodules.mmdit.OpenAISignatureMMDITWrapper"),
    "z_image": ("comfy.supported_models.ZImage", "comfy.ldm.lumina.model.NextDiT"),
    "hunyuan_video": ("comfy.supported_models.HunyuanVideo", "comfy.ldm.hunyuan_video.model.HunyuanVideo"),
    "auraflow": ("comfy.supported_models.AuraFlow", "comfy.ldm.aura.mmdit.MMDiT"),
    "cosmos_predict2": ("comfy.supported_models.CosmosT2IPredict2", "comfy.ldm.cosmos.predict2.MiniTrainDIT"),
    "kandinsky5": ("comfy.supported_models.Kandinsky5Image", "comfy.ldm.kandinsky5.model.Kandinsky5"),
    "ltxv": ("comfy.supported_models.LTXV", "comfy.ldm.lightricks.model.LTXVModel"),
    "hidream": ("comfy.supported_models.HiDream", "comfy.ldm.hidream.model.HiDreamImageTransformer2DModel"),
}

NEEDS_BLOCK_IDS = {"z_image": "comfy.ldm.lumina.model.NextDiT"}
"""Families whose layers the pack tells from their refiners by the block ids the model puts
in ``transformer_options`` (ComfyUI 0.3.75's NextDiT sets none; 0.12.1's does)."""


def missing(name: str) -> str | None:
    """What family ``name`` needs that this ComfyUI lacks (a class, or block ids), or None."""
    for dotted in REQUIRED_CLASSES[name]:
        try:
            pkgutil.resolve_name(dotted)
        except (ImportError, AttributeError):
            return dotted
    if name in NEEDS_BLOCK_IDS and "block_index" not in inspect.getsource(pkgutil.resolve_name(NEEDS_BLOCK_IDS[name])):
        return f"block ids in {NEEDS_BLOCK_IDS[name]}"
    return None


def _patcher(model_config, model_class, dtype, seed: int = 0):
    """``random_weight_patcher`` with unit norm gains: its 0.02-scale 1-D weights would shrink
    the RMS-normed queries and keys of these models, and with them every score, to near 0."""
    patcher = random_weight_patcher(model_config, model_class, dtype, seed=seed)
    with torch.no_grad():
        for module in patcher.model.diffusion_model.modules():
            if "Norm" in type(module).__name__:
                for gain in module.parameters(recurse=False):  # weight, or scale (FLUX-style RMSNorm)
                    if gain.ndim == 1:
                        gain.fill_(1.0)
    return patcher


class _ClipVisionOutput:
    """What ``CLIPVisionEncode`` hands Wan image-to-video: only the penultimate states are read."""

    def __init__(self, tokens: int, seed: int):
        self.penultimate_hidden_states = torch.randn(1, tokens, 1280, generator=torch.Generator().manual_seed(seed))


def _wan(config_name: str, model_type: str, in_dim: int, extra: dict, dtype, *, image_to_video: bool):
    import comfy.model_base
    import comfy.supported_models

    config = getattr(comfy.supported_models, config_name)({
        "image_model": "wan2.1", "model_type": model_type, "patch_size": (1, 2, 2), "in_dim": in_dim,
        "dim": 64, "ffn_dim": 128, "freq_dim": 64, "text_dim": 32, "out_dim": 16, "num_heads": 2,
        "num_layers": 2, "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6,
    })
    patcher = _patcher(config, functools.partial(comfy.model_base.WAN21, image_to_video=image_to_video), dtype)
    patcher.model.diffusion_model.patch_embedding.float()  # WanModel builds it in float32 whatever the dtype
    # 24 text tokens and 2 × 4 × 4 = 32 video tokens: the text call is the only one with 24 keys
    return TinyModel(patcher, _text(24, 32, 1, **extra), _text(24, 32, 2, **extra), torch.zeros(1, 16, 2, 8, 8))


def wan_t2v(dtype=torch.float32):
    """Wan 2.1 / 2.2 text-to-video (the class Wan 2.2's image-to-video A14B loads as, too)."""
    return _wan("WAN21_T2V", "t2v", 16, {}, dtype, image_to_video=False)


WAN_AS_DETECTED = {"image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "in_dim": 16,
                   "dim": 128, "ffn_dim": 256, "freq_dim": 256, "out_dim": 16, "num_heads": 1, "num_layers": 2,
                   "window_size": (-1, -1), "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6}
"""A tiny Wan text-to-video config that ComfyUI's detection reads back from the model's weights
(``comfy.model_detection``): it takes one head per 128 of width, 256 frequency dims and a text
width of 4096 (T5-XXL's) whatever the file holds, so those stay; two blocks."""
WAN_AS_DETECTED_TEXT_WIDTH = 4096
"""The text width ``WanModel`` is built with when its config names none, as the detected one never does."""


def wan_t2v_state_dict(seed: int) -> dict:
    """Random weights (drawn from ``seed``) of a model with the ``WAN_AS_DETECTED`` config, keys as
    in a Wan 2.1 / 2.2 A14B diffusion-model file: UNETLoader loads it as a Wan text-to-video model.
    Different seeds stand for Wan 2.2 A14B's two experts (high and low noise), which share a layout."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.WAN21_T2V(dict(WAN_AS_DETECTED))
    return _patcher(config, comfy.model_base.WAN21, torch.float32, seed).model.diffusion_model.state_dict()


def wan_i2v(dtype=torch.float32):
    """Wan 2.1 image-to-video: a CLIP-image call before the text call in every block."""
    clip_vision = {"clip_vision_output": _ClipVisionOutput(8, 3)}
    return _wan("WAN21_I2V", "i2v", 36, clip_vision, dtype, image_to_video=True)


def sd3(dtype=torch.float32):
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
    patcher = _patcher(config, comfy.model_base.SD3, dtype)
    with torch.no_grad():  # a buffer, so left uninitialised by the model and by random_weight_patcher
        pos_embed = patcher.model.diffusion_model.pos_embed
        pos_embed.copy_(torch.randn(pos_embed.shape, generator=torch.Generator().manual_seed(4)))
    pooled = {"pooled_output": torch.randn(1, 32, generator=torch.Generator().manual_seed(5))}
    # 2 registers + 20 text tokens + 8 × 8 image tokens: joint calls have 86 keys, image-only calls 64
    return TinyModel(patcher, _text(20, 48, 1, **pooled), _text(20, 48, 2, **pooled), torch.zeros(1, 16, 16, 16))


def z_image(dtype=torch.float32):
    """Z-Image-shaped NextDiT (width 256: the least its modulation takes): caption and image
    padded to multiples of 8 tokens, one context refiner and one noise refiner layer before
    the two joint layers."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.ZImage({
        "image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 256, "n_layers": 2,
        "n_refiner_layers": 1, "n_heads": 4, "n_kv_heads": 4, "multiple_of": 16, "ffn_dim_multiplier": 1.0,
        "norm_eps": 1e-5, "qk_norm": True, "cap_feat_dim": 32, "axes_dims": [16, 24, 24], "axes_lens": [64, 32, 32],
        "rope_theta": 256.0, "z_image_modulation": True, "time_scale": 1000.0, "pad_tokens_multiple": 8,
    })
    # 13 caption tokens padded to 16, 6 × 6 image tokens padded to 40: joint calls have 56 keys,
    # the context refiner's 16 and the noise refiner's 40
    return TinyModel(_patcher(config, comfy.model_base.Lumina2, dtype), _text(13, 32, 1), _text(13, 32, 2),
                     torch.zeros(1, 16, 12, 12))


def hunyuan_video(dtype=torch.float32, padded_tokens: int = 0):
    """HunyuanVideo-shaped model: image tokens first, then the refined text. With
    ``padded_tokens``, the prompt's last tokens are padding that its attention mask removes
    (only for CFG 1: this model cannot batch two masked prompts)."""
    import comfy.ldm.hunyuan_video.model
    import comfy.model_base
    import comfy.supported_models

    params = {
        "in_channels": 16, "out_channels": 16, "vec_in_dim": 32, "context_in_dim": 48, "hidden_size": 64,
        "mlp_ratio": 4.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2, "axes_dim": [8, 12, 12],
        "theta": 256, "patch_size": [1, 2, 2], "qkv_bias": True, "guidance_embed": True,
    }
    # fields newer hosts added (1.5's byT5, meanflow, vision tokens), all off; older hosts lack them
    params = for_host(comfy.ldm.hunyuan_video.model.HunyuanVideoParams, params, byt5=False, meanflow=False,
                      use_cond_type_embedding=False, vision_in_dim=None, meanflow_sum=False)
    config = comfy.supported_models.HunyuanVideo({"image_model": "hunyuan_video", **params})
    extra = {"pooled_output": torch.randn(1, 32, generator=torch.Generator().manual_seed(5)), "guidance": 6.0}
    positive = _text(12, 48, 1, **extra)
    if padded_tokens:
        positive[0][1]["attention_mask"] = (torch.arange(12) < 12 - padded_tokens).long().unsqueeze(0)
    # 2 × 4 × 4 = 32 video tokens then 12 text tokens: joint calls have 44 keys, the refiner's 12
    return TinyModel(_patcher(config, comfy.model_base.HunyuanVideo, dtype), positive, _text(12, 48, 2, **extra),
                     torch.zeros(1, 16, 2, 8, 8))


def auraflow(dtype=torch.float32):
    """AuraFlow-shaped MMDiT: its 8 register tokens and the text first, two double and two
    single layers."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.AuraFlow({
        "in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 64, "n_layers": 4, "n_double_layers": 2,
        "n_heads": 2, "global_conddim": 64, "cond_seq_dim": 32, "max_seq": 64,
    })
    # 8 registers + 20 text tokens + 8 × 8 image tokens: every joint call has 92 keys
    return TinyModel(_patcher(config, comfy.model_base.AuraFlow, dtype), _text(20, 32, 1), _text(20, 32, 2),
                     torch.zeros(1, 4, 16, 16))


def cosmos_predict2(dtype=torch.float32):
    """Cosmos Predict2-shaped MiniTrainDIT (text-to-image): self-attention, then text
    cross-attention, in each of two blocks."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.CosmosT2IPredict2({
        "image_model": "cosmos_predict2", "max_img_h": 32, "max_img_w": 32, "max_frames": 4, "in_channels": 16,
        "out_channels": 16, "patch_spatial": 2, "patch_temporal": 1, "concat_padding_mask": True,
        "model_channels": 64, "num_blocks": 2, "num_heads": 2, "crossattn_emb_channels": 32,
        "pos_emb_cls": "rope3d", "use_adaln_lora": True, "adaln_lora_dim": 16,
    })
    # 24 text tokens and 8 × 8 image tokens
    return TinyModel(_patcher(config, comfy.model_base.CosmosPredict2, dtype), _text(24, 32, 1), _text(24, 32, 2),
                     torch.zeros(1, 16, 1, 16, 16))


def kandinsky5(dtype=torch.float32):
    """Kandinsky 5 Image-shaped model: one text encoder block, then two visual blocks each
    with self-attention and text cross-attention."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.Kandinsky5Image({
        "image_model": "kandinsky5", "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 32,
        "in_text_dim2": 24, "time_dim": 32, "model_dim": 64, "ff_dim": 128, "visual_embed_dim": 64,
        "patch_size": (1, 2, 2), "num_text_blocks": 1, "num_visual_blocks": 2, "axes_dims": (8, 12, 12),
    })
    pooled = {"pooled_output": torch.randn(1, 24, generator=torch.Generator().manual_seed(5))}
    # 20 text tokens (the text blocks' self-attention has 20 keys too) and 8 × 8 image tokens
    return TinyModel(_patcher(config, comfy.model_base.Kandinsky5Image, dtype), _text(20, 32, 1, **pooled),
                     _text(20, 32, 2, **pooled), torch.zeros(1, 16, 16, 16))


def ltxv(dtype=torch.float32):
    """LTXV-shaped model: self-attention, then text cross-attention with the prompts' padding
    masks (the last 4 of 20 tokens), in each of two blocks."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.LTXV({
        "image_model": "ltxv", "in_channels": 128, "cross_attention_dim": 64, "attention_head_dim": 32,
        "num_attention_heads": 2, "caption_channels": 32, "num_layers": 2,
    })
    mask = {"attention_mask": (torch.arange(20) < 16).long().unsqueeze(0)}
    # 20 text tokens and 2 × 4 × 4 = 32 video tokens
    return TinyModel(_patcher(config, comfy.model_base.LTXV, dtype), _text(20, 32, 1, **mask),
                     _text(20, 32, 2, **mask), torch.zeros(1, 128, 2, 4, 4))


def hidream(dtype=torch.float32):
    """HiDream-shaped model: image first, then T5, the last Llama layer and each block's own
    Llama layer; two double-stream and two single-stream blocks with mixture-of-experts
    feed-forwards."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.HiDream({
        "image_model": "hidream", "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 2,
        "num_single_layers": 2, "attention_head_dim": 32, "num_attention_heads": 2, "caption_channels": [32, 24],
        "text_emb_dim": 24, "num_routed_experts": 2, "num_activated_experts": 1, "axes_dims_rope": (8, 12, 12),
        "max_resolution": (32, 32), "llama_layers": [0, 1, 2, 3],
    })
    generator = torch.Generator().manual_seed(6)
    extra = {"pooled_output": torch.randn(1, 24, generator=generator),
             "conditioning_llama3": torch.randn(1, 4, 6, 24, generator=generator)}
    # 8 × 8 image tokens, then 12 T5 + 6 + 6 Llama tokens: every call has 88 keys
    return TinyModel(_patcher(config, comfy.model_base.HiDream, dtype), _text(12, 32, 1, **extra),
                     _text(12, 32, 2, **extra), torch.zeros(1, 16, 16, 16))


BUILDERS = {"wan_t2v": wan_t2v, "wan_i2v": wan_i2v, "sd3": sd3, "z_image": z_image, "hunyuan_video": hunyuan_video,
            "auraflow": auraflow, "cosmos_predict2": cosmos_predict2, "kandinsky5": kandinsky5, "ltxv": ltxv,
            "hidream": hidream}
