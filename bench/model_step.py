"""``python -m bench.model_step``: what GAG costs in whole sampling steps of real model shapes.

Builds models from ComfyUI's own classes with random weights (std 1/√fan-in, seeded, as
``devtools/tiny_models.py`` builds the test models):
- ``sdxl``: SDXL's real UNet configuration (2.6 B parameters), CFG 5 (batch 2), 77 text
  tokens;
- ``flux``: FLUX.1's width, heads, RoPE and 512 text tokens, with 1 double and 2 single
  blocks instead of 19 and 38, no CFG (guidance-distilled, batch 1). Each block costs what
  it costs in FLUX.1, so the overhead per block is the full model's; the embedding and
  final layers weigh a little more here than there.
Each is timed over one step of ComfyUI's KSampler (``nodes.common_ksampler``), with and
without Apply GAG at its defaults (every cross-attention or joint block, α = 1.5), in
alternation after a warm-up; prints the medians and the overhead. ``--backends auto,torch``
times the GAG model once per gag_core backend (through ``GAG_BACKEND``); ``--profile DIR``
also writes a ``torch.profiler`` summary of one step of each variant to DIR.

The defaults suit this project's CPU (512² images, 2 threads, a few minutes, ~11 GiB of
memory for SDXL). On a GPU: ``--device cuda --dtype bfloat16 --size 1024 --backends
auto,torch`` (or ``python -m bench.gpu_report``).
"""

import argparse
import importlib
import os
import statistics
import time
from unittest import mock

import torch

from devtools import comfy_host, tiny_models

SDXL_UNET = {
    "use_checkpoint": False, "image_size": 32, "use_spatial_transformer": True, "legacy": False,
    "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4, "out_channels": 4,
    "model_channels": 320, "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "transformer_depth_middle": 10, "use_linear_in_transformer": True, "context_dim": 2048,
    "num_head_channels": 64, "use_temporal_attention": False, "use_temporal_resblock": False,
}
FLUX_SHAPED = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768, "context_in_dim": 4096,
    "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 1, "depth_single_blocks": 2,
    "axes_dim": [16, 56, 56], "theta": 10000, "patch_size": 2, "qkv_bias": True, "guidance_embed": True,
}


def build(name: str, size: int, device: torch.device, dtype: torch.dtype):
    """(ModelPatcher, positive, negative, latent, cfg) for one model at ``size``² pixels."""
    import comfy.model_base
    import comfy.supported_models

    generator = torch.Generator().manual_seed(0)

    def text(tokens, channels, extra):
        return [[torch.randn(1, tokens, channels, generator=generator), dict(extra)]]

    if name == "sdxl":
        config, model_class = comfy.supported_models.SDXL(dict(SDXL_UNET)), comfy.model_base.SDXL
        cfg, channels = 5.0, 4
        extra = {"pooled_output": torch.randn(1, 1280, generator=generator), "width": size, "height": size}
        positive, negative = text(77, 2048, extra), text(77, 2048, extra)
    else:
        config, model_class = comfy.supported_models.Flux(tiny_models.flux_config(FLUX_SHAPED)), comfy.model_base.Flux
        cfg, channels = 1.0, 16
        extra = {"pooled_output": torch.randn(1, 768, generator=generator), "guidance": 3.5}
        positive, negative = text(512, 4096, extra), text(512, 4096, extra)
    patcher = tiny_models.random_weight_patcher(config, model_class, dtype, load_device=device)
    latent = torch.zeros(1, channels, size // 8, size // 8)
    return patcher, positive, negative, latent, cfg


def gag_backend(backend: str | None):
    """A context with ``GAG_BACKEND`` set to ``backend`` (untouched for None)."""
    return mock.patch.dict(os.environ, {} if backend is None else {"GAG_BACKEND": backend})


def sampler_step(patcher, positive, negative, latent, cfg):
    """One KSampler step (euler, simple schedule); returns the sampled latent."""
    import nodes

    return nodes.common_ksampler(patcher, 0, 1, cfg, "euler", "simple", positive, negative,
                                 {"samples": latent})[0]["samples"]


def time_steps(variants: dict, positive, negative, latent, cfg, repeats: int) -> tuple[dict, dict]:
    """Median seconds of one KSampler step for each variant, name → (ModelPatcher, gag_core
    backend or None), measured in alternation, and the latent each one sampled."""
    def step(name):
        patcher, backend = variants[name]
        with gag_backend(backend):
            result = sampler_step(patcher, positive, negative, latent, cfg)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return result

    samples = {name: step(name) for name in variants}  # also the warm-up
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name in variants:
            begin = time.perf_counter()
            step(name)
            times[name].append(time.perf_counter() - begin)
    return {name: statistics.median(values) for name, values in times.items()}, samples


def write_profile(path: str, variant, positive, negative, latent, cfg) -> None:
    """A ``torch.profiler`` summary (ops by total device time, or CPU time without CUDA) of one
    KSampler step of ``variant`` (ModelPatcher, backend), written to ``path``."""
    from torch.profiler import ProfilerActivity, profile

    patcher, backend = variant
    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with gag_backend(backend), profile(activities=activities) as profiler:
        sampler_step(patcher, positive, negative, latent, cfg)
        if cuda:
            torch.cuda.synchronize()
    table = profiler.key_averages().table(sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=40)
    with open(path, "w") as file:
        file.write(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sdxl,flux", help="comma-separated: sdxl, flux")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="auto", help="comma-separated gag_core backends: auto, torch, triton")
    parser.add_argument("--profile", metavar="DIR", help="write a torch.profiler summary of one step of each variant")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    comfy_host.bootstrap(cpu=args.device == "cpu")
    import comfy.utils

    comfy.utils.set_progress_bar_enabled(False)
    comfy_host.load_pack()
    apply_gag = importlib.import_module(f"{comfy_host.PACK_MODULE_NAME}.nodes.apply").apply_gag
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {args.device}, {args.dtype}, {torch.get_num_threads()} threads, "
          f"{args.size}² images, median of {args.repeats} steps")
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    for name in args.models.split(","):
        patcher, positive, negative, latent, cfg = build(name, args.size, device, dtype)
        guided = apply_gag(patcher)
        variants = {"plain": (patcher, None)}
        variants.update({f"GAG ({backend})": (guided, backend) for backend in args.backends.split(",")})
        with torch.inference_mode():
            timing, samples = time_steps(variants, positive, negative, latent, cfg, args.repeats)
            for variant in variants if args.profile else ():
                label = variant.lower().replace(" ", "_").replace("(", "").replace(")", "")
                write_profile(os.path.join(args.profile, f"profile_{name}_{label}.txt"), variants[variant],
                              positive, negative, latent, cfg)
        for variant in list(variants)[1:]:
            change = ((samples[variant] - samples["plain"]).abs().max() / samples["plain"].abs().max()).item()
            print(f"{name:<5} step plain {timing['plain']:7.3f} s  with {variant} {timing[variant]:7.3f} s  "
                  f"overhead {100 * (timing[variant] / timing['plain'] - 1):+5.1f} %  "
                  f"(GAG changed the latent by {change:.1e} of its scale)", flush=True)
        del patcher, guided, variants


if __name__ == "__main__":
    main()
