"""Which implementation computes a guided attention call: the fused Triton kernels or PyTorch.

``backend`` (keyword of the attention functions) is ``"auto"``, ``"torch"`` or ``"triton"``.
``auto`` takes the environment variable ``GAG_BACKEND`` when it is set (so a user can force
one without touching a workflow), else picks Triton for a CUDA tensor when triton imports and
the call is a case the kernels cover (see :func:`decide`), else PyTorch.
``"triton"`` asked for explicitly runs the kernels wherever triton can launch them (a CUDA
device, or any device under ``TRITON_INTERPRET=1``, which is how the CPU tests run them) and
raises ``ValueError`` naming the reason when it cannot. Each distinct choice is logged once.
If a kernel fails to compile or launch on a GPU it was never tried on, ``auto`` falls back to
PyTorch for the rest of the process with one warning (see ``attention._fused``); a forced
``triton`` re-raises the error.
"""

import functools
import logging
import os

import torch

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "triton")
ENVIRONMENT_VARIABLE = "GAG_BACKEND"
TRITON_ALPHAS = (1.5, 2.0)
"""α values with a fused kernel: the exact solvers of power 2 (1.5-entmax) and 1 (sparsemax)."""
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TRITON_MAX_HEAD_DIM = 256


@functools.lru_cache(maxsize=None)
def triton_import_error() -> str | None:
    """None when ``gag_core.triton_attention`` imports (triton present), else why not."""
    try:
        from . import triton_attention  # noqa: F401
    except Exception as error:  # ImportError, or a broken triton install
        return f"triton does not import ({type(error).__name__}: {error})"
    return None


def interpreting() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _unsupported(device_type: str, dtype: torch.dtype, alpha: float, head_dim: int | None) -> str | None:
    """None when the fused kernels cover calls like this, else a short reason."""
    if float(alpha) not in TRITON_ALPHAS:
        return f"alpha = {alpha:g} has no fused kernel (only {', '.join(map(str, TRITON_ALPHAS))})"
    if dtype not in TRITON_DTYPES:
        return f"dtype {dtype} has no fused kernel"
    if head_dim is not None and head_dim > TRITON_MAX_HEAD_DIM:
        return f"head dim {head_dim} has no fused kernel (at most {TRITON_MAX_HEAD_DIM})"
    if device_type != "cuda" and not interpreting():
        return f"{device_type} tensors (the kernels run on CUDA, or anywhere under TRITON_INTERPRET=1)"
    return triton_import_error()


_failure: list = []
"""The error that made the fused kernels fail in this process (see :func:`disable_triton`)."""


def disable_triton(error: Exception) -> None:
    """Stop choosing Triton under ``auto`` for the rest of the process, with one warning."""
    if not _failure:
        _failure.append(f"the fused kernel failed here ({type(error).__name__}: {error})")
        log.warning("GAG: %s; using the PyTorch attention path from now on", _failure[0])


def check_name(backend: str) -> None:
    """Raise ValueError unless ``backend`` is one of BACKENDS."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def requested(backend: str) -> str:
    """The backend asked for: ``backend`` itself, or for ``auto`` the GAG_BACKEND variable."""
    check_name(backend)
    if backend != "auto":
        return backend
    value = os.environ.get(ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE} must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


def forced(backend: str) -> bool:
    """Whether Triton was asked for explicitly (keyword or GAG_BACKEND): its failures then raise."""
    return requested(backend) == "triton"


def decide(backend: str, device_type: str, dtype: torch.dtype, alpha: float, head_dim: int | None = None,
           shape_reason: str | None = None) -> tuple[str, str]:
    """(the backend that runs, why) for calls on ``device_type`` in ``dtype``; ``shape_reason``
    says why a particular call's shapes rule the kernels out. Raises ValueError when Triton is
    forced but cannot run."""
    wanted = requested(backend)
    if wanted == "torch":
        return "torch", "requested"
    reason = shape_reason or _unsupported(device_type, dtype, alpha, head_dim)
    if wanted == "triton":
        if reason is not None:
            raise ValueError(f"backend 'triton' cannot run this call: {reason}")
        return "triton", "requested"
    if device_type != "cuda":  # auto: Triton only where it compiles, never the slow interpreter
        return "torch", f"{device_type} device"
    reason = reason or (_failure[0] if _failure else None)
    return ("torch", reason) if reason else ("triton", "CUDA and triton available")


def choose(backend: str, q: torch.Tensor, k: torch.Tensor, alpha: float) -> str:
    """The backend ("torch" or "triton") that runs the call on q (B, H, Nq, d) and
    k (B, H, Nk, d); see the module doc."""
    return _logged(*decide(backend, q.device.type, q.dtype, alpha, q.shape[-1], _shape_reason(q, k)))


def triton_unsupported_reason(q: torch.Tensor, k: torch.Tensor, alpha: float) -> str | None:
    """None when the fused kernels can run the call on q (B, H, Nq, d) and k (B, H, Nk, d)
    here, else why not."""
    return _shape_reason(q, k) or _unsupported(q.device.type, q.dtype, alpha, q.shape[-1])


def _shape_reason(q: torch.Tensor, k: torch.Tensor) -> str | None:
    if q.shape[-1] != k.shape[-1]:
        return "queries and keys of different head dims"
    if q.shape[-2] == 0 or k.shape[-2] == 0:
        return "no queries or no keys"
    return None


@functools.lru_cache(maxsize=None)
def _logged(name: str, reason: str) -> str:
    log.info("GAG attention backend: %s (%s)", name, reason)
    return name
