"""The ensemble envelope from Zarr: ``.ens.envelope`` against xarray, xclim and NumPy.

A synthetic ensemble store like the engine's (``M(sample, seed, sweep)``, 1,000 samples x
10 seeds x 1,000 steps float64, Blosc-LZ4, 1 % failed members as NaN with a ``status``
coordinate) is reduced to the mean and the 2.5 % and 97.5 % quantiles over the members by

* ensembles: ``ds["M"].ens.envelope(over=("sample", "seed"))``;
* xarray: ``mean`` + ``quantile`` on dask, the member dims in one chunk;
* xclim: ``ensemble_percentiles`` + ``ensemble_mean_std_max_min`` over the members stacked
  into its ``realization`` dim (one chunk);
* NumPy (warm only, the reference): ``numpy.quantile`` + ``mean`` of the ok members
  already in memory.

Every run is a fresh process. *Warm*: open the store, compute once, then time three more
computes (their median). *Fresh*: the whole process (interpreter, imports, open, one
compute). *Memory*: the same fresh process on a 10x larger store (100,000 members, the
engine's layout: 1,000 members x 250-step chunks), peak PSS of the process tree. Every
tool's mean and quantiles must equal ensembles' (to 1e-9).

Run ``python benchmarks/bench_envelope.py [--quick] [--busy] [--no-large]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

OVER = ("sample", "seed")
Q = (0.025, 0.975)


def make_store(path: str, members: int, steps: int, chunk_members: int, chunk_steps: int):
    """Write the synthetic ensemble store (1 % of members failed, NaN)."""
    import dask.array as da
    import numpy as np
    import xarray as xr
    from zarr.codecs import BloscCodec

    seeds, samples = 10, members // 10
    cs = max(1, chunk_members // seeds)
    rng = np.random.default_rng(0)
    status = np.where(rng.random((samples, seeds)) < 0.01, 2, 1).astype(np.int8)
    values = da.random.default_rng(1).normal(
        1.0, size=(samples, seeds, steps), chunks=(cs, seeds, chunk_steps)
    )
    ok = da.from_array(status == 1, chunks=(cs, seeds))[..., None]
    ds = xr.Dataset(
        {"M": (("sample", "seed", "sweep"), da.where(ok, values, np.nan))},
        coords={
            "sample": np.arange(samples),
            "seed": np.arange(seeds),
            "sweep": np.arange(steps) * 10,
            "status": (("sample", "seed"), status),
        },
    )
    enc = {
        "M": {
            "chunks": (cs, seeds, chunk_steps),
            "compressors": [BloscCodec(cname="lz4", shuffle="shuffle")],
        }
    }
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=enc)


def _reducer(tool: str, ds):
    """A function computing (mean, lower, upper) over the members with ``tool``."""
    import numpy as np
    import xarray as xr

    if tool == "ensembles":
        import ensembles  # noqa: F401  (registers the .ens accessor)

        def run():
            band = ds["M"].ens.envelope(over=OVER, q=Q).compute()
            return band["mean"].values, band["lower"].values, band["upper"].values

    elif tool == "xarray":

        def run():
            m = ds["M"].where(ds["status"] == 1).chunk(sample=-1, seed=-1)
            out = xr.Dataset({"mean": m.mean(OVER), "q": m.quantile(list(Q), dim=OVER)})
            out = out.compute()
            return out["mean"].values, *out["q"].values

    elif tool == "xclim":
        from xclim import ensembles as xe

        def run():
            m = ds["M"].where(ds["status"] == 1).stack(realization=OVER)
            m = m.drop_vars(["realization", "sample", "seed"]).chunk(realization=-1)
            pct = xe.ensemble_percentiles(
                m.to_dataset(name="M"), values=[2.5, 97.5], split=False
            ).compute()
            stats = xe.ensemble_mean_std_max_min(m.to_dataset(name="M")).compute()
            return stats["M_mean"].values, *pct["M"].transpose("percentiles", ...).values

    else:  # numpy, in memory: the ok members loaded once, outside the timing
        flat = ds["M"].values.reshape(-1, ds.sizes["sweep"])
        ok = flat[(ds["status"].values == 1).ravel()]

        def run():
            lower, upper = np.quantile(ok, Q, axis=0)
            return ok.mean(axis=0), lower, upper

    return run


def envelope(*, tool, path, mode, out=None, repeats=3):
    """Open the store and compute the envelope (``fresh``: once; ``warm``: 1 + repeats)."""
    t0 = time.perf_counter()
    import statistics

    import numpy as np
    import xarray as xr

    ds = xr.open_zarr(path, consolidated=False)
    run = _reducer(tool, ds)
    result = run()
    first = time.perf_counter() - t0
    if out:
        np.savez(out, mean=result[0], lower=result[1], upper=result[2])
    record = {"first_s": first, "nbytes": int(ds["M"].nbytes)}
    if mode == "warm":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        record["warm_s"] = statistics.median(times)
    return record


CANDIDATES = {"envelope": envelope}

TOOLS = ("ensembles", "xarray", "xclim")
LABELS = {
    "ensembles": "ensembles `.ens.envelope`",
    "xarray": "xarray `mean` + `quantile` (dask, members in one chunk)",
    "xclim": "xclim `ensemble_percentiles` + `ensemble_mean_std_max_min`",
    "numpy": "NumPy `quantile` + `mean`, ok members already in memory",
}


def _compare(b: _harness.Bench, results: dict[str, Path]) -> None:
    import numpy as np

    ref = np.load(results["ensembles"])
    for tool, path in results.items():
        if tool == "ensembles" or not path.exists():
            continue
        got = np.load(path)
        same = all(np.allclose(got[k], ref[k], rtol=1e-9, atol=1e-12) for k in ref.files)
        worst = max(float(np.max(np.abs(got[k] - ref[k]))) for k in ref.files)
        b.check(
            f"{tool}: mean and quantiles equal ensembles'", same, f"largest difference {worst:.1e}"
        )


def plan(b: _harness.Bench) -> None:
    members, steps = (2_000, 100) if b.quick else (10_000, 1_000)
    rounds = b.args.rounds or (1 if b.quick else 3)
    small, large = str(b.tmp / "small.zarr"), str(b.tmp / "large.zarr")
    make_store(small, members, steps, chunk_members=100, chunk_steps=steps)
    b.params = {
        "members": members,
        "steps": steps,
        "large_members": 10 * members,
        "q": list(Q),
        "failed_fraction": 0.01,
    }
    for mode in ("warm", "fresh", "memory"):
        b.labels.update({f"{mode}-{t}": v for t, v in LABELS.items()})
    outs = {t: b.tmp / f"{t}.npz" for t in (*TOOLS, "numpy")}
    cases = {
        f"warm-{t}": ("envelope", {"tool": t, "path": small, "mode": "warm", "out": str(outs[t])})
        for t in (*TOOLS, "numpy")
    }
    cases.update(
        {f"fresh-{t}": ("envelope", {"tool": t, "path": small, "mode": "fresh"}) for t in TOOLS}
    )
    b.rounds(cases, rounds)
    _compare(b, outs)
    if not b.args.no_large:
        make_store(large, 10 * members, steps, chunk_members=1000, chunk_steps=max(1, steps // 4))
        b.rounds(
            {
                f"memory-{t}": ("envelope", {"tool": t, "path": large, "mode": "fresh"})
                for t in TOOLS
            },
            rounds,
        )
    _tables(b, members, steps)


def _tables(b: _harness.Bench, members: int, steps: int) -> None:
    size = (
        f"{members:,} members x {steps:,} steps float64 ({members * steps * 8 / 2**20:,.0f} MiB)"
    )
    b.tables.append(
        {
            "title": f"Warm: {size}, median of three computes per process",
            "cases": [f"warm-{t}" for t in (*TOOLS, "numpy")],
            "columns": [{"metric": "warm_s", "label": "envelope (s)", "fmt": ".3f"}],
            "ratios": [
                {
                    "metric": "warm_s",
                    "baseline": "warm-ensembles",
                    "kind": "relative",
                    "label": "time / ensembles'",
                }
            ],
        }
    )
    b.tables.append(
        {
            "title": f"Fresh process: {size}: interpreter, imports, open, one envelope",
            "cases": [f"fresh-{t}" for t in TOOLS],
            "columns": [
                {"metric": "wall_s", "label": "whole process (s)", "fmt": ".2f"},
                {"metric": "peak_pss_mib", "label": "peak PSS (MiB)", "fmt": ".0f"},
            ],
            "ratios": [
                {
                    "metric": "wall_s",
                    "baseline": "fresh-ensembles",
                    "kind": "relative",
                    "label": "time / ensembles'",
                }
            ],
        }
    )
    _memory_table(b, members, steps)


def _memory_table(b: _harness.Bench, members: int, steps: int) -> None:
    if not b.args.no_large:
        big = 10 * members * steps * 8 / 2**20
        b.tables.append(
            {
                "title": f"Memory: {10 * members:,} members x {steps:,} steps ({big:,.0f} MiB), "
                "the engine's chunk layout, fresh process",
                "cases": [f"memory-{t}" for t in TOOLS],
                "columns": [
                    {"metric": "wall_s", "label": "whole process (s)", "fmt": ".2f"},
                    {"metric": "peak_pss_mib", "label": "peak PSS (MiB)", "fmt": ".0f"},
                    {
                        "metric": "peak_pss_mib",
                        "label": "peak PSS / array size",
                        "fmt": ".2f",
                        "scale": 1 / big,
                    },
                ],
                "ratios": [
                    {
                        "metric": "peak_pss_mib",
                        "baseline": "memory-ensembles",
                        "kind": "relative",
                        "label": "peak PSS / ensembles'",
                    }
                ],
            }
        )
    _targets(b)


WHAT = {"warm": "time", "fresh": "time", "memory": "peak PSS"}
REASONS = {
    "warm": "the engine sorts each block of columns with NumPy; a tool with a faster "
    "quantile kernel for this shape wins",
    "fresh": "importing ensembles' analysis stack costs more than the peer's import and compile",
    "memory": "each block of columns holds every member; the store's chunking decides "
    "how many blocks are in memory at once",
}


def _targets(b: _harness.Bench) -> None:
    for t in ("xarray", "xclim"):
        for mode in ("warm", "fresh") + (() if b.args.no_large else ("memory",)):
            metric = {"warm": "warm_s", "fresh": "wall_s", "memory": "peak_pss_mib"}[mode]
            b.targets.append(
                {
                    "label": f"envelope, {mode}: {t}'s {WHAT[mode]} / ensembles'",
                    "case": f"{mode}-ensembles",
                    "baseline": f"{mode}-{t}",
                    "metric": metric,
                    "kind": "speedup",
                    "op": ">=",
                    "threshold": 1.0,
                    "reason": REASONS[mode],
                }
            )
    b.targets.append(
        {
            "label": "envelope, warm: ensembles from Zarr, time / NumPy's in memory",
            "case": "warm-ensembles",
            "baseline": "warm-numpy",
            "metric": "warm_s",
            "kind": "relative",
            "op": "<=",
            "threshold": 3.0,
            "reason": "reading and decompressing the store dominates",
        }
    )
    b.targets.append(
        {
            "label": "envelope in a fresh process (import, open, compute)",
            "case": "fresh-ensembles",
            "metric": "wall_s",
            "kind": "value",
            "op": "<",
            "threshold": 6.0,
            "unit": " s",
            "fmt": ".2f",
            "reason": "imports on a busy machine",
        }
    )


def _extra(p) -> None:
    p.add_argument("--no-large", action="store_true", help="skip the 10x larger store")


if __name__ == "__main__":
    sys.exit(_harness.main("envelope", __file__, __doc__, CANDIDATES, plan, extra=_extra))
