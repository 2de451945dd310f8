"""Adapter for joint text-image attention (MMDiT: FLUX.1, FLUX.2, Chroma, Qwen-Image, …).

Installed through ``override.install`` (an ``optimized_attention_override`` plus the hooks
that tell it which call carries text and how many text tokens it has). A guided call uses
``gag_joint_attention``: fused SDPA kernels with log-sum-exp (a query-chunked math fallback
where none takes the input, e.g. masked calls on CUDA) for text queries and for image
queries × image keys, and the image-query × text-key block computed explicitly and guided
(SPEC §2, mass preserving).

The text tokens form one contiguous run, first or last in the sequence (the table's
``text_position``). Text-last calls are rotated to text-first and back: attention is
equivariant under reordering queries together with keys, and the copy costs O(N·d)
against the call's O(N²·d).

With cond-only guidance on a batch that mixes cond and uncond rows, the dense joint output
of every row comes from one fused call and the guided rows (whole cond chunks, batch
slices) get ``gag_correction`` added.
An override already on the model is chained: on guided calls it produces the base output
that GAG's correction is added to (the log-sum-exp then costs one extra fused dense pass).
"""

import dataclasses

import torch

from ..gag_core import (
    as_four_dims,
    dense_attention_with_logsumexp,
    gag_correction,
    gag_joint_attention,
    image_text_block,
)
from . import override
from .architectures import TEXT_LAST
from .gate import merge_heads


def install(model_patcher, architecture, settings, selection, gate, observer=None) -> None:
    """Register the hooks and the override on ``model_patcher`` (a clone).

    ``observer`` (optional, see apply.py) hears about every guided or skipped text call."""
    adapter = JointAdapter(settings.guidance_kwargs(), architecture.text_position == TEXT_LAST)
    override.install(model_patcher, architecture, selection, gate, observer, adapter)


@dataclasses.dataclass(frozen=True)
class JointAdapter:
    guidance: dict
    text_last: bool

    @staticmethod
    def confirms(call) -> bool:
        """A joint call: as many queries as keys, text and image tokens both present."""
        qh, kh, _ = call.heads_first
        return qh.shape[-2] == kh.shape[-2] > call.text_len > 0

    def guide(self, call, rows, stats):
        text_len, heads_first = call.text_len, call.heads_first_output
        qh, kh, vh = call.heads_first
        mask = as_four_dims(call.mask)
        if self.text_last:
            qh, kh, vh = (_text_to_front(t, text_len, -2) for t in (qh, kh, vh))
            mask = None if mask is None else _text_to_front(_text_to_front(mask, text_len, -1), text_len, -2)
        if not call.chained and rows is None:  # the common case: every row guided, no other override
            out = gag_joint_attention(qh, kh, vh, text_len=text_len, mask=mask, stats=stats, **self.guidance)
            out = _text_to_back(out, text_len, -2) if self.text_last else out
            return out if heads_first else merge_heads(out)
        if call.chained:  # the previous override makes the base output; its log-sum-exp needs our own dense pass
            out, lse = call.base().clone(), None  # clone: it may alias the inputs
        else:
            out, lse = dense_attention_with_logsumexp(qh, kh, vh, mask)
            out = _text_to_back(out, text_len, -2) if self.text_last else out
            out = out if heads_first else merge_heads(out)
        image = slice(None, -text_len) if self.text_last else slice(text_len, None)
        for part in (slice(None),) if rows is None else rows:
            q_part, k_part, v_part = qh[part], kh[part], vh[part]
            mask_part = mask[part] if mask is not None and mask.shape[0] == qh.shape[0] else mask
            lse_part = dense_attention_with_logsumexp(q_part, k_part, v_part, mask_part)[1] if lse is None \
                else lse[part]
            correction = gag_correction(q_part[..., text_len:, :], k_part[..., :text_len, :],
                                        v_part[..., :text_len, :], mask=image_text_block(mask_part, text_len),
                                        joint_logsumexp=lse_part[..., text_len:], stats=stats, **self.guidance)
            _add_to_image_rows(out, correction, image, part, heads_first)
        return out


def _text_to_front(x: torch.Tensor, text_len: int, dim: int) -> torch.Tensor:
    """Move the last ``text_len`` entries along ``dim`` to the front (a size-1 dim stays)."""
    if x.shape[dim] == 1:
        return x
    return torch.cat((x.narrow(dim, x.shape[dim] - text_len, text_len), x.narrow(dim, 0, x.shape[dim] - text_len)),
                     dim)


def _text_to_back(x: torch.Tensor, text_len: int, dim: int) -> torch.Tensor:
    """Inverse of ``_text_to_front``."""
    return torch.cat((x.narrow(dim, text_len, x.shape[dim] - text_len), x.narrow(dim, 0, text_len)), dim)


def _add_to_image_rows(out, correction, image, part, heads_first):
    """Add the (B', H, N_img, d) correction in place to the image-query rows ``image`` of the
    batch slice ``part`` of ``out`` (a tensor this adapter owns), which is (B, H, N, d) when
    ``heads_first`` else (B, N, H·d)."""
    correction = (correction if heads_first else merge_heads(correction)).to(out.dtype)
    target = out[part, :, image] if heads_first else out[part, image]
    target += correction
