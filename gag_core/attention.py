"""GAG attention: one score map shared by the dense (softmax) and sparse (α-entmax) maps.

Shapes follow PyTorch's scaled_dot_product_attention: q (B, H, Nq, d), k and v
(B, H, Nk, d); scores use the scale 1/√d. Masks broadcast to (B, H, Nq, Nk) and are
either bool (True = keep) or additive float. Probability maps and retrievals are computed
in float32 (float64 input stays float64); results come back in the dtype of q.
"""

from typing import NamedTuple

import torch

from .alpha_entmax import compute_dtype, entmax
from .guidance import guide


class TextRetrievals(NamedTuple):
    """Dense and sparse retrievals over one key set, in the compute dtype.

    dense, sparse: (B, H, Nq, d). logsumexp: (B, H, Nq, 1), the log-normaliser of the
    dense map over these keys (needed to weigh them inside a larger joint attention).
    """

    dense: torch.Tensor
    sparse: torch.Tensor
    logsumexp: torch.Tensor


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A bool keep-mask as 0 / −inf in ``dtype``; a float mask cast to ``dtype``."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    return mask.to(dtype)


def attention_scores(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled scores q kᵀ / √d (+ mask) in the compute dtype, shaped (B, H, Nq, Nk)."""
    dtype = compute_dtype(q.dtype)
    scale = q.shape[-1] ** -0.5
    scores = torch.matmul(q.to(dtype), k.to(dtype).transpose(-1, -2))
    scores.mul_(scale)
    if mask is not None:
        scores = scores + additive_mask(mask, dtype)
    return scores


def retrieve_dense_and_sparse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, alpha: float,
                              mask: torch.Tensor | None = None) -> TextRetrievals:
    """Softmax and α-entmax retrievals from one shared score map."""
    scores = attention_scores(q, k, mask)
    logsumexp = scores.logsumexp(-1, keepdim=True)
    # rows with every key masked have logsumexp −inf: their probabilities are all 0
    dense_probs = (scores - torch.where(torch.isfinite(logsumexp), logsumexp, 0.0)).exp_()
    sparse_probs = entmax(scores, alpha)
    values = v.to(scores.dtype)
    dense = torch.matmul(dense_probs, values)
    sparse = torch.matmul(sparse_probs, values)
    return TextRetrievals(dense, sparse, logsumexp)


def gag_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, lam: float, zeta: float,
                  tau: float | None, alpha: float, mode: str = "gag", pladis_scale: float = 2.0,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Guided cross-attention output (B, H, Nq, d) in q's dtype (SPEC §1)."""
    r = retrieve_dense_and_sparse(q, k, v, alpha=alpha, mask=mask)
    out = guide(r.dense, r.sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)
    return out.to(q.dtype)


def gag_correction(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, lam: float, zeta: float,
                   tau: float | None, alpha: float, mode: str = "gag", pladis_scale: float = 2.0,
                   mask: torch.Tensor | None = None,
                   joint_logsumexp: torch.Tensor | None = None) -> torch.Tensor:
    """What GAG adds to the dense attention output: m · (G − D), (B, H, Nq, d), compute dtype.

    Without ``joint_logsumexp`` the keys are the whole attention and m = 1, so
    ``dense_output + correction`` equals :func:`gag_attention`. With it (shaped
    (B, H, Nq), the log-normaliser of a larger joint attention these keys are part of),
    m = exp(logsumexp_keys − joint_logsumexp) is the dense mass the queries put on these
    keys (SPEC §2, mass preserving).
    """
    r = retrieve_dense_and_sparse(q, k, v, alpha=alpha, mask=mask)
    guided = guide(r.dense, r.sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)
    correction = guided - r.dense
    if joint_logsumexp is not None:
        mass = (r.logsumexp - joint_logsumexp.unsqueeze(-1).to(r.logsumexp.dtype)).exp_()
        correction = correction * mass
    return correction


def dense_attention_with_logsumexp(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                   mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention (B, H, Nq, d) in q's dtype and its log-normaliser (B, H, Nq) in float32.

    Uses PyTorch's fused kernels that return the log-sum-exp (CPU flash attention, CUDA
    memory-efficient attention without a mask) so that no (Nq × Nk) matrix is built in
    Python; other devices and masked CUDA calls use a query-chunked math fallback.
    """
    bias = additive_mask(mask, q.dtype)
    if q.device.type == "cpu" and q.dtype in (torch.float32, torch.bfloat16, torch.float16):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias)
        return out, lse
    if q.device.type == "cuda" and bias is None:
        out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True)
        return out, lse[..., : q.shape[-2]].float()
    return _chunked_attention_with_logsumexp(q, k, v, bias)


def _chunked_attention_with_logsumexp(q, k, v, bias, chunk: int = 1024):
    outs, lses = [], []
    for start in range(0, q.shape[-2], chunk):
        q_chunk = q[..., start:start + chunk, :]
        chunk_bias = None
        if bias is not None:
            chunk_bias = bias if bias.shape[-2] == 1 else bias[..., start:start + chunk, :]
        scores = attention_scores(q_chunk, k, chunk_bias)
        lse = scores.logsumexp(-1, keepdim=True)
        outs.append(torch.matmul((scores - lse).exp_(), v.to(scores.dtype)).to(q.dtype))
        lses.append(lse.squeeze(-1).float())
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


def gag_joint_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, text_len: int,
                        lam: float, zeta: float, tau: float | None, alpha: float, mode: str = "gag",
                        pladis_scale: float = 2.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Joint (MMDiT) attention with only the image-query × text-key block guided.

    Tokens are laid out text first: positions [0, text_len) are text, the rest image.
    out_img = out_joint_dense + m · (G_t − D_t) (SPEC §2); text-query rows are the dense
    joint output. Returns (B, H, N, d) in q's dtype.
    """
    out, lse = dense_attention_with_logsumexp(q, k, v, mask)
    image_text_mask = None
    if mask is not None:
        image_text_mask = mask[..., text_len:, :text_len] if mask.shape[-2] > 1 else mask[..., :text_len]
    correction = gag_correction(
        q[..., text_len:, :], k[..., :text_len, :], v[..., :text_len, :],
        lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode, pladis_scale=pladis_scale,
        mask=image_text_mask, joint_logsumexp=lse[..., text_len:],
    )
    out = out.clone()
    out[..., text_len:, :] += correction.to(out.dtype)
    return out
