"""Adaptive ensembles through the engine: members saved, time between rounds, coverage.

Run from the repository root::

    python benchmarks/bench_adaptive.py           # the full benchmark
    python benchmarks/bench_adaptive.py --quick   # a smoke run
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
temperature and estimates N from the adaptive run's spread instead (not run).

Time between rounds: what the adaptive run spends outside its members, from the
store's record (``seconds`` of every round): judging the members' values (as the driver
writes their blocks, or read from the store) and deciding, then growing the store and
recording the round (round 1's layout and probe are left out: a uniform run pays them
too), and marking at the end the skipped members the rounds could not mark while their
members ran.

Part 2, coverage through the engine. ``_members.normal``: 10 points whose outputs are
Normal(mu, sigma) with sigma from 1 to 10 (variance 100x) and mu from -3 to 3; targets:
the mean +-1, the 2.5 % and 97.5 % quantiles +-4 (together: a point stops when all
three hold), 95 %, ``Adaptive(initial=16, max=2048)``. Each repetition is a whole
``to_zarr`` run with its own root seed; coverage is the share of final intervals
(recomputed from the store's members) that contain the true value.

Like every script here it runs on the harness (``_harness.py``): the adaptive run, the
uniform run and the coverage repetitions are candidates, each in a fresh process; the raw
results go to ``<results>/adaptive[-busy][-quick].json`` and ``run_all.py`` renders the
``bench:adaptive`` block of ``docs/benchmarks_adaptive.md`` from them with ``_report.py``.
The per-temperature, time-between-rounds and coverage tables have a row per temperature,
step or target rather than per case, so this script writes them (from the same runs) as
markdown into the results' ``notes``, which ``_report.py`` prints as they are.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

#: the Ising target and rule, and the root seed of every run
TARGET = {"var": "absM", "stat": "mean", "halfwidth": 0.01, "reduce": "mean"}
RULE = {"initial": 16, "max": 1024}
ROOT_SEED = 20261124

# -- part 1: Ising ---------------------------------------------------------------------------


def _ising(temps, L, sweeps, seeds, root):
    import _members

    import ensembles as ens

    fixed = {"L": L, "n_sweeps": sweeps, "burn_in": sweeps // 10, "thin": 10}
    return ens.Ensemble(
        _members.ising_abs_m, ens.Grid(T=temps), seeds=seeds, root_seed=root, fixed=fixed
    )


def _averaged(path):
    """Each member's time-averaged |M| (NaN unless ok) and its wall time (NaN unless ok)."""
    import ensembles as ens
    from ensembles.layout import OK

    ds = ens.open_ensemble(path)
    ok = ds["status"].values == OK
    values = np.where(ok, ds["absM"].values.mean(axis=-1), np.nan)
    return values, np.where(ok, ds["wall_time"].values, np.nan)


def _ok_values(path):
    """|M| of every member and recorded sweep (NaN unless the member is ok)."""
    import ensembles as ens
    from ensembles.layout import OK

    ds = ens.open_ensemble(path)
    ok = ds["status"].values == OK
    return np.where(ok[..., None], ds["absM"].values, np.nan)


def _between_rounds(record):
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
    }


def adaptive(*, temps, L, sweeps, root):
    """The adaptive run: members per temperature, intervals, times, time between rounds."""
    import ensembles as ens
    from ensembles.adaptive import decide
    from ensembles.adaptive.record import read_record
    from ensembles.models.ising import simulate
    from ensembles.store.zarr_store import EnsembleStore

    simulate(T=2.0, L=L, n_sweeps=20, burn_in=0, thin=10, seed=1)  # compile outside timings
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "adaptive.zarr"
        e = _ising(temps, L, sweeps, ens.Adaptive(**RULE), root)
        tic = time.perf_counter()
        e.to_zarr(path, until=ens.Precision(**TARGET), progress=False)
        wall = time.perf_counter() - tic
        record = read_record(EnsembleStore(str(path)))
        values, seconds = _averaged(path)
        raw = _ok_values(path)
    n = np.asarray(record["final"]["n"])
    between = _between_rounds(record)
    achieved = np.asarray(record["final"]["targets"][0]["achieved"], dtype=float)
    # the final decision again, from the members in the store
    again = decide({"absM": raw}, n, ens.Precision(**TARGET), ens.Adaptive(**RULE)).results[0]
    return {
        "n": n.tolist(),
        "estimate": again.interval.estimate[:, 0].tolist(),
        "achieved": achieved.tolist(),
        "recomputed": bool(np.allclose(again.achieved, achieved, rtol=1e-9, atol=0)),
        "rounds": len(record["rounds"]),
        "members": int(n.sum()),
        "wall_seconds": wall,
        "member_seconds": float(np.nansum(seconds)),
        "between": between,
        "between_share": between["total"] / wall,
        "spread": [float(np.nanstd(values[p, : n[p]], ddof=1)) for p in range(n.size)],
    }


def planned_uniform(n, spread, halfwidth):
    """The uniform N the adaptive run's spread predicts for every temperature."""
    from scipy import stats

    n, sd = np.asarray(n), np.asarray(spread)
    return int(np.ceil(np.max((stats.t.ppf(0.975, n - 1) * sd / halfwidth) ** 2)))


def _smallest_uniform(values, halfwidth):
    """The smallest N whose t-intervals (first N members) are all within +-halfwidth."""
    from ensembles.analysis.intervals import mean_interval

    for k in range(2, values.shape[1] + 1):
        if (mean_interval(values[:, :k], axis=1).half_width <= halfwidth).all():
            return k
    return None


def uniform(*, temps, L, sweeps, root, planned):
    """The smallest uniform N meeting the target everywhere on the same members, timed."""
    top = min(RULE["max"], int(np.ceil(1.3 * planned)) + 16)
    with tempfile.TemporaryDirectory() as tmp:
        _ising(temps, L, sweeps, top, root).to_zarr(Path(tmp) / "search.zarr", progress=False)
        values, _ = _averaged(Path(tmp) / "search.zarr")
        n = _smallest_uniform(values, TARGET["halfwidth"])
        if n is None:
            return {"N": top, "reached": False}
        tic = time.perf_counter()
        _ising(temps, L, sweeps, n, root).to_zarr(Path(tmp) / "uniform.zarr", progress=False)
        wall = time.perf_counter() - tic
        _, seconds = _averaged(Path(tmp) / "uniform.zarr")
    from ensembles.analysis.intervals import mean_interval

    return {
        "N": n,
        "reached": True,
        "members": n * len(temps),
        "wall_seconds": wall,
        "member_seconds": float(np.nansum(seconds)),
        "worst_halfwidth": float(mean_interval(values[:, :n], axis=1).half_width.max()),
    }


# -- part 2: coverage through the engine -----------------------------------------------------

SIGMA = np.geomspace(1.0, 10.0, 10)
MU = np.linspace(-3.0, 3.0, 10)
COVERAGE = [  # key, target, how the targets summary names it
    ("mean", {"var": "y", "stat": "mean", "halfwidth": 1.0}, "the mean"),
    ("q025", {"var": "y", "stat": "quantile", "q": 0.025, "halfwidth": 4.0}, "the 2.5 % quantile"),
    (
        "q975",
        {"var": "y", "stat": "quantile", "q": 0.975, "halfwidth": 4.0},
        "the 97.5 % quantile",
    ),
]
COVERAGE_RULE = {"initial": 16, "max": 2048}


def _coverage_run(root, path, targets):
    """One whole adaptive run; per target and point, whether the final interval covers."""
    import _members
    from scipy import stats

    import ensembles as ens
    from ensembles.adaptive import decide
    from ensembles.adaptive.record import read_record
    from ensembles.layout import OK
    from ensembles.store.zarr_store import EnsembleStore

    points = [{"mu": float(m), "sigma": float(s)} for m, s in zip(MU, SIGMA, strict=True)]
    rule = ens.Adaptive(**COVERAGE_RULE)
    e = ens.Ensemble(_members.normal, ens.Points(points), seeds=rule, root_seed=root)
    tic = time.perf_counter()
    ds = e.to_zarr(path, until=targets, progress=False, mode="w")
    wall = time.perf_counter() - tic
    n = np.asarray(read_record(EnsembleStore(str(path)))["final"]["n"])
    rounds = len(read_record(EnsembleStore(str(path)))["rounds"])
    values = np.where(ds["status"].values == OK, ds["y"].values, np.nan)
    final = decide({"y": values}, n, targets, rule)
    covered = []
    for t, r in zip(targets, final.results, strict=True):
        truth = MU if t.stat == "mean" else MU + SIGMA * stats.norm.ppf(t.q)
        covered.append((r.interval.lower[:, 0] <= truth) & (truth <= r.interval.upper[:, 0]))
    return np.array(covered), int(n.sum()), rounds, bool(final.converged.all()), wall


def coverage(*, reps, root):
    """``reps`` adaptive runs with root seeds ``root``, ``root + 1``, ...: coverage."""
    import ensembles as ens

    targets = [ens.Precision(**t) for _, t, _ in COVERAGE]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "coverage.zarr"
        runs = [_coverage_run(root + i, path, targets) for i in range(reps)]
    hits, members, rounds, met, walls = zip(*runs, strict=True)
    share = np.mean(hits, axis=0)  # (targets, points): covered in how many runs
    result = {
        "reps": reps,
        "members_per_run": float(np.mean(members)),
        "rounds_per_run": float(np.mean(rounds)),
        "met_share": float(np.mean(met)),
        "seconds_per_run": float(np.mean(walls)),
    }
    for k, (key, _, _) in enumerate(COVERAGE):
        result[f"coverage_{key}"] = float(share[k].mean())
        result[f"worst_{key}"] = float(share[k].min())
        result[f"label_{key}"] = targets[k].describe()
    return result


CANDIDATES = {"adaptive": adaptive, "uniform": uniform, "coverage": coverage}


# -- the plan: rounds, tables, targets, notes -------------------------------------------------


def _options(p) -> None:
    p.add_argument("--size", type=int, default=32, help="Ising lattice size L")
    p.add_argument("--sweeps", type=int, default=1000, help="Ising sweeps per member")
    p.add_argument("--reps", type=int, default=None, help="coverage runs (default 200)")
    p.add_argument("--root", type=int, default=ROOT_SEED, help="root seed of every run")


def _estimated(run: dict, temps: list[float], rnd: int) -> dict:
    """The uniform run ``--quick`` does not run: N from the adaptive run's spread."""
    n = planned_uniform(run["n"], run["spread"], TARGET["halfwidth"])
    per_member = run["member_seconds"] / run["members"]
    members = n * len(temps)
    return {
        "case": "uniform",
        "round": rnd,
        "rc": 0,
        "estimated": True,
        "N": n,
        "members": members,
        "member_seconds": members * per_member,
    }


def _ising_rounds(b: _harness.Bench, temps: list[float], rounds: int) -> None:
    a = b.args
    common = {"temps": temps, "L": a.size, "sweeps": a.sweeps, "root": a.root}
    for rnd in range(rounds):
        run = b.run("adaptive", "adaptive", common, rnd, timeout=3600)
        if run["rc"] != 0:
            continue
        if b.quick:
            b.runs.append(_estimated(run, temps, rnd))
            continue
        planned = planned_uniform(run["n"], run["spread"], TARGET["halfwidth"])
        b.run("uniform", "uniform", {**common, "planned": planned}, rnd, timeout=3600)


def plan(b: _harness.Bench) -> None:
    step = 0.2 if b.quick else 0.1
    temps = np.round(np.arange(1.5, 3.5001, step), 10).tolist()
    reps = b.args.reps if b.args.reps is not None else (10 if b.quick else 200)
    b.params = {
        "temperatures": temps,
        "L": b.args.size,
        "sweeps": b.args.sweeps,
        "rule": RULE,
        "target": TARGET,
        "root_seed": b.args.root,
        "coverage_reps": reps,
        "coverage_rule": COVERAGE_RULE,
    }
    _ising_rounds(b, temps, b.args.rounds or 1)
    if reps:
        b.run("coverage", "coverage", {"reps": reps, "root": b.args.root}, 0, timeout=7200)
    _describe(b, temps)


def _first(b: _harness.Bench, case: str) -> dict | None:
    return next((r for r in b.runs if r["case"] == case and r["rc"] == 0), None)


def _describe(b: _harness.Bench, temps: list[float]) -> None:
    """The tables, checks, targets and notes of the page, from the runs."""
    first, uni, cov = _first(b, "adaptive"), _first(b, "uniform"), _first(b, "coverage")
    b.labels.update({"adaptive": "adaptive", "uniform": "smallest uniform N"})
    if uni is not None:
        how = "estimated from the adaptive run's spread" if uni.get("estimated") else "measured"
        how = how if uni.get("reached", True) else f"+-0.01 not reached within {uni['N']}"
        b.labels["uniform"] = f"uniform N = {uni['N']} ({how})"
    b.tables.append(_ising_table(b, temps))
    if first is not None:
        b.check(
            "half-widths recomputed from the store's members vs those the run recorded",
            first["recomputed"],
            f"{len(temps)} temperatures",
        )
        b.notes += [_per_temperature(first, temps), _between_table(first)]
    if cov is not None:
        b.notes.append(_coverage_table(cov))
    b.targets += _targets()


def _ising_table(b: _harness.Bench, temps: list[float]) -> dict:
    return {
        "title": f"Ising, L = {b.args.size}, {b.args.sweeps:,} sweeps, {len(temps)} "
        f"temperatures from {temps[0]} to {temps[-1]}: members for +-0.01 on the "
        "time-averaged abs(M)",
        "cases": ["adaptive", "uniform"],
        "columns": [
            {"metric": "members", "label": "members", "fmt": ".0f"},
            {"metric": "member_seconds", "label": "member compute (s)", "fmt": ".2f"},
            {"metric": "wall_seconds", "label": "wall time (s)", "fmt": ".2f"},
        ],
        "ratios": [
            {
                "metric": "members",
                "baseline": "uniform",
                "kind": "relative",
                "label": "members vs uniform",
            },
            {
                "metric": "member_seconds",
                "baseline": "uniform",
                "kind": "relative",
                "label": "member compute vs uniform",
            },
            {
                "metric": "wall_seconds",
                "baseline": "uniform",
                "kind": "relative",
                "label": "wall time vs uniform",
            },
        ],
        "note": "The uniform N is the most favourable one for the uniform run: the "
        "smallest whose intervals all meet the target on the same members, which a run "
        "planned in advance cannot know.",
    }


def _per_temperature(run: dict, temps: list[float]) -> str:
    lines = [
        f"**The adaptive run, {run['rounds']} rounds: members per temperature**",
        "",
        "| T | members | mean of time-averaged abs(M) | half-width (95 %) |",
        "|---:|---:|---:|---:|",
    ]
    rows = zip(temps, run["n"], run["estimate"], run["achieved"], strict=True)
    lines += [f"| {t:.1f} | {n} | {est:.4f} | {h:.4f} |" for t, n, est, h in rows]
    return "\n".join(lines)


def _between_table(run: dict) -> str:
    lines = [
        "**Time between rounds** (from the store's record of the adaptive run above)",
        "",
        "| between rounds | seconds | share of the adaptive run |",
        "|---|---:|---:|",
    ]
    wall = run["wall_seconds"]
    for label, key in (
        ("judging the members' values and deciding (every round)", "decide"),
        ("growing the store and recording (rounds 2 on)", "grow_and_record"),
        ("marking the skipped members left at the end", "mark_skipped"),
        ("total", "total"),
    ):
        seconds = run["between"][key]
        lines.append(f"| {label} | {seconds:.2f} | {seconds / wall:.1%} |")
    return "\n".join(lines)


def _coverage_table(run: dict) -> str:
    lines = [
        f"**Coverage through the engine** ({run['reps']} adaptive runs through `to_zarr`, "
        f"{run['members_per_run']:.0f} members and {run['rounds_per_run']:.1f} rounds per "
        f"run on average, {run['seconds_per_run']:.1f} s per run; every target met in "
        f"{run['met_share']:.0%} of the runs)",
        "",
        "| target | coverage | worst point |",
        "|---|---:|---:|",
    ]
    for key, _, _ in COVERAGE:
        cells = (
            run[f"label_{key}"],
            f"{run[f'coverage_{key}']:.3f}",
            f"{run[f'worst_{key}']:.3f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _targets() -> list[dict]:
    cheap = (
        "members of a few milliseconds: growing the store (its arrays resized, the new "
        "seeds written) costs the same whatever members cost"
    )
    found = [
        {
            "label": "adaptive Ising run: members vs the smallest uniform N",
            "case": "adaptive",
            "baseline": "uniform",
            "metric": "members",
            "kind": "relative",
            "op": "<=",
            "threshold": 0.6,
            "reason": "the target needs more members near Tc",
        },
        {
            "label": "adaptive Ising run: time between rounds, share of the run",
            "case": "adaptive",
            "metric": "between_share",
            "kind": "value",
            "op": "<",
            "threshold": 0.05,
            "fmt": ".3f",
            "reason": cheap,
        },
    ]
    for key, _, name in COVERAGE:
        found.append(
            {
                "label": f"coverage of {name} by adaptive runs through to_zarr (95 % nominal)",
                "case": "coverage",
                "metric": f"coverage_{key}",
                "kind": "value",
                "op": ">=",
                "threshold": 0.93,
                "fmt": ".3f",
                "reason": "the stopping rule stops too early",
            }
        )
    return found


if __name__ == "__main__":
    sys.exit(_harness.main("adaptive", __file__, __doc__, CANDIDATES, plan, extra=_options))
