"""``python -m bench.device_check``: accuracy of the GAG attention on an accelerator, in
every dtype, against the float64 CPU result of the same code (itself checked against the
``entmax`` package and brute force by the unit tests).

For a lent GPU (one short run):  ``python -m bench.device_check --device cuda && python
-m bench --device cuda --dtype bfloat16 && python -m bench --device cuda --dtype float16``.
Runs on the CPU too (``--device cpu``), which is how the script itself is tested. Exits 1
when an output is not finite or is further from the reference than its dtype allows.
"""

import argparse
import sys

import torch

import gag_core

SETTINGS = dict(lam=5.0, zeta=0.2, tau=15.0, alpha=1.5)
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 2e-3}
"""Largest |out − reference| allowed, relative to max |reference|: a few roundings of the
output dtype (the maps are computed in float32 whatever the input dtype)."""

CASES = {
    "SDXL cross-attention (2, 10, 4096, 77, 64)": ("cross", (2, 10, 4096, 77, 64)),
    "joint attention (1, 24, 1024 image + 256 text, 128)": ("joint", (1, 24, 1024, 256, 128)),
}


def run_case(kind, shape, device, dtype):
    """Return (max relative error, finite) of one case in ``dtype`` on ``device``."""
    b, h, n_q, n_k, d = shape
    g = torch.Generator().manual_seed(0)
    if kind == "joint":
        n_q = n_k = n_q + n_k
    q, k, v = (torch.randn(b, h, n, d, generator=g) * 2.0 for n in (n_q, n_k, n_k))
    if kind == "joint":
        call = lambda *t: gag_core.gag_joint_attention(*t, text_len=shape[3], **SETTINGS)  # noqa: E731
    else:
        call = lambda *t: gag_core.gag_attention(*t, **SETTINGS)  # noqa: E731
    rounded = [t.to(dtype) for t in (q, k, v)]
    reference = call(*(t.double() for t in rounded))  # the same inputs: only the arithmetic differs
    with torch.inference_mode():
        out = call(*(t.to(device) for t in rounded)).cpu().double()
    error = ((out - reference).abs().max() / reference.abs().max()).item()
    return error, bool(torch.isfinite(out).all())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    failures = 0
    for name, (kind, shape) in CASES.items():
        for dtype, tolerance in TOLERANCE.items():
            error, finite = run_case(kind, shape, args.device, dtype)
            ok = finite and error <= tolerance
            failures += not ok
            print(f"{name:<52} {str(dtype):<15} max|diff|/max|ref| {error:.1e} (allowed {tolerance:.0e})"
                  f"{'' if finite else ', NOT FINITE'}  {'ok' if ok else 'FAIL'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
