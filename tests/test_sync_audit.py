"""The sync audit (bench/ops.py): one guided layer along the device code path issues no op
that makes the host wait, for the torch backend and for the triton backend's Python wrapper.
Each test prints the op count of its layer (``pytest -rP`` shows it) and records it as a
test property (``--junitxml``).

"device path" runs CPU tensors forced onto the device path (real values); "cuda (meta)"
traces the CUDA code path itself with shape-only tensors (PyTorch's fused CUDA kernels by
their meta functions), where any host read of a value would also raise.
"""

import pytest
import torch

from bench import ops

pytestmark = pytest.mark.host_independent  # gag_core only: CI runs it on the first host alone

SHAPES = {"cross": (2, 10, 512, 77, 64), "correction": (2, 10, 512, 77, 64),
          "joint": (1, 4, 192, 77, 64), "joint masked": (1, 4, 192, 77, 64)}
"""SDXL-like cross-attention and a FLUX-like joint layer, with fewer queries to stay quick."""


def report(record_property, label, trace):
    line = f"{label}: {trace.summary()}"
    print(line)
    record_property(label, trace.summary())
    return line


@pytest.mark.parametrize("where", ["device path", "cuda (meta)"])
@pytest.mark.parametrize("kind", list(ops.LAYERS))
def test_torch_backend_device_path_has_no_sync(kind, where, record_property):
    trace = ops.trace_layer(kind, SHAPES[kind], where=where, dtype=torch.bfloat16, backend="torch")
    report(record_property, f"torch {kind} ({where})", trace)
    assert trace.syncs == []
    assert trace.kernels > 20  # the trace really saw the layer


@pytest.fixture
def interpreted_triton(monkeypatch):
    """The triton backend allowed on CPU and meta tensors (Triton's interpreter flag), set
    before gag_core.triton_attention is first imported, which reads it once."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import gag_core.triton_attention  # noqa: F401


@pytest.mark.parametrize("where", ["device path", "cuda (meta)"])
@pytest.mark.parametrize("kind", list(ops.LAYERS))
def test_triton_wrapper_has_no_sync_and_few_ops(kind, where, interpreted_triton, record_property):
    """Kernel launches are recorded, not run: the trace is the wrapper's own aten ops (and,
    for joint attention, the fused dense SDPA calls around the kernel)."""
    trace = ops.trace_layer(kind, SHAPES[kind], where=where, dtype=torch.bfloat16, backend="triton")
    report(record_property, f"triton {kind} ({where})", trace)
    launches = [op for op in trace.ops if op.name.startswith("triton::")]
    assert trace.syncs == []
    assert len(launches) == 1
    wrapper_kernels = trace.kernels - len(launches)
    assert wrapper_kernels <= (2 if kind in ("cross", "correction") else 25)


def test_audit_flags_every_kind_of_host_read():
    x = torch.randn(64)
    counts = torch.tensor([1, 2, 3])

    def reads():
        bool(x.sum() > 0)
        x.max().item()
        float(x[0])
        x.nonzero()
        x[x > 0]
        x.masked_select(x > 0)
        torch.unique(x)
        torch.repeat_interleave(counts)
        torch.repeat_interleave(counts, output_size=6)  # the size is given: no sync
        torch.where(x > 0, x, 0.0)  # fine on a device

    trace, _ = ops.trace(reads)
    assert len(trace.syncs) == 8, trace.syncs


def test_the_cpu_path_is_audited_with_its_syncs():
    """The CPU path reads its certificate on the host (free there): the audit sees it, so
    the device path's zero above is a finding, not a blind spot."""
    trace = ops.trace_layer("cross", SHAPES["cross"], where="cpu", dtype=torch.bfloat16)
    assert any("_local_scalar_dense" in sync or "is_nonzero" in sync for sync in trace.syncs)
