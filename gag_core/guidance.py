"""The geometric combination of a dense and a sparse retrieval (SPEC §1).

For one (batch, head, query) row, with D the dense and S the sparse retrieval over the
head dimension:

    Δ   = S − D
    c   = ⟨Δ, S⟩ / ‖S‖²          (0 where ‖S‖² ≤ eps: no direction to project on)
    Δ∥  = c S,  Δ⊥ = Δ − Δ∥
    u   = Δ∥ + ζ Δ⊥ = (1 − ζ) c S + ζ Δ
    r   = min(1, τ / ‖u‖)         (1 when τ is None or inf, or ‖u‖ = 0)
    out = S + λ r u = a S + b D   with a = 1 + λ r ((1 − ζ) c + ζ), b = −λ r ζ

Everything reduces to per-row scalars, so the output is one or two fused passes over the
retrievals. ‖u‖² = ‖Δ∥‖² + ζ² ‖Δ⊥‖² (Pythagoras) with ‖Δ∥‖² = c ⟨Δ, S⟩; ⟨Δ, S⟩ is
‖S‖² − ⟨S, D⟩ (its rounding error is eps·‖S‖², harmless after dividing by ‖S‖²), and
‖Δ‖² is taken from Δ itself when ζ > 0 so that nothing cancels when Δ is small.
PLADIS mode returns D + s (S − D).
"""

import math
from typing import NamedTuple

import torch

SPARSE_NORM_EPS = 1e-12
"""‖S‖² at or below this counts as zero: Δ∥ is taken as 0 there."""


class GuidanceTerms(NamedTuple):
    """Per-row scalars of the decomposition, each shaped (..., 1)."""

    parallel_coef: torch.Tensor  # c
    update_norm: torch.Tensor    # ‖u‖
    cap_ratio: torch.Tensor      # r


def guide(dense: torch.Tensor, sparse: torch.Tensor, *, lam: float, zeta: float,
          tau: float | None, mode: str = "gag", pladis_scale: float = 2.0,
          out: torch.Tensor | None = None) -> torch.Tensor:
    """Combine retrievals shaped (..., head_dim) into the guided output (same shape).

    Computed in the dtype of the inputs (callers pass float32 or float64). ``out``
    (optional, may be a strided view, e.g. a query slice of the full output) receives the
    result directly, which saves a copy.
    """
    if mode == "pladis":
        return torch.lerp(dense, sparse, pladis_scale, out=out)
    if mode != "gag":
        raise ValueError(f"mode must be 'gag' or 'pladis', got {mode!r}")
    terms = guidance_terms(dense, sparse, zeta=zeta, tau=tau)
    step = terms.cap_ratio * lam
    if zeta == 0.0:
        return torch.mul(sparse, step.mul_(terms.parallel_coef).add_(1.0), out=out)
    sparse_weight = step * ((1.0 - zeta) * terms.parallel_coef + zeta) + 1.0
    return torch.mul(sparse, sparse_weight, out=out).addcmul_(dense, step * -zeta)


def guidance_terms(dense: torch.Tensor, sparse: torch.Tensor, *, zeta: float,
                   tau: float | None) -> GuidanceTerms:
    """The per-row scalars of the GAG decomposition for retrievals shaped (..., head_dim)."""
    sparse_sq = torch.linalg.vector_norm(sparse, dim=-1, keepdim=True).square_()
    delta_dot_sparse = sparse_sq - torch.linalg.vecdot(sparse, dense).unsqueeze(-1)
    has_direction = sparse_sq > SPARSE_NORM_EPS
    coef = torch.where(has_direction, delta_dot_sparse / sparse_sq.clamp_min(SPARSE_NORM_EPS), 0.0)
    parallel_sq = coef * delta_dot_sparse
    if zeta == 0.0:
        update_sq = parallel_sq
    else:
        delta = sparse - dense
        delta_sq = torch.linalg.vector_norm(delta, dim=-1, keepdim=True).square_()
        update_sq = parallel_sq + (zeta * zeta) * (delta_sq - parallel_sq).clamp_min(0.0)
    update_norm = update_sq.clamp_min(0.0).sqrt()
    if tau is None or math.isinf(tau):
        ratio = torch.ones_like(update_norm)
    else:
        ratio = (tau / update_norm.clamp_min(torch.finfo(update_norm.dtype).tiny)).clamp_max(1.0)
    return GuidanceTerms(coef, update_norm, ratio)
