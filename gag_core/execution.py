"""How gag_core's PyTorch code runs on a device: with or without host syncs, and in which
matmul precision.

**Device path or CPU path.** On an accelerator, any read of a device value by Python
(``.item()``, ``bool(tensor)``, ``.nonzero()``, indexing with a bool mask) stalls the host
until the device has caught up, once per attention layer; that turns a model evaluation
host-bound. So on every device but the CPU, gag_core takes its *device path*: no
data-dependent Python branch, no data-dependent shape, larger query chunks. On the CPU a
sync is free, and the *CPU path* may compact the rare rows that need more solver work (it is
faster there). :func:`device_path` is the one switch between them; :func:`forced_device_path`
makes CPU tensors take the device path, so tests and the op audit (``bench/ops.py``) check it
on a machine without an accelerator.

**fp32 matmuls in IEEE precision.** A user may have enabled TF32 for float32 matmuls
globally (``torch.backends.cuda.matmul.allow_tf32``, ``torch.set_float32_matmul_precision``
"high"/"medium"), which rounds their operands to 10 mantissa bits (bf16-like on CPUs with
oneDNN's "bf16" setting): the probability maps and retrievals would lose the float32
precision the solvers and the GAG projection rely on. :func:`ieee_fp32_matmuls` turns that
off for the matmuls inside it and restores the user's setting on exit (only a setting that
differs from IEEE is touched, through PyTorch's per-backend ``fp32_precision`` API, the one
that reads and restores cleanly whichever API the user set it with). The setting is process
wide: another thread's float32 matmuls that run during a guided call also run in IEEE.
"""

import contextlib
import functools

import torch

_forced = False

MATMUL_PRECISIONS = (("cuda", "matmul"), ("mkldnn", "matmul"))
"""The (backend, operation) settings of float32 matmul precision that gag_core's matmuls can
meet: cuBLAS (CUDA) and oneDNN (CPU)."""
FULL_PRECISION = ("ieee", "none")
"""``fp32_precision`` values that mean IEEE float32 ("none": no override, the default)."""
_PRECISION_API = hasattr(torch._C, "_get_fp32_precision_getter")
"""PyTorch ≥ 2.9 has per-backend ``fp32_precision`` settings; older releases only cuBLAS's
``allow_tf32`` flag."""


def device_path(device: torch.device) -> bool:
    """Whether gag_core runs its sync-free device path on ``device`` (see the module doc):
    every device but the CPU, and the CPU inside :func:`forced_device_path`."""
    return _forced or device.type != "cpu"


@contextlib.contextmanager
def forced_device_path():
    """Within this context CPU tensors take the device path too (for tests and audits)."""
    global _forced
    previous, _forced = _forced, True
    try:
        yield
    finally:
        _forced = previous


@contextlib.contextmanager
def ieee_fp32_matmuls():
    """Run the float32 matmuls inside in IEEE precision, whatever the global setting; the
    setting is restored on exit (see the module doc)."""
    undo = []
    try:
        if _PRECISION_API:
            get, set_ = torch._C._get_fp32_precision_getter, torch._C._set_fp32_precision_setter
            for backend, operation in MATMUL_PRECISIONS:
                precision = get(backend, operation)  # resolved: an unset value inherits the backend's
                if precision not in FULL_PRECISION:
                    restored = "none" if precision == get(backend, "all") else precision
                    set_(backend, operation, "ieee")
                    undo.append(functools.partial(set_, backend, operation, restored))
        elif torch.backends.cuda.matmul.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = False
            undo.append(functools.partial(setattr, torch.backends.cuda.matmul, "allow_tf32", True))
        yield
    finally:
        for step in reversed(undo):
            step()
