"""Adaptive ensembles through the engine: members saved, time between rounds, coverage.

Run from the repository root::

    python benchmarks/bench_adaptive.py           # the full benchmark (about 20-40 min)
    python benchmarks/bench_adaptive.py --quick   # a smoke run (a few minutes)
    python benchmarks/bench_adaptive.py --size 64 --sweeps 2000 --reps 0   # other members

Part 1, Ising. ``Ensemble(ising |M|, Grid(T=1.5, 1.6, ..., 3.5), seeds=Adaptive(initial=16,
max=1024)).to_zarr(..., until=Precision("absM", "mean", halfwidth=0.01, reduce="mean"))``:
the mean over members of each member's time-averaged |M| (the mean of |M| over its
recorded sweeps) known to +-0.01 at 95 % at every temperature; L = 32 (``--size``),
1,000 Metropolis sweeps (``--sweeps``; a tenth of them burn-in), |M| recorded every 10
sweeps; the local pool on every core. Compared with the uniform run: the smallest N
whose t-intervals are all within +-0.01 on the same members (the same root seed gives
the same members), found from a uniform engine run of a little more than the adaptive
run's spread predicts, then run at exactly N and timed. ``--quick`` runs every other
temperature and estimates N from the adaptive run's spread instead.

Time between rounds: what the adaptive run spends outside its members, from the
store's record (``seconds`` of every round): reading the judged values and deciding,
then growing the store and recording the round (round 1's layout and probe are left
out: a uniform run pays them too), and marking the skipped members at the end.

Part 2, coverage through the engine. ``_members.normal``: 10 points whose outputs are
Normal(mu, sigma) with sigma from 1 to 10 (variance 100x) and mu from -3 to 3; targets:
the mean +-1, the 2.5 % and 97.5 % quantiles +-4 (together: a point stops when all
three hold), 95 %, ``Adaptive(initial=16, max=2048)``. Each repetition is a whole
``to_zarr`` run with its own root seed; coverage is the share of final intervals
(recomputed from the store's members) that contain the true value.

Prints markdown tables (``docs/benchmarks_adaptive.md``); raw results go to
``benchmarks/results/adaptive_engine.json`` (``adaptive_engine_quick.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import _members  # noqa: E402

import ensembles as ens  # noqa: E402
from ensembles.adaptive import decide  # noqa: E402
from ensembles.adaptive.record import read_record  # noqa: E402
from ensembles.analysis.intervals import mean_interval  # noqa: E402
from ensembles.layout import OK  # noqa: E402
from ensembles.store.zarr_store import EnsembleStore  # noqa: E402

RESULTS = HERE / "results" / "adaptive_engine.json"
TARGET = ens.Precision("absM", stat="mean", halfwidth=0.01, reduce="mean")
RULE = ens.Adaptive(initial=16, max=1024)
ROOT_SEED = 20261124


# --------------------------------------------------------------------------------------
# part 1: Ising
# --------------------------------------------------------------------------------------


def ising(temps: list[float], size: tuple[int, int], seeds: object, root: int) -> ens.Ensemble:
    L, sweeps = size
    fixed = {"L": L, "n_sweeps": sweeps, "burn_in": sweeps // 10, "thin": 10}
    return ens.Ensemble(
        _members.ising_abs_m, ens.Grid(T=temps), seeds=seeds, root_seed=root, fixed=fixed
    )


def averaged(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each member's time-averaged |M| (NaN unless ok), its wall time, the status."""
    ds = ens.open_ensemble(path)
    status = ds["status"].values
    values = np.where(status == OK, ds["absM"].values.mean(axis=-1), np.nan)
    return values, np.where(status == OK, ds["wall_time"].values, np.nan), status


def between_rounds(record: dict) -> dict:
    """Seconds outside the members: deciding, growing and recording, the final marking."""
    rounds = record["rounds"]
    decide_s = sum(r["seconds"]["decide"] for r in rounds) + record["final"]["seconds"]["decide"]
    grow_s = sum(r["seconds"]["prepare"] for r in rounds[1:])
    finish_s = record["final"]["seconds"]["finish"]
    return {
        "decide": decide_s,
        "grow_and_record": grow_s,
        "mark_skipped": finish_s,
        "total": decide_s + grow_s + finish_s,
        "layout_round_1": rounds[0]["seconds"]["prepare"],
        "run_seconds": [r["seconds"]["run"] for r in rounds],
    }


def ising_adaptive(temps: list[float], size: tuple[int, int], root: int, where: Path) -> dict:
    path = where / "adaptive.zarr"
    e = ising(temps, size, RULE, root)
    tic = time.perf_counter()
    e.to_zarr(path, until=TARGET, progress=False)
    wall = time.perf_counter() - tic
    record = read_record(EnsembleStore(str(path)))
    values, seconds, _ = averaged(path)
    n = np.asarray(record["final"]["n"])
    ci = mean_interval(values, axis=1)
    overhead = between_rounds(record)
    return {
        "n": n.tolist(),
        "estimate": ci.estimate.tolist(),
        "achieved": record["final"]["targets"][0]["achieved"],
        "rounds": len(record["rounds"]),
        "members": int(n.sum()),
        "wall_seconds": wall,
        "member_seconds": float(np.nansum(seconds)),
        "between_rounds": overhead,
        "overhead_share": overhead["total"] / wall,
        "spread": [float(np.nanstd(values[p, : n[p]], ddof=1)) for p in range(n.size)],
        "block": EnsembleStore(str(path)).spec()["block"],
    }


def planned_uniform(adaptive: dict, h: float) -> int:
    n, sd = np.asarray(adaptive["n"]), np.asarray(adaptive["spread"])
    return int(np.ceil(np.max((stats.t.ppf(0.975, n - 1) * sd / h) ** 2)))


def smallest_uniform(values: np.ndarray, h: float) -> int | None:
    """The smallest N whose t-intervals (first N members) are all within +-h."""
    for k in range(2, values.shape[1] + 1):
        if (mean_interval(values[:, :k], axis=1).half_width <= h).all():
            return k
    return None


def ising_uniform(temps, size, root, adaptive: dict, where: Path, measure: bool) -> dict:
    """The smallest uniform N meeting +-0.01 everywhere on the same members, and its cost."""
    planned = planned_uniform(adaptive, TARGET.halfwidth)
    if not measure:
        per_member = adaptive["member_seconds"] / adaptive["members"]
        return {
            "N": planned,
            "how": "estimated from the adaptive run's spread",
            "member_seconds": planned * len(temps) * per_member,
        }
    top = min(RULE.max, int(np.ceil(1.3 * planned)) + 16)
    ising(temps, size, top, root).to_zarr(where / "search.zarr", progress=False)
    values, _, _ = averaged(where / "search.zarr")
    n = smallest_uniform(values, TARGET.halfwidth)
    if n is None:
        return {"N": top, "how": f"not reached within {top} members"}
    tic = time.perf_counter()
    ising(temps, size, n, root).to_zarr(where / "uniform.zarr", progress=False)
    wall = time.perf_counter() - tic
    _, seconds, _ = averaged(where / "uniform.zarr")
    return {
        "N": n,
        "how": "measured",
        "wall_seconds": wall,
        "member_seconds": float(np.nansum(seconds)),
        "worst_halfwidth": float(mean_interval(values[:, :n], axis=1).half_width.max()),
    }


def ising_case(quick: bool, size: tuple[int, int], root: int) -> dict:
    step = 0.2 if quick else 0.1
    temps = np.round(np.arange(1.5, 3.5001, step), 10).tolist()
    from ensembles.models.ising import simulate

    simulate(T=2.0, L=32, n_sweeps=20, burn_in=0, thin=10, seed=1)  # compile outside timings
    with tempfile.TemporaryDirectory() as tmp:
        adaptive = ising_adaptive(temps, size, root, Path(tmp))
        uniform = ising_uniform(temps, size, root, adaptive, Path(tmp), measure=not quick)
    result = {
        "temperatures": temps,
        "L": size[0],
        "sweeps": size[1],
        "adaptive": adaptive,
        "uniform": uniform,
        "members_saved": 1 - adaptive["members"] / (uniform["N"] * len(temps)),
        "compute_saved": 1 - adaptive["member_seconds"] / uniform["member_seconds"],
    }
    if "wall_seconds" in uniform:
        result["wall_saved"] = 1 - adaptive["wall_seconds"] / uniform["wall_seconds"]
    return result


def ising_tables(result: dict) -> str:
    a, u = result["adaptive"], result["uniform"]
    lines = [
        "| T | members | mean of time-averaged abs(M) | half-width (95 %) |",
        "|---:|---:|---:|---:|",
    ]
    for t, n, est, h in zip(
        result["temperatures"], a["n"], a["estimate"], a["achieved"], strict=True
    ):
        lines.append(f"| {t:.1f} | {n} | {est:.4f} | {h:.4f} |")
    uniform_wall = f"{u['wall_seconds']:.1f}" if "wall_seconds" in u else "not run"
    b = a["between_rounds"]
    lines += [
        "",
        "| run | members | member compute (s) | wall time (s) |",
        "|---|---:|---:|---:|",
        f"| adaptive ({a['rounds']} rounds) | {a['members']} | {a['member_seconds']:.1f} "
        f"| {a['wall_seconds']:.1f} |",
        f"| uniform N = {u['N']} ({u['how']}) | {u['N'] * len(a['n'])} "
        f"| {u['member_seconds']:.1f} | {uniform_wall} |",
        "",
        f"Members saved: {result['members_saved']:.0%}; member compute saved: "
        f"{result['compute_saved']:.0%}"
        + (f"; wall time saved: {result['wall_saved']:.0%}." if "wall_saved" in result else "."),
        "",
        "| between rounds | seconds | share of the adaptive run |",
        "|---|---:|---:|",
    ]
    wall = a["wall_seconds"]
    for label, key in (
        ("reading the judged values and deciding (every round)", "decide"),
        ("growing the store and recording (rounds 2 on)", "grow_and_record"),
        ("marking skipped members (at the end)", "mark_skipped"),
        ("total", "total"),
    ):
        lines.append(f"| {label} | {b[key]:.2f} | {b[key] / wall:.1%} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# part 2: coverage through the engine
# --------------------------------------------------------------------------------------

SIGMA = np.geomspace(1.0, 10.0, 10)
MU = np.linspace(-3.0, 3.0, 10)
COVERAGE_TARGETS = [
    ens.Precision("y", stat="mean", halfwidth=1.0),
    ens.Precision("y", stat="quantile", q=0.025, halfwidth=4.0),
    ens.Precision("y", stat="quantile", q=0.975, halfwidth=4.0),
]
COVERAGE_RULE = ens.Adaptive(initial=16, max=2048)


def truth(target: ens.Precision) -> np.ndarray:
    if target.stat == "mean":
        return MU
    return MU + SIGMA * stats.norm.ppf(target.q)


def coverage_run(root: int, path: Path) -> dict:
    points = [{"mu": float(m), "sigma": float(s)} for m, s in zip(MU, SIGMA, strict=True)]
    design = ens.Points(points)
    e = ens.Ensemble(_members.normal, design, seeds=COVERAGE_RULE, root_seed=root)
    tic = time.perf_counter()
    ds = e.to_zarr(path, until=COVERAGE_TARGETS, progress=False, mode="w")
    wall = time.perf_counter() - tic
    record = read_record(EnsembleStore(str(path)))
    n = np.asarray(record["final"]["n"])
    values = np.where(ds["status"].values == OK, ds["y"].values, np.nan)
    final = decide({"y": values}, n, COVERAGE_TARGETS, COVERAGE_RULE)
    covered = [
        ((r.interval.lower[:, 0] <= truth(t)) & (truth(t) <= r.interval.upper[:, 0])).tolist()
        for t, r in zip(COVERAGE_TARGETS, final.results, strict=True)
    ]
    return {
        "root": root,
        "n": n.tolist(),
        "rounds": len(record["rounds"]),
        "met": bool(final.converged.all()),
        "covered": covered,
        "wall_seconds": wall,
    }


def coverage_case(reps: int, root: int) -> dict:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(reps):
            runs.append(coverage_run(root + i, Path(tmp) / "coverage.zarr"))
            if (i + 1) % 10 == 0:
                print(f"  coverage: {i + 1} of {reps} runs", file=sys.stderr, flush=True)
    rows = []
    for k, target in enumerate(COVERAGE_TARGETS):
        hits = np.array([run["covered"][k] for run in runs], dtype=float)  # (reps, points)
        rows.append(
            {
                "target": target.describe(),
                "coverage": float(hits.mean()),
                "worst_point": float(hits.mean(axis=0).min()),
            }
        )
    return {
        "reps": reps,
        "rows": rows,
        "members_per_run": float(np.mean([sum(r["n"]) for r in runs])),
        "rounds": float(np.mean([r["rounds"] for r in runs])),
        "met": float(np.mean([r["met"] for r in runs])),
        "seconds_per_run": float(np.mean([r["wall_seconds"] for r in runs])),
        "runs": runs,
    }


def coverage_table(result: dict) -> str:
    lines = [
        f"{result['reps']} adaptive runs through the engine (to_zarr), "
        f"{result['members_per_run']:.0f} members and {result['rounds']:.1f} rounds per run "
        f"on average, {result['seconds_per_run']:.1f} s per run; every target met in "
        f"{result['met']:.0%} of the runs.",
        "",
        "| target | coverage | worst point |",
        "|---|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(f"| {row['target']} | {row['coverage']:.3f} | {row['worst_point']:.3f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load} at the end); Python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (see the docstring)")
    parser.add_argument("--size", type=int, default=32, help="Ising lattice size L")
    parser.add_argument("--sweeps", type=int, default=1000, help="Ising sweeps per member")
    parser.add_argument("--reps", type=int, default=None, help="coverage runs (default 200)")
    parser.add_argument("--root", type=int, default=ROOT_SEED, help="root seed")
    parser.add_argument("--out", type=Path, default=None, help="raw results file (JSON)")
    args = parser.parse_args(argv)
    reps = args.reps if args.reps is not None else (10 if args.quick else 200)
    results = {
        "command": " ".join(["python", "benchmarks/bench_adaptive.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rule": RULE.to_dict(),
        "target": TARGET.to_dict(),
    }
    result = ising_case(args.quick, (args.size, args.sweeps), args.root)
    results["ising"] = result
    print(
        f"## Ising, L = {args.size}, {args.sweeps:,} sweeps: members for +-0.01 on "
        "time-averaged abs(M)\n"
    )
    print(ising_tables(result))
    if reps:
        coverage = coverage_case(reps, args.root)
        results["coverage"] = coverage
        print("\n## Coverage through the engine (95 % nominal)\n")
        print(coverage_table(coverage))
    results["machine"] = machine()
    path = RESULTS.with_name(RESULTS.stem + "_quick.json") if args.quick else RESULTS
    path = args.out or path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nraw results: {path}; {results['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
