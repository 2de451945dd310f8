"""``python -m bench``: GAG attention vs plain SDPA (and vs a naive GAG) in one process.

Prints one line per case: our median time, the baseline's, their ratio with the spread
of per-block ratios (see bench/measure.py), and the peak memory each call adds (CPU: measured in a fresh
process, see bench/memory.py; CUDA: the allocator's peak). CPU runs use 2 threads unless
``--threads`` says otherwise; ``--device cuda --dtype bfloat16`` runs the same cases on a GPU,
``--backend`` picks gag_core's backend (auto: Triton on CUDA when available).

Then, per guided layer of each case and per backend, the op audit (bench/ops.py): aten
kernels launched, host syncs, and the MiB those kernels read and write. On a GPU each
backend that runs there is traced; on the CPU the CPU path this run timed, and the CUDA code
path of both backends traced with shape-only tensors (what a GPU would be sent).
"""

import argparse
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

import gag_core

from . import ops
from .measure import cuda_peak_mib, time_pair
from .naive import naive_gag_attention

DEFAULTS = dict(lam=5.0, zeta=0.0, tau=15.0)


def cross_case(name, b, h, nq, nk, d):
    return dict(name=name, kind="cross", shape=(b, h, nq, nk, d))


def joint_case(name, b, h, n_img, n_txt, d):
    return dict(name=name, kind="joint", shape=(b, h, n_img, n_txt, d))


CASES = [
    cross_case("P1 SDXL cross-attn vs SDPA", 2, 10, 4096, 77, 64),
    dict(cross_case("P2 SDXL cross-attn vs naive", 2, 10, 4096, 77, 64), baseline="naive"),
    joint_case("P3 joint H24 1024+256 vs SDPA", 1, 24, 1024, 256, 128),
    cross_case("SD1.5 64x64 d40", 2, 8, 4096, 77, 40),
    cross_case("SD1.5 32x32 d80", 2, 8, 1024, 77, 80),
    cross_case("SD1.5 16x16 d160", 2, 8, 256, 77, 160),
    dict(joint_case("FLUX 1024px 4096+512", 1, 24, 4096, 512, 128), repeats=3),
]


def inputs(case, device, dtype):
    g = torch.Generator().manual_seed(0)
    b, h, n_q, n_k, d = case["shape"]
    if case["kind"] == "joint":
        n_q = n_k = n_q + n_k
    make = lambda n: torch.randn(b, h, n, d, generator=g).to(device, dtype)  # noqa: E731
    return make(n_q), make(n_k), make(n_k)


def gag_function(case, q, k, v, **settings):
    """The GAG attention of one case on q, k, v, as a function of no arguments."""
    if case["kind"] == "joint":
        return lambda: gag_core.gag_joint_attention(q, k, v, text_len=case["shape"][3], **settings)
    return lambda: gag_core.gag_attention(q, k, v, **settings)


def functions(case, q, k, v, backend="auto"):
    ours = gag_function(case, q, k, v, alpha=1.5, backend=backend, **DEFAULTS)
    if case["kind"] == "joint":
        return ours, lambda: F.scaled_dot_product_attention(q, k, v), None
    if case.get("baseline") == "naive":
        naive = lambda: naive_gag_attention(q, k, v, **DEFAULTS)  # noqa: E731
        expected = naive()
        # relative to the output's scale: λ = 5 amplifies float32 rounding of both paths alike
        return ours, naive, ((ours() - expected).abs().max() / expected.abs().max()).item()
    return ours, lambda: F.scaled_dot_product_attention(q, k, v), None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    parser.add_argument("--compile", action="store_true",
                        help="opt-in torch.compile path of the entmax solver (gag_core.set_compile)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "triton"])
    parser.add_argument("--no-ops", action="store_true", help="skip the op audit per guided layer")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gag_core.set_compile(args.compile)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"torch {torch.__version__}, {args.device}, {args.dtype}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}, entmax solver {'compiled' if args.compile else 'eager'}, "
          f"backend {args.backend}")
    cases = [case for case in CASES if args.only in case["name"]]
    for case in cases:
        q, k, v = inputs(case, device, dtype)
        ours, baseline, max_diff = functions(case, q, k, v, args.backend)
        with torch.inference_mode():
            timing = time_pair(lambda: (ours(), sync()), lambda: (baseline(), sync()),
                               repeats=case.get("repeats", args.repeats))
            peak_ours, peak_base = (cuda_peak_mib(ours), cuda_peak_mib(baseline)) if device.type == "cuda" \
                else _cpu_peaks(case["name"], args)
        line = (f"{case['name']:<34} ours {timing['ours'] * 1e3:8.2f} ms  base {timing['baseline'] * 1e3:8.2f} ms  "
                f"ratio {timing['ratio']:5.2f}x (spread {timing['spread'][0]:.2f}-{timing['spread'][1]:.2f})  "
                f"peak {peak_ours} / {peak_base} MiB")
        if max_diff is not None:
            line += f"  speedup {timing['baseline'] / timing['ours']:.1f}x, max|diff|/max|out| {max_diff:.1e}"
        print(line, flush=True)
    if not args.no_ops:
        print_op_audit(cases, device, dtype)


def print_op_audit(cases, device: torch.device, dtype: torch.dtype) -> None:
    """The op audit of each distinct guided layer of ``cases`` (see the module doc)."""
    print("ops per guided layer: aten kernels, host syncs, MiB read + written by the kernels")
    if device.type == "cuda":
        audits = [(backend, "cuda", f"{backend}") for backend, reason in ops.backends_on(device, dtype).items()
                  if reason is None]
    else:
        audits = [("torch", "cpu", "torch, CPU path (timed above)"),
                  ("torch", "cuda (meta)", "torch, device path as sent to a CUDA GPU"),
                  ("triton", "cuda (meta)", "triton, wrapper and launches as sent to a CUDA GPU")]
    seen = set()
    for case in cases:
        kind = "cross" if case["kind"] == "cross" else "joint"
        if (kind, case["shape"]) in seen:
            continue
        seen.add((kind, case["shape"]))
        for backend, where, label in audits:
            try:
                summary = ops.trace_layer(kind, case["shape"], where=where, dtype=dtype, backend=backend).summary()
            except (ImportError, ValueError) as error:  # e.g. triton missing
                summary = f"not traced ({error})"
            print(f"  {case['name']:<34} {label:<52} {summary}", flush=True)


def _cpu_peaks(name, args):
    """Peak MiB of (ours, baseline) from a fresh process (bench/memory.py), with this run's
    thread count, dtype and solver."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", GAG_COMPILE="1" if args.compile else "0")
    result = subprocess.run([sys.executable, "-m", "bench.memory", name, str(args.threads), args.dtype],
                            capture_output=True, text=True, env=env,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    fields = result.stdout.split()
    return tuple(fields) if result.returncode == 0 and len(fields) == 2 else ("n/a", "n/a")
