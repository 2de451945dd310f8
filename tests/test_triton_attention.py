"""The fused Triton kernel (gag_core/triton_attention.py) against float64 references.

Without a CUDA device the kernel runs in Triton's CPU interpreter: TRITON_INTERPRET=1 is set
here, before anything imports the kernel module (``triton.jit`` reads it at definition). The
references are tests/gag_reference.py (float64, the ``entmax`` package) and, for joint
attention and the correction, gag_core's PyTorch path, itself checked against them.
Errors are max |out − ref| / max |ref| ("of output scale").
"""

import math
import os

import pytest
import torch

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

try:
    import triton  # noqa: F401
except ImportError:  # a contributor machine without requirements-dev.txt installed
    if os.environ.get("CI"):
        raise
    pytest.skip("triton is not installed (requirements-dev.txt pins triton==3.9.0)", allow_module_level=True)

import gag_core  # noqa: E402
import triton_interpreter  # noqa: E402
from gag_core import backends  # noqa: E402
from gag_core.triton_attention import fused_text_attention  # noqa: E402
from gag_reference import reference_cross_attention  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cpu":
    triton_interpreter.enable()
B, H, NQ = 2, 2, 16
HEAD_SCALES = (0.7, 2.0)
"""Score scale per head: a dense and a sparse entmax support."""
FP32_TOLERANCE = 1e-5
SETTINGS = [
    dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5),                            # paper defaults
    dict(lam=50.0, zeta=1.0, tau=None, alpha=1.5),                           # no cap, largest λ
    dict(lam=5.0, zeta=0.5, tau=0.01, alpha=1.5),                            # the cap bites
    dict(lam=0.0, zeta=0.0, tau=15.0, alpha=1.5),                            # λ = 0: S itself
    dict(lam=5.0, zeta=0.0, tau=None, alpha=1.5, mode="pladis", pladis_scale=3.0),
    dict(lam=4.0, zeta=0.3, tau=2.0, alpha=2.0),                             # sparsemax
]
SHAPES = [(1, 40, None), (77, 64, 128), (77, 64, None), (154, 128, 64), (256, 64, None), (512, 128, 128)]
"""(text keys, head dim, keys per tile): a lone key, SD/SDXL's CLIP (in registers, as 16-bit
inputs run it, and in the float32 tiles of 32), two CLIP chunks, and T5/Qwen/Wan-length
contexts, whose keys stream in tiles (float32 at d = 128 streams 16 keys per tile on a GPU;
larger test tiles only save interpreter time: the code is the same)."""
FULL_MATRIX = ((77, 128), (154, 64))
"""(keys, tile) that run every setting; the others run the defaults and sparsemax under each mask."""


def heads(x):
    """(B, N, H·d) → (B, H, N, d): the strided head-split views the ComfyUI adapters pass."""
    b, n, _ = x.shape
    return x.view(b, n, H, -1).transpose(1, 2)


def make_inputs(n_keys, head_dim, seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor(HEAD_SCALES).sqrt().view(1, 1, H, 1)
    q = (torch.randn(B, NQ, H, head_dim, generator=g) * scale).reshape(B, NQ, -1)
    k = torch.randn(B, n_keys, H, head_dim, generator=g) * scale
    if ties and n_keys >= 4:  # every key twice: exactly tied scores in every row
        k[:, n_keys // 2: 2 * (n_keys // 2)] = k[:, : n_keys // 2]
    v = torch.randn(B, n_keys, H * head_dim, generator=g)
    return tuple(heads(t.reshape(B, t.shape[1], -1)).to(DEVICE) for t in (q, k, v))


def make_mask(kind, n_keys, seed):
    g = torch.Generator().manual_seed(seed)
    if kind is None:
        return None
    if kind == "padding":  # text padding: the last keys of the first prompt are masked
        keep = torch.ones(B, 1, 1, n_keys, dtype=torch.bool)
        keep[0, ..., max(1, round(0.7 * n_keys)):] = False
        return keep.to(DEVICE)
    if kind == "per_query":  # bool per query, with two rows that see no key at all
        keep = torch.rand(B, 1, NQ, n_keys, generator=g) > 0.2
        keep[0, 0, 3, :] = keep[1, 0, 7, :] = False
        return keep.to(DEVICE)
    bias = torch.randn(B, H, NQ, n_keys, generator=g) * 2.0  # additive, with -inf and a blocked row
    bias[torch.rand(B, H, NQ, n_keys, generator=g) < 0.2] = float("-inf")
    bias[1, 1, 5, :] = float("-inf")
    return bias.to(DEVICE)


def relative_error(out, reference):
    scale = reference.abs().max()
    return float((out.double().cpu() - reference.cpu()).abs().max() / scale)


def reference(q, k, v, mask, **params):
    """Float64 brute force; query rows whose every key is masked give 0 (gag_core's convention)."""
    tau = params.get("tau")
    params = dict(params, tau=None if tau is None or math.isinf(tau) else tau)
    q, k, v = q.cpu(), k.cpu(), v.cpu()
    if mask is None:
        return reference_cross_attention(q, k, v, **params)
    mask = mask.cpu().expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    has_keys = (mask if mask.dtype == torch.bool else mask > float("-inf")).any(-1, keepdim=True)
    mask = torch.where(has_keys, mask, True if mask.dtype == torch.bool else 0.0)
    return reference_cross_attention(q, k, v, mask=mask, **params) * has_keys


def cases_for(n_keys, key_tile):
    """Every setting with the padding mask (FULL_MATRIX) or the defaults and sparsemax, and
    the other masks with the defaults."""
    settings = SETTINGS if (n_keys, key_tile) in FULL_MATRIX else (SETTINGS[0], SETTINGS[5])
    return [(params, "padding") for params in settings] + [(SETTINGS[0], kind) for kind in
                                                           (None, "per_query", "additive")]


@pytest.mark.parametrize("n_keys,head_dim,key_tile", SHAPES)
def test_float32_matches_float64_reference(n_keys, head_dim, key_tile):
    q, k, v = make_inputs(n_keys, head_dim, seed=10 * n_keys + head_dim)
    for params, mask_kind in cases_for(n_keys, key_tile):
        mask = make_mask(mask_kind, n_keys, seed=n_keys)
        out = fused_text_attention(q, k, v, mask=mask, key_tile=key_tile, **params)
        assert out.shape == q.shape and out.dtype == q.dtype and bool(torch.isfinite(out).all())
        error = relative_error(out, reference(q, k, v, mask, **params))
        assert error <= FP32_TOLERANCE, (params, mask_kind, error)


@pytest.mark.parametrize("n_keys", [77, 154])
def test_tied_scores(n_keys):
    q, k, v = make_inputs(n_keys, 64, seed=3, ties=True)
    mask = make_mask("padding", n_keys, seed=3)
    for params in (SETTINGS[0], SETTINGS[5]):
        error = relative_error(fused_text_attention(q, k, v, mask=mask, **params), reference(q, k, v, mask, **params))
        assert error <= FP32_TOLERANCE, (params, error)


@pytest.mark.parametrize("n_keys,key_tile", [(77, 128), (77, 32), (154, 64)])
@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_support_refinement_alone_is_exact(n_keys, key_tile, alpha):
    """Without lower-bound steps the support refinement starts from the first bound and
    needs several rounds; it must still end at the exact threshold, in registers and tiled."""
    q, k, v = make_inputs(n_keys, 64, seed=5)
    mask = make_mask("padding", n_keys, seed=5)
    params = dict(lam=5.0, zeta=0.5, tau=15.0, alpha=alpha)
    out, rounds = fused_text_attention(q, k, v, mask=mask, solver_steps=0, key_tile=key_tile,
                                       return_iterations=True, **params)
    assert int(rounds.max()) > 2
    assert relative_error(out, reference(q, k, v, mask, **params)) <= FP32_TOLERANCE
    _, default_rounds = fused_text_attention(q, k, v, mask=mask, key_tile=key_tile, return_iterations=True, **params)
    assert int(default_rounds.max()) <= 2  # with the steps, one confirming round nearly always


def rounding_floor(reference, dtype):
    """The error of rounding the exact result once to ``dtype``: the best any kernel can do."""
    return relative_error(reference.to(dtype).double(), reference)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("n_keys,head_dim", [(77, 64), (256, 128)])
def test_half_precision_stays_at_the_rounding_floor(dtype, n_keys, head_dim):
    """Against float64 on the same rounded inputs: within twice the output's rounding floor
    (rounding the probabilities once to the input dtype before P·V costs 3–4 times it)."""
    q, k, v = ((2.0 * t).to(dtype) for t in make_inputs(n_keys, head_dim, seed=7))
    mask = make_mask("padding", n_keys, seed=7)
    for params in (SETTINGS[0], SETTINGS[1], SETTINGS[2]):
        out = fused_text_attention(q, k, v, mask=mask, **params)
        assert out.dtype == dtype and bool(torch.isfinite(out).all())
        exact = reference(q, k, v, mask, **params)
        assert relative_error(out, exact) <= 2 * rounding_floor(exact, dtype), params


def test_huge_inputs_stay_finite():
    """Where plain attention is finite, so is GAG: values of 1e19 would overflow the squared
    norms of the combination in float32 (and bfloat16) without the per-row scaling."""
    q, k, v = make_inputs(77, 64, seed=11)
    big = v * 1e19
    for params in SETTINGS:
        out = fused_text_attention(q, k, big, **params)
        assert bool(torch.isfinite(out).all()), params
        assert relative_error(out, reference(q, k, big, None, **params)) <= FP32_TOLERANCE, params


JOINT_SETTINGS = [SETTINGS[0], SETTINGS[2], SETTINGS[4], SETTINGS[5]]


def joint_inputs(seed, text_len=77, image_len=20, head_dim=64):
    g = torch.Generator().manual_seed(seed)
    n = text_len + image_len
    make = lambda: (torch.randn(B, H, n, head_dim, generator=g) * 1.5).to(DEVICE)  # noqa: E731
    keep = torch.rand(B, 1, n, n, generator=g) > 0.3
    keep[..., 0] = keep[..., text_len] = True
    keep[..., text_len + 3, text_len:] = False   # an image query that sees only text
    keep[..., text_len + 4, :text_len] = False   # one that sees no text: nothing to guide
    bias = torch.zeros(keep.shape).masked_fill(~keep, float("-inf")).to(DEVICE)
    return make(), make(), make(), dict(none=None, bool=keep.to(DEVICE), additive=bias)


@pytest.mark.parametrize("mask_kind, text_last", [("none", False), ("bool", False), ("additive", False),
                                                  ("bool", True)])
def test_joint_attention_matches_the_torch_path(mask_kind, text_last):
    """The kernel's joint epilogue (image rows D_img + σ(lse_t − lse_i)(G_t − D_img)) against
    gag_core's PyTorch joint path, which tests/test_attention.py checks against float64; text
    first, and text last (the image rows then start at the sequence's first token)."""
    q, k, v, masks = joint_inputs(seed=12)
    for params in JOINT_SETTINGS if mask_kind == "none" else JOINT_SETTINGS[:2]:
        kwargs = dict(text_len=77, text_last=text_last, mask=masks[mask_kind], **params)
        fused = gag_core.gag_joint_attention(q, k, v, backend="triton", **kwargs)
        torch_path = gag_core.gag_joint_attention(q.double(), k.double(), v.double(), backend="torch", **kwargs)
        assert relative_error(fused, torch_path) <= FP32_TOLERANCE, params


@pytest.mark.parametrize("with_joint_lse", [False, True])
def test_correction_matches_the_torch_path(with_joint_lse):
    q, k, v, masks = joint_inputs(seed=13)
    image_q, text_k, text_v = q[..., 77:, :], k[..., :77, :], v[..., :77, :]
    lse = (torch.randn(B, H, image_q.shape[-2], generator=torch.Generator().manual_seed(1)) + 4).to(DEVICE)
    mask = gag_core.image_text_block(masks["bool"], 77)
    joint_lse = lse if with_joint_lse else None
    for params in JOINT_SETTINGS if with_joint_lse else JOINT_SETTINGS[:2]:
        fused = gag_core.gag_correction(image_q, text_k, text_v, backend="triton", mask=mask,
                                        joint_logsumexp=joint_lse, **params)
        assert fused.dtype == torch.float32
        torch_path = gag_core.gag_correction(image_q.double(), text_k.double(), text_v.double(), backend="torch",
                                             mask=mask, joint_logsumexp=None if joint_lse is None else joint_lse.double(),
                                             **params)
        scale = gag_core.gag_attention(image_q.double(), text_k.double(), text_v.double(), mask=mask,
                                       backend="torch", **params).abs().max()
        assert float((fused.double().cpu() - torch_path.cpu()).abs().max() / scale) <= FP32_TOLERANCE, params


def test_auto_keeps_the_torch_path_off_cuda(monkeypatch):
    monkeypatch.delenv(backends.ENVIRONMENT_VARIABLE, raising=False)
    q = torch.zeros(1, 1, 4, 8)
    assert backends.choose("auto", q, q, 1.5) == ("triton" if DEVICE.type == "cuda" else "torch")
    monkeypatch.setenv(backends.ENVIRONMENT_VARIABLE, "torch")
    assert backends.choose("auto", q, q, 1.5) == "torch"
    monkeypatch.setenv(backends.ENVIRONMENT_VARIABLE, "fast")
    with pytest.raises(ValueError, match="GAG_BACKEND must be one of auto, torch, triton, got 'fast'"):
        backends.choose("auto", q, q, 1.5)
    with pytest.raises(ValueError, match="backend must be one of"):
        gag_core.gag_attention(q, q, q, lam=1.0, zeta=0.0, tau=None, alpha=1.5, backend="cuda")


def test_triton_refuses_what_it_does_not_cover():
    q = torch.zeros(1, 1, 4, 8, device=DEVICE)
    with pytest.raises(ValueError, match=r"backend 'triton' cannot run this call: alpha = 1.25"):
        gag_core.gag_attention(q, q, q, lam=1.0, zeta=0.0, tau=None, alpha=1.25, backend="triton")
    with pytest.raises(ValueError, match=r"cannot run this call: dtype torch.float64"):
        gag_core.gag_attention(q.double(), q.double(), q.double(), lam=1.0, zeta=0.0, tau=None, alpha=1.5,
                               backend="triton")
    # diagnostics need the torch path's retrievals: they run there even when triton is asked for
    stats = gag_core.GuidanceStats()
    gag_core.gag_attention(q, q, q, lam=1.0, zeta=0.0, tau=None, alpha=1.5, backend="triton", stats=stats)
    assert stats.rows == 4


def test_a_failing_kernel_falls_back_to_torch_under_auto(monkeypatch):
    """A GPU the kernels were never tried on may refuse them: auto then takes the torch path
    for good (with one warning) instead of failing the user's sampling; forced triton raises."""
    import gag_core.triton_attention as kernel_module

    def refuse(*args, **kwargs):
        raise RuntimeError("out of resources: shared memory")

    monkeypatch.setattr(kernel_module, "fused_text_attention", refuse)
    monkeypatch.setattr(backends, "choose", lambda *args: "triton")
    monkeypatch.setattr(backends, "_failure", [])
    q, k, v = make_inputs(77, 64, seed=2)
    params = SETTINGS[0]
    out = gag_core.gag_attention(q, k, v, **params)
    assert relative_error(out, reference(q, k, v, None, **params)) <= FP32_TOLERANCE
    assert "out of resources" in backends._failure[0]
    with pytest.raises(RuntimeError, match="out of resources"):
        gag_core.gag_attention(q, k, v, backend="triton", **params)
