"""Fused GAG text attention in one Triton kernel: scores once, both maps, the guided output.

One program takes BLOCK_M queries of one (batch, head) and all its text keys. For each query
row it computes, without writing anything but the result:

    z = q Kᵀ/√d (+ mask)           once: kept in registers when the keys fit one tile
                                   (Nk ≤ SINGLE_TILE_KEYS), else recomputed tile by tile
    P = softmax(z), D = P V         online over key tiles (flash-style rescaling)
    θ of α-entmax, y = (α−1)(z − max z):
        the softmax-weighted lower bound of gag_core/alpha_entmax.py (w = P²), gathered in the
        same pass as D: with e = exp(z − max z), θ0 = (Σe²y − √Σe⁴)/Σe² for α = 1.5 and
        (Σe²y − 1)/Σe² for α = 2 (the normaliser of P cancels);
        SOLVER_STEPS Cauchy–Schwarz (α = 1.5) or Newton (α = 2) steps, each a lower bound;
        then support refinement: θ ← the closed-form root on the support {y > θ} (starting from
        θ − SUPPORT_MARGIN), until the support stops changing. From a lower bound each round
        keeps a superset of the true support and strictly shrinks it until it is exact, and a
        support that no longer changes is the exact solution (the KKT conditions hold), so the
        loop ends with the exact threshold, usually after one round. It replaces gag_core's
        retry-then-sort fallback: exact without sorting, for any number of key tiles, with no
        second kernel and no host sync;
    S = entmax(z) V                 accumulated in the pass that confirms the support
    the epilogue (SPEC §1):         "output": G = S + λ r u (or PLADIS D + s (S − D));
                                    "correction": (G − D), times the joint mass
                                    exp(lse_text − lse_joint) when a joint log-sum-exp is given;
                                    "joint_image": D_img + σ(lse_text − lse_img) (G − D_img),
                                    the mass-preserving image rows of joint attention.

Precision: bf16/fp16 scores are tensor-core products with fp32 accumulation (exact products);
P·V splits the fp32 probabilities into a high and a low part in the input dtype (two MMAs) so
the retrievals stay at the output's rounding floor; fp32 inputs use IEEE fp32 dots, never
TF32, whatever PyTorch's global matmul precision says. The GAG combination works on the
retrievals divided by their largest entry per row, so no squared norm overflows where plain
attention is finite.

Under ``TRITON_INTERPRET=1`` (the CPU tests) two defects of Triton 3.9's interpreter are
avoided: its ``tl.dot`` on bf16 operands multiplies raw bit patterns, so low-precision
operands are widened to fp32 first (exact: an MMA with fp32 accumulation), and its fp32 → bf16
cast truncates, so values are rounded to nearest even before the cast.
"""

import math

import torch
import triton
import triton.language as tl

from .alpha_entmax import SUPPORT_MARGIN
from .attention import as_four_dims
from .backends import interpreting
from .guidance import SPARSE_NORM_EPS

INTERPRET = interpreting()
"""Read once, like ``triton.jit`` itself reads TRITON_INTERPRET when the kernel is defined."""
FLOOR = float(torch.finfo(torch.float32).min)
"""An additive mask at or below this (−inf included) blocks its key, as in gag_core's torch path."""
TINY = float(torch.finfo(torch.float32).tiny)
TILE_ELEMENTS = {2: 8192, 4: 2048}
"""Largest key tile (keys × padded head dim), by element size. When all keys fit one such tile
(SDXL: 77 keys × 64) their scores live in registers for the whole kernel; beyond (T5, Qwen
and Wan contexts, FLUX's 512 tokens, wide heads) the keys stream in tiles of this size and
the scores are recomputed per pass."""
SCORE_TILE_ELEMENTS = 2048
"""Largest streamed score tile (queries × keys per tile) when the keys come in tiles."""
NUM_WARPS = 8
"""Block sizes and warps are untuned (no GPU has been available to this project yet): chosen
so that every variant compiles for sm_80–sm_90 without register spills and within the 99 KiB
of shared memory of consumer GPUs (devtools/compile_kernels.py reports it)."""
SOLVER_STEPS = {2: 2, 1: 3}
"""Lower-bound steps before the support refinement, by power 1/(α−1); as gag_core's torch path."""
EPILOGUES = {"output": 0, "correction": 1, "joint_image": 2}
MASK_NONE, MASK_BOOL, MASK_ADDITIVE = 0, 1, 2


@triton.jit
def _rounded_to(x, dtype: tl.constexpr, INTERPRET: tl.constexpr):
    """fp32 x cast to ``dtype`` with round-to-nearest-even (the GPU's cast; see module doc)."""
    if INTERPRET:
        if dtype == tl.bfloat16:
            bits = x.to(tl.int32, bitcast=True)
            x = ((bits + 0x7FFF + ((bits >> 16) & 1)) & -65536).to(tl.float32, bitcast=True)
    return x.to(dtype)


@triton.jit
def _dot(a, b, INTERPRET: tl.constexpr):
    """a @ b accumulated in fp32: low-precision operands on tensor cores, fp32 ones in IEEE fp32."""
    if INTERPRET:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    if a.dtype == tl.float32:
        return tl.dot(a, b, input_precision="ieee")
    return tl.dot(a, b)


@triton.jit
def _probs_times_values(p, v, INTERPRET: tl.constexpr):
    """p (rows, keys) fp32 @ v (keys, d) in v's dtype → fp32. For bf16/fp16 values, p is split
    into a high and a low part in that dtype: rounding p once would cost 3–4× the output's
    rounding error, the split keeps its fp32 precision."""
    if v.dtype == tl.float32:
        return _dot(p, v, INTERPRET)
    high = _rounded_to(p, v.dtype, INTERPRET)
    low = _rounded_to(p - high.to(tl.float32), v.dtype, INTERPRET)
    return _dot(high, v, INTERPRET) + _dot(low, v, INTERPRET)


@triton.jit
def _key_tile(ptr, base, offs_n, offs_d, stride_n, stride_d, NK, HEAD_DIM):
    """(BLOCK_N, BLOCK_D) tile of keys or values; zeros outside the tensor."""
    return tl.load(ptr + base + offs_n[:, None] * stride_n + offs_d[None, :] * stride_d,
                   mask=(offs_n < NK)[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0)


@triton.jit
def _score_tile(q, K, MASK, k_base, mask_base, offs_m, row_ok, start, NK, HEAD_DIM,
                skn, skd, smm, smn, sm_scale, floor,
                MASK_KIND: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, INTERPRET: tl.constexpr):
    """Scores (BLOCK_M, BLOCK_N) fp32 of the keys [start, start + BLOCK_N), −inf where a key is
    absent or masked: q Kᵀ/√d plus the additive mask."""
    offs_n = start + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    keys = _key_tile(K, k_base, offs_n, offs_d, skn, skd, NK, HEAD_DIM)
    s = _dot(q, tl.trans(keys), INTERPRET) * sm_scale
    keep = row_ok[:, None] & (offs_n < NK)[None, :]
    if MASK_KIND == 1:  # bool, True = keep
        kept = tl.load(MASK + mask_base + offs_m[:, None] * smm + offs_n[None, :] * smn, mask=keep, other=0)
        keep = keep & (kept != 0)
    if MASK_KIND == 2:  # additive
        bias = tl.load(MASK + mask_base + offs_m[:, None] * smm + offs_n[None, :] * smn, mask=keep,
                       other=float("-inf")).to(tl.float32)
        keep = keep & (bias > floor)
        s = s + bias
    return tl.where(keep, s, float("-inf"))


@triton.jit
def _excess_sums(y, theta):
    """Per row, with r = (y − θ)_+: (Σ r, Σ r², #{r > 0})."""
    r = tl.maximum(y - theta[:, None], 0.0)
    return tl.sum(r, axis=1), tl.sum(r * r, axis=1), tl.sum((r > 0.0).to(tl.float32), axis=1)


@triton.jit
def _row_excess_sums(theta, y_single, row_max, y_scale, q, K, MASK, k_base, mask_base, offs_m, row_ok, NK, HEAD_DIM,
                     skn, skd, smm, smn, sm_scale, floor, MASK_KIND: tl.constexpr, SINGLE_TILE: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, INTERPRET: tl.constexpr):
    """``_excess_sums`` over all keys of each row: from the scores kept in registers
    (``y_single``) or, tile by tile, recomputed (y = (s − row max) · y_scale)."""
    total = tl.zeros([BLOCK_M], tl.float32)
    squares = tl.zeros([BLOCK_M], tl.float32)
    count = tl.zeros([BLOCK_M], tl.float32)
    for start in range(0, NK, BLOCK_N):
        if SINGLE_TILE:
            y = y_single
        else:
            y = (_score_tile(q, K, MASK, k_base, mask_base, offs_m, row_ok, start, NK, HEAD_DIM, skn, skd, smm, smn,
                             sm_scale, floor, MASK_KIND, BLOCK_N, BLOCK_D, INTERPRET) - row_max[:, None]) * y_scale
        t, sq, c = _excess_sums(y, theta)
        total += t
        squares += sq
        count += c
    return total, squares, count


@triton.jit
def _closed_form_shift(total, squares, count, POWER: tl.constexpr):
    """δ such that θ + δ solves the entmax equation on the support whose sums Σr, Σr², k
    (r = y − θ there) are given: for power 2 the smaller root of k δ² − 2 δ Σr + Σr² − 1 = 0,
    for power 1 (Σr − 1)/k."""
    k = tl.maximum(count, 1.0)
    if POWER == 2:
        return (total - tl.sqrt(tl.maximum(total * total - k * (squares - 1.0), 0.0))) / k
    return (total - 1.0) / k


@triton.jit
def _gag_text_attention_kernel(
    Q, K, V, MASK, OUT, IMG_DENSE, IMG_LSE, JOINT_LSE, ITERATIONS,
    sqb, sqh, sqm, sqd, skb, skh, skn, skd, svb, svh, svn, svd,
    smb, smh, smm, smn, sob, soh, som, sod, sib, sih, sim, sid, slb, slh, slm, sjb, sjh, sjm,
    H, NQ, NK, HEAD_DIM,
    sm_scale, lam, zeta, tau, pladis_scale, margin, floor, tiny, sparse_norm_eps,
    POWER: tl.constexpr, PLADIS: tl.constexpr, ZETA_ZERO: tl.constexpr, CAP: tl.constexpr,
    MASK_KIND: tl.constexpr, EPILOGUE: tl.constexpr, HAS_JOINT_LSE: tl.constexpr, STEPS: tl.constexpr,
    SINGLE_TILE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    WITH_ITERATIONS: tl.constexpr, INTERPRET: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < NQ
    d_ok = offs_d < HEAD_DIM
    k_base = b * skb + h * skh
    v_base = b * svb + h * svh
    mask_base = b * smb + h * smh
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sqm + offs_d[None, :] * sqd,
                mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    y_scale = 1.0 / POWER  # y = (α − 1) z

    # ---- pass 1: max, softmax normaliser, D = P V, and the sums of the first bound
    row_max = tl.full([BLOCK_M], float("-inf"), tl.float32)
    norm = tl.zeros([BLOCK_M], tl.float32)
    dense = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    e2_sum = tl.zeros([BLOCK_M], tl.float32)
    e2y_sum = tl.zeros([BLOCK_M], tl.float32)
    e4_sum = tl.zeros([BLOCK_M], tl.float32)
    s_single = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    v_single = tl.zeros([BLOCK_N, BLOCK_D], V.dtype.element_ty)
    for start in range(0, NK, BLOCK_N):
        s = _score_tile(q, K, MASK, k_base, mask_base, offs_m, row_ok, start, NK, HEAD_DIM, skn, skd, smm, smn,
                        sm_scale, floor, MASK_KIND, BLOCK_N, BLOCK_D, INTERPRET)
        values = _key_tile(V, v_base, start + tl.arange(0, BLOCK_N), offs_d, svn, svd, NK, HEAD_DIM)
        if SINGLE_TILE:
            s_single = s
            v_single = values
        new_max = tl.maximum(row_max, tl.max(s, axis=1))
        safe_max = tl.where(new_max > float("-inf"), new_max, 0.0)
        moved = tl.where(row_max > float("-inf"), row_max - safe_max, 0.0)  # ≤ 0; 0 before any key
        rescale = tl.exp(moved)
        e = tl.exp(s - safe_max[:, None])
        e2 = e * e
        y = (s - safe_max[:, None]) * y_scale
        # Σe²y is kept relative to the running max: moving the max by δ adds δ·y_scale·Σe²
        e2y_sum = rescale * rescale * (e2y_sum + e2_sum * (moved * y_scale)) \
            + tl.sum(e2 * tl.where(e2 > 0.0, y, 0.0), axis=1)
        e2_sum = rescale * rescale * e2_sum + tl.sum(e2, axis=1)
        e4_sum = rescale * rescale * rescale * rescale * e4_sum + tl.sum(e2 * e2, axis=1)
        norm = rescale * norm + tl.sum(e, axis=1)
        dense = dense * rescale[:, None] + _probs_times_values(e, values, INTERPRET)
        row_max = new_max
    has_keys = row_max > float("-inf")
    safe_max = tl.where(has_keys, row_max, 0.0)
    safe_e2 = tl.where(has_keys, e2_sum, 1.0)
    if POWER == 2:
        theta = (e2y_sum - tl.sqrt(e4_sum)) / safe_e2
    else:
        theta = (e2y_sum - 1.0) / safe_e2
    theta = tl.where(has_keys, theta, 0.0)
    y_single = (s_single - safe_max[:, None]) * y_scale

    # ---- lower-bound steps (Cauchy–Schwarz for power 2, Newton for power 1)
    for _ in tl.static_range(STEPS):
        total, squares, count = _row_excess_sums(
            theta, y_single, safe_max, y_scale, q, K, MASK, k_base, mask_base, offs_m, row_ok, NK, HEAD_DIM, skn, skd,
            smm, smn, sm_scale, floor, MASK_KIND, SINGLE_TILE, BLOCK_M, BLOCK_N, BLOCK_D, INTERPRET)
        if POWER == 2:
            theta += (squares - tl.sqrt(squares)) / tl.maximum(total, tiny)
        else:
            theta += (total - 1.0) / tl.maximum(count, 1.0)

    # ---- support refinement from θ − margin; the confirming pass also accumulates S
    theta = theta - margin
    total, squares, support = _row_excess_sums(
        theta, y_single, safe_max, y_scale, q, K, MASK, k_base, mask_base, offs_m, row_ok, NK, HEAD_DIM, skn, skd,
        smm, smn, sm_scale, floor, MASK_KIND, SINGLE_TILE, BLOCK_M, BLOCK_N, BLOCK_D, INTERPRET)
    settled = has_keys == 0  # rows without keys have nothing to solve
    iterations = 0
    sparse = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    while (tl.min(settled.to(tl.int32), axis=0) == 0) & (iterations <= NK):
        theta = tl.where(settled, theta, theta + _closed_form_shift(total, squares, support, POWER))
        total = tl.zeros([BLOCK_M], tl.float32)
        squares = tl.zeros([BLOCK_M], tl.float32)
        count = tl.zeros([BLOCK_M], tl.float32)
        sparse = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
        for start in range(0, NK, BLOCK_N):
            if SINGLE_TILE:
                y = y_single
                values = v_single
            else:
                y = (_score_tile(q, K, MASK, k_base, mask_base, offs_m, row_ok, start, NK, HEAD_DIM, skn, skd, smm,
                                 smn, sm_scale, floor, MASK_KIND, BLOCK_N, BLOCK_D, INTERPRET)
                     - safe_max[:, None]) * y_scale
                values = _key_tile(V, v_base, start + tl.arange(0, BLOCK_N), offs_d, svn, svd, NK, HEAD_DIM)
            r = tl.maximum(y - theta[:, None], 0.0)
            total += tl.sum(r, axis=1)
            squares += tl.sum(r * r, axis=1)
            count += tl.sum((r > 0.0).to(tl.float32), axis=1)
            if POWER == 2:
                r = r * r
            sparse += _probs_times_values(r, values, INTERPRET)
        settled = settled | (count == support)
        support = count
        iterations += 1

    # ---- epilogue
    dense = dense / tl.where(has_keys, norm, 1.0)[:, None]
    dense = tl.where(has_keys[:, None], dense, 0.0)
    sparse = tl.where(has_keys[:, None], sparse, 0.0)
    if PLADIS:
        guided = dense + pladis_scale * (sparse - dense)
    else:
        # scale by the row's largest entry first: squared norms never overflow
        scale = tl.maximum(tl.max(tl.abs(sparse), axis=1), tl.max(tl.abs(dense), axis=1))
        scale = tl.where(scale > 0.0, scale, 1.0)
        sparse_n = sparse / scale[:, None]
        dense_n = dense / scale[:, None]
        sparse_sq = tl.sum(sparse_n * sparse_n, axis=1)
        delta_dot_sparse = sparse_sq - tl.sum(sparse_n * dense_n, axis=1)
        has_direction = sparse_sq * scale > sparse_norm_eps / scale  # ‖S‖² > eps, unscaled, without overflow
        coef = tl.where(has_direction, delta_dot_sparse / tl.maximum(sparse_sq, tiny), 0.0)
        parallel_sq = coef * delta_dot_sparse
        if ZETA_ZERO:
            update_sq = parallel_sq
        else:
            delta_n = sparse_n - dense_n
            update_sq = parallel_sq + (zeta * zeta) * tl.maximum(tl.sum(delta_n * delta_n, axis=1) - parallel_sq, 0.0)
        if CAP:  # λ · min(1, τ/‖u‖), dividing only where the cap bites
            cap = tau / scale
            update_norm = tl.sqrt(tl.maximum(update_sq, 0.0))
            capped = update_norm > cap
            step = lam * tl.where(capped, cap / tl.where(capped, update_norm, 1.0), 1.0)
        else:
            step = tl.full([BLOCK_M], 1.0, tl.float32) * lam
        if ZETA_ZERO:
            guided = sparse * (step * coef + 1.0)[:, None]
        else:
            guided = sparse * (step * ((1.0 - zeta) * coef + zeta) + 1.0)[:, None] - dense * (step * zeta)[:, None]
    text_lse = safe_max + tl.log(tl.where(has_keys, norm, 1.0))
    if EPILOGUE == 0:
        result = guided
    if EPILOGUE == 1:
        result = guided - dense
        if HAS_JOINT_LSE:
            joint_lse = tl.load(JOINT_LSE + b * sjb + h * sjh + offs_m * sjm, mask=row_ok, other=0.0).to(tl.float32)
            mass = tl.exp(tl.minimum(text_lse - joint_lse, 0.0))
            result = result * tl.where(has_keys, mass, 0.0)[:, None]
    if EPILOGUE == 2:
        image_dense = tl.load(IMG_DENSE + b * sib + h * sih + offs_m[:, None] * sim + offs_d[None, :] * sid,
                              mask=row_ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)
        image_lse = tl.load(IMG_LSE + b * slb + h * slh + offs_m * slm, mask=row_ok, other=0.0).to(tl.float32)
        # σ(lse_text − lse_img), the dense mass on the text keys; 1 when the image keys are all masked
        mass = tl.where(image_lse > float("-inf"), tl.sigmoid(text_lse - image_lse), 1.0)
        mass = tl.where(has_keys, mass, 0.0)
        result = image_dense + mass[:, None] * (guided - image_dense)
    tl.store(OUT + b * sob + h * soh + offs_m[:, None] * som + offs_d[None, :] * sod,
             _rounded_to(result, OUT.dtype.element_ty, INTERPRET), mask=row_ok[:, None] & d_ok[None, :])
    if WITH_ITERATIONS:
        tl.store(ITERATIONS + pid_bh * tl.num_programs(0) + pid_m, iterations)


def _strides(t: torch.Tensor | None, ndim: int) -> tuple:
    """The strides of an optional kernel argument (zeros for an absent one)."""
    return tuple(t.stride()) if t is not None else (0,) * ndim


def _mask_argument(mask: torch.Tensor | None, shape: tuple) -> tuple:
    """(tensor, kind) for the kernel: a 4-D mask broadcast (stride 0) to ``shape``, bool as bytes."""
    if mask is None:
        return None, MASK_NONE
    mask = as_four_dims(mask).expand(shape)
    if mask.dtype == torch.bool:
        return mask.view(torch.uint8), MASK_BOOL
    return mask, MASK_ADDITIVE


def padded_head_dim(head_dim: int) -> int:
    """BLOCK_D: the head dim padded to a power of two (at least 16, tl.dot's minimum)."""
    return max(16, triton.next_power_of_2(head_dim))


def query_block(dtype: torch.dtype, head_dim: int) -> int:
    """BLOCK_M, queries per program. Each program reads the keys and values once per pass, so
    more queries per program mean less traffic, up to the registers that the query block and
    both fp32 retrievals (queries × head dim each) take: 32 for 16-bit heads up to 64 wide,
    else 16."""
    return 32 if torch.finfo(dtype).bits == 16 and padded_head_dim(head_dim) <= 64 else 16


def key_tiling(dtype: torch.dtype, n_keys: int, head_dim: int, key_tile: int | None = None) -> tuple:
    """(single_tile, BLOCK_N) for inputs of ``dtype``: see TILE_ELEMENTS and SCORE_TILE_ELEMENTS.
    ``key_tile`` (a power of two ≥ 16) overrides the tile size, as the tests do."""
    budget = key_tile or TILE_ELEMENTS[torch.finfo(dtype).bits // 8] // padded_head_dim(head_dim)
    padded_keys = max(16, triton.next_power_of_2(n_keys))
    if padded_keys <= budget:
        return True, padded_keys
    streamed = key_tile or min(budget, SCORE_TILE_ELEMENTS // query_block(dtype, head_dim))
    return False, max(16, streamed)


def fused_text_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, lam: float, zeta: float,
                         tau: float | None, alpha: float, mode: str = "gag", pladis_scale: float = 2.0,
                         mask: torch.Tensor | None = None, epilogue: str = "output",
                         image_dense: torch.Tensor | None = None, image_logsumexp: torch.Tensor | None = None,
                         joint_logsumexp: torch.Tensor | None = None, out: torch.Tensor | None = None,
                         key_tile: int | None = None, solver_steps: int | None = None,
                         return_iterations: bool = False):
    """Guided text attention of queries q (B, H, Nq, d) over text keys k, v (B, H, Nk, d).

    Any strides (head-split views are fine). ``mask`` broadcastable to (B, H, Nq, Nk), bool
    (True = keep) or additive float. ``epilogue`` (see the module doc): "output" returns G in
    q's dtype; "correction" returns m·(G − D) in float32, m from ``joint_logsumexp`` (B, H, Nq)
    or 1; "joint_image" returns D_img + σ(lse_text − lse_img)(G − D_img) in q's dtype from
    ``image_dense`` (B, H, Nq, d) and ``image_logsumexp`` (B, H, Nq). ``out`` (optional, any
    strides, the result's shape and dtype) receives the result. ``key_tile`` (keys per tile:
    all keys in one tile when it holds them) and ``solver_steps`` override the tiling and the
    number of lower-bound steps (the tests reach every path with them); ``return_iterations`` also returns the
    refinement rounds each program took, (programs,) int32.
    """
    batch, heads, n_queries, head_dim = q.shape
    n_keys = k.shape[-2]
    power = {1.5: 2, 2.0: 1}[float(alpha)]
    if epilogue not in EPILOGUES:
        raise ValueError(f"epilogue must be one of {', '.join(EPILOGUES)}, got {epilogue!r}")
    if epilogue == "joint_image" and (image_dense is None or image_logsumexp is None):
        raise ValueError("epilogue 'joint_image' needs image_dense and image_logsumexp")
    result_dtype = torch.float32 if epilogue == "correction" else q.dtype
    if out is None:
        out = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=result_dtype, device=q.device)
    mask_tensor, mask_kind = _mask_argument(mask, (batch, heads, n_queries, n_keys))
    single_tile, block_n = key_tiling(q.dtype, n_keys, head_dim, key_tile)
    block_m = query_block(q.dtype, head_dim)
    grid = (triton.cdiv(n_queries, block_m), batch * heads)
    iterations = torch.empty(grid[0] * grid[1] if return_iterations else 1, dtype=torch.int32, device=q.device)
    cap = tau is not None and not math.isinf(tau)
    _gag_text_attention_kernel[grid](
        q, k, v, mask_tensor if mask_tensor is not None else q, out,
        image_dense if image_dense is not None else q, image_logsumexp if image_logsumexp is not None else q,
        joint_logsumexp if joint_logsumexp is not None else q, iterations,
        *q.stride(), *k.stride(), *v.stride(), *_strides(mask_tensor, 4), *out.stride(),
        *_strides(image_dense, 4), *_strides(image_logsumexp, 3), *_strides(joint_logsumexp, 3),
        heads, n_queries, n_keys, head_dim,
        head_dim ** -0.5, float(lam), float(zeta), float(tau) if cap else 0.0, float(pladis_scale),
        SUPPORT_MARGIN, FLOOR, TINY, SPARSE_NORM_EPS,
        POWER=power, PLADIS=mode == "pladis", ZETA_ZERO=float(zeta) == 0.0, CAP=cap, MASK_KIND=mask_kind,
        EPILOGUE=EPILOGUES[epilogue], HAS_JOINT_LSE=joint_logsumexp is not None,
        STEPS=SOLVER_STEPS[power] if solver_steps is None else solver_steps,
        SINGLE_TILE=single_tile, BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_D=padded_head_dim(head_dim), WITH_ITERATIONS=return_iterations,
        INTERPRET=INTERPRET, num_warps=NUM_WARPS,
    )
    return (out, iterations) if return_iterations else out
