"""Peak memory of one bench case, measured in a fresh process (``python -m bench.memory NAME``).

glibc is told to serve every allocation above 64 KiB with its own mmap, so freed tensors
leave the resident set at once and the kernel's high-water mark (VmHWM, reset through
/proc/self/clear_refs after the inputs exist) is the true peak of live memory. Linux only;
prints "n/a" elsewhere. Usage: ``python -m bench.memory NAME [THREADS [DTYPE]]``, with the
thread count and dtype of the timing run. Prints: "<ours MiB> <baseline MiB>".
"""

import sys

import torch

from .run import CASES, functions, inputs


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} missing from /proc/self/status")


def peak_mib(fn) -> float:
    fn()  # warm-up: one-time allocations (thread pools, kernels) are not the function's memory
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) / 1024


def main(name: str, threads: int = 2, dtype: str = "float32") -> None:
    torch.set_num_threads(threads)
    case = next(c for c in CASES if c["name"] == name)
    q, k, v = inputs(case, torch.device("cpu"), getattr(torch, dtype))
    ours, baseline, _ = functions(case, q, k, v)
    with torch.inference_mode():
        try:
            print(f"{peak_mib(ours):.1f} {peak_mib(baseline):.1f}")
        except OSError:
            print("n/a n/a")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) if i == 0 else a for i, a in enumerate(sys.argv[2:])))
