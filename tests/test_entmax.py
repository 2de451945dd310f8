"""α-entmax against the entmax package and against the optimality conditions.

Tests that take the ``torch_path`` fixture (conftest.py) run twice: on the CPU path (bound,
certify, retry the rest) and on the device path (sort-based, no host sync).
"""

import pytest
import torch

import gag_core
import gag_core.alpha_entmax as entmax_module
from gag_core import execution
from gag_reference import reference_entmax

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

ALPHAS = [1.0, 1.25, 1.5, 1.75, 2.0]
ALPHAS_AND_PATHS = [(alpha, path) for alpha in ALPHAS for path in ("cpu path", "device path")
                    if path == "cpu path" or alpha in (1.5, 2.0)]
"""Only α ∈ {1.5, 2} have a device-path solver of their own; the other α take the same code on both."""


def random_rows(seed, rows=1200, width=77):
    g = torch.Generator().manual_seed(seed)
    scales = torch.tensor([0.1, 1.0, 3.0, 10.0, 100.0])[torch.randint(0, 5, (rows, 1), generator=g)]
    return torch.randn(rows, width, generator=g) * scales


def adversarial_rows(width=77):
    rows = [
        torch.zeros(width),                                   # all equal
        torch.full((width,), 1e4),                            # all equal, huge
        torch.linspace(-1e4, 1e4, width),                     # ±1e4
        torch.cat([torch.full((3,), 5.0), torch.zeros(width - 3)]),   # ties at the top
        torch.cat([torch.tensor([1e4, -1e4]), torch.randn(width - 2)]),
        torch.tensor([0.5, 0.5] + [0.5 - 1e-7] * (width - 2)),        # near ties
    ]
    return torch.stack(rows)


@pytest.mark.parametrize("alpha, torch_path", ALPHAS_AND_PATHS, indirect=["torch_path"])
def test_matches_entmax_package_on_random_rows(alpha, torch_path):
    z = random_rows(seed=int(alpha * 100))
    p = gag_core.entmax(z, alpha)
    assert p.dtype == torch.float32
    torch.testing.assert_close(p.double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha, torch_path", ALPHAS_AND_PATHS, indirect=["torch_path"])
def test_matches_entmax_package_on_adversarial_rows(alpha, torch_path):
    z = adversarial_rows()
    torch.testing.assert_close(gag_core.entmax(z, alpha).double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("retry_steps", [0, 1, 3])
@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_second_solve_and_sorted_fallback_are_exact(alpha, retry_steps, monkeypatch):
    """With no first steps many rows fail the first certificate; they are solved again,
    and with too few steps there, by sorting."""
    monkeypatch.setattr(entmax_module, "FIRST_STEPS", {2.0: 0, 1.0: 0})
    monkeypatch.setattr(entmax_module, "RETRY_STEPS", retry_steps)
    sorted_rows = []
    threshold_sorted = entmax_module._threshold_sorted
    monkeypatch.setattr(entmax_module, "_threshold_sorted",
                        lambda y, power: sorted_rows.append(y.shape[0]) or threshold_sorted(y, power))
    z = torch.cat([random_rows(seed=7, rows=300), adversarial_rows()])
    torch.testing.assert_close(gag_core.entmax(z, alpha).double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)
    if retry_steps == 0:
        assert sorted_rows and sorted_rows[0] > 10  # the fallback really solved rows


def test_sorted_fallback_is_exact_next_to_the_threshold(torch_path):
    """An entry 5e-7 below the sparsemax threshold: the certificate cannot separate it, the
    sorted threshold does (no support margin there), so the map sums to 1 in float64."""
    z = torch.tensor([[1.0, 0.5, 0.0, -0.5, 0.25 - 5e-7]], dtype=torch.float64)
    p = gag_core.entmax(z, 2.0)
    torch.testing.assert_close(p, reference_entmax(z, 2.0), atol=1e-12, rtol=0)
    assert abs(p.sum().item() - 1.0) < 1e-12


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_hot_path_is_exact_far_from_zero(alpha, torch_path):
    """The attention path passes unshifted scores: rows offset by 1e12, and rows a huge
    finite mask blocks entirely (uniform map, as softmax gives)."""
    z = random_rows(seed=33, rows=40)
    z[:20] += 1e12
    z[20:] = -1e30
    p = gag_core.alpha_entmax.sparse_probs(z.clone(), alpha)
    assert bool(torch.isfinite(p).all())
    torch.testing.assert_close(p.double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha, torch_path", ALPHAS_AND_PATHS, indirect=["torch_path"])
def test_optimality_conditions_in_float64(alpha, torch_path):
    """Brute-force certificate: p sums to 1 and p_i^(α−1) = (α−1) z_i − θ on the support,
    with (α−1) z_j ≤ θ off it, for one θ per row (alpha > 1); softmax ratios for alpha = 1."""
    z = random_rows(seed=3, rows=200).double()
    p = gag_core.entmax(z, alpha)
    assert p.dtype == torch.float64
    torch.testing.assert_close(p.sum(-1), torch.ones(z.shape[0], dtype=torch.float64))
    if alpha == 1.0:
        torch.testing.assert_close(p.log() - z, (p.log() - z)[:, :1].expand_as(z))
        return
    support = p > 0
    theta = torch.where(support, (alpha - 1) * z - p.pow(alpha - 1), torch.nan)
    theta_row = theta.nanmean(-1, keepdim=True)
    assert torch.allclose(torch.where(support, theta, theta_row), theta_row.expand_as(z), atol=1e-9)
    assert bool(((alpha - 1) * z <= theta_row + 1e-9)[~support].all())


@pytest.mark.parametrize("alpha, torch_path", ALPHAS_AND_PATHS, indirect=["torch_path"])
def test_masked_keys_get_exact_zero(alpha, torch_path):
    z = random_rows(seed=11, rows=50)
    z[:, ::3] = float("-inf")
    p = gag_core.entmax(z, alpha)
    assert bool((p[:, ::3] == 0).all())
    torch.testing.assert_close(p.double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha, torch_path", ALPHAS_AND_PATHS, indirect=["torch_path"])
def test_degenerate_rows(alpha, torch_path):
    single = gag_core.entmax(torch.tensor([[3.0], [-1e4]]), alpha)
    assert torch.equal(single, torch.ones(2, 1))
    fully_masked = gag_core.entmax(torch.full((2, 5), float("-inf")), alpha)
    assert torch.equal(fully_masked, torch.zeros(2, 5))
    equal = gag_core.entmax(torch.full((1, 4), 2.0), alpha)
    torch.testing.assert_close(equal, torch.full((1, 4), 0.25))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("alpha, torch_path", ALPHAS_AND_PATHS, indirect=["torch_path"])
def test_half_precision_inputs(alpha, torch_path, dtype):
    z = torch.cat([random_rows(seed=5, rows=200), adversarial_rows()]).clamp(-6e4, 6e4)
    p = gag_core.entmax(z.to(dtype), alpha)
    assert p.dtype == dtype
    assert bool(torch.isfinite(p).all())
    reference = reference_entmax(z.to(dtype).double(), alpha)
    torch.testing.assert_close(p.double(), reference, atol=1e-2, rtol=0)


def test_dim_argument(torch_path):
    z = torch.randn(4, 9, 6)
    torch.testing.assert_close(gag_core.entmax(z, 1.5, dim=1), gag_core.entmax(z.transpose(1, 2), 1.5).transpose(1, 2))


@pytest.mark.parametrize("alpha", [0.5, 2.5, float("nan")])
def test_alpha_out_of_range(alpha):
    with pytest.raises(ValueError, match="alpha"):
        gag_core.entmax(torch.randn(2, 3), alpha)


@pytest.fixture
def compiled_solver(torch_path, monkeypatch):
    """The opt-in torch.compile path of the solver that ``torch_path`` runs (the first pass on
    the CPU path, the sort-based solver on the device path), enabled for one test and fresh."""
    name, function = {"cpu path": ("_compiled_first_pass", entmax_module._first_pass),
                      "device path": ("_compiled_sorting", entmax_module._solve_by_sorting)}[torch_path]
    monkeypatch.setattr(entmax_module, name, entmax_module._Compiled(function, enabled=True))
    return getattr(entmax_module, name)


@pytest.mark.parametrize("alpha, torch_path", [(1.5, "cpu path"), (2.0, "cpu path"), (1.5, "device path")],
                         indirect=["torch_path"])
def test_compiled_solver_matches_eager_and_reference(alpha, compiled_solver):
    z = torch.cat([random_rows(seed=21, rows=600), adversarial_rows()])
    compiled = gag_core.entmax(z, alpha)
    assert compiled_solver.enabled and compiled_solver.compiled is not None  # it really ran compiled
    compiled_solver.enabled = False
    eager = gag_core.entmax(z, alpha)
    torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=0)
    torch.testing.assert_close(compiled.double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)


def test_compile_failure_falls_back_to_eager(compiled_solver, monkeypatch, caplog):
    def broken_compile(*args, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    z = random_rows(seed=22, rows=50)
    p = gag_core.entmax(z, 1.5)
    assert not compiled_solver.enabled
    assert "torch.compile of the entmax solver failed" in caplog.text
    torch.testing.assert_close(p.double(), reference_entmax(z, 1.5), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_first_bound_and_steps_stay_below_the_threshold(alpha):
    """The solver's first bound and every step are lower bounds of θ* (read off the entmax
    package's map); for α = 1.5 the Cauchy–Schwarz step is never behind Newton's."""
    power = 1.0 / (alpha - 1.0)
    z = random_rows(seed=31, rows=1000).double()
    p = reference_entmax(z, alpha)
    top = z.argmax(-1, keepdim=True)
    theta_star = z.gather(-1, top) / power - p.gather(-1, top).pow(alpha - 1.0)
    theta = entmax_module._initial_bound(z, torch.softmax(z, -1), power, torch.empty_like(z))
    y = z / power
    for _ in range(4):
        assert bool((theta <= theta_star + 1e-9).all())
        r = (y - theta).clamp(min=0.0)
        following = entmax_module._lower_bound_step(r.clone(), theta, power, torch.empty_like(r))
        if power == 2.0:
            newton = theta + (r.square().sum(-1, keepdim=True) - 1.0) / (2.0 * r.sum(-1, keepdim=True))
            assert bool((following >= newton - 1e-12).all())
        assert bool((following >= theta - 1e-12).all())
        theta = following


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_first_pass_certifies_nearly_every_attention_row(alpha):
    """A speed guard, not a correctness one: on attention-like logits q·k/√d the first pass
    certifies nearly every row, so the per-row retries stay rare."""
    g = torch.Generator().manual_seed(32)
    z = torch.randn(4000, 64, generator=g) @ torch.randn(77, 64, generator=g).T / 8.0
    power = 1.0 / (alpha - 1.0)
    _, certified = entmax_module._first_pass(z.clone(), torch.softmax(z, -1), power, entmax_module.FIRST_STEPS[power])
    assert certified.float().mean().item() > 0.98


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_device_path_on_wide_supports_of_long_rows(alpha):
    """512 keys (T5-length contexts) with flat to peaked logits: supports of hundreds of keys,
    where the sorted running sums cancel most; the closed-form refinement keeps float32
    precision."""
    g = torch.Generator().manual_seed(41)
    z = torch.cat([torch.randn(200, 512, generator=g) * scale for scale in (0.01, 0.3, 3.0)])
    with execution.forced_device_path():
        p = gag_core.entmax(z, alpha)
    torch.testing.assert_close(p.double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_device_path_reads_nothing_on_the_host(alpha, monkeypatch):
    """No op that makes the host wait, and never the CPU path's per-row second solve."""
    from bench import ops

    def second_solve(*args):
        raise AssertionError("the device path must not compact rows")

    monkeypatch.setattr(entmax_module, "_solve_again", second_solve)
    z = torch.cat([random_rows(seed=42, rows=300), adversarial_rows()])
    z[:, ::5] = float("-inf")
    with execution.forced_device_path():
        trace, p = ops.trace(lambda: gag_core.entmax(z, alpha))
    assert trace.syncs == []
    torch.testing.assert_close(p.double(), reference_entmax(z, alpha), atol=1e-6, rtol=0)
