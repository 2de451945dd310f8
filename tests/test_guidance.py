"""The GAG combination against the term-by-term float64 reference and the special cases of SPEC §1."""

import math

import pytest
import torch

import gag_core
from gag_reference import reference_guide


pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

def retrievals(seed, rows=500, d=64, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(2, 3, rows, d, generator=g, dtype=dtype)
    sparse = dense + 0.5 * torch.randn(2, 3, rows, d, generator=g, dtype=dtype)
    return dense, sparse


@pytest.mark.parametrize("lam,zeta,tau", [(5.0, 0.0, 15.0), (5.0, 0.0, 0.5), (2.0, 0.3, None),
                                          (0.7, 1.0, 2.0), (50.0, 0.5, 1000.0), (3.0, 0.25, math.inf)])
def test_matches_reference(lam, zeta, tau):
    dense, sparse = retrievals(seed=1)
    out = gag_core.guide(dense, sparse, lam=lam, zeta=zeta, tau=tau)
    torch.testing.assert_close(out, reference_guide(dense, sparse, lam=lam, zeta=zeta, tau=tau), rtol=1e-10, atol=1e-10)


def test_float32_matches_reference():
    dense, sparse = retrievals(seed=2, dtype=torch.float32)
    out = gag_core.guide(dense, sparse, lam=5.0, zeta=0.2, tau=3.0)
    expected = reference_guide(dense, sparse, lam=5.0, zeta=0.2, tau=3.0)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lam", [0.0, 1.0, 4.0])
def test_zeta_one_without_cap_is_pladis_with_scale_lambda_plus_one(lam):
    dense, sparse = retrievals(seed=3)
    out = gag_core.guide(dense, sparse, lam=lam, zeta=1.0, tau=None)
    torch.testing.assert_close(out, dense + (lam + 1.0) * (sparse - dense))
    pladis = gag_core.guide(dense, sparse, lam=0.0, zeta=0.0, tau=None, mode="pladis", pladis_scale=lam + 1.0)
    torch.testing.assert_close(out, pladis)


def test_lambda_zero_returns_sparse():
    dense, sparse = retrievals(seed=4)
    torch.testing.assert_close(gag_core.guide(dense, sparse, lam=0.0, zeta=0.3, tau=1.0), sparse)


def test_zeta_zero_ignores_orthogonal_part():
    dense, sparse = retrievals(seed=5)
    g = torch.Generator().manual_seed(9)
    noise = torch.randn(dense.shape, generator=g, dtype=dense.dtype)
    unit = sparse / sparse.norm(dim=-1, keepdim=True)
    orthogonal = noise - (noise * unit).sum(-1, keepdim=True) * unit   # ⊥ S, so Δ∥ unchanged
    before = gag_core.guide(dense, sparse, lam=5.0, zeta=0.0, tau=15.0)
    after = gag_core.guide(dense + orthogonal, sparse, lam=5.0, zeta=0.0, tau=15.0)
    torch.testing.assert_close(before, after)
    changed = gag_core.guide(dense + orthogonal, sparse, lam=5.0, zeta=0.5, tau=15.0)
    assert not torch.allclose(before, changed)


@pytest.mark.parametrize("tau", [0.01, 0.3, 2.0])
def test_cap_bounds_the_update(tau):
    dense, sparse = retrievals(seed=6)
    lam = 7.0
    out = gag_core.guide(dense, sparse, lam=lam, zeta=0.5, tau=tau)
    step = (out - sparse).norm(dim=-1)
    assert bool((step <= lam * tau * (1 + 1e-9)).all())
    uncapped = gag_core.guide(dense, sparse, lam=lam, zeta=0.5, tau=None)
    binding = (uncapped - sparse).norm(dim=-1) > lam * tau
    assert bool(binding.any())
    torch.testing.assert_close(step[binding], torch.full_like(step[binding], lam * tau))


def test_zero_norm_sparse_is_finite_and_has_no_parallel_part():
    dense, sparse = retrievals(seed=7, rows=4)
    sparse[..., 0, :] = 0.0
    sparse[..., 1, :] = 1e-20
    out = gag_core.guide(dense, sparse, lam=5.0, zeta=0.25, tau=None)
    assert bool(torch.isfinite(out).all())
    delta = sparse - dense
    # Δ∥ = 0 there, so out = S + λ ζ Δ
    torch.testing.assert_close(out[..., :2, :], sparse[..., :2, :] + 5.0 * 0.25 * delta[..., :2, :])
    terms = gag_core.guidance_terms(dense, sparse, zeta=0.25, tau=None)
    assert torch.equal(terms.parallel_coef[..., :2, :], torch.zeros_like(terms.parallel_coef[..., :2, :]))


def test_unknown_mode():
    dense, sparse = retrievals(seed=8, rows=2)
    with pytest.raises(ValueError, match="mode"):
        gag_core.guide(dense, sparse, lam=1.0, zeta=0.0, tau=None, mode="cfg")
