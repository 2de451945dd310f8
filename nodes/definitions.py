"""What the nodes are, independent of ComfyUI's node API version: ids, widgets, logic.

``registration.py`` turns these into V3 ``io.ComfyNode`` classes (current hosts) or V1
classes (older hosts), so both APIs share one definition.
"""

import dataclasses
import json
from typing import Callable

from ..gag_core import GAGSettings
from ..gag_core.settings import RANGES, check_number
from .options import PERCENT, BlockSelection, NodeSettings

CATEGORY = "advanced/guidance"
SETTINGS_TYPE = "GAG_SETTINGS"
MODES = {"GAG": "gag", "PLADIS": "pladis"}
SEARCH_ALIASES = ("guidance", "attention guidance", "sparse attention", "geometry",
                  "geometry-aware attention guidance", "PLADIS", "entmax")
"""Extra words the node search finds the nodes by (front ends that read ``search_aliases``)."""
TAU_WIDGET_MIN = 0.01
"""The smallest τ the widget offers: τ's range (0, 1000] is open at 0."""


@dataclasses.dataclass(frozen=True)
class Widget:
    """One node input shown as a widget. kind: FLOAT, BOOLEAN, STRING or COMBO.

    name: the saved input name (workflows store it: never changes). label: what the front
    end shows instead, where it supports input display names (None: the name)."""

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
    label: str | None = None


def _ranged(name, default, step, label, tooltip, *, low=None):
    """A FLOAT widget whose bounds come from gag_core's range table (one source of truth)."""
    allowed = RANGES[name]
    return Widget(name, "FLOAT", default, tooltip, allowed.low if low is None else low, allowed.high, step,
                  label=label)


SETTINGS_WIDGETS = (
    _ranged("lam", 5.0, 0.1, "strength (λ)",
            "How hard each image token is pushed towards what the prompt's focused (sparse) text attention picks "
            "out. Higher: the image follows the prompt more closely, with more contrast and crisper detail; too high: "
            "harsh, over-cooked textures (lower max step τ then). 0: sparse attention alone, no push. Paper "
            "default 5."),
    _ranged("zeta", 0.0, 0.05, "orthogonal mix (ζ)",
            "How much of the push that points away from the sparse attention's direction is kept. 0 (paper "
            "default): only the aligned part, the steadiest images. Higher acts more like PLADIS: stronger, less "
            "controlled changes. 1 with the step limit off is exactly PLADIS with scale λ + 1."),
    _ranged("tau", 15.0, 0.5, "max step (τ)",
            "The longest step one image token may take before the strength multiplies it. Lower tames blown-out "
            "spots and artefacts at high strength; higher lets every token move freely. Used only while step "
            "limit is on.", low=TAU_WIDGET_MIN),
    Widget("cap", "BOOLEAN", True, "Limit each token's step to max step (τ). Off: no limit (with orthogonal mix 1 "
           "this is exactly PLADIS with scale λ + 1).", label_on="on", label_off="off", label="step limit"),
    _ranged("alpha", 1.5, 0.05, "sparsity (α)",
            "How few prompt tokens the sparse attention keeps. 1: as many as normal attention, so the image does "
            "not change at all. 1.5: paper default. 2: the fewest (sparsemax), the strongest effect for the same "
            "strength."),
    Widget("mode", "COMBO", "GAG", "GAG: the geometry-aware push set by strength, orthogonal mix and max step. "
           "PLADIS: the plain extrapolation D + s·(S − D) set by PLADIS scale; strength, orthogonal mix and the "
           "step limit are then ignored.", options=tuple(MODES), label="method"),
    _ranged("pladis_scale", 2.0, 0.1, "PLADIS scale (s)",
            "Strength of PLADIS mode: 0 = normal attention (image unchanged), 1 = sparse attention alone, 2 = "
            "PLADIS default; higher follows the prompt harder, then shows artefacts. Ignored in GAG mode."),
    Widget("start_percent", "FLOAT", 0.0, "Where in the schedule guidance starts (0 = first step). Starting later "
           "(e.g. 0.2) keeps the composition of the unguided image and guides only the details; before it, "
           "attention runs unchanged.", PERCENT.low, PERCENT.high, 0.01),
    Widget("end_percent", "FLOAT", 1.0, "Where guidance stops (1 = last step). Stopping early (e.g. 0.6) keeps its "
           "effect on composition and leaves the finest detail untouched.", PERCENT.low, PERCENT.high, 0.01),
    Widget("blocks", "STRING", "auto", "Which attention blocks are guided. auto: SD1.5/SDXL input and output "
           "blocks (the middle block gives messy images), DiT and video models every transformer block. Or block "
           "kinds with an optional index or range, separated by spaces: 'input output:0-2' (SD1.5/SDXL), "
           "'double:0-9 single' (FLUX, Chroma, AuraFlow, HiDream, HunyuanVideo), 'double:0-29' (models with one "
           "kind of block: Qwen-Image, SD3, Wan, Z-Image, Cosmos, Kandinsky 5, LTXV)."),
    Widget("cond_only", "BOOLEAN", False, "positive only: guide just the positive prompt's pass; the negative pass "
           "keeps its normal attention. No difference at CFG 1 (there is no negative pass).",
           label_on="positive only", label_off="positive + negative", label="apply to"),
    Widget("diagnostics", "BOOLEAN", False, "record: log per-step guidance statistics (‖Δ‖, parallel share, "
           "cos(Δ, S), share of tokens at the step limit) for the GAG Diagnostics Plot node; the image does not "
           "change. off: nothing is recorded, no cost.", label_on="record", label_off="off"),
)
WIDGETS_BY_NAME = {widget.name: widget for widget in SETTINGS_WIDGETS}


def settings_from_widgets(lam, zeta, tau, cap, alpha, mode, pladis_scale, start_percent, end_percent,
                          blocks, cond_only, diagnostics=False) -> NodeSettings:
    """Validate widget values into NodeSettings; errors name the input, its range or
    syntax, and the value (and the widget's label where it has one)."""
    try:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        check_number("tau", tau, RANGES["tau"])  # the widget's value, also while the cap is off
        guidance = GAGSettings(lam=lam, zeta=zeta, tau=tau if cap else None, alpha=alpha,
                               mode=MODES[mode], pladis_scale=pladis_scale)
        return NodeSettings(guidance=guidance, start_percent=start_percent, end_percent=end_percent,
                            blocks=BlockSelection.parse(blocks), cond_only=bool(cond_only),
                            diagnostics=bool(diagnostics))
    except ValueError as error:
        raise ValueError(_with_label(str(error))) from None


def _with_label(message: str) -> str:
    """Append the label of the widget a message starts with: "lam must be …" → "… [widget: strength (λ)]"."""
    widget = WIDGETS_BY_NAME.get(message.split(" ", 1)[0].rstrip(":"))
    return f"{message} [widget: {widget.label}]" if widget is not None and widget.label else message


_NOT_GIVEN = object()


def validate_settings_widgets(lam=_NOT_GIVEN, zeta=_NOT_GIVEN, tau=_NOT_GIVEN, alpha=_NOT_GIVEN, mode=_NOT_GIVEN,
                              pladis_scale=_NOT_GIVEN, start_percent=_NOT_GIVEN, end_percent=_NOT_GIVEN,
                              blocks=_NOT_GIVEN) -> bool | str:
    """Queue-time check of GAG Settings (the host's ``validate_inputs``): True, or the message
    of ``settings_from_widgets``.

    It takes the inputs the host does not check well enough itself (NaN passes its min/max
    test, ComfyUI 0.3.75 does not check a V3 node's options, and nothing reads ``blocks``);
    the host still converts and checks the booleans. An input not given (fed by a link: its
    value is not known before the run) is checked when the node runs.
    """
    given = dict(lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode, pladis_scale=pladis_scale,
                 start_percent=start_percent, end_percent=end_percent, blocks=blocks)
    defaults = {widget.name: widget.default for widget in SETTINGS_WIDGETS}
    known = {name: value for name, value in given.items() if value is not _NOT_GIVEN}
    try:
        settings_from_widgets(**{**defaults, **known})
    except ValueError as error:
        return str(error)
    return True


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
    validate: Callable | None = None
    """Queue-time check of the widget values: True or an error message (None: the host's checks only)."""
    search_aliases: tuple = ()


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
        "GAGSettings", "GAG Settings (GAG / PLADIS)",
        "Settings for Geometry-Aware Attention Guidance (GAG) and PLADIS; connect to Apply GAG.",
        SETTINGS_WIDGETS, (Socket("settings", SETTINGS_TYPE, "GAG settings for Apply GAG."),),
        lambda **widgets: (settings_from_widgets(**widgets),), validate=validate_settings_widgets,
        search_aliases=SEARCH_ALIASES),
    NodeSpec(
        "ApplyGAG", "Apply GAG Attention Guidance",
        "Patches the model's text attention (UNet and video cross-attention, or the image-to-text part of joint "
        "attention in MMDiT models) with Geometry-Aware Attention Guidance. Works on a copy; no second model pass.",
        (Socket("model", "MODEL", "The diffusion model to guide: SD1.5, SDXL, FLUX.1, FLUX.2, Chroma, Qwen-Image, "
                "SD3 / SD3.5, AuraFlow, HiDream, Lumina 2 / Z-Image, HunyuanVideo, Wan 2.1 / 2.2, Cosmos "
                "Predict2 / Anima, Kandinsky 5 or LTXV (see the README for each family's layout)."),
         Socket("settings", SETTINGS_TYPE, "Optional GAG Settings; the paper defaults (λ 5, ζ 0, τ 15, α 1.5) when "
                "not connected.", optional=True)),
        (Socket("model", "MODEL", "The model with GAG applied."),),
        _apply, search_aliases=SEARCH_ALIASES),
    NodeSpec(
        "GAGDiagnosticsPlot", "GAG Diagnostics Plot",
        "Plots the per-step guidance statistics recorded by Apply GAG (GAG Settings: diagnostics = record) during "
        "the latest sampling run: mean ‖Δ‖, parallel share, cos(Δ, S), fraction of tokens at the τ cap.",
        (Socket("model", "MODEL", "The MODEL output of Apply GAG (with diagnostics on)."),
         Socket("samples", "LATENT", "The sampler's output, so that the plot runs after sampling.")),
        (Socket("plot", "IMAGE", "The diagnostics chart."),
         Socket("data", "STRING", "The same numbers as JSON: one record per step and block kind.")),
        _plot, search_aliases=("guidance diagnostics", "attention guidance plot", "GAG plot")),
)
