"""Timing helpers (alternating blocks of repeats, medians, spread) and the CUDA peak-memory probe."""

import statistics
import time

import torch

BLOCK = 3
"""Timed calls of one function in a row. Single alternating calls let one function's memory
churn (the naive baseline frees hundreds of MiB per call) slow down the next call of the
other; short blocks keep each in its steady state while machine load still hits both alike."""
SETTLE = 2
"""Untimed calls at the start of each block. After a naive GAG call, the next two GAG calls
were measured 14 % and 52 % slower than the later ones (the allocator and caches settling);
one untimed call was not enough."""


def time_pair(ours, baseline, *, repeats: int, warmup: int = 2) -> dict:
    """Median seconds of ``ours()`` and ``baseline()`` over ``repeats`` calls each, measured
    in alternating blocks (each preceded by SETTLE untimed calls); ``spread`` is the (min,
    max) of the ratios of the two functions' block medians."""
    for _ in range(warmup):
        ours()
        baseline()
    ours_times, base_times, ratios = [], [], []
    for start in range(0, repeats, BLOCK):
        size = min(BLOCK, repeats - start)
        block_medians = []
        for fn, times in ((ours, ours_times), (baseline, base_times)):
            for _ in range(SETTLE):
                fn()
            block = []
            for _ in range(size):
                begin = time.perf_counter()
                fn()
                block.append(time.perf_counter() - begin)
            times.extend(block)
            block_medians.append(statistics.median(block))
        ratios.append(block_medians[0] / block_medians[1])
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
