"""Adapter for joint text-image attention (FLUX.1, FLUX.2, Chroma, Qwen-Image).

Two hooks, both ComfyUI public API, never forked model code:
- a ``DIFFUSION_MODEL`` wrapper records the text length (``context.shape[1]``) in the
  call's ``transformer_options``;
- an ``optimized_attention_override`` guides the selected joint blocks with
  ``gag_joint_attention``: fused SDPA kernels with log-sum-exp (masked ones with an
  additive bias; a query-chunked math fallback where none takes the input) for text queries and
  for image queries × image keys, and the image-query × text-key block computed
  explicitly and guided (SPEC §2, mass preserving). Tokens are text first in every
  supported model (see architectures.py).

With cond-only guidance on a batch that mixes cond and uncond rows, the dense joint output
of every row comes from one fused call and the guided rows (whole cond chunks, batch
slices) get ``gag_correction`` added.
An override already on the model is chained: it runs for every call GAG does not guide,
and on guided calls it produces the base output that GAG's correction is added to (the
log-sum-exp then costs one extra fused dense pass).
"""

import functools
import inspect

import comfy.patcher_extension

from ..gag_core import (as_four_dims, dense_attention_with_logsumexp, gag_correction, gag_joint_attention,
                        image_text_block)
from .gate import merge_heads, split_heads

TEXT_LEN_KEY = "gag_text_len"
WRAPPER_KEY = "gag_text_length"
OVERRIDE_KEY = "optimized_attention_override"


def install(model_patcher, settings, selection, gate, observer=None) -> None:
    """Register the wrapper and the override on ``model_patcher`` (a clone).

    ``observer`` (optional, see apply.py) hears about every call of a selected block."""
    model_patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, WRAPPER_KEY,
                                       record_text_length)
    options = model_patcher.model_options["transformer_options"].copy()
    options[OVERRIDE_KEY] = _make_override(settings.guidance_kwargs(), selection, gate,
                                           options.get(OVERRIDE_KEY), observer)
    model_patcher.model_options["transformer_options"] = options


@functools.lru_cache(maxsize=None)
def _forward_signature(function) -> inspect.Signature:
    return inspect.signature(function)


def record_text_length(executor, *args, **kwargs):
    """DIFFUSION_MODEL wrapper: store the text token count for the attention override."""
    bound = _forward_signature(executor.original.__func__).bind(executor.class_obj, *args, **kwargs)
    context = bound.arguments.get("context")
    options = bound.arguments.get("transformer_options")
    if context is not None and isinstance(options, dict):
        options[TEXT_LEN_KEY] = context.shape[1]
    return executor(*args, **kwargs)


def _make_override(guidance: dict, selection, gate, previous, observer):
    def base_attention(func, q, k, v, heads, mask, kwargs):
        if previous is not None:
            return previous(func, q, k, v, heads, mask=mask, **kwargs)
        return func(q, k, v, heads, mask=mask, **kwargs)

    def gag_joint_override(func, q, k, v, heads, mask=None, **kwargs):
        options = kwargs.get("transformer_options") or {}
        text_len = options.get(TEXT_LEN_KEY)
        if text_len is None or not selection.includes(options.get("block_type"), options.get("block_index", -1)):
            return base_attention(func, q, k, v, heads, mask, kwargs)
        qh, kh, vh = (q, k, v) if kwargs.get("skip_reshape", False) else (split_heads(t, heads) for t in (q, k, v))
        if not qh.shape[-2] == kh.shape[-2] > text_len > 0:  # not a joint text-image attention call
            return base_attention(func, q, k, v, heads, mask, kwargs)
        admitted = gate.admit(options, q.shape[0], observer)
        if admitted is None:
            return base_attention(func, q, k, v, heads, mask, kwargs)
        rows, stats = admitted
        mask = as_four_dims(mask)
        heads_first = kwargs.get("skip_output_reshape", False)
        if previous is None and rows is None:  # the common case: every row guided, no other override
            out = gag_joint_attention(qh, kh, vh, text_len=text_len, mask=mask, stats=stats, **guidance)
            return out if heads_first else merge_heads(out)
        if previous is None:
            out, lse = dense_attention_with_logsumexp(qh, kh, vh, mask)
            out = out if heads_first else merge_heads(out)
        else:  # the previous override makes the base output; its log-sum-exp needs our own dense pass
            out, lse = base_attention(func, q, k, v, heads, mask, kwargs).clone(), None  # clone: may alias inputs
        for part in (slice(None),) if rows is None else rows:
            q_part, k_part, v_part = qh[part], kh[part], vh[part]
            mask_part = mask[part] if mask is not None and mask.shape[0] == q.shape[0] else mask
            if lse is None:
                lse_part = dense_attention_with_logsumexp(q_part, k_part, v_part, mask_part)[1]
            else:
                lse_part = lse[part]
            correction = gag_correction(q_part[..., text_len:, :], k_part[..., :text_len, :],
                                        v_part[..., :text_len, :], mask=image_text_block(mask_part, text_len),
                                        joint_logsumexp=lse_part[..., text_len:], stats=stats, **guidance)
            _add_to_image_rows(out, correction, text_len, part, heads_first)
        return out

    return gag_joint_override


def _add_to_image_rows(out, correction, text_len, part, heads_first):
    """Add the (B', H, N_img, d) correction in place to the image-query rows of the batch
    slice ``part`` of ``out`` (a tensor this adapter owns), which is (B, H, N, d) when
    ``heads_first`` else (B, N, H·d)."""
    correction = (correction if heads_first else merge_heads(correction)).to(out.dtype)
    image = out[part, :, text_len:] if heads_first else out[part, text_len:]
    image += correction
