"""Exact α-entmax probability maps.

    entmax_α(z) = argmax_p ⟨p, z⟩ + H_α(p)   over the probability simplex,
    p_i = [(α−1) z_i − θ]_+^{1/(α−1)}        with θ such that Σ_i p_i = 1.

α = 1 is softmax, α = 2 sparsemax, α = 1.5 the sparse map the GAG paper uses. All solvers
work on ``y = (α−1)(z − max z)`` (so the largest entry is 0 and the threshold θ lies in
[−1, 0)), compute in float32 (float64 input stays float64) and return the input dtype.
``-inf`` logits (masked keys) get probability exactly 0; a row whose logits are all
``-inf`` gets all zeros instead of NaN.

Solvers:
- α ∈ {1.5, 2}: Newton iterations on θ from the left (monotone, no overshoot because
  f(θ) = Σ(y−θ)_+^{1/(α−1)} − 1 is convex and decreasing), then the exact closed form of θ
  on the detected support, certified by the KKT condition
  ``min(y on support) > θ ≥ max(y off support)``. Rows that fail the certificate are
  solved by the exact sort-based algorithm. The result is exact up to float rounding.
- other α ∈ (1, 2): bisection on θ down to float resolution, then renormalisation.
"""

import math

import torch

NEWTON_STEPS = 4
"""Newton steps before the exact finish; rows whose support is not settled by then fall
back to the sort-based solver (counted by the benchmark, rare with 77 text keys)."""


def entmax(z: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """α-entmax of ``z`` along ``dim``.

    Args:
        z: logits of any shape and floating dtype; ``-inf`` marks excluded entries.
        alpha: float in [1, 2].
        dim: the dimension that sums to one.
    Returns:
        probabilities, same shape and dtype as ``z``.
    """
    alpha = float(alpha)
    if not 1.0 <= alpha <= 2.0:
        raise ValueError(f"alpha must be in [1, 2], got {alpha}")
    moved = z.movedim(dim, -1)
    y, row_valid = _shifted(moved, 1.0 if alpha == 1.0 else alpha - 1.0)
    if alpha == 1.0:
        p = _softmax_shifted(y)
    elif alpha in (1.5, 2.0):
        p = _entmax_exact(y, power=1.0 / (alpha - 1.0))
    else:
        p = _entmax_bisect(y, power=1.0 / (alpha - 1.0))
    p = torch.where(row_valid, p, 0.0)
    return p.to(z.dtype).movedim(-1, dim)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the probability maps are computed in: float64 stays, the rest is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _shifted(z: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale · (z − max z)`` along the last dim in the compute dtype, and a (..., 1)
    bool mask of rows that have at least one finite logit."""
    x = z.to(compute_dtype(z.dtype))
    row_max = x.amax(-1, keepdim=True)
    row_valid = torch.isfinite(row_max)
    x = x - torch.where(row_valid, row_max, 0.0)
    return (x * scale if scale != 1.0 else x), row_valid


def _softmax_shifted(y: torch.Tensor) -> torch.Tensor:
    e = y.exp()
    return e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)


def _entmax_exact(y: torch.Tensor, power: float) -> torch.Tensor:
    """Exact solver for power 1/(α−1) ∈ {1 (sparsemax), 2 (1.5-entmax)} on shifted logits."""
    theta = torch.full_like(y[..., :1], -1.0)
    for _ in range(NEWTON_STEPS):
        r = (y - theta).clamp_min(0.0)
        if power == 2.0:
            f = (r * r).sum(-1, keepdim=True) - 1.0
            slope = 2.0 * r.sum(-1, keepdim=True)
        else:
            f = r.sum(-1, keepdim=True) - 1.0
            slope = (r > 0).sum(-1, keepdim=True).to(y.dtype)
        theta = theta + f / slope.clamp_min(torch.finfo(y.dtype).tiny)
    support = y > theta
    theta = _threshold_on_support(y, support, power)
    inside_min = torch.where(support, y, math.inf).amin(-1, keepdim=True)
    outside_max = torch.where(support, -math.inf, y).amax(-1, keepdim=True)
    certified = (inside_min > theta) & (outside_max <= theta)
    if not bool(certified.all()):
        rows = ~certified.squeeze(-1)
        theta = theta.clone()
        y_rows = y[rows]
        theta[rows] = _threshold_on_support(y_rows, y_rows > _threshold_sorted(y_rows, power), power)
    return (y - theta).clamp_min(0.0).pow(power)


def _threshold_on_support(y: torch.Tensor, support: torch.Tensor, power: float) -> torch.Tensor:
    """θ solving Σ_{i∈support}(y_i − θ)^power = 1 in closed form (power 1 or 2); (..., 1)."""
    k = support.sum(-1, keepdim=True).to(y.dtype).clamp_min(1.0)
    y_in = torch.where(support, y, 0.0)
    mean = y_in.sum(-1, keepdim=True) / k
    if power == 1.0:
        return mean - 1.0 / k
    # k θ² − 2 θ Σy + Σy² − 1 = 0, smaller root: θ = mean − sqrt(1/k − variance);
    # the variance is taken from centred values, which keeps float32 accurate
    centred = torch.where(support, y - mean, 0.0)
    variance = (centred * centred).sum(-1, keepdim=True) / k
    return mean - (1.0 / k - variance).clamp_min(0.0).sqrt()


def _threshold_sorted(y: torch.Tensor, power: float) -> torch.Tensor:
    """Exact θ by sorting (power 1 or 2): the support is the largest k whose candidate
    threshold stays below the k-th largest entry. y is (rows, n); returns (rows, 1)."""
    y_sorted, _ = torch.sort(y, dim=-1, descending=True)
    k = torch.arange(1, y.shape[-1] + 1, device=y.device, dtype=y.dtype)
    finite = torch.isfinite(y_sorted)
    y_fin = torch.where(finite, y_sorted, 0.0)
    mean = y_fin.cumsum(-1) / k
    if power == 1.0:
        candidates = mean - 1.0 / k
    else:
        mean_sq = (y_fin * y_fin).cumsum(-1) / k
        candidates = mean - (1.0 / k - (mean_sq - mean * mean)).clamp_min(0.0).sqrt()
    in_support = (y_sorted > candidates) & finite
    support_size = in_support.sum(-1, keepdim=True).clamp_min(1)
    return candidates.gather(-1, support_size - 1)


def _entmax_bisect(y: torch.Tensor, power: float) -> torch.Tensor:
    """Bisection on θ ∈ [−1, −n^{−(α−1)}] until the bracket stops shrinking in floating
    point, then renormalisation (the residual mass error is at float resolution)."""
    n = y.shape[-1]
    lo = torch.full_like(y[..., :1], -1.0)
    hi = torch.full_like(y[..., :1], -(n ** (-1.0 / power)))
    steps = round(-math.log2(torch.finfo(y.dtype).eps)) + 2
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        mass = (y - mid).clamp_min(0.0).pow(power).sum(-1, keepdim=True)
        too_low = mass >= 1.0
        lo = torch.where(too_low, mid, lo)
        hi = torch.where(too_low, hi, mid)
    p = (y - lo).clamp_min(0.0).pow(power)
    return p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
