"""Apply GAG to a ModelPatcher: detect the architecture, clone, install the adapter."""

import logging

import torch

from ..gag_core import backends
from . import cross_attention, diagnostics, joint_attention, unet_cross_attention
from .architectures import CROSS_ATTENTION, JOINT_ATTENTION, UNET_CROSS_ATTENTION, detect
from .gate import GuidanceGate
from .options import NodeSettings, blocks_text

log = logging.getLogger(__name__)


def available_blocks(architecture, diffusion_model) -> dict:
    """Block kind → sorted indices that have guidable attention in this model."""
    if architecture.flavour == UNET_CROSS_ATTENTION:
        found = {}
        for kind, number, _ in unet_cross_attention.cross_attention_layers(diffusion_model):
            found.setdefault(kind, set()).add(number)
        return {kind: sorted(numbers) for kind, numbers in found.items()}
    return {kind: list(range(len(getattr(diffusion_model, attribute))))
            for kind, attribute in architecture.block_lists}


def apply_gag(model_patcher, settings: NodeSettings | None = None, *, observer=None):
    """Return a clone of ``model_patcher`` with GAG installed; the input is never modified.

    Raises UnsupportedModelError for models without a supported attention flavour and
    ValueError when ``settings.blocks`` selects no attention layer of this model.

    ``observer`` hears about every call of a selected attention layer:
    ``observer.guided(transformer_options)`` when GAG runs (it may return a
    ``GuidanceStats`` to fill, or None) and ``observer.skipped(transformer_options)``
    outside the step window. With ``settings.diagnostics`` a ``GAGTrace`` is the
    observer (see diagnostics.py); without either, no observer code runs.
    """
    settings = settings or NodeSettings()
    diffusion_model = model_patcher.model.diffusion_model
    architecture = detect(diffusion_model)
    selection = settings.blocks.resolve(architecture.default_blocks)
    available = available_blocks(architecture, diffusion_model)
    if not any(selection.includes(kind, index) for kind, indices in available.items() for index in indices):
        raise ValueError(f"blocks '{settings.blocks.text()}' selects no attention layer of {architecture.name}; "
                         f"it has '{blocks_text(available) or 'none'}': write 'auto' or some of these")

    patched = model_patcher.clone()
    gate = GuidanceGate.for_model(patched, settings.start_percent, settings.end_percent, settings.cond_only)
    if settings.diagnostics:
        if observer is not None:
            raise ValueError("apply_gag: pass either an observer or settings with diagnostics, not both")
        observer = diagnostics.install(patched)
    if architecture.flavour == UNET_CROSS_ATTENTION:
        unet_cross_attention.install(patched, settings.guidance, selection, gate, observer)
    else:
        adapter = {CROSS_ATTENTION: cross_attention, JOINT_ATTENTION: joint_attention}[architecture.flavour]
        adapter.install(patched, architecture, settings.guidance, selection, gate, observer)
    log.info("GAG: patched %s (%s blocks: %s)", architecture.name, architecture.flavour, " ".join(selection.kinds()))
    _log_backend(patched, architecture.name, settings.guidance.alpha)
    return patched


def _log_backend(model_patcher, name: str, alpha: float) -> None:
    """Say once per Apply GAG which attention backend the model's guided layers will run and why."""
    model = model_patcher.model
    dtype = getattr(model, "manual_cast_dtype", None) or model.get_dtype()
    device = torch.device(model_patcher.load_device)
    try:
        backend, reason = backends.decide("auto", device.type, dtype, alpha)
    except ValueError as error:  # GAG_BACKEND forces a backend that cannot run here: sampling will say so
        log.warning("GAG: %s on %s: %s", name, device, error)
        return
    log.info("GAG: %s on %s (%s) runs the %s attention backend (%s)", name, device, dtype, backend, reason)
