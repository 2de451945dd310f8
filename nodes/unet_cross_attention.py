"""Adapter for UNet cross-attention (SD1.5, SD2, SDXL, distilled SDXL): ``attn2`` replacements.

One replacement per selected transformer block, keyed ``(block, number, transformer_index)``
as ComfyUI's ``BasicTransformerBlock`` looks them up. A replacement already on the model
(e.g. IPAdapter's, keyed with or without the transformer index) or another pack's
``optimized_attention_override`` is chained: it still produces the base output and GAG
adds its correction G − D on top; so does cond-only guidance (the base output serves the
unguided rows). Otherwise GAG returns its guided output directly (one shared score map,
no second attention pass).
"""

from comfy.ldm.modules.attention import SpatialTransformer, optimized_attention

from .cross_attention import guided_text_attention
from .gate import merge_heads, split_heads
from .override import OVERRIDE_KEY

UNET_BLOCK_LISTS = (("input", "input_blocks"), ("middle", None), ("output", "output_blocks"))


def cross_attention_layers(diffusion_model):
    """Yield ``(block, number, transformer_index)`` for every text cross-attention layer."""
    for kind, attribute in UNET_BLOCK_LISTS:
        blocks = [diffusion_model.middle_block] if attribute is None else getattr(diffusion_model, attribute)
        for number, block in enumerate(blocks):
            for layer in block:
                if isinstance(layer, SpatialTransformer):
                    for index, transformer in enumerate(layer.transformer_blocks):
                        if getattr(transformer, "attn2", None) is not None:
                            yield kind, number, index


def install(model_patcher, settings, selection, gate, observer=None) -> None:
    """Register the replacements on ``model_patcher`` (a clone).

    ``observer`` (optional, see apply.py) hears about every call of a selected layer."""
    existing = model_patcher.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {})
    guidance = settings.guidance_kwargs()
    for kind, number, index in cross_attention_layers(model_patcher.model.diffusion_model):
        if selection.includes(kind, number):
            previous = existing.get((kind, number, index), existing.get((kind, number)))
            model_patcher.set_model_attn2_replace(_make_replacement(guidance, gate, previous, observer),
                                                  kind, number, index)


def _make_replacement(guidance: dict, gate, previous, observer):
    def base_attention(q, k, v, extra_options):
        if previous is not None:
            return previous(q, k, v, extra_options)
        precision = extra_options.get("attn_precision")
        return optimized_attention(q, k, v, extra_options["n_heads"], attn_precision=precision,
                                   transformer_options=extra_options)

    def gag_attn2(q, k, v, extra_options, **kwargs):
        admitted = gate.admit(extra_options, q.shape[0], observer)
        if admitted is None:
            return base_attention(q, k, v, extra_options)
        rows, stats = admitted
        heads = (split_heads(t, extra_options["n_heads"]) for t in (q, k, v))
        return guided_text_attention(*heads, None, rows, stats, guidance,
                                     base=lambda: base_attention(q, k, v, extra_options),
                                     chained=previous is not None or OVERRIDE_KEY in extra_options,
                                     to_output=merge_heads)

    return gag_attn2
