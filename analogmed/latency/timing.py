"""Wall-clock timing of torch forwards: warm-up, repeats, median, fixed thread count.

The machines this runs on are noisy (shared cores, page-fault bursts), so every figure is a
median over repeats, and callers compare quantities measured in the same run. Setting
``MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000`` in the environment before
Python starts removes most page-fault stalls (glibc then reuses freed activations).
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


@dataclass(frozen=True)
class Timing:
    """Median, quartiles and minimum of ``repeats`` timed calls, in ms."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    repeats: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` and restore the old value."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def time_call(fn: Callable[[], object], warmup: int = 2, repeats: int = 7,
              min_time_s: float = 0.0) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then at least ``repeats`` timed calls.

    If ``min_time_s`` > 0, keeps timing (up to 10x ``repeats``) until that much time was spent, so
    microsecond ops get enough samples for a stable median.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < repeats or (spent < min_time_s and len(samples) < 10 * repeats):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        samples.append(dt * 1e3)
        spent += dt
    qs = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), qs[0], qs[2], min(samples), len(samples))


def time_forward(module: torch.nn.Module, *inputs: torch.Tensor, warmup: int = 2, repeats: int = 7,
                 threads: int | None = None, min_time_s: float = 0.0) -> Timing:
    """Median forward latency of ``module(*inputs)`` in eval mode under ``torch.no_grad()``."""
    module.eval()
    with torch_threads(threads), torch.no_grad():
        return time_call(lambda: module(*inputs), warmup=warmup, repeats=repeats, min_time_s=min_time_s)
