"""Independent float64 references for the tests, written from SPEC §1–§2 directly.

Everything here is deliberately plain: explicit projections, explicit joint softmax,
the ``entmax`` package (deep-spin) for the sparse maps. Nothing is imported from gag_core.
"""

import math

import entmax as entmax_pkg
import torch


def reference_entmax(z: torch.Tensor, alpha: float) -> torch.Tensor:
    """α-entmax along the last dim in float64 with the entmax package."""
    z = z.double()
    if alpha == 1.0:
        return torch.softmax(z, dim=-1)
    if alpha == 1.5:
        return entmax_pkg.entmax15(z, dim=-1)
    if alpha == 2.0:
        return entmax_pkg.sparsemax(z, dim=-1)
    return entmax_pkg.entmax_bisect(z, alpha=alpha, dim=-1, n_iter=200)


def reference_guide(dense, sparse, *, lam, zeta, tau, mode="gag", pladis_scale=2.0):
    """SPEC §1 term by term on (..., d) float64 tensors."""
    dense, sparse = dense.double(), sparse.double()
    delta = sparse - dense
    if mode == "pladis":
        return dense + pladis_scale * delta
    sparse_sq = (sparse * sparse).sum(-1, keepdim=True)
    projection = (delta * sparse).sum(-1, keepdim=True) / sparse_sq
    parallel = torch.where(sparse_sq > 1e-12, projection, torch.zeros_like(projection)) * sparse
    orthogonal = delta - parallel
    update = parallel + zeta * orthogonal
    norm = update.norm(dim=-1, keepdim=True)
    if tau is None or math.isinf(tau):
        ratio = torch.ones_like(norm)
    else:
        ratio = torch.where(norm > 0, torch.clamp(tau / norm, max=1.0), torch.ones_like(norm))
    return sparse + lam * ratio * update


def reference_cross_attention(q, k, v, *, lam, zeta, tau, alpha, mode="gag", pladis_scale=2.0, mask=None):
    """Guided cross-attention (B, H, Nq, d) in float64."""
    q, k, v = q.double(), k.double(), v.double()
    z = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        z = z.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else z + mask.double()
    dense = torch.softmax(z, -1) @ v
    sparse = reference_entmax(z, alpha) @ v
    return reference_guide(dense, sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)


def reference_joint_attention(q, k, v, *, text_len, lam, zeta, tau, alpha, mode="gag", pladis_scale=2.0,
                              keep=None):
    """Joint attention, text tokens first, only image queries × text keys guided (SPEC §2);
    ``keep`` (optional, bool, broadcast to (B, H, N, N)) masks keys."""
    q, k, v = q.double(), k.double(), v.double()
    z = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if keep is not None:
        z = z.masked_fill(~keep, float("-inf"))
    joint_probs = torch.softmax(z, -1)
    out = joint_probs @ v
    text_mass = joint_probs[..., text_len:, :text_len].sum(-1, keepdim=True)
    z_it = z[..., text_len:, :text_len]
    z_it = torch.where(torch.isfinite(z_it).any(-1, keepdim=True), z_it, 0.0)  # no text key: mass 0 anyway
    dense_t = torch.softmax(z_it, -1) @ v[..., :text_len, :]
    sparse_t = reference_entmax(z_it, alpha) @ v[..., :text_len, :]
    guided_t = reference_guide(dense_t, sparse_t, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)
    out[..., text_len:, :] += text_mass * (guided_t - dense_t)
    return out
