"""The geometric combination of a dense and a sparse retrieval (SPEC §1).

For one (batch, head, query) row, with D the dense and S the sparse retrieval over the
head dimension:

    Δ   = S − D
    c   = ⟨Δ, S⟩ / ‖S‖²          (0 where ‖S‖² ≤ eps: no direction to project on)
    Δ∥  = c S,  Δ⊥ = Δ − Δ∥
    u   = Δ∥ + ζ Δ⊥ = (1 − ζ) c S + ζ Δ
    r   = min(1, τ / ‖u‖)         (1 when τ is None or inf, or ‖u‖ = 0)
    out = S + λ r u

‖u‖² is taken from the Pythagorean split ‖u‖² = ‖Δ∥‖² + ζ² ‖Δ⊥‖², with
‖Δ∥‖² = c⟨Δ, S⟩ and ‖Δ⊥‖² = ‖Δ‖² − ‖Δ∥‖², so nothing cancels when Δ is small next to S.
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
    parallel_sq: torch.Tensor    # ‖Δ∥‖²
    delta_sq: torch.Tensor       # ‖Δ‖²
    update_norm: torch.Tensor    # ‖u‖
    cap_ratio: torch.Tensor      # r


def guide(dense: torch.Tensor, sparse: torch.Tensor, *, lam: float, zeta: float,
          tau: float | None, mode: str = "gag", pladis_scale: float = 2.0) -> torch.Tensor:
    """Combine retrievals shaped (..., head_dim) into the guided output (same shape).

    Computed in the dtype of the inputs (callers pass float32 or float64).
    """
    delta = sparse - dense
    if mode == "pladis":
        return dense + pladis_scale * delta
    if mode != "gag":
        raise ValueError(f"mode must be 'gag' or 'pladis', got {mode!r}")
    terms = guidance_terms(sparse, delta, zeta=zeta, tau=tau)
    step = lam * terms.cap_ratio
    # out = S + λ r ((1 − ζ) c S + ζ Δ)
    return sparse * (1.0 + step * (1.0 - zeta) * terms.parallel_coef) + delta * (step * zeta)


def guidance_terms(sparse: torch.Tensor, delta: torch.Tensor, *, zeta: float,
                   tau: float | None) -> GuidanceTerms:
    """The per-row scalars of the GAG decomposition for retrievals shaped (..., head_dim)."""
    sparse_sq = (sparse * sparse).sum(-1, keepdim=True)
    delta_dot_sparse = (delta * sparse).sum(-1, keepdim=True)
    delta_sq = (delta * delta).sum(-1, keepdim=True)
    has_direction = sparse_sq > SPARSE_NORM_EPS
    coef = torch.where(has_direction, delta_dot_sparse / sparse_sq.clamp_min(SPARSE_NORM_EPS), 0.0)
    parallel_sq = coef * delta_dot_sparse
    orthogonal_sq = (delta_sq - parallel_sq).clamp_min(0.0)
    update_norm = (parallel_sq + (zeta * zeta) * orthogonal_sq).sqrt()
    if tau is None or math.isinf(tau):
        ratio = torch.ones_like(update_norm)
    else:
        ratio = (tau / update_norm.clamp_min(torch.finfo(update_norm.dtype).tiny)).clamp_max(1.0)
    return GuidanceTerms(coef, parallel_sq, delta_sq, update_norm, ratio)
