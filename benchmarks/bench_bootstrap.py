"""Benchmark bootstrap_ci over a time series whose member count varies along the series.

Run from the repository root::

    python benchmarks/bench_bootstrap.py                 # 200 members x 2,000 steps, 5 rounds
    python benchmarks/bench_bootstrap.py --quick         # tiny sizes, one round (smoke test)
    python benchmarks/bench_bootstrap.py --json out.json # also keep the raw per-round times

Two ensembles of the same shape, ``M(sample, seed, sweep)`` as dask arrays chunked like a
store (one chunk per sample, 500 steps per chunk), with the same random values:

* **constant**: every member ok and every value present, so every position of the series
  has the same member count;
* **varying**: 2 % of the members failed (``status`` 2) and half of the others stop early
  (a NaN tail from a random step on), so the member count changes along the series.

Each round times ``ds["M"].ens.bootstrap_ci(stat, over=("sample", "seed"), n=...)
.compute()`` on both (dask's default threaded scheduler), one after the other, and
reports the ratio varying / constant of that round. The summary gives the median and range
over rounds. Only public API is used.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

OVER = ("sample", "seed")


def ensemble(samples: int, seeds: int, steps: int, varying: bool, rng_seed: int = 0):
    """The benchmark's Dataset: ``M(sample, seed, sweep)`` with ``status``, dask-backed."""
    import xarray as xr

    rng = np.random.default_rng(rng_seed)
    values = rng.normal(size=(samples, seeds, steps))
    status = np.ones((samples, seeds), dtype=np.int8)
    if varying:
        status[rng.random((samples, seeds)) < 0.02] = 2
        ends = rng.integers(steps // 4, steps, (samples, seeds))
        stops = (rng.random((samples, seeds)) < 0.5)[..., None]
        values[stops & (np.arange(steps) >= ends[..., None])] = np.nan
        values[status != 1] = np.nan
    ds = xr.Dataset(
        {"M": (("sample", "seed", "sweep"), values)},
        coords={
            "sample": np.arange(samples),
            "seed": np.arange(seeds),
            "sweep": np.arange(steps),
            "status": (("sample", "seed"), status),
        },
    )
    return ds.chunk({"sample": 1, "seed": -1, "sweep": 500})


def counts(ds) -> dict[str, int]:
    """Fewest and distinct member counts along the series."""
    n = ds["M"].ens.count(over=OVER).values
    return {"fewest": int(n.min()), "distinct": int(np.unique(n).size)}


def time_once(ds, stat: str, n_boot: int) -> float:
    ci = ds["M"].ens.bootstrap_ci(stat, over=OVER, n=n_boot, rng_seed=0)
    start = time.perf_counter()
    ci.compute()
    return time.perf_counter() - start


def run(samples: int, seeds: int, steps: int, stats: list[str], n_boot: int, rounds: int):
    import ensembles  # noqa: F401  (registers .ens)

    data = {
        kind: ensemble(samples, seeds, steps, kind == "varying")
        for kind in ("constant", "varying")
    }
    for ds in data.values():  # warm up: imports, first-call costs
        time_once(ds.isel(sweep=slice(0, 10)), stats[0], 10)
    results = {}
    for stat in stats:
        per_round = []
        for _ in range(rounds):
            times = {kind: time_once(ds, stat, n_boot) for kind, ds in data.items()}
            per_round.append({**times, "ratio": times["varying"] / times["constant"]})
        results[stat] = per_round
    return {
        "sizes": {"samples": samples, "seeds": seeds, "steps": steps, "n": n_boot},
        "counts": {kind: counts(ds) for kind, ds in data.items()},
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "results": results,
    }


def summary(report: dict) -> str:
    sizes = report["sizes"]
    members = sizes["samples"] * sizes["seeds"]
    lines = [
        f"bootstrap_ci over {members} members x {sizes['steps']} steps, n={sizes['n']}",
        "member counts: "
        + "; ".join(
            f"{kind} {c['distinct']} distinct (fewest {c['fewest']})"
            for kind, c in report["counts"].items()
        ),
        "",
        "Median over rounds, range in parentheses.",
        "",
        "| stat | constant, s | varying, s | ratio varying / constant |",
        "|---|---|---|---|",
    ]

    def cell(values: list[float], digits: int) -> str:
        low, mid, high = (
            f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values))
        )
        return f"{mid} ({low}-{high})"

    for stat, rounds in report["results"].items():
        cols = [cell([r[k] for r in rounds], 3) for k in ("constant", "varying")]
        lines.append(
            f"| {stat} | {cols[0]} | {cols[1]} | {cell([r['ratio'] for r in rounds], 2)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--n", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--stat", nargs="+", default=["mean"], help="statistics to time: mean, median, std, 0.9"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the raw results")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.seeds, args.steps, args.n, args.rounds = 5, 4, 60, 50, 1
    args.stat = [float(s) if s.replace(".", "", 1).isdigit() else s for s in args.stat]
    report = run(args.samples, args.seeds, args.steps, args.stat, args.n, args.rounds)
    print(summary(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
