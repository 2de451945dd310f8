"""Timing helpers (interleaved repeats, medians, spread) and the CUDA peak-memory probe."""

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


def cuda_peak_mib(fn) -> str:
    """Peak CUDA memory ``fn()`` allocates above what was live before it, in MiB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return f"{(torch.cuda.max_memory_allocated() - before) / 2**20:.1f}"
