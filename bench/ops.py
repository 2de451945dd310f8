"""Op audit of one guided attention layer: the aten ops it issues, which of them force a
device→host sync, and the bytes its kernels read and write.

``trace(fn)`` runs ``fn()`` under a ``TorchDispatchMode`` and records every aten op that
reaches the dispatcher (after autograd and composite decompositions: what a device would
run). Each op is classified:

- *kernel*: an op that launches device work (views, allocations and queries do not);
- *sync*: an op whose result the host must wait for (``SYNC_OPS``: ``.item()``,
  ``bool(tensor)``, ``nonzero``, data-dependent output sizes, …; indexing with a bool mask;
  a copy from an accelerator to the CPU).

Bytes: per kernel, the distinct elements of its tensor inputs (broadcast dimensions count
once; an ``out=`` buffer is not read) plus its outputs, times their item size. Each operand
read once, as an ideal fused kernel would: a proxy of memory traffic, not a measurement.

``trace_layer`` audits one guided layer (``LAYERS``) where it would run:
- ``"cpu"``: the CPU path on CPU tensors;
- ``"device path"``: CPU tensors forced onto the device path (real values);
- ``"cuda (meta)"``: the CUDA code path traced with shape-only "meta" tensors on any machine
  (``cuda_as_meta``): device path, PyTorch's fused CUDA SDPA kernels (their meta functions),
  no data, and any host read of a value fails outright;
- a real device, e.g. ``"cuda"``.
Triton kernels are launched outside the dispatcher: ``triton_launches`` records each launch
as one kernel (and runs it only with ``execute``), so for the triton backend the trace is the
Python wrapper's aten ops plus its launches. On a CPU or meta device the triton backend needs
``TRITON_INTERPRET=1`` in the environment (see gag_core/backends.py).
"""

import contextlib
import dataclasses
import os
from unittest import mock

import torch
from torch.nn.attention import SDPBackend
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten

import gag_core
from gag_core import attention, backends, execution

SYNC_OPS = {
    "aten::_local_scalar_dense": "a scalar read by the host (.item(), bool(), float(), int())",
    "aten::item": "a scalar read by the host",
    "aten::is_nonzero": "bool(tensor)",
    "aten::equal": "torch.equal returns a Python bool",
    "aten::nonzero": "output size depends on the data",
    "aten::masked_select": "output size depends on the data",
    "aten::unique": "output size depends on the data",
    "aten::_unique": "output size depends on the data",
    "aten::_unique2": "output size depends on the data",
    "aten::unique_dim": "output size depends on the data",
    "aten::unique_consecutive": "output size depends on the data",
    "aten::unique_dim_consecutive": "output size depends on the data",
    "aten::bincount": "output size depends on the data",
    "aten::histogramdd": "bin edges read by the host",
}
"""Ops that always make the host wait for the device."""
PARTIAL_WRITE_OPS = {"aten::index_put_", "aten::_index_put_impl_", "aten::index_copy_", "aten::index_add_",
                     "aten::scatter_", "aten::scatter_add_", "aten::index_fill_"}
"""In-place ops that touch only some rows of their first argument: it is not counted as read
or written whole; the rows they write are as many as their source's (or index's) elements."""
NO_KERNEL_OPS = {"aten::empty", "aten::empty_strided", "aten::empty_like", "aten::_fused_sdp_choice",
                 "aten::lift_fresh", "aten::set_", "aten::resize_"}
"""Ops that launch no device work (allocation or metadata); views are recognised by schema."""


@dataclasses.dataclass
class Op:
    name: str          # e.g. "aten::add_"
    kernel: bool       # launches device work
    sync: str | None   # why the host waits for it, None when it does not
    bytes: int         # read + written by a kernel (see the module doc), 0 otherwise


@dataclasses.dataclass
class OpTrace:
    ops: list = dataclasses.field(default_factory=list)

    @property
    def kernels(self) -> int:
        return sum(op.kernel for op in self.ops)

    @property
    def syncs(self) -> list:
        """The ops that force a device→host sync, with why, in call order."""
        return [f"{op.name} ({op.sync})" for op in self.ops if op.sync]

    @property
    def bytes(self) -> int:
        return sum(op.bytes for op in self.ops)

    def summary(self) -> str:
        return f"{self.kernels} kernels, {len(self.syncs)} syncs, {self.bytes / 2**20:.1f} MiB touched"


def _distinct_bytes(t: torch.Tensor) -> int:
    """Bytes of the distinct elements a tensor view addresses (stride-0 dimensions once)."""
    elements = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            elements *= size
    return elements * t.element_size()


def _sync_reason(name: str, func, args, kwargs, tensors_in) -> str | None:
    """Why the host must wait for this op, or None."""
    if name in SYNC_OPS:
        return SYNC_OPS[name]
    if name in ("aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"):
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices):
            return "indexing with a bool mask (nonzero inside)"
    if name == "aten::repeat_interleave" and func._overloadname == "Tensor" and kwargs.get("output_size") is None:
        return "repeat_interleave without output_size"
    if name in ("aten::_to_copy", "aten::copy_", "aten::to"):
        sources = [t for t in tensors_in if t.device.type != "cpu"]
        target = kwargs.get("device") or (args[0].device if name == "aten::copy_" else None)
        if sources and target is not None and torch.device(target).type == "cpu":
            return "copy from the device to the host"
    return None


class _Recorder(TorchDispatchMode):
    def __init__(self, trace: OpTrace):
        super().__init__()
        self.trace = trace

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        out_kwarg = kwargs.get("out")
        inputs = [t for t in tree_flatten((args, {k: v for k, v in kwargs.items() if k != "out"}))[0]
                  if isinstance(t, torch.Tensor)]
        sync = _sync_reason(name, func, args, kwargs, inputs)
        result = func(*args, **kwargs)
        kernel = not func.is_view and name not in NO_KERNEL_OPS and not name.startswith("aten::sym_")
        size = 0
        if kernel and name in PARTIAL_WRITE_OPS:
            sources = inputs[1:]
            size = 2 * sum(map(_distinct_bytes, sources))  # read, then written into the target rows
        elif kernel:
            outputs = [t for t in tree_flatten(result)[0] if isinstance(t, torch.Tensor)]
            if out_kwarg is not None and not outputs:
                outputs = [t for t in tree_flatten(out_kwarg)[0] if isinstance(t, torch.Tensor)]
            size = sum(map(_distinct_bytes, inputs)) + sum(map(_distinct_bytes, outputs))
        self.trace.ops.append(Op(name, kernel, sync, size))
        return result


def trace(fn, into: OpTrace | None = None) -> tuple[OpTrace, object]:
    """Run ``fn()`` and return (its op trace, its result); ``into`` (optional) is the trace
    to append to."""
    record = OpTrace() if into is None else into
    with _Recorder(record):
        result = fn()
    return record, result


@contextlib.contextmanager
def triton_launches(trace_into: OpTrace, *, execute: bool = False):
    """Within this context every launch of a Triton kernel of ``gag_core.triton_attention``
    is recorded into ``trace_into`` (one kernel op named ``triton::<kernel>``, its bytes those
    of its distinct tensor arguments) instead of being traced op by op; with ``execute`` the
    kernel also runs (outside any dispatch mode, e.g. in Triton's interpreter), else it is
    skipped and its outputs stay unwritten."""
    from triton.runtime.jit import KernelInterface

    from gag_core import triton_attention

    kernels = [k for k in vars(triton_attention).values() if isinstance(k, KernelInterface)]
    originals = {id(k): (k.run, vars(k).get("run")) for k in kernels}

    def recorder(kernel):
        def run(*args, grid, warmup, **kwargs):
            if not warmup:
                # its tensor arguments, each once (absent ones are passed as stand-ins): read or written once
                tensors = {id(t): t for t in args if isinstance(t, torch.Tensor)}.values()
                trace_into.ops.append(Op(f"triton::{kernel.__name__}", True, None,
                                         sum(map(_distinct_bytes, tensors))))
            if execute:
                with _disable_current_modes():
                    return originals[id(kernel)][0](*args, grid=grid, warmup=warmup, **kwargs)
            return None
        return run

    try:
        for kernel in kernels:
            kernel.run = recorder(kernel)
        yield
    finally:
        for kernel in kernels:
            own = originals[id(kernel)][1]
            if own is None:
                del kernel.run
            else:
                kernel.run = own


@contextlib.contextmanager
def cuda_as_meta():
    """Within this context "meta" tensors take gag_core's CUDA code path: PyTorch's fused
    CUDA kernels (their meta functions) for dense attention with log-sum-exp. SDPA's kernel
    choice needs a CUDA build, so it is answered as on a recent NVIDIA GPU: flash attention for
    unmasked fp16/bf16 calls, memory-efficient attention otherwise (float32, masked calls)."""
    def choice(q, *args, **kwargs):
        low_precision = q.dtype in (torch.float16, torch.bfloat16)
        return int(SDPBackend.FLASH_ATTENTION if low_precision else SDPBackend.EFFICIENT_ATTENTION)

    with mock.patch.object(attention, "CUDA_DEVICE_TYPES", attention.CUDA_DEVICE_TYPES + ("meta",)), \
            mock.patch.object(torch, "_fused_sdp_choice", choice), \
            mock.patch.object(torch.backends.cuda, "can_use_efficient_attention", lambda params, debug=False: True):
        yield


SETTINGS = dict(lam=5.0, zeta=0.0, tau=15.0, alpha=1.5)
"""The guidance of every audited layer: the pack's defaults."""
LAYERS = {
    "cross": "gag_attention (UNet cross-attention)",
    "correction": "gag_correction with a joint log-sum-exp (cond-only joint rows)",
    "joint": "gag_joint_attention (MMDiT joint attention)",
    "joint masked": "gag_joint_attention with a bool mask",
}
"""Layer kinds ``trace_layer`` audits. Cross kinds take shape (B, H, Nq, Nk, d), joint kinds
(B, H, image tokens, text tokens, d)."""


def layer(kind: str, shape: tuple, *, device, dtype: torch.dtype, backend: str = "torch"):
    """One guided layer of ``kind`` on fresh inputs, as a function of no arguments."""
    batch, heads, n_queries, n_keys, head_dim = shape
    generator = torch.Generator().manual_seed(0)

    def tensor(*size, like=dtype):
        if torch.device(device).type == "meta":
            return torch.empty(size, device="meta", dtype=like)
        if like == torch.bool:
            return (torch.rand(size, generator=generator) > 0.2).to(device)
        return torch.randn(size, generator=generator).to(device, like)

    settings = dict(SETTINGS, backend=backend)
    if kind in ("cross", "correction"):
        q, k, v = tensor(batch, heads, n_queries, head_dim), tensor(batch, heads, n_keys, head_dim), \
            tensor(batch, heads, n_keys, head_dim)
        if kind == "cross":
            return lambda: gag_core.gag_attention(q, k, v, **settings)
        joint_logsumexp = tensor(batch, heads, n_queries, like=torch.float32)
        if torch.device(device).type != "meta":
            joint_logsumexp += 5.0  # a joint normaliser above the text keys' own
        return lambda: gag_core.gag_correction(q, k, v, joint_logsumexp=joint_logsumexp, **settings)
    if kind not in LAYERS:
        raise ValueError(f"layer kind must be one of {', '.join(LAYERS)}, got {kind!r}")
    tokens = n_queries + n_keys
    q, k, v = (tensor(batch, heads, tokens, head_dim) for _ in range(3))
    mask = tensor(batch, 1, tokens, tokens, like=torch.bool) if kind == "joint masked" else None
    return lambda: gag_core.gag_joint_attention(q, k, v, text_len=n_keys, mask=mask, **settings)


def trace_layer(kind: str, shape: tuple, *, where: str = "cpu", dtype: torch.dtype = torch.float32,
                backend: str = "torch") -> OpTrace:
    """The op trace of one guided layer (``layer``) run ``where`` (see the module doc)."""
    record = OpTrace()
    with contextlib.ExitStack() as stack:
        device = where
        if where == "device path":
            stack.enter_context(execution.forced_device_path())
            device = "cpu"
        elif where == "cuda (meta)":
            stack.enter_context(cuda_as_meta())
            device = "meta"
        function = layer(kind, shape, device=device, dtype=dtype, backend=backend)
        if backend == "triton":
            on_cuda = torch.device(device).type == "cuda"
            stack.enter_context(triton_launches(record, execute=on_cuda))
            if not on_cuda:  # gag_core lets the triton backend take CPU and meta tensors only when interpreting
                stack.enter_context(mock.patch.dict(os.environ, {"TRITON_INTERPRET": "1"}))
        stack.enter_context(torch.inference_mode())
        trace(function, into=record)
    return record


def backends_on(device, dtype: torch.dtype = torch.float32) -> dict:
    """Each gag_core backend → None when it runs guided layers (α = 1.5, head dim 64) on
    ``device``, else why not (see gag_core/backends.py)."""
    q = torch.empty(1, 1, 16, 64, device=device, dtype=dtype)
    return {"torch": None, "triton": backends.triton_unsupported_reason(q, q, 1.5)}
