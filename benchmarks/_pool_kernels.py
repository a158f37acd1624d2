"""Work that benchmarks/bench_pool.py runs on every pool (standard library only, so no pool
pays for imports the others skip)."""

from __future__ import annotations

import os
import time


def stamp() -> tuple[int, float]:
    """Where and when a task ran: (pid, CLOCK_MONOTONIC, which every process shares)."""
    return os.getpid(), time.monotonic()


def spin(seed: int, n: int) -> int:
    """CPU-bound pure Python whose cost depends on ``n`` only (not on the seed's size)."""
    s = seed % 1009
    acc = 0
    for i in range(n):
        acc += (i * s) % 7
    return acc


def tiny(x: int) -> int:
    """A task of a few hundred nanoseconds: what is measured is the overhead around it."""
    return x * 2 + 1


def tiny_chunk(start: int, count: int) -> int:
    """``count`` tiny tasks in one call: how a block of members reaches a worker."""
    return sum(tiny(x) for x in range(start, start + count))


def report_cost(n: int) -> float:
    """Nanoseconds per ``report_member`` call, net of the loop, where this runs."""
    from ensembles.execution.pool_worker import report_member

    start = time.perf_counter()
    for i in range(n):
        report_member(i)
    middle = time.perf_counter()
    for _ in range(n):
        pass
    end = time.perf_counter()
    return ((middle - start) - (end - middle)) / n * 1e9
