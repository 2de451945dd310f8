"""Tiny random-weight models built from ComfyUI's own classes (SPEC §4), and a sampler call.

Each builder returns a ``TinyModel``: a ModelPatcher around a real ``comfy.model_base``
model with shrunk config, conditioning in the shape that model expects, and an empty
latent. Weights are random (std 1/√fan_in, biases 0.02) and seeded, so two builds are identical.

The configs are written for the oldest supported host (ComfyUI 0.3.75) and completed for the
running one by ``for_host`` from the host's own config dataclass: a field that a later
release added gets the value ``comfy/model_detection.py`` gives that family.
"""

import dataclasses
import pathlib

import torch

CPU = torch.device("cpu")
TEST_OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "test-output"
"""Pictures the tests write for people to look at (gitignored)."""


@dataclasses.dataclass
class TinyModel:
    patcher: object
    positive: list
    negative: list
    latent: torch.Tensor


def random_weight_patcher(model_config, model_class, dtype=torch.float32, load_device=CPU, seed: int = 0):
    """A ModelPatcher around ``model_class(model_config)`` (a ``comfy.model_base`` class and
    its ``comfy.supported_models`` config) with random weights drawn from ``seed``, built on the CPU."""
    import comfy.model_patcher

    model_config.set_inference_dtype(dtype, None)
    model = model_class(model_config, device=CPU)
    randomize_(model.diffusion_model, seed)
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=CPU)


def randomize_(module: torch.nn.Module, seed: int = 0) -> None:
    """Overwrite the parameters of ``module`` in place with seeded random values: std 1/√fan_in for
    matrices and kernels (unit-variance activations, so attention scores have an O(1) spread and
    GAG has an effect), 0.02 for vectors (biases, norm scales)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            std = parameter[0].numel() ** -0.5 if parameter.ndim >= 2 else 0.02
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


def _finish(model_config, model_class, positive, negative, latent, dtype=torch.float32):
    return TinyModel(random_weight_patcher(model_config, model_class, dtype), positive, negative, latent)


def for_host(params_class, config: dict, **detected) -> dict:
    """``config`` completed for the running host's ``params_class`` (the dataclass its model reads
    its config into, e.g. ``comfy.ldm.flux.model.FluxParams``).

    ``detected``: fields that later releases added, with the value model detection gives this
    family; each is added when the host declares it (a host without the field gets nothing).
    Fields with a default need nothing. A required field that neither provides raises a
    RuntimeError naming it, so a newer host's change shows up here, not as a TypeError deep in
    the model.
    """
    declared = {field.name: field for field in dataclasses.fields(params_class)}
    completed = {**{name: value for name, value in detected.items() if name in declared}, **config}
    missing = [name for name, field in declared.items() if name not in completed
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise RuntimeError(f"this ComfyUI's {params_class.__name__} also needs {missing}: "
                           "give their model-detection values in devtools/tiny_models.py")
    return completed


def flux_config(config: dict) -> dict:
    """A FLUX.1 or FLUX.2 (``image_model`` "flux2") config completed for the running host.
    Text token positions: none for FLUX.1, along RoPE axis 3 for FLUX.2 (``txt_ids_dims``)."""
    from comfy.ldm.flux.model import FluxParams

    return for_host(FluxParams, config, txt_ids_dims=[3] if config["image_model"] == "flux2" else [])


def _text(tokens, width, seed, **extra):
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, width, generator=generator), dict(extra)]]


def sdxl(dtype=torch.float32, batch=1):
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.SDXL({
        "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4, "out_channels": 4,
        "model_channels": 32, "num_res_blocks": [1, 1], "channel_mult": [1, 2],
        "transformer_depth": [0, 2], "transformer_depth_output": [0, 0, 1, 1], "transformer_depth_middle": 1,
        "context_dim": 64, "use_linear_in_transformer": True, "use_temporal_attention": False,
        "use_temporal_resblock": False, "dtype": dtype,
    })
    config.unet_config["num_head_channels"] = 16   # SDXL forces 64, which gives 0 heads at 32 channels
    pooled = {"pooled_output": torch.randn(1, 1280, generator=torch.Generator().manual_seed(5))}
    return _finish(config, comfy.model_base.SDXL, _text(77, 64, 1, **pooled), _text(77, 64, 2, **pooled),
                   torch.zeros(batch, 4, 16, 16), dtype)


def sd15(dtype=torch.float32, batch=1):
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.SD15({
        "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
        "adm_in_channels": None, "in_channels": 4, "out_channels": 4, "model_channels": 32,
        "num_res_blocks": [1, 1], "channel_mult": [1, 2], "transformer_depth": [1, 1],
        "transformer_depth_output": [1, 1, 1, 1], "transformer_depth_middle": 1,
        "context_dim": 48, "use_linear_in_transformer": False, "use_temporal_attention": False,
        "use_temporal_resblock": False, "dtype": dtype,
    })
    config.unet_config["num_heads"] = 2
    return _finish(config, comfy.model_base.BaseModel, _text(77, 48, 1), _text(77, 48, 2),
                   torch.zeros(batch, 4, 16, 16), dtype)


def flux(dtype=torch.float32, batch=1):
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.Flux(flux_config({
        "image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 32, "context_in_dim": 64,
        "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2,
        "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True, "guidance_embed": True,
    }))
    extra = {"pooled_output": torch.randn(1, 32, generator=torch.Generator().manual_seed(5)), "guidance": 3.5}
    return _finish(config, comfy.model_base.Flux, _text(20, 64, 1, **extra), _text(20, 64, 2, **extra),
                   torch.zeros(batch, 16, 16, 16), dtype)


def flux2(dtype=torch.float32, batch=1):
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.Flux2(flux_config({
        "image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
        "context_in_dim": 64, "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2, "depth": 2,
        "depth_single_blocks": 2, "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1,
        "qkv_bias": False, "guidance_embed": True, "global_modulation": True, "mlp_silu_act": True,
        "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0,
    }))
    # model_base.Flux2 inherits Flux.encode_adm, which reads a pooled output it then ignores
    extra = {"pooled_output": torch.zeros(1, 32), "guidance": 3.5}
    return _finish(config, comfy.model_base.Flux2, _text(20, 64, 1, **extra), _text(20, 64, 2, **extra),
                   torch.zeros(batch, 128, 8, 8), dtype)


KLEIN_TEXT_WIDTH = 3 * 32
"""Text width of the tiny FLUX.2 [klein]: its text encoder stacks three Qwen3 hidden layers
(3 × 2560 = 7680 in Klein 4B; 3 × 32 in the tiny text encoder of devtools/tiny_stand_in)."""


def flux2_klein_state_dict(dtype=torch.float32) -> dict:
    """Random weights in FLUX.2 [klein] 4B's layout, shrunk: FLUX.2 blocks with Klein's 128-wide
    heads (2 instead of 24), 1 double + 4 single blocks (Klein 4B: 5 + 20), no guidance
    embedding, text width ``KLEIN_TEXT_WIDTH``. Keys as in a ComfyUI diffusion-model file."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.Flux2(flux_config({
        "image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
        "context_in_dim": KLEIN_TEXT_WIDTH, "hidden_size": 256, "mlp_ratio": 3.0, "num_heads": 2, "depth": 1,
        "depth_single_blocks": 4, "axes_dim": [32, 32, 32, 32], "theta": 2000, "patch_size": 1,
        "qkv_bias": False, "guidance_embed": False, "global_modulation": True, "mlp_silu_act": True,
        "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0,
    }))
    patcher = random_weight_patcher(config, comfy.model_base.Flux2, dtype)
    return patcher.model.diffusion_model.state_dict()


def flux2_klein(dtype=torch.float32, batch=1):
    """The tiny FLUX.2 [klein], loaded the way UNETLoader loads a file: ComfyUI detects its
    config from the weights (``comfy.sd.load_diffusion_model_state_dict``). ComfyUI 0.9.2+."""
    import comfy.sd

    patcher = comfy.sd.load_diffusion_model_state_dict(flux2_klein_state_dict(), model_options={"dtype": dtype})
    if patcher is None:
        raise RuntimeError("this ComfyUI does not recognise FLUX.2 [klein]'s weights (it needs 0.9.2 or later)")
    extra = {"pooled_output": torch.zeros(1, 32)}  # read (and ignored) by the inherited Flux.encode_adm
    return TinyModel(patcher, _text(20, KLEIN_TEXT_WIDTH, 1, **extra), _text(20, KLEIN_TEXT_WIDTH, 2, **extra),
                     torch.zeros(batch, 128, 4, 4))


KLEIN_TEXT_ENCODER = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 28,
                      "num_attention_heads": 2, "num_key_value_heads": 1}
"""Qwen3-4B's config (``comfy.text_encoders.llama.Qwen3_4BConfig``) shrunk for the tiny Klein text
encoder: Klein reads hidden layers 9, 18 and 27, so 28 of the 36 layers stay; heads keep their
width of 128, the vocabulary its size."""


def klein_text_encoder(state_dict: dict | None = None):
    """ComfyUI's own FLUX.2 [klein] text encoder (``KleinTokenizer`` and ``klein_te``'s Qwen3-4B
    model) at the width of KLEIN_TEXT_ENCODER, as a ``comfy.sd.CLIP`` in float32: the weights in
    ``state_dict`` (Qwen3 keys, ``model.layers.N...``), else seeded random ones. Its conditioning is
    (1, tokens, KLEIN_TEXT_WIDTH). ComfyUI 0.9.2+."""
    import comfy.sd
    import comfy.supported_models_base
    import comfy.text_encoders.flux

    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.flux.KleinTokenizer,
                                                    comfy.text_encoders.flux.klein_te(model_type="qwen3_4b"))
    # ComfyUI reads "<model name>_model_config" from the model options into the model's config
    clip = comfy.sd.CLIP(target, model_options={"qwen3_4b_model_config": KLEIN_TEXT_ENCODER, "dtype": torch.float32,
                                                "load_device": CPU, "offload_device": CPU})
    if state_dict is None:
        randomize_(clip.cond_stage_model, seed=3)
    else:
        missing, unexpected = clip.load_sd(state_dict)
        if missing or unexpected:
            raise ValueError(f"not a tiny Klein text encoder: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return clip


CHROMA = {
    "image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": 64, "hidden_size": 64,
    "mlp_ratio": 4.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2, "axes_dim": [8, 12, 12],
    "theta": 10000, "patch_size": 2, "qkv_bias": True, "in_dim": 64, "out_dim": 64, "hidden_dim": 64,
    "n_layers": 1,
}


def chroma(dtype=torch.float32, batch=1):
    import comfy.model_base
    import comfy.supported_models
    from comfy.ldm.chroma.model import ChromaParams

    # Chroma has no pooled-vector input
    config = comfy.supported_models.Chroma(for_host(ChromaParams, CHROMA, txt_ids_dims=[], vec_in_dim=None))
    extra = {"pooled_output": torch.zeros(1, 32)}  # read (and ignored) by the inherited Flux.encode_adm
    return _finish(config, comfy.model_base.Chroma, _text(20, 64, 1, **extra), _text(20, 64, 2, **extra),
                   torch.zeros(batch, 16, 16, 16), dtype)


def chroma_radiance(dtype=torch.float32, batch=1):
    """Chroma Radiance: Chroma's transformer on 4×4 pixel patches, decoded by a
    small NeRF-style head; its diffusion model is a subclass of Chroma's."""
    import comfy.model_base
    import comfy.supported_models
    from comfy.ldm.chroma_radiance.model import ChromaRadianceParams

    config = comfy.supported_models.ChromaRadiance(for_host(ChromaRadianceParams, {
        **CHROMA, "image_model": "chroma_radiance", "in_channels": 3, "out_channels": 3, "patch_size": 4,
        "nerf_hidden_size": 16, "nerf_mlp_ratio": 2, "nerf_depth": 1, "nerf_max_freqs": 4, "nerf_tile_size": 0,
        "nerf_final_head_type": "linear", "nerf_embedder_dtype": None,
    }, txt_ids_dims=[], vec_in_dim=None, use_x0=False))
    extra = {"pooled_output": torch.zeros(1, 32)}  # read (and ignored) by the inherited Flux.encode_adm
    tiny = _finish(config, comfy.model_base.ChromaRadiance, _text(20, 64, 1, **extra), _text(20, 64, 2, **extra),
                   torch.zeros(batch, 3, 16, 16), dtype)
    with torch.no_grad():  # unit norm scales in the pixel head, so the transformer's output reaches the pixels
        for name, parameter in tiny.patcher.model.diffusion_model.named_parameters():
            if name.startswith("nerf_") and name.endswith("norm.scale"):
                parameter.fill_(1.0)
    return tiny


def ovis_image(dtype=torch.float32, batch=1):
    """Ovis-Image: a FLUX model with gated MLPs (``yak_mlp``), a normalised text
    input (``txt_norm``) and text positions on RoPE axes 1 and 2, as model detection configures it."""
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.Flux(flux_config({
        "image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": None, "context_in_dim": 64,
        "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 2, "depth": 2, "depth_single_blocks": 2,
        "axes_dim": [8, 12, 12], "theta": 10000, "patch_size": 2, "qkv_bias": True, "guidance_embed": False,
        "yak_mlp": True, "txt_norm": True, "txt_ids_dims": [1, 2],
    }))
    extra = {"pooled_output": torch.zeros(1, 32)}
    return _finish(config, comfy.model_base.Flux, _text(20, 64, 1, **extra), _text(20, 64, 2, **extra),
                   torch.zeros(batch, 16, 16, 16), dtype)


def qwen_image(dtype=torch.float32, batch=1):
    import comfy.model_base
    import comfy.supported_models

    config = comfy.supported_models.QwenImage({
        "image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 2,
        "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": 64,
        "axes_dims_rope": (8, 12, 12),
    })
    return _finish(config, comfy.model_base.QwenImage, _text(20, 64, 1), _text(20, 64, 2),
                   torch.zeros(batch, 16, 1, 16, 16), dtype)


BUILDERS = {"sdxl": sdxl, "sd15": sd15, "flux": flux, "flux2": flux2, "chroma": chroma, "qwen_image": qwen_image}


def sample(model_patcher, tiny: TinyModel, *, steps=2, cfg=2.0, seed=42, sampler="euler", scheduler="simple"):
    """Run ComfyUI's real KSampler path (``nodes.common_ksampler``); returns the latent."""
    import nodes

    (out,) = nodes.common_ksampler(model_patcher, seed, steps, cfg, sampler, scheduler,
                                   tiny.positive, tiny.negative, {"samples": tiny.latent})
    return out["samples"]


def with_attention_override(model_patcher, override):
    """A clone of ``model_patcher`` with ``override`` as its ``optimized_attention_override``, the
    way another node pack installs one (``override(func, q, k, v, heads, *args, **kwargs)``)."""
    clone = model_patcher.clone()
    options = clone.model_options["transformer_options"].copy()
    options["optimized_attention_override"] = override
    clone.model_options["transformer_options"] = options
    return clone
