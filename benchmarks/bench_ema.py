"""EMA Workbench's ``perform_experiments`` against ensembles' ``LatinHypercube``.

The same model function on both sides (``_members.lhs_model``: about 20 ms of pure-Python
work, then ``y = x1 + 2 x2 - x3**2``), 200 Latin-hypercube scenarios over three uniform
parameters, 2 processes (EMA's ``MultiprocessingEvaluator(n_processes=2)``, ensembles'
embedded default). Each run is a fresh process: cold (imports, pool or cluster start and
the first call) and warm (a second call in the same process). The samples differ by
design (each tool draws its own hypercube), so the check is statistical: both are true
Latin hypercubes (one point in each of the n strata of every parameter), every ``y``
equals the function of its own parameters, and the two means of ``y`` agree.

Run ``python benchmarks/bench_ema.py [--quick] [--busy]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

PARAMS = ("x1", "x2", "x3")


def _verify(table, y) -> dict:
    """Is it a Latin hypercube, and is every y the function of its parameters?"""
    import numpy as np

    n = len(y)
    strata = all(
        np.array_equal(np.sort(np.floor(np.asarray(table[p]) * n).astype(int)), np.arange(n))
        for p in PARAMS
    )
    x1, x2, x3 = (np.asarray(table[p], dtype=float) for p in PARAMS)
    exact = bool(np.array_equal(np.asarray(y, dtype=float), x1 + 2.0 * x2 - x3 * x3))
    return {"lhs_ok": bool(strata), "values_ok": exact, "mean_y": float(np.mean(y)), "n": n}


def ema(*, n):
    """EMA Workbench: MultiprocessingEvaluator(n_processes=2).perform_experiments, twice."""
    t0 = time.perf_counter()
    import warnings

    warnings.simplefilter("ignore")  # ipyparallel is not installed: EMA warns on import
    import _members
    from ema_workbench import (
        Model,
        MultiprocessingEvaluator,
        RealParameter,
        Samplers,
        ScalarOutcome,
    )

    model = Model("lhs", function=_members.lhs_model)
    model.uncertainties = [RealParameter(p, 0.0, 1.0) for p in PARAMS]
    model.outcomes = [ScalarOutcome("y")]
    times = []
    with MultiprocessingEvaluator(model, n_processes=2) as evaluator:
        t_ready = time.perf_counter()
        for _ in range(2):
            start = time.perf_counter()
            experiments, outcomes = evaluator.perform_experiments(
                scenarios=n, uncertainty_sampling=Samplers.LHS
            )
            times.append(time.perf_counter() - start)
    return {
        "cold_s": t_ready - t0 + times[0],
        "warm_s": times[1],
        **_verify(experiments, outcomes["y"]),
    }


def ensemble(*, n):
    """ensembles: LatinHypercube design, Ensemble.compute() on the embedded default, twice."""
    t0 = time.perf_counter()
    import _members

    import ensembles as ens

    design = ens.LatinHypercube(n=n, seed=1, **{p: (0.0, 1.0) for p in PARAMS})
    e = ens.Ensemble(_members.lhs_member, design, seeds=1, root_seed=1)
    t_ready = time.perf_counter()
    times = []
    for _ in range(2):
        start = time.perf_counter()
        ds = e.compute(progress=False)
        times.append(time.perf_counter() - start)
    table = {p: ds[p].values.ravel() for p in PARAMS}
    return {
        "cold_s": t_ready - t0 + times[0],
        "warm_s": times[1],
        **_verify(table, ds["y"].values.ravel()),
    }


CANDIDATES = {"ema": ema, "ensembles": ensemble}


def plan(b: _harness.Bench) -> None:
    n = 20 if b.quick else 200
    rounds = b.args.rounds or (1 if b.quick else 3)
    b.params = {"scenarios": n, "processes": 2, "member_iterations": 260_000}
    b.labels = {
        "ema": "EMA Workbench `perform_experiments`, `MultiprocessingEvaluator(2)`",
        "ensembles": "ensembles `LatinHypercube` + `compute()`",
    }
    b.rounds({"ema": ("ema", {"n": n}), "ensembles": ("ensembles", {"n": n})}, rounds)
    _checks(b, n)
    _tables(b, n)


def _checks(b: _harness.Bench, n: int) -> None:
    ok = [r for r in b.runs if r["rc"] == 0]
    b.check(
        "both samples are Latin hypercubes, every y is f(x)",
        {r["case"] for r in ok} == {"ema", "ensembles"}
        and all(r["lhs_ok"] and r["values_ok"] for r in ok),
        "",
    )
    means = {c: [r["mean_y"] for r in ok if r["case"] == c] for c in ("ema", "ensembles")}
    if all(means.values()):
        a, e = means["ema"][0], means["ensembles"][0]
        tol = 0.4 / n**0.5
        b.check(
            f"mean of y, EMA vs ensembles (statistically equivalent: |diff| < {tol:.3f})",
            abs(a - e) < tol,
            f"{a:.4f} vs {e:.4f}; exact 7/6 = 1.1667",
        )


def _tables(b: _harness.Bench, n: int) -> None:
    b.tables.append(
        {
            "title": f"{n} Latin-hypercube scenarios of a model of about 20 ms, 2 processes",
            "cases": ["ema", "ensembles"],
            "columns": [
                {"metric": "cold_s", "label": "cold: imports, pool, first call (s)", "fmt": ".2f"},
                {"metric": "warm_s", "label": "warm: second call (s)", "fmt": ".2f"},
                {"metric": "peak_pss_mib", "label": "peak PSS of the tree (MiB)", "fmt": ".0f"},
            ],
            "ratios": [
                {
                    "metric": "cold_s",
                    "baseline": "ema",
                    "kind": "speedup",
                    "label": "cold: speed-up vs EMA",
                },
                {
                    "metric": "warm_s",
                    "baseline": "ema",
                    "kind": "speedup",
                    "label": "warm: speed-up vs EMA",
                },
            ],
        }
    )
    for kind in ("cold", "warm"):
        b.targets.append(
            {
                "label": f"{n} Latin-hypercube scenarios, {kind}: "
                "ensembles' speed-up over EMA Workbench",
                "case": "ensembles",
                "baseline": "ema",
                "metric": f"{kind}_s",
                "kind": "speedup",
                "op": ">=",
                "threshold": 1.0,
                "reason": "the driver loads xarray, pandas, dask.array and pint (about a "
                "second of CPU) to return a Dataset, while the members run on the same 2 "
                "cores, where EMA loads its own modules only"
                if kind == "cold"
                else "per-block pickling between the driver and the pool's workers",
            }
        )


if __name__ == "__main__":
    sys.exit(_harness.main("ema", __file__, __doc__, CANDIDATES, plan))
