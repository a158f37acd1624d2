"""Member functions and models the benchmarks run (importable by every worker process).

Each is the same work on every side of a comparison: the peers and ensembles call the
very same function with the same parameters.
"""

from __future__ import annotations

import os
import time

import numpy as np

import ensembles as ens

#: iterations of :func:`cpu_bound` that take about 20 ms on the project's machine
CPU_N = 260_000


def tiny(*, seed, x):
    """A few microseconds of work: measures pure per-member overhead."""
    return {"y": x * 2.0 + (seed % 7)}


def tiny_plain(x, seed):
    """:func:`tiny` with positional arguments (for joblib, pipefunc and a plain loop)."""
    return x * 2.0 + (seed % 7)


def cpu_bound(*, seed, x, n=CPU_N):
    """About 20 ms of GIL-holding pure Python, the same work whatever the seed.

    The seed is reduced first: ensembles' 63-bit seeds would otherwise turn the arithmetic
    into slower big-integer operations than a loop's small seeds.
    """
    s = seed % 1009
    xi = int(x)
    acc = 0
    for i in range(n):
        acc += (i * s + xi) % 7
    return {"y": float(acc)}


def cpu_plain(x, seed, n=CPU_N):
    """:func:`cpu_bound` with positional arguments; returns the float."""
    return cpu_bound(seed=seed, x=x, n=n)["y"]


def cpu_loop(n, members=None):
    """Seconds for ``members`` cpu_bound members in a plain loop."""
    start = time.perf_counter()
    for i in range(members):
        cpu_bound(seed=i + 1, x=float(i), n=n)
    return time.perf_counter() - start


def cpu_logged(*, seed, x, n=CPU_N):
    """:func:`cpu_bound`, then one line appended to the file ``$BENCH_MEMBER_LOG``.

    The log counts members done, across processes (appends of one line are atomic), so a
    benchmark can kill a run midway and count what its resume recomputes.
    """
    out = cpu_bound(seed=seed, x=x, n=n)
    with open(os.environ["BENCH_MEMBER_LOG"], "a") as f:
        f.write("1\n")
    return out


def cpu_logged_plain(x, seed, n=CPU_N):
    """:func:`cpu_logged` with positional arguments; returns the float."""
    return cpu_logged(seed=seed, x=x, n=n)["y"]


def stamp(*, seed, x=0.0, delay=0.02):
    """When and where a member started: wall-clock time and process id (cold-start probe).

    The member then sleeps ``delay`` seconds, so a run planner sees a member that costs
    something and sends the members to its workers.
    """
    out = {"t": time.time(), "pid": float(os.getpid())}
    time.sleep(delay)
    return out


def stamp_plain(i, delay=0.02):
    out = time.time(), os.getpid()
    time.sleep(delay)
    return out


def lhs_model(x1=0.0, x2=0.0, x3=0.0, n=CPU_N):
    """The Latin-hypercube workload: about 20 ms of work, then a smooth function of x."""
    cpu_bound(seed=1, x=0.0, n=n)
    return {"y": x1 + 2.0 * x2 - x3 * x3}


def _trace_outputs(*, steps=1000, dtype="float64", **_):
    return {"y": ens.Output(dims=("step",), shape=(steps,), dtype=dtype)}


_NOISE = np.random.default_rng(0).standard_normal(1 << 16)


def trace_values(seed, x, steps=1000, dtype="float64"):
    """The values of :func:`trace` (also what the plain-loop baselines save)."""
    start = seed % (_NOISE.size - steps)
    return (_NOISE[start : start + steps] + x).astype(dtype)


@ens.simulation(outputs=_trace_outputs)
def trace(*, seed, x, steps=1000, dtype="float64"):
    """A time series of ``steps`` noisy values, nearly free to make: measures storage.

    The values come from a fixed table of normal noise, shifted per member, so they
    compress like real simulation output (barely), not like constants.
    """
    return {"y": trace_values(seed, x, steps, dtype)}


def ising_loop(n, fixed):
    """Seconds for ``n`` Ising members in a plain loop (one process, no framework)."""
    from ensembles.models import ising

    start = time.perf_counter()
    for i in range(n):
        ising.simulate(T=3.0, seed=i + 1, **fixed)
    return time.perf_counter() - start


def lhs_member(*, seed, x1, x2, x3):
    """:func:`lhs_model` as an ensembles member (the seed is not used)."""
    return lhs_model(x1=x1, x2=x2, x3=x3)


def _ising_outputs(*, n_sweeps=1000, burn_in=200, thin=10, **_):
    recorded = len(range(burn_in + thin, n_sweeps + 1, thin))
    return {"absM": ens.Output(dims=("sweep",), shape=(recorded,), dtype="float64")}


def _ising_coords(*, n_sweeps=1000, burn_in=200, thin=10, **_):
    return {"sweep": np.arange(burn_in + thin, n_sweeps + 1, thin)}


@ens.simulation(outputs=_ising_outputs, coords=_ising_coords, releases_gil=True)
def ising_abs_m(*, seed, T, L=32, n_sweeps=1000, burn_in=200, thin=10):
    """|M| per recorded sweep of the Ising model (for a target on its time average)."""
    from ensembles.models.ising import simulate

    out = simulate(T=T, L=L, n_sweeps=n_sweeps, burn_in=burn_in, thin=thin, seed=seed)
    return {"absM": np.abs(out["M"])}


@ens.simulation(outputs={"y": ens.Output(dims=(), shape=(), dtype="float64")})
def normal(*, seed, mu, sigma):
    """One draw of Normal(mu, sigma): a model with known mean and quantiles."""
    return {"y": float(np.random.default_rng(seed).normal(mu, sigma))}
