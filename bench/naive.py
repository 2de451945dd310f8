"""The naive GAG cross-attention the fast path is compared with (ISSUE 6, P2): a
materialised softmax, the entmax package's sort-based entmax15, and the projection
written out with explicit tensors."""

import entmax
import torch


def naive_gag_attention(q, k, v, *, lam, zeta, tau):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    dense = torch.softmax(scores, dim=-1) @ v
    sparse = entmax.entmax15(scores, dim=-1) @ v
    delta = sparse - dense
    sparse_sq = (sparse * sparse).sum(-1, keepdim=True).clamp_min(1e-12)
    parallel = (delta * sparse).sum(-1, keepdim=True) / sparse_sq * sparse
    update = parallel + zeta * (delta - parallel)
    ratio = (tau / update.norm(dim=-1, keepdim=True).clamp_min(1e-30)).clamp(max=1.0)
    return sparse + lam * ratio * update
