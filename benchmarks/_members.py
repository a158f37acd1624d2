"""Member functions the benchmarks run (importable by worker processes)."""

from __future__ import annotations

import numpy as np

from ensembles.simulations.contract import Output, simulation


def tiny(*, seed, x):
    """A few microseconds of work: measures pure per-member overhead."""
    return {"y": x * 2.0 + (seed % 7)}


def cpu_bound(*, seed, x, n=220_000):
    """About 30-50 ms of GIL-holding pure Python, the same work whatever the seed.

    (The seed is reduced first: ensembles' 63-bit seeds would otherwise turn the
    arithmetic into slower big-integer operations than a loop's small seeds.)
    """
    s = seed % 1009
    acc = 0
    for i in range(n):
        acc += (i * s + int(x)) % 7
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


def ising_loop(n, fixed):
    """Seconds for ``n`` Ising members in a plain loop (one process, no framework)."""
    import time

    from ensembles.models import ising

    start = time.perf_counter()
    for i in range(n):
        ising.simulate(T=3.0, seed=i + 1, **fixed)
    return time.perf_counter() - start


def cpu_loop(n):
    """Seconds for ``n`` cpu_bound members in a plain loop (run in a clean process)."""
    import time

    start = time.perf_counter()
    for i in range(n):
        cpu_bound(seed=i + 1, x=float(i))
    return time.perf_counter() - start


def ising_one(fixed, repeats=3):
    """Best seconds of one Ising member, after a warm-up call (run in a clean process)."""
    import time

    from ensembles.models import ising

    ising.simulate(T=3.0, seed=1, **fixed)
    best = float("inf")
    for i in range(repeats):
        start = time.perf_counter()
        ising.simulate(T=3.0, seed=i + 2, **fixed)
        best = min(best, time.perf_counter() - start)
    return best


def _ising_outputs(*, n_sweeps=1000, burn_in=200, thin=10, **_):
    recorded = len(range(burn_in + thin, n_sweeps + 1, thin))
    return {"absM": Output(dims=("sweep",), shape=(recorded,), dtype="float64")}


def _ising_coords(*, n_sweeps=1000, burn_in=200, thin=10, **_):
    return {"sweep": np.arange(burn_in + thin, n_sweeps + 1, thin)}


@simulation(outputs=_ising_outputs, coords=_ising_coords, releases_gil=True)
def ising_abs_m(*, seed, T, L=32, n_sweeps=1000, burn_in=200, thin=10):
    """|M| per recorded sweep of the Ising model (for a target on its time average)."""
    from ensembles.models.ising import simulate

    out = simulate(T=T, L=L, n_sweeps=n_sweeps, burn_in=burn_in, thin=thin, seed=seed)
    return {"absM": np.abs(out["M"])}


@simulation(outputs={"y": Output(dims=(), shape=(), dtype="float64")})
def normal(*, seed, mu, sigma):
    """One draw of Normal(mu, sigma): a model with known mean and quantiles."""
    return {"y": float(np.random.default_rng(seed).normal(mu, sigma))}
