"""Timing and peak-memory helpers: interleaved repeats, medians, spread."""

import statistics
import time

import torch


def time_pair(ours, baseline, *, repeats: int, warmup: int = 2) -> dict:
    """Median seconds of ``ours()`` and ``baseline()``, run alternately so that machine
    load affects both; ``spread`` is the (min, max) of the per-repeat ratios."""
    for _ in range(warmup):
        ours()
        baseline()
    ours_times, base_times = [], []
    for _ in range(repeats):
        for fn, times in ((ours, ours_times), (baseline, base_times)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    ratios = [o / b for o, b in zip(ours_times, base_times)]
    return dict(ours=statistics.median(ours_times), baseline=statistics.median(base_times),
                ratio=statistics.median(ours_times) / statistics.median(base_times),
                spread=(min(ratios), max(ratios)))


def peak_memory_bytes(fn) -> int | None:
    """Peak memory ``fn()`` adds above what was live before it: the caching allocator's
    peak on CUDA; on Linux CPUs the process's resident high-water mark (VmHWM), reset
    through /proc/self/clear_refs before the call. None where neither is available."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - before) * 1024
    except OSError:
        return None


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")
