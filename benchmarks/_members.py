"""Member functions the benchmarks run (importable by worker processes)."""

from __future__ import annotations

import numpy as np

from ensembles.simulation import Output, simulation


def tiny(*, seed, x):
    """A few microseconds of work: measures pure per-member overhead."""
    return {"y": x * 2.0 + (seed % 7)}


def cpu_bound(*, seed, x, n=220_000):
    """About 50 ms of GIL-holding pure Python."""
    acc = 0
    for i in range(n):
        acc += (i * seed + int(x)) % 7
    return {"y": float(acc)}


def _trace_outputs(*, steps=1000, dtype="float64", **_):
    return {"y": Output(dims=("step",), shape=(steps,), dtype=dtype)}


@simulation(outputs=_trace_outputs)
def trace(*, seed, x, steps=1000, dtype="float64"):
    """A cheap time series of ``steps`` values: measures storage, not compute."""
    out = np.empty(steps, dtype=dtype)
    out[:] = x + (seed % 1000) * 1e-3
    out[::7] += 1.0
    return {"y": out}
