"""The harness runs the real ComfyUI host: imports, a tiny SDXL-class UNet, the real KSampler."""

import dataclasses

import pytest
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


def test_tiny_configs_are_completed_from_the_hosts_config_class():
    """A field a later ComfyUI adds is filled only where the host's dataclass declares it; a
    required field nobody fills is named."""
    @dataclasses.dataclass
    class Params:
        width: int
        added_later: list
        with_default: int = 3

    assert tiny_models.for_host(Params, {"width": 1}, added_later=[2], not_on_this_host=5) == \
        {"width": 1, "added_later": [2]}
    assert tiny_models.for_host(Params, {"width": 1, "added_later": [7]}, added_later=[2])["added_later"] == [7]
    with pytest.raises(RuntimeError, match=r"Params also needs \['added_later'\]"):
        tiny_models.for_host(Params, {"width": 1})
