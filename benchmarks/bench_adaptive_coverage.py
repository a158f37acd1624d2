"""Coverage and savings of adaptive ensembles: the whole sequential procedure, simulated.

Run from the repository root::

    python benchmarks/bench_adaptive_coverage.py          # 200 repetitions + real Ising runs
    python benchmarks/bench_adaptive_coverage.py --quick  # 40 repetitions, uniform N estimated

Part 1, coverage (NumPy only). A model with known truth: 10 design points whose outputs
have standard deviations from 1 to 10 (variance 100x) and means from -3 to 3, with three
shapes: normal, gamma(4) (skewness 1) and exponential (skewness 2). Each repetition draws
its members from its own root seed (prefix-stable streams, like seeds) and runs the
adaptive procedure exactly as an engine would: ``decide`` on the members so far, add the
members it asks for, repeat until it asks for none. Targets: the mean (+-1.0), the 2.5 %
and 97.5 % quantiles together (an envelope, +-4.0 each) and the standard deviation (+-1.0),
at 95 %, with ``Adaptive(initial=16, max=2048)``. Reported: the share of final intervals
that cover the truth (pooled over points and repetitions, and at the worst point), the
same intervals' coverage at the same sizes on fresh members (no stopping rule: what the
interval itself achieves at those sizes), members per run, and the uniform N (same N at
every point) that brings every point to the target on the same members.

Part 2, Ising. Real runs of ``ensembles.models.ising.simulate`` (L = 32, 1,000 sweeps with
200 of burn-in, |M| recorded every 10 sweeps) at T = 1.5, 1.6, ..., 3.5, member seeds from
the seed tree; target: the mean of the time-averaged |M| known to +-0.01 (95 %) at every
temperature. The adaptive run is compared with the smallest uniform N whose t-intervals
are all within +-0.01 on the same members (found by running every temperature up to it;
``--quick`` estimates it from the adaptive run's spread instead).

Prints markdown tables; raw results go to ``benchmarks/results/adaptive_coverage.json``
(``adaptive_coverage_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ensembles.adaptive import Adaptive, Precision, decide  # noqa: E402
from ensembles.analysis.intervals import interval, mean_interval  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "adaptive_coverage.json"
SIGMA = np.geomspace(1.0, 10.0, 10)
MU = np.linspace(-3.0, 3.0, 10)
RULE = Adaptive(initial=16, max=2048)
MODELS = {  # standardized shapes (mean 0, sd 1): sampler and distribution
    "normal": stats.norm(),
    "gamma(4)": stats.gamma(4.0),
    "exponential": stats.expon(),
}
SCENARIOS = {
    "mean +-1.0": [Precision("y", "mean", halfwidth=1.0)],
    "2.5 % and 97.5 % quantiles +-4.0": [
        Precision("y", "quantile", q=0.025, halfwidth=4.0),
        Precision("y", "quantile", q=0.975, halfwidth=4.0),
    ],
    "std +-1.0": [Precision("y", "std", halfwidth=1.0)],
}


# --------------------------------------------------------------------------------------
# part 1: coverage
# --------------------------------------------------------------------------------------


def draws(model: str, root: int, reps: int, size: int) -> np.ndarray:
    """Members ``(reps, points, size)``: each repetition from its own root seed."""
    dist = MODELS[model]
    out = np.empty((reps, SIGMA.size, size))
    for rep in range(reps):
        rng = np.random.default_rng([root, rep])
        u = (dist.rvs(size=(SIGMA.size, size), random_state=rng) - dist.mean()) / dist.std()
        out[rep] = MU[:, None] + SIGMA[:, None] * u
    return out


def truth(model: str, target: Precision) -> np.ndarray:
    dist = MODELS[model]
    if target.stat == "mean":
        return MU
    if target.stat == "std":
        return SIGMA
    return MU + SIGMA * (dist.ppf(target.q) - dist.mean()) / dist.std()


def run_adaptive(values: np.ndarray, targets: list[Precision], rule: Adaptive) -> tuple:
    """The adaptive loop, all repetitions at once; the final decision and rounds per run."""
    n = np.zeros(values.shape[:-1], dtype=np.int64)
    rounds = np.zeros(values.shape[0], dtype=np.int64)
    while True:
        decision = decide(values, n, targets, rule)
        if decision.done:
            return decision, rounds
        n = n + decision.add
        rounds += decision.add.any(axis=1)


def fixed_n_intervals(values: np.ndarray, n: np.ndarray, target: Precision):
    """Plain (non-sequential) intervals of each row's first ``n`` members."""
    masked = np.where(np.arange(values.shape[-1]) < n[..., None], values, np.nan)
    return interval(masked, target.stat, target.q, axis=-1, level=target.level)


def oracle_sizes(values: np.ndarray, targets: list[Precision]) -> np.ndarray:
    """Per row, the smallest N (by bisection) whose fixed-N intervals meet every target."""
    lo = np.full(values.shape[:-1], max(t.min_members for t in targets) - 1)
    hi = np.full(values.shape[:-1], RULE.max)
    while (hi - lo > 1).any():
        mid = (lo + hi) // 2
        ok = np.ones(mid.shape, dtype=bool)
        for target in targets:
            ok &= fixed_n_intervals(values, mid, target).half_width <= target.halfwidth
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return hi


def coverage_case(
    model: str, scenario: str, reps: int, root: int, rule: Adaptive = RULE
) -> list[dict]:
    targets = SCENARIOS[scenario]
    values = draws(model, root, reps, RULE.max)
    start = time.perf_counter()
    decision, rounds = run_adaptive(values, targets, rule)
    elapsed = time.perf_counter() - start
    fresh = draws(model, root + 1, reps, RULE.max)
    uniform = oracle_sizes(values, targets).max(axis=1) * SIGMA.size
    members = decision.n.sum(axis=1)
    rows = []
    for result in decision.results:
        target, ci = result.target, result.interval
        true = truth(model, target)
        covered = (ci.lower[..., 0] <= true) & (true <= ci.upper[..., 0])
        plain = fixed_n_intervals(fresh, decision.n, target)
        rows.append(
            {
                "model": model,
                "scenario": scenario,
                "target": target.describe(),
                "method": ci.method,
                "coverage": float(covered.mean()),
                "worst_point": float(covered.mean(axis=0).min()),
                "fixed_n_coverage": float(((plain.lower <= true) & (true <= plain.upper)).mean()),
                "met": float(result.converged.mean()),
                "members": float(members.mean()),
                "members_per_point": decision.n.mean(axis=0).round(1).tolist(),
                "uniform_members": float(np.median(uniform)),
                "saved": float(np.mean(1 - members / uniform)),
                "rounds": float(rounds.mean()),
                "initial": rule.initial,
                "reps": reps,
                "seconds": elapsed,
            }
        )
    return rows


def coverage_table(rows: list[dict]) -> str:
    lines = [
        "| model | target | interval | coverage | worst point | fixed n, same sizes "
        "| met | members / run | uniform N x points | saved | rounds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['target']} | {r['method']} | {r['coverage']:.3f} "
            f"| {r['worst_point']:.3f} | {r['fixed_n_coverage']:.3f} | {r['met']:.1%} "
            f"| {r['members']:.0f} | {r['uniform_members']:.0f} | {r['saved']:.0%} "
            f"| {r['rounds']:.1f} |"
        )
    return "\n".join(lines)


def pilot_table(rows: list[dict]) -> str:
    lines = [
        "| model | initial | coverage | worst point | fixed n, same sizes | members / run "
        "| saved | rounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['initial']} | {r['coverage']:.3f} | {r['worst_point']:.3f} "
            f"| {r['fixed_n_coverage']:.3f} | {r['members']:.0f} | {r['saved']:.0%} "
            f"| {r['rounds']:.1f} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# part 2: Ising
# --------------------------------------------------------------------------------------


class IsingMembers:
    """Runs Ising members on demand (in this process) and keeps |M| series and run times."""

    def __init__(self, temps: np.ndarray, root: int, size: int, recorded: int) -> None:
        from ensembles.members.seeds import member_seeds, point_keys
        from ensembles.models.ising import simulate

        keys, occurrences = point_keys({"T": temps})
        index = np.arange(size)
        self.seeds = member_seeds(root, keys[:, None], occurrences[:, None], index[None, :])
        self.temps, self.simulate = temps, simulate
        self.values = np.full((temps.size, size, recorded), np.nan)
        self.seconds = np.full((temps.size, size), np.nan)

    def run(self, point: int, start: int, stop: int) -> None:
        for i in range(start, stop):
            if not np.isnan(self.seconds[point, i]):
                continue
            tic = time.perf_counter()
            out = self.simulate(
                T=float(self.temps[point]),
                L=32,
                n_sweeps=1000,
                burn_in=200,
                thin=10,
                seed=int(self.seeds[point, i]),
            )
            self.values[point, i] = np.abs(out["M"])
            self.seconds[point, i] = time.perf_counter() - tic


def ising_adaptive(members: IsingMembers, target: Precision, rule: Adaptive) -> dict:
    n = np.zeros(members.temps.size, dtype=np.int64)
    deciding, rounds, log = 0.0, 0, []
    while True:
        tic = time.perf_counter()
        decision = decide(members.values, n, target, rule)
        deciding += time.perf_counter() - tic
        log.append(decision.summary())
        if decision.done:
            break
        for point in np.flatnonzero(decision.add):
            members.run(point, int(n[point]), int(n[point] + decision.add[point]))
        n = n + decision.add
        rounds += 1
    computing = float(np.nansum(members.seconds))
    return {
        "n": n.tolist(),
        "achieved": decision.results[0].achieved.tolist(),
        "estimate": decision.results[0].interval.estimate[:, 0].tolist(),
        "rounds": rounds,
        "decide_seconds": deciding,
        "member_seconds": computing,
        "log": log,
    }


def uniform_size(members: IsingMembers, n: np.ndarray, h: float, measure: bool) -> dict:
    """The smallest N whose t-intervals are all within +-h (or its planning estimate)."""
    averages = members.values.mean(axis=-1)
    sd = np.array([np.std(averages[p, : n[p]], ddof=1) for p in range(n.size)])
    planned = int(np.ceil(np.max((stats.t.ppf(0.975, n - 1) * sd / h) ** 2)))
    if not measure:
        return {"N": planned, "how": "estimated from the adaptive run's spread"}
    top = min(members.values.shape[1], int(np.ceil(1.3 * planned)) + 16)
    for point in range(n.size):
        members.run(point, 0, top)
    for size in range(2, top + 1):
        ci = mean_interval(members.values.mean(axis=-1)[:, :size], axis=1)
        if (ci.half_width <= h).all():
            seconds = np.nanmean(members.seconds[:, :top], axis=1) * size
            return {"N": size, "how": "measured", "member_seconds": float(seconds.sum())}
    return {"N": top, "how": f"not reached within {top} members"}


def ising_case(quick: bool, root: int) -> dict:
    temps = np.round(np.arange(1.5, 3.5001, 0.1), 10)
    rule = Adaptive(initial=16, max=1024)
    target = Precision("absM", "mean", halfwidth=0.01, reduce="mean")
    members = IsingMembers(temps, root, rule.max, recorded=80)
    members.run(0, 0, 1)  # compile the kernel outside the timings
    members.seconds[0, 0] = np.nan
    adaptive = ising_adaptive(members, target, rule)
    uniform = uniform_size(members, np.asarray(adaptive["n"]), 0.01, measure=not quick)
    total = sum(adaptive["n"])
    return {
        "temperatures": temps.tolist(),
        "adaptive": adaptive,
        "uniform": uniform,
        "saved": 1 - total / (uniform["N"] * temps.size),
        "overhead": adaptive["decide_seconds"]
        / (adaptive["decide_seconds"] + adaptive["member_seconds"]),
    }


def ising_tables(result: dict) -> str:
    a, u = result["adaptive"], result["uniform"]
    total = sum(a["n"])
    seconds = f"{u['member_seconds']:.1f}" if "member_seconds" in u else "not run"
    lines = [
        "| T | members | mean of time-averaged abs(M) | half-width (95 %) |",
        "|---:|---:|---:|---:|",
    ]
    for t, n, est, h in zip(
        result["temperatures"], a["n"], a["estimate"], a["achieved"], strict=True
    ):
        lines.append(f"| {t:.1f} | {n} | {est:.4f} | {h:.4f} |")
    lines += [
        "",
        "| run | members | member compute (s) |",
        "|---|---:|---:|",
        f"| adaptive ({a['rounds']} rounds) | {total} | {a['member_seconds']:.1f} |",
        f"| uniform N = {u['N']} ({u['how']}) | {u['N'] * len(a['n'])} | {seconds} |",
        "",
        f"Members saved: {result['saved']:.0%}. Time in `decide` between rounds: "
        f"{a['decide_seconds']:.2f} s ({result['overhead']:.2%} of decide + member time).",
    ]
    return "\n".join(lines)


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
    parser.add_argument("--quick", action="store_true", help="40 repetitions, no uniform run")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 200)")
    parser.add_argument("--root", type=int, default=20261124, help="root seed")
    parser.add_argument("--no-ising", action="store_true", help="skip the Ising part")
    args = parser.parse_args(argv)
    reps = args.reps or (40 if args.quick else 200)
    rows = []
    for model in MODELS:
        for scenario in SCENARIOS:
            rows += coverage_case(model, scenario, reps, args.root)
            print(f"  {model}: {scenario} ({rows[-1]['seconds']:.1f} s)", file=sys.stderr)
    pilots = []
    for initial in (8, 16, 32):
        rule = Adaptive(initial=initial, max=RULE.max)
        for model in MODELS:
            pilots += coverage_case(model, "mean +-1.0", reps, args.root + 2, rule)
    print(f"## Coverage at 95 % nominal ({reps} repetitions)\n")
    print(coverage_table(rows))
    print(f"\n## The mean's pilot size ({reps} repetitions)\n")
    print(pilot_table(pilots))
    results = {
        "command": " ".join(["python", "benchmarks/bench_adaptive_coverage.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rule": RULE.to_dict(),
        "coverage": rows,
        "pilot": pilots,
    }
    if not args.no_ising:
        ising = ising_case(args.quick, args.root)
        print("\n## Ising, L = 32: members per temperature for +-0.01 on time-averaged abs(M)\n")
        print(ising_tables(ising))
        results["ising"] = ising
    results["machine"] = machine()
    path = RESULTS.with_name(RESULTS.stem + "_quick.json") if args.quick else RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nraw results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
