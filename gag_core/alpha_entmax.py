"""Exact α-entmax probability maps.

    entmax_α(z) = argmax_p ⟨p, z⟩ + H_α(p)   over the probability simplex,
    p_i = [(α−1) z_i − θ]_+^{1/(α−1)}        with θ such that Σ_i p_i = 1.

α = 1 is softmax, α = 2 sparsemax, α = 1.5 the sparse map the GAG paper uses. The solvers
work on y = (α−1) z, compute in float32 (float64 input stays float64) and return the
input dtype. In :func:`entmax`, ``-inf`` logits (masked keys) get probability exactly 0
and a row whose logits are all ``-inf`` gets all zeros instead of NaN.

Solvers (p = 1/(α−1) is the power, f(θ) = Σ_i (y_i − θ)_+^p − 1 is decreasing in θ):
- α ∈ {1.5, 2}: θ starts at a lower bound of the root θ*, weighted by the softmax map of
  z (the dense map attention computes anyway), with w = softmax(z)², which puts its
  weight where the entmax support is. For p = 2 and any weights w ≥ 0, Cauchy–Schwarz
  gives Σ(y−θ)_+² ≥ (Σ w (y−θ))² / Σw², so θ0 = (Σ w y − ‖w‖) / Σ w has f(θ0) ≥ 0. The
  same bound with w = (y − θ_t)_+ is the step rule θ_{t+1} = θ_t + (F − √F) / G
  (F = Σ(y−θ_t)_+², G = Σ(y−θ_t)_+): a lower bound from any θ_t, and ahead of the Newton
  step from a lower bound by (√F − 1)² / 2G. For p = 1, weights in [0, 1] give
  Σ(y−θ)_+ ≥ Σ w (y−θ), so θ0 = (Σ w y − 1) / Σ w with w / max w; Newton steps follow,
  exact on each linear piece of f. After FIRST_STEPS steps comes the closed form of θ
  on the detected support, certified by the KKT conditions (see ``_steps_then_finish``).
  Uncertified rows are solved again on their own, shifted so that their largest entry is
  0, and if need be by the exact sort-based algorithm. That is the *CPU path* (see
  execution.py): selecting the uncertified rows needs their count on the host, a sync that
  is free on the CPU, and sorting is slow there.
- α ∈ {1.5, 2} on the *device path* (accelerators): every row is solved by sorting, with
  fixed shapes and no host sync. The sort gives the exact support (entry k of a row in
  decreasing order is in it iff f(y_(k)) < 1) and a threshold; the threshold is then
  recomputed in closed form on that support relative to itself, where no large sums cancel.
  Traced on an SDXL-shaped score chunk (81920 rows × 77 keys, random logits, where the
  CPU path retries a few rows): 47 kernels instead of 161 and 1.08× the memory traffic for
  α = 1.5; 26 instead of 135 and 0.59× for α = 2 (``python -m bench`` prints per layer).
- other α ∈ (1, 2): bisection on θ down to float resolution, then renormalisation.

:func:`sparse_probs` is the attention hot path: it overwrites the caller's score buffer
and takes the dense map as its seed. With :func:`set_compile` (or ``GAG_COMPILE=1`` in the
environment) the solver for α ∈ {1.5, 2} (the first pass on the CPU path, which does nearly
all the work there; the sort-based solver on the device path) runs through ``torch.compile``
(rows dynamic, key count static); if compiling fails for any reason the eager code takes
over for good, with a logged warning. Both run the same Python code. The option is meant
for accelerators (unmeasured there); on the CPU it is no faster than eager.
"""

import logging
import math
import os

import torch

from . import execution
from .settings import RANGES, check_number

log = logging.getLogger(__name__)

FIRST_STEPS = {2.0: 2, 1.0: 3}
"""Lower-bound steps over all rows before the first exact finish, by power: enough to
find the exact support of nearly every row of typical attention logits."""
RETRY_STEPS = 3
"""Lower-bound steps for the rows the first pass leaves uncertified, solved again alone."""
SUPPORT_MARGIN = 1e-6
"""The finish starts from θ − margin, so that float rounding in the steps (which may land
a hair right of θ*) never drops a support element; θ − margin is still a lower bound."""


def entmax(z: torch.Tensor, alpha: float, dim: int = -1) -> torch.Tensor:
    """α-entmax of ``z`` along ``dim``.

    Args:
        z: logits of any shape and floating dtype; ``-inf`` marks excluded entries.
        alpha: float in [1, 2].
        dim: the dimension that sums to one.
    Returns:
        probabilities, same shape and dtype as ``z`` (empty for an empty ``z``).
    Raises ValueError for alpha outside [1, 2].
    """
    check_number("alpha", alpha, RANGES["alpha"])
    if z.numel() == 0:
        return torch.empty_like(z)
    dtype = compute_dtype(z.dtype)
    scores = z.movedim(dim, -1).to(dtype, memory_format=torch.contiguous_format, copy=True)
    row_max = scores.amax(-1, keepdim=True)
    row_valid = torch.isfinite(row_max)
    # shift the largest logit to 0 and raise -inf to a finite floor: far below every
    # threshold, so excluded entries still get exactly 0, and no solver meets inf − inf
    scores.sub_(torch.where(row_valid, row_max, 0.0)).clamp_(min=finite_floor(dtype))
    p = sparse_probs(scores, alpha).masked_fill_(~row_valid, 0.0)  # unconditional: no host sync
    return p.to(z.dtype).movedim(-1, dim)


def finite_floor(dtype: torch.dtype) -> float:
    """The logit that stands for an excluded entry inside the solvers: finite, and so low
    that its softmax and entmax probabilities are exactly 0 next to any finite logit."""
    return torch.finfo(dtype).min


def sparse_probs(scores: torch.Tensor, alpha: float, *, dense_probs: torch.Tensor | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """α-entmax along the last dim of finite ``scores`` (float32/64, contiguous), which
    are overwritten.

    ``dense_probs`` (optional) is softmax(scores) when the caller has it, as attention
    does: for α = 1 it is the result; otherwise it seeds the exact solver's first bound
    and is then used as scratch (overwritten). ``out`` (optional, the shape of ``scores``) receives the result when
    the eager exact solver runs; otherwise the result is a new tensor.
    """
    check_number("alpha", alpha, RANGES["alpha"])
    alpha = float(alpha)
    if alpha == 1.0:
        return torch.softmax(scores, -1, out=out) if dense_probs is None else dense_probs
    power = 1.0 / (alpha - 1.0)
    if alpha in (1.5, 2.0):
        probs = torch.softmax(scores, -1) if dense_probs is None else dense_probs
        return _entmax_exact(scores, power, probs, out)
    y = scores.sub_(scores.amax(-1, keepdim=True)).mul_(alpha - 1.0)
    return _entmax_bisect(y, power)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the probability maps are computed in: float64 stays, the rest is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def set_compile(enabled: bool) -> None:
    """Run the exact solvers through ``torch.compile`` (opt-in, see module doc)."""
    for solver in (_compiled_first_pass, _compiled_sorting):
        solver.enabled = bool(enabled)


class _Compiled:
    """``function(*args, out=None)`` run through ``torch.compile`` while enabled (compiled
    lazily, dimension 0 of every tensor argument dynamic, ``out`` left to the eager code);
    disables itself for good if compiling or running fails."""

    def __init__(self, function, enabled: bool):
        self.function = function
        self.enabled = enabled
        self.compiled = None

    def __call__(self, *args, out=None):
        if self.enabled:
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(self.function, dynamic=False, fullgraph=True)
                for arg in args:
                    if isinstance(arg, torch.Tensor):
                        torch._dynamo.mark_dynamic(arg, 0)
                return self.compiled(*args)
            except Exception as error:  # no compiler, unsupported backend, ...: eager from now on
                log.warning("GAG: torch.compile of the entmax solver failed (%s); using eager PyTorch", error)
                self.enabled = False
        return self.function(*args, out=out)


def _entmax_exact(z: torch.Tensor, power: float, probs: torch.Tensor, out=None) -> torch.Tensor:
    """Exact solver for power 1/(α−1) ∈ {1 (sparsemax), 2 (1.5-entmax)}; ``probs`` is the
    softmax map of z, used as seed and scratch.

    CPU path: the first pass solves every row (``_first_pass``); the rows it cannot certify
    are solved again on their own (``_solve_again``). Device path: every row is solved by
    sorting (``_solve_by_sorting``), with no host sync.
    """
    shape, n = z.shape, z.shape[-1]
    rows, scratch = z.view(-1, n), probs.view(-1, n)
    target = None if out is None else out.view(-1, n)
    if execution.device_path(z.device):
        return _compiled_sorting(rows, scratch, power, out=target).reshape(shape)
    p, certified = _compiled_first_pass(rows, scratch, power, FIRST_STEPS[power], out=target)
    if not bool(certified.all()):
        index = (~certified.squeeze(-1)).nonzero().squeeze(-1)
        p[index] = _solve_again(rows[index], power)
    return p.reshape(shape)


def _first_pass(z: torch.Tensor, probs: torch.Tensor, power: float, steps: int, out=None):
    """Solve all rows of z (rows, n) from their softmax map ``probs`` (overwritten, used as
    scratch) with ``steps`` lower-bound steps. z becomes y − θ0, shifted by the first lower
    bound; returns (p, certified (rows, 1)). ``out`` (optional) receives p.
    """
    out = torch.empty_like(z) if out is None else out
    theta0 = _initial_bound(z, probs, power, out)
    y = torch.add(theta0.neg_(), z, alpha=1.0 / power, out=z)
    return out, _steps_then_finish(y, 0.0, power, steps, out, probs)


def _solve_by_sorting(z: torch.Tensor, work: torch.Tensor, power: float, out=None) -> torch.Tensor:
    """Probabilities of all rows of z (rows, n), overwritten, with fixed shapes and no host
    sync (the device path); ``work`` (z's shape) is scratch, ``out`` (optional) receives p.

    Each row is shifted so that its largest entry is 0. Sorting gives its support and a
    threshold (``_threshold_sorted``); the final threshold is the closed form on the entries
    above that one, computed relative to it (as the CPU path's finish does), so that the
    cancellation in the sorted running sums does not reach the probabilities. Every entry's
    probability comes from that one final threshold.
    """
    out = torch.empty_like(z) if out is None else out
    y = z.sub_(z.amax(-1, keepdim=True))
    if power != 1.0:
        y = y.div_(power)
    theta = _threshold_sorted(y, power)
    r = _positive_part(y, theta, out)
    theta = theta.add_(_closed_form_shift(r, _count_positive(r, work).clamp_(min=1.0), power))
    p = _positive_part(y, theta, out)
    return p.square_() if power == 2.0 else p


def _solve_again(y: torch.Tensor, power: float) -> torch.Tensor:
    """Probabilities of rows y (rows, n) that the first pass left uncertified.

    They are shifted so that their largest entry is 0 (the first bound is then precise
    whatever the logits' offset, e.g. in a row that a huge finite mask blocks entirely)
    and solved with RETRY_STEPS steps; rows still uncertified have an entry within
    SUPPORT_MARGIN of the threshold and take the threshold from sorting.
    """
    z = (y - y.amax(-1, keepdim=True)).mul_(power)
    p, certified = _first_pass(z, torch.softmax(z, -1), power, RETRY_STEPS)
    index = (~certified.squeeze(-1)).nonzero().squeeze(-1)
    if index.numel():  # z now holds the shifted y of _first_pass
        rows = z[index]
        rows = rows.sub_(rows.amax(-1, keepdim=True))
        p[index] = _probs_at(rows, _threshold_sorted(rows, power), power)
    return p


def _probs_at(y: torch.Tensor, theta: torch.Tensor, power: float) -> torch.Tensor:
    """(y − θ)_+^power, the map of a known threshold."""
    r = _positive_part(y, theta, torch.empty_like(y))
    return r.square_() if power == 2.0 else r


def _initial_bound(z: torch.Tensor, probs: torch.Tensor, power: float,
                   scratch: torch.Tensor) -> torch.Tensor:
    """A lower bound of θ* in y = z / power units, (..., 1), from the softmax map ``probs``
    of z (squared in place); ``scratch`` (z's shape) holds the weighted logits. See the
    module doc for why it is a bound."""
    weights = probs.square_()
    weighted_sum = torch.mul(weights, z, out=scratch).sum(-1, keepdim=True).div_(power)
    if power == 2.0:
        slack = torch.linalg.vector_norm(weights, dim=-1, keepdim=True)
    else:  # the weights rescaled into [0, 1] by their largest one
        slack = weights.amax(-1, keepdim=True)
    return weighted_sum.sub_(slack).div_(weights.sum(-1, keepdim=True))


def _positive_part(y, theta, out):
    """(y − θ)_+ into ``out``; θ may be the float 0 (one pass instead of two)."""
    if isinstance(theta, float) and theta == 0.0:
        return torch.clamp(y, min=0.0, out=out)
    return torch.sub(y, theta, out=out).clamp_(min=0.0)


def _steps_then_finish(y, theta, power, steps, out, work):
    """Lower-bound steps on f(θ) = Σ(y−θ)_+^p − 1 from a lower bound θ (tensor (..., 1) or
    the float 0), then the closed-form θ on the support {y > θ − margin}, probabilities
    into ``out``. Returns whether each row is certified, (..., 1) bool.

    Certified rows are exact: the finish gives θ' ≥ θ − margin (so every entry off the
    support is ≤ θ'), and the same number of entries stays positive after subtracting θ'
    (so every entry on it is > θ'): the KKT conditions of the problem.
    """
    r = out
    for _ in range(steps):
        theta = _lower_bound_step(_positive_part(y, theta, r), theta, power, work)
    _positive_part(y, theta - SUPPORT_MARGIN, r)
    support_size = _count_positive(r, work)
    shift = _closed_form_shift(r, support_size.clamp(min=1.0), power)
    r.sub_(shift).clamp_(min=0.0)
    certified = (_count_positive(r, work) == support_size) & (shift >= 0)
    if power == 2.0:
        r.square_()
    return certified


def _closed_form_shift(r: torch.Tensor, support_size: torch.Tensor, power: float) -> torch.Tensor:
    """δ, (..., 1), such that (r − δ)_+^power sums to 1 along the last dim when the positive
    entries of r (``support_size`` of them, at least 1) are the support: for power 2 the
    smaller root of k δ² − 2 δ Σr + Σr² − 1 = 0 (Σ_S (r − δ)² = 1), for power 1 (Σr − 1)/k."""
    total = r.sum(-1, keepdim=True)
    if power == 2.0:
        discriminant = total * total - support_size * (_sum_of_squares(r) - 1.0)
        return (total - discriminant.clamp_(min=0.0).sqrt_()) / support_size
    return (total - 1.0) / support_size


def _lower_bound_step(r, theta, power, work):
    """The next lower bound of θ* from r = (y − θ)_+ (see the module doc): the
    Cauchy–Schwarz step for power 2, Newton's for power 1. θ may be the float 0."""
    if power == 2.0:
        squares = _sum_of_squares(r)
        step = (squares - squares.sqrt()).div_(r.sum(-1, keepdim=True).clamp_(min=torch.finfo(r.dtype).tiny))
    else:
        step = r.sum(-1, keepdim=True).sub_(1.0).div_(_count_positive(r, work).clamp_(min=1.0))
    return step.add_(theta)


def _sum_of_squares(r: torch.Tensor) -> torch.Tensor:
    """Σ r² along the last dim, (..., 1), in one fused pass."""
    return torch.linalg.vector_norm(r, dim=-1, keepdim=True).square_()


def _count_positive(r: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """Number of positive entries of a non-negative tensor along the last dim, (..., 1),
    in r's float dtype (exact for any realistic key count; no int64 copy)."""
    return torch.sign(r, out=work).sum(-1, keepdim=True)


def _threshold_sorted(y: torch.Tensor, power: float) -> torch.Tensor:
    """Exact θ by sorting (power 1 or 2) of rows y (rows, n), finite, whose largest entry is
    0; returns (rows, 1).

    With the row sorted in decreasing order, entry k is in the support iff f at θ = y_(k)
    is below 1: Σ_{i≤k} (y_(i) − y_(k))^power < 1 (f decreases and f(θ*) = 1); θ is the
    closed form on that prefix. Entries below −2 never reach the support (θ* ≥ −1) and are
    raised to −2, so running sums stay small.
    """
    ordered = torch.sort(y, dim=-1, descending=True).values.clamp_(min=-2.0)
    k = torch.arange(1, y.shape[-1] + 1, device=y.device, dtype=y.dtype)
    first = ordered.cumsum(-1)
    if power == 1.0:
        excess = torch.addcmul(first, k, ordered, value=-1.0)  # Σ_{i≤k} y_(i) − k y_(k)
    else:
        second = ordered.square().cumsum(-1)
        half = torch.addcmul(first, k, ordered, value=-0.5)
        excess = torch.addcmul(second, ordered, half, value=-2.0, out=half)  # Σ y² − 2 y_(k) Σ y + k y_(k)²
    size = (excess < 1.0).sum(-1, keepdim=True).clamp_(min=1)  # the largest entry is always in
    count = size.to(y.dtype)
    total = first.gather(-1, size - 1)
    if power == 1.0:
        return (total - 1.0).div_(count)
    mean = total / count
    spread = second.gather(-1, size - 1).sub_(total * mean)  # Σ_S (y − mean)²
    return mean.sub_((1.0 - spread).div_(count).clamp_(min=0.0).sqrt_())


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


_compiled_first_pass = _Compiled(_first_pass, os.environ.get("GAG_COMPILE") == "1")
_compiled_sorting = _Compiled(_solve_by_sorting, os.environ.get("GAG_COMPILE") == "1")
