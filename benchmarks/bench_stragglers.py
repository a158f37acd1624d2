"""Stragglers: a run in which 1 % of members take 10x longer, against the same run without.

Both runs have the same members on the same two workers of the local pool (warm); in the
straggler run, 1 % of the members do ten times the work. Ideally the run takes only the
extra work longer (1.09x for 1 % at 10x: 0.99 + 0.01 x 10); the target is at most 1.3x.
Two placements of the slow members: spread at random over the design, and the worst
case, all at the end of the design (they are the last blocks handed out).

Members are CPU-bound (a pure-Python loop of fixed length, not a sleep), so they compete
for the cores as real simulations do. Each case runs in a fresh process, rounds interleaved.

Run ``python benchmarks/bench_stragglers.py [--quick] [--busy]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

#: loop length of a normal member; about 10 ms on the project's 2-core machine
WORK = 130_000


def member(*, seed, x, slow):
    """A CPU-bound member: ``WORK`` iterations, ten times that when ``slow``."""
    total = 0
    for i in range(WORK * (10 if slow else 1)):
        total += i % 7
    return {"y": float(total) + x}


def run(*, n, slow, where, workers):
    """Seconds for ``n`` members of which ``slow`` take ten times longer."""
    import numpy as np

    import ensembles as ens

    rng = np.random.default_rng(5)
    flags = np.zeros(n, bool)
    if slow:
        chosen = (
            rng.choice(n, size=slow, replace=False)
            if where == "random"
            else np.arange(n - slow, n)
        )
        flags[chosen] = True
    design = ens.Points([{"x": float(i), "slow": bool(f)} for i, f in enumerate(flags)])
    warm = ens.Ensemble(member, ens.Grid(x=[0.0, 1.0], slow=[False]), seeds=2, root_seed=1)
    warm.compute(progress=False, workers=workers)  # the pool started, the function loaded
    e = ens.Ensemble(member, design, seeds=1, root_seed=1)
    start = time.perf_counter()
    ds = e.compute(progress=False, workers=workers)
    seconds = time.perf_counter() - start
    ok = int((ds["status"].values == 1).sum())
    return {"seconds": seconds, "ok": ok, "slow_members": int(flags.sum())}


CANDIDATES = {"run": run}


def plan(b: _harness.Bench) -> None:
    n = 200 if b.quick else 2000
    rounds = b.args.rounds or (1 if b.quick else 3)
    slow = n // 100
    b.params = {"members": n, "slow_members": slow, "slowdown": 10, "workers": 2}
    cases = {
        "none": ("run", {"n": n, "slow": 0, "where": "random", "workers": 2}),
        "random": ("run", {"n": n, "slow": slow, "where": "random", "workers": 2}),
        "end": ("run", {"n": n, "slow": slow, "where": "end", "workers": 2}),
    }
    b.rounds(cases, rounds)
    done = [r.get("ok") == n for r in b.runs if r["rc"] == 0]
    b.check("every member ran", all(done) and len(done) == len(b.runs), f"{n} members per run")
    b.labels.update(
        {
            "none": "no stragglers",
            "random": "1 % of members 10x slower, spread at random",
            "end": "1 % of members 10x slower, all at the end",
        }
    )
    b.tables.append(
        {
            "title": f"{n} CPU-bound members on 2 workers of the local pool",
            "cases": ["none", "random", "end"],
            "columns": [{"metric": "seconds", "label": "run (s)", "fmt": ".2f"}],
            "ratios": [
                {
                    "metric": "seconds",
                    "baseline": "none",
                    "kind": "relative",
                    "label": "time vs no stragglers (ideal 1.09)",
                }
            ],
        }
    )
    for case in ("random", "end"):
        b.targets.append(
            {
                "label": f"stragglers ({b.labels[case]}): time vs the run without them",
                "case": case,
                "baseline": "none",
                "metric": "seconds",
                "kind": "relative",
                "op": "<=",
                "threshold": 1.3,
                "reason": "the tail of the run: at most one block per worker plus the "
                "slowest member runs after the others finish",
            }
        )


if __name__ == "__main__":
    sys.exit(_harness.main("stragglers", __file__, __doc__, CANDIDATES, plan))
