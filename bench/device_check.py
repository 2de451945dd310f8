"""``python -m bench.device_check``: accuracy of the GAG attention on an accelerator, in
every dtype and with every gag_core backend that runs there (torch; triton on CUDA with
triton installed), against the float64 CPU result of the torch code (itself checked
against the ``entmax`` package and brute force by the unit tests).

For a lent GPU, ``python -m bench.gpu_report`` runs this and the benchmarks in one go.
Runs on the CPU too (``--device cpu``; the triton backend there only under
``TRITON_INTERPRET=1``), which is how the script itself is tested. Exits 1 when an output is
not finite or is further from the reference than its dtype allows.
"""

import argparse
import sys

import torch

from . import ops, run

SETTINGS = dict(lam=5.0, zeta=0.2, tau=15.0, alpha=1.5)
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 2e-3}
"""Largest |out − reference| allowed, relative to max |reference|: a few roundings of the
output dtype (the maps are computed in float32 whatever the input dtype)."""

CASES = [case for case in run.CASES if case["name"].startswith(("P1", "P3"))]
"""The SDXL cross-attention and joint attention shapes of ``python -m bench``."""


def case_inputs(case, dtype) -> list:
    """The bench inputs of ``case`` in ``dtype`` on the CPU, doubled (exactly) for a wider logit spread."""
    return [t * 2.0 for t in run.inputs(case, torch.device("cpu"), dtype)]


def reference_output(case, dtype) -> torch.Tensor:
    """The float64 CPU result on the same (rounded) inputs: only the arithmetic differs."""
    return run.gag_function(case, *(t.double() for t in case_inputs(case, dtype)), backend="torch", **SETTINGS)()


def run_case(case, device, dtype, backend, reference):
    """Return (max relative error, finite) of one bench case in ``dtype`` on ``device``,
    against ``reference_output(case, dtype)``."""
    with torch.inference_mode():
        out = run.gag_function(case, *(t.to(device) for t in case_inputs(case, dtype)), backend=backend, **SETTINGS)()
    out = out.cpu().double()
    error = ((out - reference).abs().max() / reference.abs().max()).item()
    return error, bool(torch.isfinite(out).all())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    failures = 0
    references = {}  # (case name, dtype) → reference_output: one float64 CPU run, whatever the backends
    for backend, reason in ops.backends_on(torch.device(args.device)).items():
        if reason is not None:
            print(f"backend {backend}: not checked here ({reason})")
            continue
        for case in CASES:
            for dtype, tolerance in TOLERANCE.items():
                key = (case["name"], dtype)
                if key not in references:
                    references[key] = reference_output(case, dtype)
                error, finite = run_case(case, args.device, dtype, backend, references[key])
                ok = finite and error <= tolerance
                failures += not ok
                print(f"{backend:<7}{case['name']:<32} {str(dtype):<15} max|diff|/max|ref| {error:.1e} "
                      f"(allowed {tolerance:.0e}){'' if finite else ', NOT FINITE'}  {'ok' if ok else 'FAIL'}",
                      flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
