"""Which fused kernel ``dense_attention_with_logsumexp`` calls on CUDA, and how, checked on the CPU.

Shape-only "meta" tensors stand in for CUDA tensors (``attention.CUDA_DEVICE_TYPES``
extended): every aten op runs its meta function, i.e. torch 2.13's shape and dtype rules of
the fused kernels, with no data and no GPU; PyTorch's own kernel choice (which needs a CUDA
build) is monkeypatched. The kernels' numerics on a GPU are what ``bench.device_check``
measures; nothing here runs a CUDA kernel.
"""

import logging

import pytest
import torch
from torch.nn.attention import SDPBackend
from torch.utils._python_dispatch import TorchDispatchMode

import gag_core.attention as attention
from bench import ops

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

FUSED_OPS = {"aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_cudnn_attention",
             "aten::_scaled_dot_product_efficient_attention"}


class Calls(TorchDispatchMode):
    """Records (op name, args, kwargs) of every aten op."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.calls.append((func._schema.name, args, kwargs))
        return func(*args, **kwargs)

    def fused(self):
        return [(name, args, kwargs) for name, args, kwargs in self.calls if name in FUSED_OPS]


@pytest.fixture
def cuda_meta(monkeypatch):
    """Meta tensors take the CUDA branch; returns a setter for SDPA's choice and whether the
    memory-efficient kernel takes a masked call."""
    monkeypatch.setattr(attention, "CUDA_DEVICE_TYPES", ("cuda", "meta"))
    state = dict(choice=SDPBackend.FLASH_ATTENTION, efficient=True)
    monkeypatch.setattr(torch, "_fused_sdp_choice", lambda *args, **kwargs: int(state["choice"]))
    monkeypatch.setattr(torch.backends.cuda, "can_use_efficient_attention",
                        lambda params, debug=False: state["efficient"])
    return state


def meta(*shape, dtype=torch.bfloat16):
    return torch.empty(shape, device="meta", dtype=dtype)


def run(q, k, v, mask=None):
    recorder = Calls()
    with recorder:
        out, lse = attention.dense_attention_with_logsumexp(q, k, v, mask)
    return recorder, out, lse


@pytest.mark.parametrize("choice, op", [
    (SDPBackend.FLASH_ATTENTION, "aten::_scaled_dot_product_flash_attention"),
    (SDPBackend.CUDNN_ATTENTION, "aten::_scaled_dot_product_cudnn_attention"),
    (SDPBackend.EFFICIENT_ATTENTION, "aten::_scaled_dot_product_efficient_attention"),
])
def test_unmasked_calls_take_the_kernel_sdpa_picks(cuda_meta, choice, op):
    cuda_meta["choice"] = choice
    q, k, v = meta(2, 3, 50, 64), meta(2, 3, 70, 64), meta(2, 3, 70, 64)
    recorder, out, lse = run(q, k, v)
    assert [name for name, _, _ in recorder.fused()] == [op]
    assert out.shape == (2, 3, 50, 64) and out.dtype == torch.bfloat16
    assert lse.shape == (2, 3, 50) and lse.dtype == torch.float32  # cuDNN's (…, 1) and efficient's 32-padding gone


def test_math_choice_and_other_devices_use_the_chunked_fallback(cuda_meta, monkeypatch):
    cuda_meta["choice"] = SDPBackend.MATH
    q = meta(1, 2, 30, 16)
    recorder, out, lse = run(q, q, q)
    assert recorder.fused() == [] and out.shape == (1, 2, 30, 16) and lse.shape == (1, 2, 30)
    monkeypatch.setattr(attention, "CUDA_DEVICE_TYPES", ("cuda",))  # e.g. MPS: no fused kernel with log-sum-exp
    cuda_meta["choice"] = SDPBackend.FLASH_ATTENTION
    recorder, _, _ = run(q, q, q)
    assert recorder.fused() == [] and any(name in ("aten::bmm", "aten::matmul") for name, _, _ in recorder.calls)


def test_flash_pads_a_head_dim_off_its_multiple_of_8(cuda_meta):
    q = meta(1, 2, 30, 12)
    recorder, out, lse = run(q, q, q)
    (_, args, kwargs), = recorder.fused()
    assert all(t.shape[-1] == 16 for t in args[:3])
    assert kwargs["scale"] == pytest.approx(12 ** -0.5)  # the scale of the real head dim
    assert out.shape == (1, 2, 30, 12)


@pytest.mark.parametrize("mask_shape, dtype", [
    ((2, 1, 77, 77), torch.bool),      # a full joint mask, rows not a multiple of 8: padded
    ((2, 1, 80, 80), torch.bool),      # aligned already
    ((1, 1, 1, 77), torch.bool),       # key padding, broadcast over heads and queries
    ((77,), torch.bool),
    ((2, 3, 77, 77), torch.bfloat16),  # additive
])
def test_masked_calls_take_the_efficient_kernel_with_an_aligned_bias(cuda_meta, mask_shape, dtype):
    n = mask_shape[-1]
    q = meta(2, 3, n, 64)
    recorder, out, lse = run(q, q, q, meta(*mask_shape, dtype=dtype))
    (name, args, _), = recorder.fused()
    assert name == "aten::_scaled_dot_product_efficient_attention"
    bias = args[3]
    assert bias.shape == (2, 3, n, n) and bias.dtype == torch.bfloat16
    assert bias.stride(-1) == 1 and all(stride % attention.BIAS_ALIGNMENT == 0 for stride in bias.stride()[:-1])
    assert out.shape == (2, 3, n, 64) and lse.shape == (2, 3, n)


@pytest.mark.parametrize("refusal", ["efficient kernel unusable", "disabled by the user"])
def test_masked_calls_fall_back_when_the_efficient_kernel_cannot_run(cuda_meta, monkeypatch, refusal):
    if refusal == "disabled by the user":
        monkeypatch.setattr(torch.backends.cuda, "mem_efficient_sdp_enabled", lambda: False)
    else:
        cuda_meta["efficient"] = False
    q = meta(1, 2, 30, 16)
    recorder, out, lse = run(q, q, q, meta(1, 1, 30, 30, dtype=torch.bool))
    assert recorder.fused() == [] and out.shape == (1, 2, 30, 16) and lse.shape == (1, 2, 30)


def test_the_aligned_bias_keeps_every_value():
    bias = torch.randn(2, 1, 13, 13)
    q, k = torch.empty(2, 3, 13, 8), torch.empty(2, 3, 13, 8)
    aligned = attention._aligned_bias(bias, q, k)
    assert aligned.shape == (2, 3, 13, 13) and aligned.stride()[:-1] == (13 * 16, 0, 16)
    assert torch.equal(aligned, bias.expand(2, 3, 13, 13))
    already = torch.randn(1, 1, 5, 16)
    assert attention._aligned_bias(already, torch.empty(1, 1, 5, 8), torch.empty(1, 1, 16, 8)).data_ptr() == \
        already.data_ptr()  # no copy when the strides suit the kernel


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory"),
                                   torch.AcceleratorError("CUDA error: an illegal memory access")])
def test_out_of_memory_and_device_errors_are_raised_not_taken_for_unsupported(cuda_meta, monkeypatch, error):
    def failing(*args):
        raise error

    monkeypatch.setitem(attention.CUDA_KERNELS, SDPBackend.FLASH_ATTENTION, failing)
    q = meta(1, 2, 30, 16)
    with pytest.raises(type(error)):
        attention.dense_attention_with_logsumexp(q, q, q)


def test_a_kernel_refusal_falls_back_and_is_logged_once(cuda_meta, monkeypatch, caplog):
    def refusing(q, k, v, bias):
        raise RuntimeError("No available kernel. Aborting execution.")

    refusing.__name__ = "_flash_with_logsumexp"
    monkeypatch.setitem(attention.CUDA_KERNELS, SDPBackend.FLASH_ATTENTION, refusing)
    monkeypatch.setattr(attention, "_fallbacks_logged", set())
    q = meta(1, 2, 30, 16)
    with caplog.at_level(logging.WARNING, logger="gag_core.attention"):
        for _ in range(2):
            out, lse = attention.dense_attention_with_logsumexp(q, q, q)
    assert out.shape == (1, 2, 30, 16) and lse.shape == (1, 2, 30)
    assert caplog.text.count("refused a dense attention call") == 1


@pytest.mark.parametrize("masked", [False, True])
def test_the_cuda_path_reads_nothing_on_the_host(cuda_meta, masked):
    q = meta(1, 2, 30, 16)
    trace, _ = ops.trace(lambda: attention.dense_attention_with_logsumexp(
        q, q, q, meta(1, 1, 30, 30, dtype=torch.bool) if masked else None))
    assert trace.syncs == []
