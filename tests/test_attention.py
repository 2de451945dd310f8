"""GAG attention, correction and joint attention against float64 brute force.

Tests that take the ``torch_path`` fixture (conftest.py) run on the CPU path and on the
device path.
"""

import functools

import pytest
import torch

import gag_core
from gag_reference import reference_cross_attention, reference_joint_attention

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

SETTINGS = [
    dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5),
    dict(lam=3.0, zeta=0.4, tau=0.05, alpha=1.5),
    dict(lam=2.0, zeta=1.0, tau=None, alpha=2.0),
    dict(lam=1.5, zeta=0.2, tau=2.0, alpha=1.25),
    dict(lam=0.0, zeta=0.0, tau=None, alpha=1.0, mode="pladis", pladis_scale=3.0),
]


def qkv(seed, b=2, h=3, nq=40, nk=13, d=16, dtype=torch.float32, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    make = lambda n: (torch.randn(b, h, n, d, generator=g) * scale).to(dtype)  # noqa: E731
    return make(nq), make(nk), make(nk)


@pytest.mark.parametrize("params", SETTINGS)
def test_cross_attention_matches_reference(params, torch_path):
    q, k, v = qkv(seed=1)
    out = gag_core.gag_attention(q, k, v, **params)
    assert out.shape == q.shape and out.dtype == q.dtype
    torch.testing.assert_close(out.double(), reference_cross_attention(q, k, v, **params), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("mask_kind", ["bool", "additive"])
def test_cross_attention_masks(mask_kind, torch_path):
    q, k, v = qkv(seed=2)
    keep = torch.rand(2, 1, 1, 13, generator=torch.Generator().manual_seed(3)) > 0.3
    keep[..., 0] = True
    mask = keep if mask_kind == "bool" else torch.zeros(keep.shape).masked_fill(~keep, -1e9)
    out = gag_core.gag_attention(q, k, v, mask=mask, **SETTINGS[0])
    torch.testing.assert_close(out.double(), reference_cross_attention(q, k, v, mask=keep, **SETTINGS[0]),
                               atol=2e-5, rtol=1e-5)


def test_alpha_one_gives_dense_attention():
    q, k, v = qkv(seed=4)
    out = gag_core.gag_attention(q, k, v, lam=5.0, zeta=0.0, tau=15.0, alpha=1.0)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_correction_plus_dense_is_gag_attention(torch_path):
    q, k, v = qkv(seed=5)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    correction = gag_core.gag_correction(q, k, v, **SETTINGS[1])
    torch.testing.assert_close(dense + correction, gag_core.gag_attention(q, k, v, **SETTINGS[1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("params", SETTINGS)
def test_joint_attention_matches_reference(params, torch_path):
    text_len = 9
    q, k, v = qkv(seed=6, nq=30, nk=30)
    out = gag_core.gag_joint_attention(q, k, v, text_len=text_len, **params)
    reference = reference_joint_attention(q, k, v, text_len=text_len, **params)
    torch.testing.assert_close(out.double(), reference, atol=2e-5, rtol=1e-5)
    # text-query rows are the plain joint attention
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out[..., :text_len, :], plain[..., :text_len, :], atol=1e-5, rtol=1e-5)


def test_joint_attention_with_masks_matches_reference(torch_path):
    """A random key mask, plus image queries that see no image key (all their mass is on
    the text) and one that sees no text key (nothing to guide)."""
    text_len = 9
    q, k, v = qkv(seed=14, nq=30, nk=30)
    keep = torch.rand(2, 1, 30, 30, generator=torch.Generator().manual_seed(6)) > 0.3
    keep[..., 0] = keep[..., text_len] = True
    keep[..., 12, text_len:] = False
    keep[..., 13, :text_len] = False
    for params in SETTINGS:
        out = gag_core.gag_joint_attention(q, k, v, text_len=text_len, mask=keep, **params)
        reference = reference_joint_attention(q, k, v, text_len=text_len, keep=keep, **params)
        torch.testing.assert_close(out.double(), reference, atol=2e-5, rtol=1e-5)


def test_joint_attention_with_text_last_matches_the_reference_in_text_first_order(torch_path):
    """Text last (HunyuanVideo, HiDream): the reference, which takes text first, on the same
    tokens moved text first (attention is equivariant under reordering queries with keys)."""
    text_len = 9
    q, k, v = qkv(seed=19, nq=30, nk=30)
    keep = torch.rand(2, 1, 30, 30, generator=torch.Generator().manual_seed(7)) > 0.3
    keep[..., 0] = keep[..., -1] = True
    to_front = functools.partial(torch.roll, shifts=text_len, dims=-2)
    keep_front = torch.roll(keep, shifts=(text_len, text_len), dims=(-2, -1))
    for params in SETTINGS:
        out = gag_core.gag_joint_attention(q, k, v, text_len=text_len, text_last=True, mask=keep, **params)
        reference = reference_joint_attention(to_front(q), to_front(k), to_front(v), text_len=text_len,
                                              keep=keep_front, **params)
        torch.testing.assert_close(to_front(out).double(), reference, atol=2e-5, rtol=1e-5)
    text, image = gag_core.joint_token_slices(text_len, text_last=True)
    assert torch.equal(gag_core.image_text_block(keep, text_len, text_last=True), keep[..., image, text])


def test_joint_attention_rows_without_keys_are_zero(torch_path):
    q, k, v = qkv(seed=15, nq=30, nk=30)
    keep = torch.ones(1, 1, 30, 30, dtype=torch.bool)
    keep[..., 3, :] = keep[..., 20, :] = False  # a text query and an image query
    out = gag_core.gag_joint_attention(q, k, v, text_len=9, mask=keep, **SETTINGS[0])
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out[..., [3, 20], :], torch.zeros_like(out[..., [3, 20], :]))


def test_correction_of_rows_without_keys_is_zero(torch_path):
    """The correction path of the joint adapter (cond-only batches, chained overrides): an
    image query that sees no key at all has joint log-sum-exp −inf and no correction."""
    text_len = 4
    q, k, v = qkv(seed=16, nq=12, nk=12)
    keep = torch.ones(1, 1, 12, 12, dtype=torch.bool)
    keep[..., 7, :] = False
    _, lse = gag_core.dense_attention_with_logsumexp(q, k, v, keep)
    assert bool(torch.isneginf(lse[..., 7]).all())
    correction = gag_core.gag_correction(q[..., text_len:, :], k[..., :text_len, :], v[..., :text_len, :],
                                         mask=gag_core.image_text_block(keep, text_len),
                                         joint_logsumexp=lse[..., text_len:], **SETTINGS[0])
    assert bool(torch.isfinite(correction).all())
    assert torch.equal(correction[..., 7 - text_len, :], torch.zeros_like(correction[..., 0, :]))


@pytest.mark.parametrize("text_len", [0, 30])
def test_joint_attention_without_text_or_image_tokens_is_dense(text_len):
    q, k, v = qkv(seed=17, nq=30, nk=30)
    out = gag_core.gag_joint_attention(q, k, v, text_len=text_len, **SETTINGS[0])
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_joint_attention_with_a_mask_broadcast_over_keys():
    """A (B, 1, N, 1) mask: every key of a query row kept or dropped together."""
    q, k, v = qkv(seed=18, nq=30, nk=30)
    keep = torch.ones(2, 1, 30, 1, dtype=torch.bool)
    out = gag_core.gag_joint_attention(q, k, v, text_len=9, mask=keep, **SETTINGS[0])
    reference = reference_joint_attention(q, k, v, text_len=9, keep=keep, **SETTINGS[0])
    torch.testing.assert_close(out.double(), reference, atol=2e-5, rtol=1e-5)


def test_float64_log_sum_exp_keeps_float64_precision():
    q, k, v = qkv(seed=19, nq=20, nk=20, dtype=torch.float64)
    keep = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(7)) > 0.3
    keep[..., 0] = True
    _, lse = gag_core.dense_attention_with_logsumexp(q, k, v, keep)
    z = (q @ k.transpose(-1, -2) / 4.0).masked_fill(~keep, float("-inf"))
    assert lse.dtype == torch.float64
    torch.testing.assert_close(lse, z.logsumexp(-1), atol=1e-12, rtol=0)


def test_dense_attention_with_logsumexp(monkeypatch):
    import gag_core.attention as attention_module

    q, k, v = qkv(seed=7, nq=50, nk=50)
    mask = torch.zeros(1, 1, 50, 50)
    mask[..., 40:] = float("-inf")
    z = (q.double() @ k.double().transpose(-1, -2)) / 4.0 + mask
    monkeypatch.setattr(attention_module, "FALLBACK_CHUNK_ELEMENTS", 3 * 2 * 50 * 16)  # several chunks
    for out, lse in (gag_core.dense_attention_with_logsumexp(q, k, v, mask),
                     attention_module._chunked_attention_with_logsumexp(q, k, v, mask),
                     gag_core.dense_attention_with_logsumexp(q.double(), k.double(), v.double(), mask)):
        torch.testing.assert_close(lse.double(), z.logsumexp(-1), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.double(), torch.softmax(z, -1) @ v.double(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_and_close(dtype, torch_path):
    q, k, v = qkv(seed=8, dtype=dtype, scale=4.0)
    out = gag_core.gag_attention(q, k, v, **SETTINGS[0])
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.double(), reference_cross_attention(q, k, v, **SETTINGS[0]), atol=0.1, rtol=0.02)
    joint = gag_core.gag_joint_attention(q, q, q, text_len=10, **SETTINGS[0])
    assert joint.dtype == dtype and bool(torch.isfinite(joint).all())
    torch.testing.assert_close(joint.double(), reference_joint_attention(q, q, q, text_len=10, **SETTINGS[0]),
                               atol=0.1, rtol=0.02)


def test_fully_masked_query_rows_are_finite(torch_path):
    q, k, v = qkv(seed=9)
    keep = torch.ones(2, 3, 40, 13, dtype=torch.bool)
    keep[:, :, 0] = False
    out = gag_core.gag_attention(q, k, v, mask=keep, **SETTINGS[0])
    assert bool(torch.isfinite(out).all())
    assert torch.equal(out[:, :, 0], torch.zeros_like(out[:, :, 0]))


@pytest.mark.parametrize("params", SETTINGS[:3])
def test_query_chunking_is_invisible(params, monkeypatch, torch_path):
    """Tiny chunks (several per call) with a per-query mask give the same result."""
    import gag_core.attention as attention_module

    monkeypatch.setattr(attention_module, "CHUNK_ELEMENTS", 3 * 2 * 13 * 7)
    monkeypatch.setattr(attention_module, "DEVICE_CHUNK_ELEMENTS", 3 * 2 * 13 * 7)
    q, k, v = qkv(seed=10)
    keep = torch.rand(2, 1, 40, 13, generator=torch.Generator().manual_seed(4)) > 0.4
    keep[..., 0] = True
    assert len(attention_module._query_chunks(q, 13)) > 3
    out = gag_core.gag_attention(q, k, v, mask=keep, **params)
    torch.testing.assert_close(out.double(), reference_cross_attention(q, k, v, mask=keep, **params),
                               atol=2e-5, rtol=1e-5)
    joint = gag_core.gag_joint_attention(q, q, q, text_len=11, **params)
    torch.testing.assert_close(joint.double(), reference_joint_attention(q, q, q, text_len=11, **params),
                               atol=2e-5, rtol=1e-5)


def test_math_fallback_keeps_fully_masked_rows_finite():
    import gag_core.attention as attention_module

    q, k, v = qkv(seed=12, nq=6, nk=6)
    keep = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    keep[..., 0, :] = False
    bias = attention_module.additive_mask(keep, q.dtype)
    out, lse = attention_module._chunked_attention_with_logsumexp(q, k, v, bias)
    assert bool(torch.isfinite(out).all()) and torch.equal(out[..., 0, :], torch.zeros_like(out[..., 0, :]))
    assert bool(torch.isneginf(lse[..., 0]).all())


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_masks_with_fewer_dims_broadcast_like_sdpa(dims):
    q, k, v = qkv(seed=13)
    keep = torch.rand(13, generator=torch.Generator().manual_seed(5)) > 0.3
    keep[0] = True
    mask = {1: keep, 2: keep.expand(40, 13), 3: keep.expand(2, 40, 13)}[dims]
    out = gag_core.gag_attention(q, k, v, mask=mask, **SETTINGS[0])
    torch.testing.assert_close(out.double(), reference_cross_attention(q, k, v, mask=keep, **SETTINGS[0]),
                               atol=2e-5, rtol=1e-5)
    joint = gag_core.gag_joint_attention(q, q, q, text_len=10, mask=torch.ones(40, dtype=torch.bool), **SETTINGS[0])
    torch.testing.assert_close(joint, gag_core.gag_joint_attention(q, q, q, text_len=10, **SETTINGS[0]))


@pytest.mark.parametrize("n_queries", [1, 7, 22, 36, 37, 38, 4096])
def test_query_chunks_are_balanced(n_queries, monkeypatch):
    """As few chunks as the budget allows (give or take CHUNK_SLACK), with sizes that differ
    by at most one row: never a 1-row tail (37 rows at 12 per chunk were 12, 12, 12, 1;
    they are 13, 12, 12)."""
    import math

    import gag_core.attention as attention_module

    monkeypatch.setattr(attention_module, "CHUNK_ELEMENTS", 2 * 3 * 5 * 12)  # 12 query rows of (2, 3, ·, 5)
    chunks = attention_module._query_chunks(torch.empty(2, 3, n_queries, 8), 5)
    assert chunks[0].start == 0 and chunks[-1].stop == n_queries
    assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
    sizes = [c.stop - c.start for c in chunks]
    assert len(chunks) == math.ceil(n_queries / (12 * attention_module.CHUNK_SLACK))
    assert max(sizes) <= 12 * attention_module.CHUNK_SLACK + 1 and max(sizes) - min(sizes) <= 1
