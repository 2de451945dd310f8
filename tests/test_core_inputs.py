"""gag_core's public functions at the edges of their inputs: settings outside SPEC §1's ranges,
empty tensors, and magnitudes whose squares overflow float32 (checked against plain SDPA and
the float64 references of gag_reference.py)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gag_core
from gag_core.diagnostics import GuidanceStats
from gag_core.guidance import _terms, row_scale
from gag_reference import reference_cross_attention, reference_guide, reference_joint_attention

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

GOOD = dict(lam=5.0, zeta=0.3, tau=15.0, alpha=1.5, mode="gag", pladis_scale=2.0)
BAD = [  # (argument, value, text the error must contain besides the argument's name and value)
    ("lam", float("nan"), "[0, 50]"), ("lam", -0.5, "[0, 50]"), ("lam", 50.5, "[0, 50]"), ("lam", "5", "[0, 50]"),
    ("lam", True, "[0, 50]"), ("zeta", 1.5, "[0, 1]"), ("zeta", float("nan"), "[0, 1]"),
    ("tau", 0.0, "(0, 1000]"), ("tau", -1.0, "(0, 1000]"), ("tau", float("nan"), "(0, 1000]"),
    ("tau", -math.inf, "(0, 1000]"), ("tau", 1000.5, "(0, 1000]"), ("alpha", 0.5, "[1, 2]"),
    ("alpha", float("nan"), "[1, 2]"), ("alpha", math.inf, "[1, 2]"), ("mode", "cfg", "gag, pladis"),
    ("pladis_scale", -1.0, "[0, 20]"), ("pladis_scale", float("inf"), "[0, 20]"),
]


def qkv(nq=6, nk=5, d=8, b=2, h=3, seed=0, dtype=torch.float32, value_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=g) for n in (nq, nk, nk))
    return q.to(dtype), k.to(dtype), (v * value_scale).to(dtype)


def call(function, settings, tensors=None):
    """One public function on small inputs with the given settings."""
    q, k, v = tensors or qkv()
    if function == "guide":
        dense = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
        return gag_core.guide(dense, dense + 0.1, **{n: s for n, s in settings.items() if n != "alpha"})
    if function == "gag_joint_attention":
        return gag_core.gag_joint_attention(q, k, v, text_len=2, **settings)
    return getattr(gag_core, function)(q, k, v, **settings)


FUNCTIONS = ["guide", "gag_attention", "gag_correction", "gag_joint_attention"]


REJECTIONS = [(function, *bad) for function in FUNCTIONS for bad in BAD
              if not (function == "guide" and bad[0] == "alpha")]  # guide takes no alpha


@pytest.mark.parametrize("function,name,value,range_text", REJECTIONS,
                         ids=[f"{f}-{n}={v!r}" for f, n, v, _ in REJECTIONS])
def test_public_functions_reject_what_gagsettings_rejects(function, name, value, range_text):
    with pytest.raises(ValueError) as from_function:
        call(function, {**GOOD, name: value})
    with pytest.raises(ValueError) as from_settings:
        gag_core.GAGSettings(**{**GOOD, name: value})
    message = str(from_function.value)
    assert message == str(from_settings.value)  # one check, one message
    assert message.startswith(name) and range_text in message and repr(value) in message


@pytest.mark.parametrize("value", [0.5, float("nan"), 2.5, "1.5", None])
def test_entmax_rejects_alpha_outside_its_range(value):
    with pytest.raises(ValueError, match=r"alpha must be (a number )?in \[1, 2\]"):
        gag_core.entmax(torch.randn(3, 4), value)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_range_ends_and_other_number_types_are_accepted(function):
    for settings in (dict(lam=0.0, zeta=0.0, tau=1000.0, alpha=1.0, pladis_scale=0.0),
                     dict(lam=50, zeta=1, tau=None, alpha=2, pladis_scale=20, mode="pladis"),
                     dict(lam=np.float32(5.0), zeta=np.float64(0.5), tau=math.inf, alpha=np.float32(1.5))):
        assert bool(torch.isfinite(call(function, settings)).all())


@pytest.mark.parametrize("function", ["gag_attention", "gag_correction"])
@pytest.mark.parametrize("shape", [dict(nq=0), dict(nk=0), dict(b=0), dict(h=0)], ids=["Nq=0", "Nk=0", "B=0", "H=0"])
def test_empty_cross_attention_inputs_give_what_sdpa_gives(function, shape):
    q, k, v = qkv(**shape)
    out = call(function, GOOD, (q, k, v))
    expected = F.scaled_dot_product_attention(q, k, v)  # empty, or zeros for queries without keys
    assert out.shape == expected.shape
    if function == "gag_attention":
        torch.testing.assert_close(out, expected)
    else:  # the correction G − D is zero wherever the output is the (zero) dense retrieval
        assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("n,text_len", [(0, 0), (5, 0), (5, 5)], ids=["no tokens", "no text", "no image"])
def test_joint_attention_without_tokens_to_guide_is_dense(n, text_len):
    q, k, v = qkv(nq=n, nk=n)
    out = gag_core.gag_joint_attention(q, k, v, text_len=text_len, **GOOD)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("function", ["gag_attention", "gag_correction", "gag_joint_attention"])
def test_zero_head_dimension_is_a_clear_error(function):
    with pytest.raises(ValueError, match="head dimension"):
        call(function, GOOD, qkv(d=0))


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (2, 0, 5)])
def test_entmax_of_an_empty_tensor_is_empty(shape):
    z = torch.randn(shape)
    for alpha in (1.0, 1.5, 1.25, 2.0):
        out = gag_core.entmax(z, alpha)
        assert out.shape == z.shape and out.dtype == z.dtype


def test_guide_on_zero_rows():
    dense = torch.zeros(0, 8)
    assert gag_core.guide(dense, dense, lam=5.0, zeta=0.5, tau=15.0).shape == (0, 8)


SCALES = [7e18, 1e30, 1e36]  # where float32 squares (and so plain norms) overflow at head size 64


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("settings", [dict(lam=0.0, zeta=0.0, tau=15.0), dict(lam=5.0, zeta=0.0, tau=15.0),
                                      dict(lam=5.0, zeta=0.5, tau=None), dict(lam=50.0, zeta=1.0, tau=0.01)],
                         ids=["lam0", "paper", "zeta.5-nocap", "lam50-tiny-cap"])
def test_guide_is_finite_and_exact_where_squares_overflow(scale, settings):
    g = torch.Generator().manual_seed(3)
    dense = torch.randn(2, 50, 64, generator=g, dtype=torch.float64)
    sparse = dense + 0.3 * torch.randn(2, 50, 64, generator=g, dtype=torch.float64)
    dense[0, 0], sparse[0, 0] = 1.0, 0.0          # a row without a sparse direction
    dense32, sparse32 = (dense * scale).float(), (sparse * scale).float()
    assert not bool(torch.isfinite(torch.linalg.vector_norm(sparse32, dim=-1).square()).all())  # the hazard
    out = gag_core.guide(dense32, sparse32, **settings)
    assert bool(torch.isfinite(out).all())
    expected = reference_guide(dense32.double(), sparse32.double(), **settings)
    torch.testing.assert_close(out.double() / scale, expected / scale, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("scale", [1e18] + SCALES[:2])
@pytest.mark.parametrize("lam", [0.0, 5.0])
def test_attention_is_finite_wherever_sdpa_is(dtype, scale, lam):
    settings = dict(lam=lam, zeta=0.5, tau=15.0, alpha=1.5)
    q, k, v = qkv(nq=12, nk=7, d=64, dtype=dtype, value_scale=scale)
    assert bool(torch.isfinite(F.scaled_dot_product_attention(q, k, v)).all())
    stats = GuidanceStats()
    out = gag_core.gag_attention(q, k, v, stats=stats, **settings)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert all(math.isfinite(value) for value in stats.summary().values())
    expected = reference_cross_attention(q, k, v, **settings)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double() / scale, expected / scale, rtol=tolerance, atol=tolerance)
    dense = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    correction = gag_core.gag_correction(q, k, v, **settings)
    torch.testing.assert_close((dense + correction).double() / scale, expected / scale, rtol=tolerance,
                               atol=tolerance)
    joint_q, joint_k, joint_v = qkv(nq=12, nk=12, d=64, dtype=dtype, value_scale=scale)
    joint = gag_core.gag_joint_attention(joint_q, joint_k, joint_v, text_len=4, **settings)
    assert bool(torch.isfinite(joint).all())
    expected = reference_joint_attention(joint_q, joint_k, joint_v, text_len=4, **settings)
    torch.testing.assert_close(joint.double() / scale, expected / scale, rtol=tolerance, atol=tolerance)


def test_rescaled_terms_equal_the_plain_ones_on_ordinary_inputs():
    """Accelerators always take the rescaled path: it must give the plain path's numbers
    exactly (the scale is a power of two) wherever the plain path does not overflow."""
    g = torch.Generator().manual_seed(5)
    dense = torch.randn(3, 40, 32, generator=g) * torch.logspace(-3, 3, 40).unsqueeze(-1)
    sparse = dense + 0.2 * torch.randn(3, 40, 32, generator=g)
    scale = row_scale(dense, sparse)
    largest = torch.maximum(dense.abs().amax(-1, keepdim=True), sparse.abs().amax(-1, keepdim=True))
    assert bool((scale >= largest).all() and (scale >= 1).all())
    assert bool((torch.frexp(scale).mantissa == 0.5).all())  # powers of two
    for zeta, tau in ((0.0, 15.0), (0.4, 0.5), (1.0, None)):
        plain, rescaled = _terms(dense, sparse, None, zeta=zeta, tau=tau), _terms(dense, sparse, scale, zeta=zeta,
                                                                                   tau=tau)
        for name, a, b in zip(plain._fields, plain, rescaled):
            assert torch.equal(a, b), name
