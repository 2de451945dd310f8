"""Weight files in the formats ComfyUI's real loaders read, with random weights (test-only).

    write_flux2_klein(models_dir, diffusion_model=..., text_encoder=..., vae=...)
    write_wan22(models_dir, high_noise=..., low_noise=..., text_encoder=..., vae=...)

write, under the ComfyUI models folder ``models_dir``, the files an example workflow loads
(run in a process where ComfyUI is imported, e.g. pytest). The FLUX.2 [klein] example's three
(ComfyUI 0.9.2+):

- ``diffusion_models/<diffusion_model>``: the tiny Klein of devtools/tiny_models.py in
  bfloat16, as Klein's own files are; UNETLoader detects FLUX.2 [klein] from it (2 heads of 128).
- ``text_encoders/<text_encoder>``: the Qwen3 weights (``model.layers.N...``) of the tiny Klein
  text encoder (``tiny_models.klein_text_encoder``). ComfyUI's CLIPLoader would build Qwen3-4B
  at its full size whatever the file holds (4 billion parameters: beyond a CPU test), so the
  tests load this file with the stand-in ``GAGTinyCLIPLoader`` (devtools/tiny_stand_in).
- ``vae/<vae>``: FLUX.2's VAE at its real size (ComfyUI builds that VAE with fixed
  dimensions; 84 M parameters, about 170 MB in bfloat16), keys as the host's own VAE class
  names them. VAELoader detects it as the FLUX.2 VAE (32 latent channels, batch-norm latents).

The Wan 2.2 text-to-video example's four:

- ``diffusion_models/<high_noise>`` and ``<low_noise>``: two tiny Wan text-to-video models
  (``tiny_zoo.wan_t2v_state_dict``, different seeds) in bfloat16; UNETLoader detects them.
- ``text_encoders/<text_encoder>``: only the conditioning width of UMT5-XXL (4096), which the
  stand-in ``GAGTinyCLIPLoader`` reads: UMT5-XXL's vocabulary alone, at that width, holds a
  billion weights, so no tiny version of ComfyUI's own encoder can produce Wan's conditioning.
- ``vae/<vae>``: ComfyUI's Wan 2.1 VAE class at width 8 (real: 96), which VAELoader reads
  from the weights: 16 latent channels, 8× spatial and 4× temporal up-sampling, as the real one.
"""

import pathlib

import torch
from safetensors.torch import save_file

from . import tiny_models, tiny_zoo

# what ComfyUI's VAE class reads to pick FLUX.2's VAE: 32-channel latents with quant convolutions,
# batch-normalised in 2×2 patches (128 channels), four resolution levels (8× up-sampling)
FLUX2_VAE_PROBE = {"decoder.conv_in.weight": (512, 32, 3, 3), "post_quant_conv.weight": (32, 32, 1, 1),
                   "decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
                   "bn.running_mean": (128,), "bn.running_var": (128,)}


def flux2_vae_state_dict() -> dict:
    """FLUX.2's VAE weights as ComfyUI's ``comfy.sd.VAE`` lays them out, seeded random values
    (batch-norm statistics: mean 0, variance 1)."""
    import comfy.sd

    probe = {name: torch.ones(shape) for name, shape in FLUX2_VAE_PROBE.items()}
    model = comfy.sd.VAE(sd=probe).first_stage_model  # the host logs the keys the probe lacks
    tiny_models.randomize_(model, seed=4)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("running_mean"):
            tensor.zero_()
        elif name.endswith("running_var"):
            tensor.fill_(1.0)
    return state


def _save(path: pathlib.Path, state: dict, dtype=torch.bfloat16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: (t.to(dtype) if t.is_floating_point() else t).contiguous() for name, t in state.items()},
              str(path))


def write_flux2_klein(models_dir: pathlib.Path, *, diffusion_model: str, text_encoder: str, vae: str) -> None:
    """The FLUX.2 [klein] files under ``models_dir`` (see the module docstring)."""
    _save(models_dir / "diffusion_models" / diffusion_model, tiny_models.flux2_klein_state_dict())
    encoder = tiny_models.klein_text_encoder()
    _save(models_dir / "text_encoders" / text_encoder, encoder.cond_stage_model.qwen3_4b.transformer.state_dict())
    _save(models_dir / "vae" / vae, flux2_vae_state_dict())


WAN_VAE_WIDTH = 8
TEXT_WIDTH_KEY = "gag_stand_in.text_width"
"""The one tensor of a stand-in text encoder file: the width of the conditioning it gives."""


def wan_vae_state_dict() -> dict:
    """ComfyUI's Wan 2.1 VAE (``comfy.ldm.wan.vae.WanVAE``, the configuration ``comfy.sd.VAE`` builds
    for it) at width ``WAN_VAE_WIDTH``, seeded random weights, RMS-norm gains 1."""
    import comfy.ldm.wan.vae

    model = comfy.ldm.wan.vae.WanVAE(dim=WAN_VAE_WIDTH, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                     attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
    tiny_models.randomize_(model, seed=5)
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("gamma"):
            tensor.fill_(1.0)
    return state


def write_wan22(models_dir: pathlib.Path, *, high_noise: str, low_noise: str, text_encoder: str, vae: str) -> None:
    """The Wan 2.2 text-to-video files under ``models_dir`` (see the module docstring)."""
    _save(models_dir / "diffusion_models" / high_noise, tiny_zoo.wan_t2v_state_dict(seed=1))
    _save(models_dir / "diffusion_models" / low_noise, tiny_zoo.wan_t2v_state_dict(seed=2))
    width = tiny_zoo.WAN_AS_DETECTED_TEXT_WIDTH
    _save(models_dir / "text_encoders" / text_encoder, {TEXT_WIDTH_KEY: torch.tensor([width])})
    _save(models_dir / "vae" / vae, wan_vae_state_dict())
