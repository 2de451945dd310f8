"""Adapter for separate text cross-attention in DiTs (Wan 2.x, …): image queries × text keys.

Installed through ``override.install``; the architecture table names the block's text
call (e.g. Wan: self-attention first, then text; Wan 2.1 image-to-video: self-attention,
CLIP-image tokens, then text), so self-attention and CLIP-image calls run untouched. Every
key of the text call is a text token (SPEC §1): without another override and with every
row guided, ``gag_attention`` computes the guided output from one shared score map;
otherwise the base output (a chained override's, or ComfyUI's backend) gets GAG's
correction G − D added on the guided rows. That combination, ``guided_text_attention``, serves
the UNet ``attn2`` adapter too: there, too, every key is a text token.
"""

import dataclasses

from ..gag_core import as_four_dims, gag_attention, gag_correction
from . import override
from .gate import mask_rows, merge_heads


def install(model_patcher, architecture, settings, selection, gate, observer=None) -> None:
    """Register the hooks and the override on ``model_patcher`` (a clone).

    ``observer`` (optional, see apply.py) hears about every guided or skipped text call."""
    override.install(model_patcher, architecture, selection, gate, observer, CrossAdapter(settings.guidance_kwargs()))


@dataclasses.dataclass(frozen=True)
class CrossAdapter:
    guidance: dict

    @staticmethod
    def confirms(call) -> bool:
        """Every key is one of the context's text tokens."""
        return call.heads_first[1].shape[-2] == call.text_len

    def guide(self, call, rows, stats):
        to_output = (lambda t: t) if call.heads_first_output else merge_heads
        return guided_text_attention(*call.heads_first, as_four_dims(call.mask), rows, stats, self.guidance,
                                     base=call.base, chained=call.chained, to_output=to_output)


def guided_text_attention(qh, kh, vh, mask, rows, stats, guidance: dict, *, base, chained: bool, to_output):
    """The output of a text cross-attention call (every key a text token) with GAG on ``rows``.

    qh, kh, vh: (B, H, N, d), heads first; mask: None or a 4-D mask for them; rows: batch slices
    to guide (whole cond chunks), None for all; stats: diagnostics or None; guidance: the
    keyword arguments of ``gag_attention``. base: () → the unguided output in the call's layout
    (a chained patch's, or ComfyUI's backend); chained: whether another patch makes that output;
    to_output: (B, H, Nq, d) → the call's layout. Without a chained patch and with every row
    guided, ``gag_attention`` computes the guided output from one shared score map; otherwise the
    base output gets GAG's correction G − D on the guided rows.
    """
    if not chained and rows is None:
        return to_output(gag_attention(qh, kh, vh, mask=mask, stats=stats, **guidance))
    out = base()
    if rows is None:
        return out + to_output(gag_correction(qh, kh, vh, mask=mask, stats=stats, **guidance)).to(out.dtype)
    out = out.clone()  # the base output may be another patch's tensor
    for part in rows:
        mask_part = mask_rows(mask, part, qh.shape[0])
        correction = gag_correction(qh[part], kh[part], vh[part], mask=mask_part, stats=stats, **guidance)
        out[part] += to_output(correction).to(out.dtype)
    return out
