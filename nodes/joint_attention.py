"""Adapter for joint text-image attention (MMDiT: FLUX.1, FLUX.2, Chroma, Qwen-Image, …).

Installed through ``override.install`` (an ``optimized_attention_override`` plus the hooks
that tell it which call carries text and how many text tokens it has). A guided call uses
``gag_joint_attention``: fused SDPA kernels with log-sum-exp (a query-chunked math fallback
where none takes the input, e.g. masked calls on CUDA) for text queries and for image
queries × image keys, and the image-query × text-key block computed explicitly and guided
(SPEC §2, mass preserving).

The text tokens form one contiguous run, first or last in the sequence (the table's
``text_position``); gag_core takes either layout as it is, through token slices (no copy).

With cond-only guidance on a batch that mixes cond and uncond rows, the dense joint output
of every row comes from one fused call and the guided rows (whole cond chunks, batch
slices) get ``gag_correction`` added.
An override already on the model is chained: on guided calls it produces the base output
that GAG's correction is added to (the log-sum-exp then costs one extra fused dense pass).
"""

import dataclasses

from ..gag_core import (
    as_four_dims,
    dense_attention_with_logsumexp,
    gag_correction,
    gag_joint_attention,
    image_text_block,
    joint_token_slices,
)
from . import override
from .architectures import TEXT_LAST
from .gate import mask_rows, merge_heads


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
        if not call.chained and rows is None:  # the common case: every row guided, no other override
            out = gag_joint_attention(qh, kh, vh, text_len=text_len, text_last=self.text_last, mask=mask, stats=stats,
                                      **self.guidance)
            return out if heads_first else merge_heads(out)
        if call.chained:  # the previous override makes the base output; its log-sum-exp needs our own dense pass
            out, lse = call.base().clone(), None  # clone: it may alias the inputs
        else:
            out, lse = dense_attention_with_logsumexp(qh, kh, vh, mask)
            out = out if heads_first else merge_heads(out)
        text, image = joint_token_slices(text_len, self.text_last)
        for part in (slice(None),) if rows is None else rows:
            q_part, k_part, v_part = qh[part], kh[part], vh[part]
            mask_part = mask_rows(mask, part, qh.shape[0])
            lse_part = dense_attention_with_logsumexp(q_part, k_part, v_part, mask_part)[1] if lse is None \
                else lse[part]
            correction = gag_correction(q_part[..., image, :], k_part[..., text, :], v_part[..., text, :],
                                        mask=image_text_block(mask_part, text_len, self.text_last),
                                        joint_logsumexp=lse_part[..., image], stats=stats, **self.guidance)
            _add_to_image_rows(out, correction, image, part, heads_first)
        return out


def _add_to_image_rows(out, correction, image, part, heads_first):
    """Add the (B', H, N_img, d) correction in place to the image-query rows ``image`` of the
    batch slice ``part`` of ``out`` (a tensor this adapter owns), which is (B, H, N, d) when
    ``heads_first`` else (B, N, H·d)."""
    correction = (correction if heads_first else merge_heads(correction)).to(out.dtype)
    target = out[part, :, image] if heads_first else out[part, image]
    target += correction
