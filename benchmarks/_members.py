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


_NOISE = np.random.default_rng(0).standard_normal(1 << 16)


@simulation(outputs=_trace_outputs)
def trace(*, seed, x, steps=1000, dtype="float64"):
    """A time series of ``steps`` noisy values, nearly free to make: measures storage.

    The values come from a fixed table of normal noise, shifted per member, so they
    compress like real simulation output (barely), not like constants.
    """
    start = seed % (_NOISE.size - steps)
    out = (_NOISE[start : start + steps] + x).astype(dtype)
    return {"y": out}
