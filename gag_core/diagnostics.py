"""Opt-in guidance statistics: what the sparse–dense discrepancy looks like per layer call.

Accumulated per query row (one batch item, head and query token) over head_dim:
    ‖Δ‖                          size of the discrepancy Δ = S − D
    ‖Δ∥‖ / ‖Δ‖                   share of Δ along the sparse retrieval (rows with Δ ≠ 0)
    cos(Δ, S) = ⟨Δ, S⟩/(‖Δ‖‖S‖)  (rows with Δ ≠ 0 and S ≠ 0)
    capped                       the τ cap was active: ‖u‖ > τ
Nothing here runs unless a caller passes a GuidanceStats to the attention functions.
"""

import dataclasses
import math

import torch

from .guidance import SPARSE_NORM_EPS

DELTA_NORM_EPS = 1e-12


@dataclasses.dataclass
class GuidanceStats:
    """Running sums over query rows (float64 Python numbers)."""

    rows: int = 0
    delta_norm_sum: float = 0.0
    share_sum: float = 0.0
    share_rows: int = 0
    cosine_sum: float = 0.0
    cosine_rows: int = 0
    capped_rows: int = 0

    def add(self, dense: torch.Tensor, sparse: torch.Tensor, *, zeta: float, tau: float | None,
            mode: str = "gag") -> None:
        """Accumulate retrievals shaped (..., head_dim)."""
        dense, sparse = dense.double(), sparse.double()
        delta = sparse - dense
        delta_norm = delta.norm(dim=-1)
        sparse_norm = sparse.norm(dim=-1)
        dot = (delta * sparse).sum(-1)
        with_delta = delta_norm > DELTA_NORM_EPS
        parallel_norm = torch.where(sparse_norm**2 > SPARSE_NORM_EPS, dot.abs() / sparse_norm.clamp_min(1e-300), 0.0)
        with_both = with_delta & (sparse_norm**2 > SPARSE_NORM_EPS)
        self.rows += delta_norm.numel()
        self.delta_norm_sum += float(delta_norm.sum())
        self.share_sum += float((parallel_norm / delta_norm.clamp_min(1e-300))[with_delta].sum())
        self.share_rows += int(with_delta.sum())
        self.cosine_sum += float((dot / (delta_norm * sparse_norm).clamp_min(1e-300))[with_both].sum())
        self.cosine_rows += int(with_both.sum())
        if mode == "gag" and tau is not None and not math.isinf(tau):
            # ‖u‖² = ‖Δ∥‖² + ζ² ‖Δ⊥‖² (see guidance.py), from the norms above
            parallel_sq = parallel_norm.square()
            update_sq = parallel_sq + zeta * zeta * (delta_norm.square() - parallel_sq).clamp_min(0.0)
            self.capped_rows += int((update_sq > tau * tau).sum())

    def summary(self) -> dict:
        """Means over rows: delta_norm, parallel_share, cosine, capped_fraction (None when empty)."""
        def mean(total, count):
            return total / count if count else None
        return dict(delta_norm=mean(self.delta_norm_sum, self.rows),
                    parallel_share=mean(self.share_sum, self.share_rows),
                    cosine=mean(self.cosine_sum, self.cosine_rows),
                    capped_fraction=mean(float(self.capped_rows), self.rows))
