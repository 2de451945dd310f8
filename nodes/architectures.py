"""The one table of architecture facts: which host model classes get which adapter.

Joint-attention models (MMDiT) in ComfyUI 0.3.75 all concatenate text tokens first
(FLUX.1/FLUX.2 ``DoubleStreamBlock`` and the single-stream ``torch.cat((txt, img))``,
Qwen-Image ``torch.cat([txt, img], dim=2)``), and their ``_forward`` takes the text
embedding as ``context``: the joint adapter reads the text length from there.
"""

import dataclasses
import importlib

UNET_CROSS_ATTENTION = "unet_cross_attention"
JOINT_ATTENTION = "joint_attention"


@dataclasses.dataclass(frozen=True)
class Architecture:
    """name: for messages. flavour: which adapter. model_class: dotted path of the
    diffusion model class (``model.diffusion_model``). default_blocks: block kinds guided
    by ``blocks = auto``. block_lists: DiT block kind → attribute holding those blocks."""

    name: str
    flavour: str
    model_class: str
    default_blocks: tuple
    block_lists: tuple = ()


ARCHITECTURES = (
    Architecture("UNet (SD1.5, SD2, SDXL and distilled SDXL)", UNET_CROSS_ATTENTION,
                 "comfy.ldm.modules.diffusionmodules.openaimodel.UNetModel", ("input", "output")),
    Architecture("FLUX.1 / FLUX.2", JOINT_ATTENTION, "comfy.ldm.flux.model.Flux", ("double", "single"),
                 (("double", "double_blocks"), ("single", "single_blocks"))),
    Architecture("Chroma", JOINT_ATTENTION, "comfy.ldm.chroma.model.Chroma", ("double", "single"),
                 (("double", "double_blocks"), ("single", "single_blocks"))),
    Architecture("Qwen-Image", JOINT_ATTENTION, "comfy.ldm.qwen_image.model.QwenImageTransformer2DModel",
                 ("double",), (("double", "transformer_blocks"),)),
)


class UnsupportedModelError(ValueError):
    """Raised by Apply GAG for a model it cannot patch (never a silent no-op)."""


def _load_class(dotted: str):
    module_name, _, class_name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return None


def detect(diffusion_model) -> Architecture:
    """The table entry whose class the diffusion model is an instance of."""
    for architecture in ARCHITECTURES:
        cls = _load_class(architecture.model_class)
        if cls is not None and isinstance(diffusion_model, cls):
            return architecture
    supported = "; ".join(a.name for a in ARCHITECTURES)
    raise UnsupportedModelError(
        f"Apply GAG does not support {type(diffusion_model).__module__}.{type(diffusion_model).__name__}: "
        f"it needs text cross-attention or joint text-image attention reachable through ComfyUI's hooks. "
        f"Supported: {supported}.")
