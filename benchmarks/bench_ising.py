"""The Ising kernel: nanoseconds per attempted spin flip, against a numpy baseline.

For each temperature the full :func:`ensembles.models.ising.simulate` call is timed (argument
checks, allocation, initialisation and recording of M and E after every sweep included),
after a warm-up call that compiles or loads the numba kernel. The baseline is a vectorized
numpy checkerboard Metropolis written here, doing the same work per sweep: two half-sweep
updates with a precomputed acceptance table, M and E updated incrementally from the
accepted flips (as the kernel does), recorded every sweep. Each round is a fresh process
that times every configuration three times, interleaved, and keeps the median; the page
shows the median and range over rounds.

Run ``python benchmarks/bench_ising.py [--quick] [--busy]``.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness


def numpy_metropolis(
    T: float, L: int, n_sweeps: int, seed: int, h: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized numpy checkerboard Metropolis from all spins up; returns M and E per sweep.

    Each half-sweep copies the lattice into a periodically padded array and updates the two
    strided blocks of one colour (``(even, even)`` and ``(odd, odd)`` rows and columns, or
    the other two) in place, with neighbour sums taken from strided slices of the padding.
    The spin sum and the bond sum are updated incrementally from the accepted flips, as
    the numba kernel does (a flip of ``s`` with neighbour sum ``nn`` changes them by
    ``-2 s`` and ``-2 s nn``), not recomputed from the lattice. ``L`` must be even.

    Examples
    --------
    >>> m, e = numpy_metropolis(2.0, 8, 3, seed=0)
    >>> m.shape, e.shape
    ((3,), (3,))
    """
    rng = np.random.default_rng(seed)
    spins = np.ones((L, L), dtype=np.int8)
    padded = np.empty((L + 2, L + 2), dtype=np.int8)
    # acceptance probability indexed by (s * nn + 4) // 2 + 5 * (s + 1) // 2
    prob = np.array(
        [min(1.0, math.exp(-2.0 * (x + h * s) / T)) for s in (-1, 1) for x in range(-4, 5, 2)]
    )
    m_out = np.empty(n_sweeps)
    e_out = np.empty(n_sweeps)
    total = L * L  # all spins up: spin sum and bond sum (2 bonds per site)
    bonds = 2 * L * L
    for sweep in range(n_sweeps):
        for color in (0, 1):
            padded[1:-1, 1:-1] = spins
            padded[0, 1:-1] = spins[-1]
            padded[-1, 1:-1] = spins[0]
            padded[1:-1, 0] = spins[:, -1]
            padded[1:-1, -1] = spins[:, 0]
            for r in (0, 1):  # the two blocks of this colour: rows r::2, columns c::2
                c = (r + color) % 2
                s = spins[r::2, c::2]
                nn = (
                    padded[r : r + L : 2, c + 1 : c + 1 + L : 2]
                    + padded[r + 2 : r + 2 + L : 2, c + 1 : c + 1 + L : 2]
                    + padded[r + 1 : r + 1 + L : 2, c : c + L : 2]
                    + padded[r + 1 : r + 1 + L : 2, c + 2 : c + 2 + L : 2]
                )
                x = s * nn
                accept = rng.random(s.shape) < prob[(x + 4) // 2 + 5 * ((s + 1) // 2)]
                total -= 2 * int(s[accept].sum(dtype=np.int64))
                bonds -= 2 * int(x[accept].sum(dtype=np.int64))
                s[accept] *= -1
        m_out[sweep] = total / spins.size
        e_out[sweep] = (-bonds - h * total) / spins.size
    return m_out, e_out


def kernel(*, temperatures, L, sweeps, numpy_sweeps, sizes, flips, repeats=3):
    """ns per attempted flip of every configuration: median of ``repeats`` interleaved timings."""
    from ensembles.models.ising import simulate

    simulate(T=2.0, L=L, n_sweeps=2, burn_in=0, seed=0)  # compile, or load from the cache
    jobs: dict[str, Callable[[], object]] = {}
    work: dict[str, int] = {}  # attempted flips per job
    for T in temperatures:
        for h in (0.0, 0.1):
            key = f"ours-{T:.4f}-{h}"
            jobs[key] = functools.partial(
                simulate, T=T, L=L, n_sweeps=sweeps, burn_in=0, h=h, seed=1
            )
            work[key] = sweeps * L * L
        jobs[f"numpy-{T:.4f}"] = functools.partial(numpy_metropolis, T, L, numpy_sweeps, seed=1)
        work[f"numpy-{T:.4f}"] = numpy_sweeps * L * L
    for size in sizes:
        n = max(2, flips // (size * size))
        jobs[f"size-{size}"] = functools.partial(
            simulate, T=2.0, L=size, n_sweeps=n, burn_in=0, seed=1
        )
        work[f"size-{size}"] = n * size * size
    times: dict[str, list[float]] = {key: [] for key in jobs}
    for _ in range(repeats):
        for key, job in jobs.items():
            start = time.perf_counter()
            job()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(times[key]) / work[key] * 1e9 for key in jobs}


CANDIDATES = {"kernel": kernel}


def plan(b: _harness.Bench) -> None:
    from ensembles.models.ising import critical_temperature

    q = b.quick
    rounds = b.args.rounds or (1 if q else 5)
    temperatures = [1.5, 2.0, critical_temperature(), 3.0]
    params = {
        "temperatures": temperatures,
        "L": 32 if q else 100,
        "sweeps": 50 if q else 500,
        "numpy_sweeps": 5 if q else 50,
        "sizes": [8, 16, 32] if q else [8, 16, 32, 64, 128, 256, 512, 1024],
        "flips": 200_000 if q else 5_000_000,
    }
    b.params = params
    for rnd in range(rounds):
        rec = b.run("kernel", "kernel", params, rnd)
        for key, value in rec.items():  # one row per configuration, for the tables
            if key.startswith(("ours-", "numpy-", "size-")):
                b.runs.append({"case": key, "round": rnd, "rc": rec["rc"], "ns": value})
    _tables(b, temperatures, params)


def _tables(b: _harness.Bench, temperatures: list[float], params: dict) -> None:
    from ensembles.models.ising import critical_temperature

    rows = []
    for T in temperatures:
        tag = f"{T:.4f}"
        name = f"T = {T:.4f} (T_c)" if math.isclose(T, critical_temperature()) else f"T = {T}"
        b.labels[f"ours-{tag}-0.0"] = f"{name}: ensembles kernel"
        b.labels[f"ours-{tag}-0.1"] = f"{name}: ensembles kernel, h = 0.1"
        b.labels[f"numpy-{tag}"] = f"{name}: numpy baseline"
        rows += [f"ours-{tag}-0.0", f"ours-{tag}-0.1", f"numpy-{tag}"]
    b.tables.append(
        {
            "title": f"ns per attempted flip, L = {params['L']}, {params['sweeps']} sweeps per "
            f"kernel timing, {params['numpy_sweeps']} per numpy timing",
            "cases": rows,
            "columns": [{"metric": "ns", "label": "ns per flip", "fmt": ".2f"}],
            "ratios": [
                {
                    "metric": "ns",
                    "kind": "speedup",
                    "label": "speed-up vs numpy",
                    "baseline": {
                        r: f"numpy-{r.split('-')[1]}" for r in rows if r.startswith("ours-")
                    },
                }
            ],
        }
    )
    sizes = [f"size-{s}" for s in params["sizes"]]
    b.labels.update({f"size-{s}": f"L = {s}" for s in params["sizes"]})
    b.tables.append(
        {
            "title": f"Lattice size, T = 2.0 (about {params['flips']:,} attempted flips "
            "per timing)",
            "cases": sizes,
            "columns": [{"metric": "ns", "label": "ensembles kernel (ns per flip)", "fmt": ".2f"}],
        }
    )
    b.targets.append(
        {
            "label": f"Ising kernel, T = 2.0, L = {params['L']}",
            "case": "ours-2.0000-0.0",
            "metric": "ns",
            "kind": "value",
            "op": "<=",
            "threshold": 4.0,
            "unit": " ns",
            "fmt": ".2f",
            "reason": "contention on the shared cores",
        }
    )


if __name__ == "__main__":
    sys.exit(_harness.main("ising", __file__, __doc__, CANDIDATES, plan))
