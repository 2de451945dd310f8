"""GAG attention: one score map shared by the dense (softmax) and sparse (α-entmax) maps.

Shapes follow PyTorch's scaled_dot_product_attention: q (B, H, Nq, d), k and v
(B, H, Nk, d); scores use the scale 1/√d. Masks broadcast to (B, H, Nq, Nk) and are
either bool (True = keep) or additive float. Probability maps and retrievals are computed
in float32 (float64 input stays float64); results come back in the dtype of q.

Each guided function takes ``backend="auto" | "torch" | "triton"`` (see backends.py): the
fused Triton kernel (triton_attention.py) or the chunked PyTorch code below; both compute
the same result to float rounding. Diagnostics (``stats``) always take the PyTorch path,
which has the per-row retrievals they summarise.
"""

import logging
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from . import backends, execution
from .alpha_entmax import compute_dtype, finite_floor, sparse_probs
from .diagnostics import GuidanceStats
from .guidance import guide_unchecked
from .settings import check_guidance

log = logging.getLogger(__name__)

class TextRetrievals(NamedTuple):
    """Dense and sparse retrievals over one key set, in the compute dtype.

    dense, sparse: (B, H, Nq, d). logsumexp: (B, H, Nq, 1), the log-normaliser of the
    dense map over these keys (needed to weigh them inside a larger joint attention).
    """

    dense: torch.Tensor
    sparse: torch.Tensor
    logsumexp: torch.Tensor


def nothing_to_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """True when there is no query, key, batch item or head: the result is then all zeros
    (a query without keys retrieves nothing, as a query whose keys are all masked does).
    Raises ValueError for a head dimension of 0 (there are no scores to compute)."""
    if q.shape[-1] == 0 or k.shape[-1] == 0:
        raise ValueError(f"q and k need a head dimension > 0, got q {tuple(q.shape)} and k {tuple(k.shape)}")
    return q.numel() == 0 or k.shape[-2] == 0 or v.shape[-2] == 0


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype, *, finite: bool = False) -> torch.Tensor | None:
    """A bool keep-mask as 0 / −inf in ``dtype``; a float mask cast to ``dtype``. With
    ``finite``, −inf becomes the solvers' finite floor (see ``finite_floor``)."""
    if mask is None:
        return None
    blocked = finite_floor(dtype) if finite else float("-inf")
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, blocked)
    return mask.to(dtype).clamp(min=blocked)


CHUNK_ELEMENTS = 1 << 19
"""Score-map elements per query chunk on the CPU path (2 MiB in float32). Each chunk's
scores, both probability maps and the entmax temporaries stay cache-resident, and no tensor
of size B·H·Nq·Nk is ever allocated."""
DEVICE_CHUNK_ELEMENTS = 1 << 24
"""The same on the device path (64 MiB in float32, see execution.py): few, large kernels;
cache residency matters less there than launch overhead."""


def as_four_dims(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A mask shaped (Nk,), (Nq, Nk), (B, Nq, Nk) or (B, H, Nq, Nk) as a 4-D view, the way
    PyTorch's SDPA (and ComfyUI's attention backends) broadcast it."""
    if mask is None:
        return None
    while mask.ndim < 4:
        mask = mask.unsqueeze(0) if mask.ndim != 3 else mask.unsqueeze(1)
    return mask


def mask_block(mask: torch.Tensor | None, queries: slice, keys: slice) -> torch.Tensor | None:
    """The (queries × keys) block of a 4-D mask; a mask broadcast over queries or keys (size
    1 there) keeps that size-1 dimension."""
    if mask is None:
        return None
    return mask[..., queries if mask.shape[-2] > 1 else slice(None), keys if mask.shape[-1] > 1 else slice(None)]


def joint_token_slices(text_len: int, text_last: bool = False) -> tuple[slice, slice]:
    """(text, image) slices of a joint token sequence whose ``text_len`` > 0 text tokens form
    one run, first (default) or last."""
    if text_last:
        return slice(-text_len, None), slice(None, -text_len)
    return slice(None, text_len), slice(text_len, None)


def image_text_block(mask: torch.Tensor | None, text_len: int, text_last: bool = False) -> torch.Tensor | None:
    """The (image queries × text keys) part of a 4-D joint-attention mask, text first (or last)."""
    text, image = joint_token_slices(text_len, text_last)
    return mask_block(mask, image, text)


def _scaled_keys_t(q: torch.Tensor, k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """kᵀ / √d in the compute dtype, (…, d, Nk): the score scale folded into the small side."""
    return (k.to(dtype) * q.shape[-1] ** -0.5).transpose(-1, -2)


def _scores(q, k_scaled_t, bias, out=None):
    scores = torch.matmul(q, k_scaled_t, out=out)
    return scores if bias is None else scores.add_(bias)


CHUNK_SLACK = 1.05
"""A chunk may exceed the score budget by this factor when that saves a whole chunk: 4096
SDXL queries are 12 CPU chunks of 342 rows instead of 13 of 316 (each chunk pays the solver's
fixed per-call cost), 4096 FLUX queries 3 device chunks of 1366 rows instead of 4."""


def _query_chunks(q: torch.Tensor, n_keys: int) -> list[slice]:
    """Query slices within the score budget (give or take CHUNK_SLACK), as few as fit and
    balanced: their sizes differ by at most one row (no 1-row tail)."""
    n_queries = q.shape[-2]
    budget = DEVICE_CHUNK_ELEMENTS if execution.device_path(q.device) else CHUNK_ELEMENTS
    rows = budget / max(1, math.prod(q.shape[:-2]) * n_keys)
    count = max(1, math.ceil(n_queries / max(1.0, rows * CHUNK_SLACK)))
    size, longer = divmod(n_queries, count)  # the first ``longer`` chunks take one row more
    bounds = [index * size + min(index, longer) for index in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:]) if stop > start]


def _mask_rows(mask: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    if mask is None or mask.shape[-2] == 1:
        return mask
    return mask[..., rows, :]


class _ChunkBuffers:
    """Buffers reused by every chunk of one call: three of the score map's size (scores,
    dense probabilities, sparse probabilities) and two of the retrievals' size (dense,
    sparse). The first (largest) chunk sizes each role; a chunk one row shorter gets
    contiguous views of the same memory. So a chunk's retrievals are valid until the next
    chunk is computed."""

    def __init__(self):
        self._flat = {}

    def get(self, role: str, shape, count: int, like: torch.Tensor) -> tuple:
        numel = math.prod(shape)
        flat = self._flat.get(role)
        if flat is None or flat[0].numel() < numel:
            flat = self._flat[role] = tuple(torch.empty(numel, dtype=like.dtype, device=like.device)
                                            for _ in range(count))
        return tuple(buffer[:numel].view(shape) for buffer in flat)


def _retrieve(q, k_scaled_t, values, alpha, bias, with_logsumexp, buffers: _ChunkBuffers) -> TextRetrievals:
    """Both retrievals for one query chunk (inputs already in the compute dtype; ``bias``
    finite, see ``additive_mask``).

    Order matters for memory: the dense map is consumed (D = P V, and the log-sum-exp)
    before the entmax solver takes its buffer as scratch, and the scores are overwritten
    by the solver.
    """
    shape = q.shape[:-1] + k_scaled_t.shape[-1:]
    scores_buf, probs_buf, sparse_buf = buffers.get("maps", torch.broadcast_shapes(
        shape, k_scaled_t.shape[:-2] + shape[-2:]), 3, q)
    dense_out, sparse_out = buffers.get("retrievals", scores_buf.shape[:-1] + values.shape[-1:], 2, q)
    with execution.ieee_fp32_matmuls():
        scores = _scores(q, k_scaled_t, bias, out=scores_buf)
        probs = torch.softmax(scores, -1, out=probs_buf)
        dense = torch.matmul(probs, values, out=dense_out)
        logsumexp = _logsumexp(scores, probs) if with_logsumexp else None
        sparse = torch.matmul(sparse_probs(scores, alpha, dense_probs=probs, out=sparse_buf), values, out=sparse_out)
    return TextRetrievals(dense, sparse, logsumexp)


def _logsumexp(scores, probs):
    """log Σ exp(scores) along the last dim, (..., 1), from the softmax already computed:
    the largest probability sits at the largest score and equals exp(max − logsumexp)."""
    return scores.amax(-1, keepdim=True).sub_(probs.amax(-1, keepdim=True).log_())


def _rows_without_keys(bias, blocked: float):
    """Query rows whose every key the additive ``bias`` blocks (all entries ≤ ``blocked``:
    −inf, or the finite floor), (..., Nq or 1, 1) bool; None without a bias, and on the CPU
    path also when there is no such row (there a host sync is free, and spares the fills)."""
    if bias is None:
        return None
    without_keys = bias.amax(-1, keepdim=True) <= blocked
    if execution.device_path(bias.device) or bool(without_keys.any()):
        return without_keys
    return None


def _guided_chunks(q, k, v, alpha, mask, with_logsumexp):
    """Yield (query slice, retrievals) chunk by chunk; the retrievals live in buffers that
    the next chunk overwrites. Query rows whose keys are all masked get zero retrievals
    and a log-sum-exp at the finite floor (no NaN)."""
    dtype = compute_dtype(q.dtype)
    k_scaled_t = _scaled_keys_t(q, k, dtype)
    values = v.to(dtype).contiguous()  # adapters pass head-split views; copy once, not per chunk
    bias = additive_mask(as_four_dims(mask), dtype, finite=True)
    rows_without_keys = _rows_without_keys(bias, finite_floor(dtype))
    buffers = _ChunkBuffers()
    for rows in _query_chunks(q, k.shape[-2]):
        r = _retrieve(q[..., rows, :].to(dtype), k_scaled_t, values, alpha, _mask_rows(bias, rows), with_logsumexp,
                      buffers)
        if rows_without_keys is not None:
            without_keys = _mask_rows(rows_without_keys, rows)
            r.dense.masked_fill_(without_keys, 0.0)
            r.sparse.masked_fill_(without_keys, 0.0)
        yield rows, r


def _use_triton(backend: str, stats: GuidanceStats | None, q: torch.Tensor, k: torch.Tensor, alpha: float) -> bool:
    """Whether this call runs the fused Triton kernel (never with diagnostics: see module doc)."""
    if stats is not None:
        backends.check_name(backend)
        return False
    return backends.choose(backend, q, k, alpha) == "triton"


def _fused(backend: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> torch.Tensor | None:
    """``triton_attention.fused_text_attention(q, k, v, **kwargs)``, or None when the kernel
    failed to compile or launch on this GPU and the backend was not forced: the Triton backend
    is then off for the process (logged once) and the caller takes the PyTorch path. The
    kernels are tested in Triton's interpreter and compiled ahead of time for sm_80–sm_90,
    but a GPU, driver or triton build they have not met may still refuse them."""
    from .triton_attention import fused_text_attention

    try:
        return fused_text_attention(q, k, v, **kwargs)
    except torch.OutOfMemoryError:
        raise
    except Exception as error:  # compilation, resources, driver: anything but memory
        if backends.forced(backend):
            raise
        backends.disable_triton(error)
        return None


def gag_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, lam: float, zeta: float,
                  tau: float | None, alpha: float, mode: str = "gag", pladis_scale: float = 2.0,
                  mask: torch.Tensor | None = None, stats: GuidanceStats | None = None,
                  backend: str = "auto") -> torch.Tensor:
    """Guided cross-attention output (B, H, Nq, d) in q's dtype (SPEC §1).

    ``stats`` (optional) accumulates diagnostics of every query row.
    """
    check_guidance(lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode, pladis_scale=pladis_scale)
    if nothing_to_attend(q, k, v):
        return torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    if _use_triton(backend, stats, q, k, alpha):
        out = _fused(backend, q, k, v, lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode,
                     pladis_scale=pladis_scale, mask=mask)
        if out is not None:
            return out
    out = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    for rows, r in _guided_chunks(q, k, v, alpha, mask, with_logsumexp=False):
        if stats is not None:
            stats.add(r.dense, r.sparse, zeta=zeta, tau=tau, mode=mode)
        target = out[..., rows, :]
        same_dtype = target.dtype == r.sparse.dtype  # else half precision: combine in the compute dtype, round once
        guided = guide_unchecked(r.dense, r.sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale,
                                 out=target if same_dtype else None)
        if not same_dtype:
            target.copy_(guided)
    return out


def gag_correction(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, lam: float, zeta: float,
                   tau: float | None, alpha: float, mode: str = "gag", pladis_scale: float = 2.0,
                   mask: torch.Tensor | None = None, joint_logsumexp: torch.Tensor | None = None,
                   stats: GuidanceStats | None = None, backend: str = "auto") -> torch.Tensor:
    """What GAG adds to the dense attention output: m · (G − D), (B, H, Nq, d), compute dtype.

    Without ``joint_logsumexp`` the keys are the whole attention and m = 1, so
    ``dense_output + correction`` equals :func:`gag_attention`. With it (shaped
    (B, H, Nq), the log-normaliser of a larger joint attention these keys are part of),
    m = exp(logsumexp_keys − joint_logsumexp) is the dense mass the queries put on these
    keys (SPEC §2, mass preserving). ``stats`` (optional) accumulates diagnostics of the
    retrievals over these keys.
    """
    check_guidance(lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode, pladis_scale=pladis_scale)
    dtype = compute_dtype(q.dtype)
    if nothing_to_attend(q, k, v):
        return torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=dtype, device=q.device)
    if _use_triton(backend, stats, q, k, alpha):
        correction = _fused(backend, q, k, v, lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode,
                            pladis_scale=pladis_scale, mask=mask, epilogue="correction",
                            joint_logsumexp=joint_logsumexp)
        if correction is not None:
            return correction
    correction = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=dtype, device=q.device)
    for rows, r in _guided_chunks(q, k, v, alpha, mask, with_logsumexp=joint_logsumexp is not None):
        if stats is not None:
            stats.add(r.dense, r.sparse, zeta=zeta, tau=tau, mode=mode)
        guided = guide_unchecked(r.dense, r.sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)
        chunk = guided.sub_(r.dense)
        if joint_logsumexp is not None:
            # at most 1 by definition; the clamp keeps a row with no key at all (joint −inf) from inf · 0
            mass = r.logsumexp.sub_(joint_logsumexp[..., rows].unsqueeze(-1).to(dtype)).clamp_(max=0.0).exp_()
            chunk = chunk.mul_(mass)
        correction[..., rows, :] = chunk
    return correction


FALLBACK_CHUNK_ELEMENTS = 1 << 24
"""Score elements per query chunk of the math fallback for the dense joint attention (64 MiB
in float32): bounded memory without thousands of tiny chunks on long joint sequences."""


def dense_attention_with_logsumexp(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                   mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention (B, H, Nq, d) in q's dtype and its log-normaliser (B, H, Nq) in float32
    (float64 for float64 input).

    Uses PyTorch's fused kernels that return the log-sum-exp, so that no (Nq × Nk) matrix is
    built in Python (see ``_fused_with_logsumexp``: the CPU flash kernel; on CUDA flash, cuDNN
    or memory-efficient attention, masked calls the memory-efficient kernel with an additive
    bias); inputs no fused kernel takes (other devices, float64, …) use a query-chunked math
    fallback. Query rows with every key masked get output 0 and log-normaliser −inf, whatever
    the kernel gave them.
    """
    bias = additive_mask(as_four_dims(mask), q.dtype)
    if q.shape[-2] == 0 or k.shape[-2] == 0:  # the fused CPU kernel crashes on empty inputs
        return (torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device),
                torch.full(q.shape[:-1], float("-inf"), dtype=compute_dtype(q.dtype), device=q.device))
    fused = _fused_with_logsumexp(q, k, v, bias)
    if fused is None:
        return _chunked_attention_with_logsumexp(q, k, v, bias)
    out, lse = fused
    without_keys = _rows_without_keys(bias, float("-inf"))
    if without_keys is not None:
        out = out.masked_fill(without_keys, 0.0)
        lse = lse.masked_fill(without_keys.squeeze(-1), float("-inf"))
    return out, lse


CUDA_DEVICE_TYPES = ("cuda",)
"""Devices whose tensors go to PyTorch's fused CUDA kernels. The op audit (bench/ops.py)
adds "meta" to trace the CUDA code path with shape-only tensors on a machine without a GPU."""
UNRECOVERABLE_ERRORS = tuple(error for error in (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
                                                  getattr(torch, "AcceleratorError", None)) if error is not None)
"""Errors of a fused kernel that are re-raised, never taken for "this kernel does not take
this input": the math fallback would need more memory, or the device is in an error state."""


def _fused_with_logsumexp(q, k, v, bias) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(output, log-sum-exp (B, H, Nq) float32) from a fused PyTorch kernel, or None when
    none takes this call. ``bias``: additive, q's dtype, 4-D, −inf where a key is masked; the
    CUDA kernels get it aligned (``_aligned_bias``)."""
    if q.device.type == "cpu":
        if q.dtype not in (torch.float32, torch.bfloat16, torch.float16):
            return None
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias)
    if q.device.type not in CUDA_DEVICE_TYPES:
        return None
    bias = None if bias is None else _aligned_bias(bias, q, k)
    kernel = CUDA_KERNELS.get(_cuda_backend(q, k, v, bias))
    if kernel is None:
        return None
    try:
        return kernel(q, k, v, bias)
    except UNRECOVERABLE_ERRORS:
        raise
    except RuntimeError as error:  # a constraint the backend checks did not cover
        _log_fallback_once(kernel.__name__, str(error).splitlines()[0] if str(error) else type(error).__name__)
        return None


def _cuda_backend(q, k, v, bias) -> SDPBackend | None:
    """The fused CUDA kernel for this call. Unmasked: the one PyTorch's SDPA itself picks (its
    support rules and the user's ``torch.backends.cuda.enable_*_sdp`` settings). Masked: the
    memory-efficient kernel, the one PyTorch's SDPA pairs with −inf biases (cuDNN needs a
    finite stand-in), when the user allows it and it takes the input; else None."""
    if bias is None:
        return SDPBackend(torch._fused_sdp_choice(q, k, v))
    cuda = torch.backends.cuda
    params = cuda.SDPAParams(q, k, v, bias, 0.0, False, False)
    if cuda.mem_efficient_sdp_enabled() and cuda.can_use_efficient_attention(params):
        return SDPBackend.EFFICIENT_ATTENTION
    return None


FLASH_HEAD_DIM_MULTIPLE = 8
"""The flash kernel takes head dims in multiples of 8; PyTorch's SDPA zero-pads the others."""
BIAS_ALIGNMENT = 8
"""Strides (in elements) the memory-efficient kernel needs of an additive bias, but the last
(which must be 1): PyTorch's SDPA pads the bias the same way before calling it
(``preprocess_mask`` in aten/src/ATen/native/transformers/attention.cpp)."""


def _flash_with_logsumexp(q, k, v, bias):
    """Flash attention (fp16/bf16, no mask) with its log-sum-exp (B, H, Nq) float32."""
    head_dim = q.shape[-1]
    pad = -head_dim % FLASH_HEAD_DIM_MULTIPLE
    if pad:  # zeros in the extra dims change neither the scores nor the output's first dims
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, scale=head_dim ** -0.5)[:2]
    return out[..., :head_dim], lse


def _cudnn_with_logsumexp(q, k, v, bias):
    """cuDNN attention with its log-sum-exp, reshaped from (B, H, Nq, 1) to (B, H, Nq)."""
    out, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, bias, True)[:2]
    return out, lse.reshape(q.shape[:-1])


def _efficient_with_logsumexp(q, k, v, bias):
    """Memory-efficient attention, with an optional additive bias (aligned), and its
    log-sum-exp; the kernel pads the log-sum-exp's query dim to a multiple of 32, sliced off
    here."""
    out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, bias, True)[:2]
    return out, lse[..., : q.shape[-2]]


CUDA_KERNELS = {SDPBackend.FLASH_ATTENTION: _flash_with_logsumexp,
                SDPBackend.CUDNN_ATTENTION: _cudnn_with_logsumexp,
                SDPBackend.EFFICIENT_ATTENTION: _efficient_with_logsumexp}
"""The fused CUDA kernels that return the log-sum-exp, by SDPA backend. None of them has
run on a GPU in this project's tests yet (no GPU was available): the calls follow the op
schemas of torch 2.13, and the dispatch is tested with shape-only "meta" tensors, which
run the kernels' meta functions (tests/test_attention_dispatch.py)."""


def _aligned_bias(bias, q, k):
    """The additive bias as the memory-efficient kernel takes it: (B, H, Nq, Nk), q's dtype,
    last dim contiguous and every other stride a multiple of BIAS_ALIGNMENT (padded memory,
    sliced back to Nk), broadcast dims expanded with stride 0."""
    if bias.stride(-1) != 1 or any(stride % BIAS_ALIGNMENT for stride in bias.stride()[:-1]):
        n_keys = bias.shape[-1]
        bias = F.pad(bias, (0, -n_keys % BIAS_ALIGNMENT or BIAS_ALIGNMENT))[..., :n_keys]
    return bias.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])


_fallbacks_logged = set()


def _log_fallback_once(kernel: str, reason: str) -> None:
    if kernel not in _fallbacks_logged:
        _fallbacks_logged.add(kernel)
        log.warning("GAG: %s refused a dense attention call (%s); using the chunked math fallback", kernel, reason)


def _chunked_attention_with_logsumexp(q, k, v, bias):
    dtype = compute_dtype(q.dtype)
    k_scaled_t = _scaled_keys_t(q, k, dtype)
    values = v.to(dtype)
    out = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=dtype, device=q.device)
    size = max(1, FALLBACK_CHUNK_ELEMENTS // max(1, math.prod(q.shape[:-2]) * k.shape[-2]))
    with execution.ieee_fp32_matmuls():
        for start in range(0, q.shape[-2], size):
            rows = slice(start, start + size)
            scores = _scores(q[..., rows, :].to(dtype), k_scaled_t, _mask_rows(bias, rows))
            chunk_lse = scores.logsumexp(-1, keepdim=True)
            probs = scores.sub_(torch.where(torch.isfinite(chunk_lse), chunk_lse, 0.0)).exp_()
            out[..., rows, :] = torch.matmul(probs, values)
            lse[..., rows] = chunk_lse.squeeze(-1)
    return out, lse


def gag_joint_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, text_len: int,
                        lam: float, zeta: float, tau: float | None, alpha: float, mode: str = "gag",
                        pladis_scale: float = 2.0, mask: torch.Tensor | None = None,
                        stats: GuidanceStats | None = None, backend: str = "auto",
                        text_last: bool = False) -> torch.Tensor:
    """Joint (MMDiT) attention with only the image-query × text-key block guided.

    Tokens are laid out text first: positions [0, text_len) are text, the rest image; with
    ``text_last`` the last ``text_len`` positions are text (HunyuanVideo, HiDream).
    Text-query rows are the dense joint output. Image-query rows are
    out_joint_dense + m · (G_t − D_t) (SPEC §2), computed as D_i + m · (G_t − D_i): D_i is
    the dense retrieval over the image keys alone and m = σ(lse_t − lse_i) the joint mass
    on the text keys. So the fused kernel never computes the image × text block, which the
    guided path computes anyway. ``stats`` (optional) accumulates diagnostics of the text
    retrievals. Returns (B, H, N, d) in q's dtype. Without text or image tokens there is
    nothing to guide: the result is the dense joint attention.
    """
    check_guidance(lam=lam, zeta=zeta, tau=tau, alpha=alpha, mode=mode, pladis_scale=pladis_scale)
    if nothing_to_attend(q, k, v):
        return torch.zeros(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    mask = as_four_dims(mask)
    if not 0 < text_len < q.shape[-2]:
        return dense_attention_with_logsumexp(q, k, v, mask)[0]
    text, image = joint_token_slices(text_len, text_last)
    out = torch.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype, device=q.device)
    out[..., text, :] = dense_attention_with_logsumexp(q[..., text, :], k, v, mask_block(mask, text, slice(None)))[0]
    dense_image, lse_image = dense_attention_with_logsumexp(q[..., image, :], k[..., image, :], v[..., image, :],
                                                            mask_block(mask, image, image))
    out_image = out[..., image, :]
    if _use_triton(backend, stats, q, k, alpha):  # the kernel's epilogue writes the image rows
        written = _fused(backend, q[..., image, :], k[..., text, :], v[..., text, :], lam=lam, zeta=zeta, tau=tau,
                         alpha=alpha, mode=mode, pladis_scale=pladis_scale, mask=mask_block(mask, image, text),
                         epilogue="joint_image", image_dense=dense_image, image_logsumexp=lse_image, out=out_image)
        if written is not None:
            return out
    for rows, r in _guided_chunks(q[..., image, :], k[..., text, :], v[..., text, :], alpha,
                                  mask_block(mask, image, text), with_logsumexp=True):
        if stats is not None:
            stats.add(r.dense, r.sparse, zeta=zeta, tau=tau, mode=mode)
        guided = guide_unchecked(r.dense, r.sparse, lam=lam, zeta=zeta, tau=tau, mode=mode, pladis_scale=pladis_scale)
        text_mass = r.logsumexp.sub_(lse_image[..., rows].unsqueeze(-1)).sigmoid_()
        out_image[..., rows, :] = torch.lerp(dense_image[..., rows, :].to(guided.dtype), guided, text_mass)
    return out
