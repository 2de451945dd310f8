"""The harness runs the real ComfyUI host: imports, a tiny SDXL-class UNet, the real KSampler."""

import torch

from devtools import tiny_models


def test_real_comfyui_imports(comfy):
    import comfy.model_management
    import comfy.samplers
    import comfy.sd  # noqa: F401  (needs the torchvision shim on CPU torch)
    import nodes
    import comfyui_version

    assert comfy.model_management.cpu_state == comfy.model_management.CPUState.CPU
    assert "KSampler" in nodes.NODE_CLASS_MAPPINGS
    assert comfyui_version.__version__


def test_tiny_sdxl_samples_two_steps(comfy):
    tiny = tiny_models.sdxl()
    assert type(tiny.patcher.model).__name__ == "SDXL"
    out = tiny_models.sample(tiny.patcher, tiny, steps=2, cfg=4.0)
    assert out.shape == (1, 4, 16, 16)
    assert bool(torch.isfinite(out).all())
    assert out.abs().sum() > 0
