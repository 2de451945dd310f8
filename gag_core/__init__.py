"""Geometry-Aware Attention Guidance, framework-agnostic torch code (no ComfyUI import).

Public interface (SPEC §5): :func:`entmax`, :func:`guide`, :func:`gag_attention`,
:class:`GAGSettings`; plus the building blocks the ComfyUI adapters use.
"""

from .attention import (
    as_four_dims,
    dense_attention_with_logsumexp,
    gag_attention,
    gag_correction,
    gag_joint_attention,
    image_text_block,
    joint_token_slices,
)
from .alpha_entmax import entmax, set_compile
from .diagnostics import GuidanceStats
from .guidance import guidance_terms, guide
from .settings import GAGSettings

__all__ = [
    "GAGSettings",
    "GuidanceStats",
    "as_four_dims",
    "dense_attention_with_logsumexp",
    "entmax",
    "gag_attention",
    "gag_correction",
    "gag_joint_attention",
    "guidance_terms",
    "guide",
    "image_text_block",
    "joint_token_slices",
    "set_compile",
]
