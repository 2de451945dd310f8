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

from . import execution
from .settings import check_guidance

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
    result directly, which saves a copy. Raises ValueError for arguments outside SPEC §1's
    ranges (see ``settings.RANGES``).
    """
    check_guidance(lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)
    return guide_unchecked(dense, sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale,
                           out=out)


def guide_unchecked(dense: torch.Tensor, sparse: torch.Tensor, *, lam: float, zeta: float,
                    tau: float | None, mode: str, pladis_scale: float,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """``guide`` for arguments the caller has already checked: the attention functions check
    them once per call, then combine chunk by chunk."""
    if mode == "pladis":
        return torch.lerp(dense, sparse, pladis_scale, out=out)
    terms = guidance_terms(dense, sparse, zeta=zeta, tau=tau)
    step = terms.cap_ratio * lam
    if zeta == 0.0:
        return torch.mul(sparse, step.mul_(terms.parallel_coef).add_(1.0), out=out)
    sparse_weight = step * ((1.0 - zeta) * terms.parallel_coef + zeta) + 1.0
    return torch.mul(sparse, sparse_weight, out=out).addcmul_(dense, step * -zeta)


def guidance_terms(dense: torch.Tensor, sparse: torch.Tensor, *, zeta: float,
                   tau: float | None) -> GuidanceTerms:
    """The per-row scalars of the GAG decomposition for retrievals shaped (..., head_dim).

    Finite whenever the retrievals are: squares of entries beyond ~1e19 (float32) would
    overflow, so such rows are computed on the retrievals divided by a per-row power of two
    (exact; c is scale-free, ‖u‖ and τ scale together). On the CPU path the plain
    computation runs first and the rescaled one only when a square overflowed (checking costs
    nothing there); on the device path (execution.py), where that check would be a device
    sync, every call rescales.
    """
    if not execution.device_path(sparse.device):
        terms = _terms(dense, sparse, None, zeta=zeta, tau=tau)
        # every overflow ends up in ‖u‖ ≥ 0; the sum is NaN or inf then (or, harmlessly, on
        # rows so large that the sum overflows)
        if math.isfinite(float(terms.update_norm.sum())):
            return terms
    return _terms(dense, sparse, row_scale(dense, sparse), zeta=zeta, tau=tau)


def row_scale(dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
    """Per row, the smallest power of two ≥ every |entry| of both retrievals and ≥ 1,
    shaped (..., 1): after dividing by it each square is at most 1."""
    largest = torch.maximum(dense.abs().amax(-1, keepdim=True), sparse.abs().amax(-1, keepdim=True))
    return torch.exp2(torch.frexp(largest).exponent.to(largest.dtype)).clamp_min_(1.0)


def _terms(dense, sparse, scale, *, zeta, tau):
    """The terms computed on dense / scale and sparse / scale (scale None: 1), returned
    for the unscaled retrievals."""
    if scale is not None:
        inverse = scale.reciprocal()
        dense, sparse = dense * inverse, sparse * inverse
    sparse_sq = torch.linalg.vector_norm(sparse, dim=-1, keepdim=True).square_()
    delta_dot_sparse = sparse_sq - torch.linalg.vecdot(sparse, dense).unsqueeze(-1)
    # ‖S‖² > eps on the unscaled retrievals (scale² may overflow to inf: still the right answer)
    has_direction = (sparse_sq if scale is None else sparse_sq * scale.square()) > SPARSE_NORM_EPS
    tiny = torch.finfo(sparse_sq.dtype).tiny
    coef = torch.where(has_direction, delta_dot_sparse / sparse_sq.clamp_min(tiny), 0.0)
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
        scaled_tau = tau if scale is None else inverse * tau
        ratio = (scaled_tau / update_norm.clamp_min(tiny)).clamp_max(1.0)
    return GuidanceTerms(coef, update_norm if scale is None else update_norm * scale, ratio)
