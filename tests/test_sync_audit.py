"""The op audit (bench/ops.py): it sees every kind of host read, and the CPU path's."""

import torch

from bench import ops

SHAPES = {"cross": (2, 10, 512, 77, 64)}


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
