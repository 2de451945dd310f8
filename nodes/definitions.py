"""What the nodes are, independent of ComfyUI's node API version: ids, widgets, logic.

``registration.py`` turns these into V3 ``io.ComfyNode`` classes (current hosts) or V1
classes (older hosts), so both APIs share one definition.
"""

import dataclasses
import json
from typing import Callable

from ..gag_core import GAGSettings
from .options import BlockSelection, NodeSettings

CATEGORY = "advanced/guidance"
SETTINGS_TYPE = "GAG_SETTINGS"
MODES = {"GAG": "gag", "PLADIS": "pladis"}


@dataclasses.dataclass(frozen=True)
class Widget:
    """One node input shown as a widget. kind: FLOAT, BOOLEAN, STRING or COMBO."""

    name: str
    kind: str
    default: object
    tooltip: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: tuple = ()
    label_on: str | None = None
    label_off: str | None = None


SETTINGS_WIDGETS = (
    Widget("lam", "FLOAT", 5.0, "λ, guidance strength: how far the output moves from the sparse retrieval "
           "along the (capped) update. 0 returns the plain sparse retrieval. Paper default 5.", 0.0, 50.0, 0.1),
    Widget("zeta", "FLOAT", 0.0, "ζ, weight of the orthogonal part of the sparse−dense difference. 0 keeps only "
           "the part parallel to the sparse retrieval (paper default); 1 with the cap off equals PLADIS with "
           "scale λ+1.", 0.0, 1.0, 0.05),
    Widget("tau", "FLOAT", 15.0, "τ, cap on the norm of the update per token before λ (APG-style). Lower values "
           "tame artefacts at high λ. Ignored when cap is off.", 0.01, 1000.0, 0.5),
    Widget("cap", "BOOLEAN", True, "Whether the τ norm cap is applied.", label_on="on", label_off="off"),
    Widget("alpha", "FLOAT", 1.5, "α of the sparse map (α-entmax): 1 = softmax (no effect), 1.5 = paper default, "
           "2 = sparsemax (sparsest).", 1.0, 2.0, 0.05),
    Widget("mode", "COMBO", "GAG", "GAG: geometry-aware update (λ, ζ, τ). PLADIS: plain extrapolation "
           "D + s·(S − D) with the PLADIS scale.", options=tuple(MODES)),
    Widget("pladis_scale", "FLOAT", 2.0, "s of PLADIS mode (only used when mode is PLADIS).", 0.0, 20.0, 0.1),
    Widget("start_percent", "FLOAT", 0.0, "Start of the step window, as a fraction of the schedule "
           "(0 = first step). Outside the window the original attention runs.", 0.0, 1.0, 0.01),
    Widget("end_percent", "FLOAT", 1.0, "End of the step window (1 = last step).", 0.0, 1.0, 0.01),
    Widget("blocks", "STRING", "auto", "Which attention blocks to guide. 'auto': UNet input+output blocks (middle "
           "off), DiT all joint blocks. Or kinds input/middle/output (UNet), double/single (DiT) with optional "
           "index ranges, e.g. 'input output:0-2' or 'double:0-9 single'."),
    Widget("cond_only", "BOOLEAN", False, "Guide only the conditional (positive) batch; the negative keeps the "
           "original attention.", label_on="cond only", label_off="cond + uncond"),
    Widget("diagnostics", "BOOLEAN", False, "Record per-step guidance statistics (‖Δ‖, parallel share, cos(Δ, S), "
           "cap hits) for the GAG Diagnostics Plot node. Off: no recording code runs.", label_on="record",
           label_off="off"),
)


def settings_from_widgets(lam, zeta, tau, cap, alpha, mode, pladis_scale, start_percent, end_percent,
                          blocks, cond_only, diagnostics=False) -> NodeSettings:
    """Validate widget values into NodeSettings; errors name the input and its range."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    guidance = GAGSettings(lam=lam, zeta=zeta, tau=tau if cap else None, alpha=alpha,
                           mode=MODES[mode], pladis_scale=pladis_scale)
    return NodeSettings(guidance=guidance, start_percent=start_percent, end_percent=end_percent,
                        blocks=BlockSelection.parse(blocks), cond_only=bool(cond_only),
                        diagnostics=bool(diagnostics))


@dataclasses.dataclass(frozen=True)
class Socket:
    """A typed connection (input or output): MODEL, LATENT, IMAGE, STRING or GAG_SETTINGS."""

    name: str
    type: str
    tooltip: str
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node: ``run(**inputs)`` returns the outputs as a tuple."""

    node_id: str
    display_name: str
    description: str
    inputs: tuple
    outputs: tuple
    run: Callable
    category: str = CATEGORY


def _apply(model, settings=None):
    from .apply import apply_gag

    return (apply_gag(model, settings),)


def _plot(model, samples):
    from .diagnostics import trace_of
    from .diagnostics_plot import render, to_image_tensor

    trace = trace_of(model)
    if trace is None:
        raise ValueError("model: connect the MODEL output of an Apply GAG node whose GAG Settings have "
                         "diagnostics = record")
    text = trace.to_json()
    return to_image_tensor(render(json.loads(text))), text


NODES = (
    NodeSpec(
        "GAGSettings", "GAG Settings",
        "Settings for Geometry-Aware Attention Guidance (GAG) and PLADIS; connect to Apply GAG.",
        SETTINGS_WIDGETS, (Socket("settings", SETTINGS_TYPE, "GAG settings for Apply GAG."),),
        lambda **widgets: (settings_from_widgets(**widgets),)),
    NodeSpec(
        "ApplyGAG", "Apply GAG",
        "Patches the model's text cross-attention (UNet) or joint text-image attention (FLUX, Qwen-Image) with "
        "Geometry-Aware Attention Guidance. Works on a copy; no second model pass.",
        (Socket("model", "MODEL", "The diffusion model to guide (SD1.5, SDXL, FLUX.1, FLUX.2, Chroma, Qwen-Image)."),
         Socket("settings", SETTINGS_TYPE, "Optional GAG Settings; the paper defaults (λ 5, ζ 0, τ 15, α 1.5) when "
                "not connected.", optional=True)),
        (Socket("model", "MODEL", "The model with GAG applied."),),
        _apply),
    NodeSpec(
        "GAGDiagnosticsPlot", "GAG Diagnostics Plot",
        "Plots the per-step guidance statistics recorded by Apply GAG (GAG Settings: diagnostics = record) during "
        "the latest sampling run: mean ‖Δ‖, parallel share, cos(Δ, S), fraction of tokens at the τ cap.",
        (Socket("model", "MODEL", "The MODEL output of Apply GAG (with diagnostics on)."),
         Socket("samples", "LATENT", "The sampler's output, so that the plot runs after sampling.")),
        (Socket("plot", "IMAGE", "The diagnostics chart."),
         Socket("data", "STRING", "The same numbers as JSON: one record per step and block kind.")),
        _plot),
)
