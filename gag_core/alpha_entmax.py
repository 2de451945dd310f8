"""Exact α-entmax probability maps.

    entmax_α(z) = argmax_p ⟨p, z⟩ + H_α(p)   over the probability simplex,
    p_i = [(α−1) z_i − θ]_+^{1/(α−1)}        with θ such that Σ_i p_i = 1.

α = 1 is softmax, α = 2 sparsemax, α = 1.5 the sparse map the GAG paper uses. All solvers
work on ``y = (α−1)(z − max z)`` (so the largest entry is 0 and the threshold θ lies in
[−1, 0)), compute in float32 (float64 input stays float64) and return the input dtype.
``-inf`` logits (masked keys) get probability exactly 0; a row whose logits are all
``-inf`` gets all zeros instead of NaN.

Solvers:
- α ∈ {1.5, 2}: Newton iterations on θ from a lower bound (monotone, no overshoot because
  f(θ) = Σ(y−θ)_+^{1/(α−1)} − 1 is convex and decreasing), then the exact closed form of θ
  on the detected support, certified by the KKT conditions (see ``_newton_then_finish``).
  Uncertified rows get more Newton steps on their own, then the exact sort-based
  algorithm. The result is exact up to float rounding.
- other α ∈ (1, 2): bisection on θ down to float resolution, then renormalisation.

:func:`sparse_probs` is the attention hot path: it overwrites the caller's score buffer.
With :func:`set_compile` (or ``GAG_COMPILE=1`` in the environment) the first solver pass
for α ∈ {1.5, 2}, which does nearly all the work, runs through ``torch.compile`` (rows
dynamic, key count static); if compiling fails for any reason the eager code takes over
for good, with a logged warning. Both paths run the same Python code.
"""

import logging
import math
import os

import torch

log = logging.getLogger(__name__)

NEWTON_STEPS = 4
"""Newton steps over all rows before the first exact finish."""
RETRY_STEPS = 3
RETRY_ROUNDS = 3
"""Rows whose finish is not certified get RETRY_STEPS more Newton steps, up to
RETRY_ROUNDS times, on those rows only; what is left goes to the sort-based solver."""
SUPPORT_MARGIN = 1e-6
"""The finish starts from θ − margin, so that float rounding in Newton (which may land a
hair right of θ*) never drops a support element; θ − margin is still a lower bound."""


def entmax(z: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """α-entmax of ``z`` along ``dim``.

    Args:
        z: logits of any shape and floating dtype; ``-inf`` marks excluded entries.
        alpha: float in [1, 2].
        dim: the dimension that sums to one.
    Returns:
        probabilities, same shape and dtype as ``z``.
    """
    scores = z.movedim(dim, -1).to(compute_dtype(z.dtype), copy=True)
    return sparse_probs(scores, alpha).to(z.dtype).movedim(-1, dim)


def sparse_probs(scores: torch.Tensor, alpha: float, *, out: torch.Tensor | None = None,
                 work: torch.Tensor | None = None) -> torch.Tensor:
    """α-entmax along the last dim of ``scores`` (float32/64), which is overwritten.

    ``out`` and ``work`` (optional, contiguous, the shape of ``scores``) let a caller that
    loops over chunks reuse two buffers instead of allocating them per chunk; the result is
    in ``out`` when the eager exact solver runs, else a new tensor.
    """
    alpha = float(alpha)
    if not 1.0 <= alpha <= 2.0:
        raise ValueError(f"alpha must be in [1, 2], got {alpha}")
    row_max = scores.amax(-1, keepdim=True)
    row_valid = torch.isfinite(row_max)
    scale = 1.0 if alpha == 1.0 else alpha - 1.0
    # y = scale·(z − max z) in one pass; scaling by 0.5 or 1 is exact, so this is as accurate
    # as shifting first (entries near the max subtract exactly)
    y = torch.add(torch.where(row_valid, row_max, 0.0).mul_(-scale), scores, alpha=scale, out=scores)
    if alpha == 1.0:
        p = torch.softmax(y, -1)
    elif alpha in (1.5, 2.0):
        p = _entmax_exact(y, 1.0 / (alpha - 1.0), out, work)
    else:
        p = _entmax_bisect(y, 1.0 / (alpha - 1.0))
    if not bool(row_valid.all()):
        p.masked_fill_(~row_valid, 0.0)
    return p


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the probability maps are computed in: float64 stays, the rest is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def set_compile(enabled: bool) -> None:
    """Run the exact solver's first pass through ``torch.compile`` (opt-in, see module doc)."""
    _compiled.enabled = bool(enabled)


class _CompiledFirstPass:
    """Lazily compiled ``_first_pass``; disables itself if compiling or running fails."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.function = None

    def __call__(self, rows: torch.Tensor, power: float, out=None, work=None):
        if self.enabled:
            try:
                if self.function is None:
                    self.function = torch.compile(_first_pass, dynamic=False, fullgraph=True)
                torch._dynamo.mark_dynamic(rows, 0)
                return self.function(rows, power)
            except Exception as error:  # no compiler, unsupported backend, ...: eager from now on
                log.warning("GAG: torch.compile of the entmax solver failed (%s); using eager PyTorch", error)
                self.enabled = False
        return _first_pass(rows, power, out, work)


_compiled = _CompiledFirstPass(os.environ.get("GAG_COMPILE") == "1")


def _entmax_exact(y: torch.Tensor, power: float, out=None, work=None) -> torch.Tensor:
    """Exact solver for power 1/(α−1) ∈ {1 (sparsemax), 2 (1.5-entmax)} on shifted logits.

    The first pass solves every row (``_first_pass``); rows it cannot certify get more
    Newton steps on their own, then the sort-based algorithm.
    """
    shape, n = y.shape, y.shape[-1]
    rows = y.reshape(-1, n)
    p, certified, theta = _compiled(rows, power, _rows_of(out, n), _rows_of(work, n))
    if bool(certified.all()):
        return p.reshape(shape)
    flat_certified, flat_theta = certified.reshape(-1), theta.reshape(-1, 1)
    for _ in range(RETRY_ROUNDS):
        index = (~flat_certified).nonzero().squeeze(-1)
        if index.numel() == 0:
            return p.reshape(shape)
        y_rows = rows[index]
        p_rows = torch.empty_like(y_rows)
        ok, theta_rows = _newton_then_finish(y_rows, flat_theta[index], power, RETRY_STEPS, p_rows,
                                             torch.empty_like(y_rows))
        p[index], flat_certified[index], flat_theta[index] = p_rows, ok.squeeze(-1), theta_rows
    index = (~flat_certified).nonzero().squeeze(-1)
    if index.numel():  # last resort: the support from sorting, then the same closed-form finish
        y_rows = rows[index]
        p_rows = torch.empty_like(y_rows)
        _newton_then_finish(y_rows, _threshold_sorted(y_rows, power), power, 0, p_rows, torch.empty_like(y_rows))
        p[index] = p_rows
    return p.reshape(shape)


def _rows_of(buffer, n):
    return None if buffer is None else buffer.view(-1, n)


def _first_pass(y: torch.Tensor, power: float, out=None, work=None):
    """Solve all rows of y (rows, n): returns (p, certified (rows, 1), last Newton θ);
    ``out``/``work`` are optional buffers of y's shape (p is written into ``out``).

    θ starts at a lower bound (Jensen: Σ(y−θ)_+^p ≥ n·mean(y−θ)^p, on y clamped at −1,
    which changes nothing for θ ≥ −1), takes NEWTON_STEPS Newton steps from the left, then
    the exact finish on the support {y > θ}.
    """
    n = y.shape[-1]
    out = torch.empty_like(y) if out is None else out
    work = torch.empty_like(y) if work is None else work
    theta = torch.clamp(y, min=-1.0, out=work).mean(-1, keepdim=True).sub_(n ** (-1.0 / power)).clamp_(min=-1.0)
    certified, theta = _newton_then_finish(y, theta, power, NEWTON_STEPS, out, work)
    return out, certified, theta


def _newton_then_finish(y, theta, power, steps, out, work):
    """Newton steps on f(θ) = Σ(y−θ)_+^p − 1 from a lower bound θ, then the closed-form θ on
    the support {y > θ − margin}, probabilities into ``out``. Returns (certified (..., 1)
    bool, last Newton θ).

    Certified rows are exact: the finish gives θ' ≥ θ − margin (so every entry off the
    support is ≤ θ'), and the same number of entries stays positive after subtracting θ'
    (so every entry on it is > θ'): the KKT conditions of the problem.
    """
    tiny = torch.finfo(y.dtype).tiny
    r = out
    for _ in range(steps):
        torch.sub(y, theta, out=r).clamp_(min=0.0)
        if power == 2.0:
            theta = theta.addcdiv(_sum_of_squares(r).sub_(1.0), r.sum(-1, keepdim=True).clamp_(min=tiny), value=0.5)
        else:
            theta = theta.addcdiv(r.sum(-1, keepdim=True).sub_(1.0), _count_positive(r, work).clamp_(min=1.0))
    torch.sub(y, theta - SUPPORT_MARGIN, out=r).clamp_(min=0.0)
    support_size = _count_positive(r, work)
    k = support_size.clamp(min=1.0)
    total = r.sum(-1, keepdim=True)
    if power == 2.0:
        # Σ_S (r − δ)² = 1  →  k δ² − 2 δ Σr + Σr² − 1 = 0, smaller root
        shift = (total - (total * total - k * (_sum_of_squares(r) - 1.0)).clamp_(min=0.0).sqrt_()) / k
    else:
        shift = (total - 1.0) / k
    r.sub_(shift).clamp_(min=0.0)
    certified = (_count_positive(r, work) == support_size) & (shift >= 0)
    if power == 2.0:
        r.square_()
    return certified, theta


def _sum_of_squares(r: torch.Tensor) -> torch.Tensor:
    """Σ r² along the last dim, (..., 1), in one fused pass."""
    return torch.linalg.vector_norm(r, dim=-1, keepdim=True).square_()


def _count_positive(r: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """Number of positive entries of a non-negative tensor along the last dim, (..., 1),
    in r's float dtype (exact for any realistic key count; no int64 copy)."""
    return torch.sign(r, out=work).sum(-1, keepdim=True)


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
