"""What the peers benchmark (bench_peers.py) shows: its tables and the targets of issue 13.

The ``reason`` of a target is what the page prints when the target is not met; it names
the cost of the local default (a process pool whose driver builds an xarray Dataset and
a Zarr store) behind the figure.
"""

from __future__ import annotations

from typing import Any

PSS = {"metric": "peak_pss_mib", "label": "peak PSS of the tree (MiB)", "fmt": ".0f"}
COLD = {"metric": "cold_s", "label": "cold: imports, pool, first call (s)", "fmt": ".2f"}
REASON_TASKS = (
    "each block is a task on the pool (pickled to a worker, its result pickled back and "
    "copied into the block's arrays); joblib batches tiny calls more coarsely"
)
REASON_CPU = (
    "the members are the same 20 ms of work on both sides; what is left is the pool's "
    "per-block overhead and its driver's loading of xarray on 2 shared cores"
)
REASON_START = (
    "the driver loads zarr for a store and xarray (with pandas, dask.array and pint) to "
    "lay it out, before the first member runs; the pool's workers are forked from the "
    "driver in milliseconds"
)
REASON_MEMORY = (
    "the driver holds xarray, dask.array, pandas, scipy and zarr (about 130 MiB of PSS) to "
    "assemble the Dataset and write the store; forked workers share the driver's pages, "
    "fresh ones hold numpy and the simulation"
)


def _tiny(b: Any, n: int) -> None:
    cases = [
        "tiny-loop",
        "tiny-joblib",
        "tiny-pipefunc-dict",
        "tiny-ensembles",
        "tiny-pipefunc",
        "tiny-ensembles-zarr",
    ]
    b.tables.append(
        {
            "title": f"{n:,} tiny members (per-member overhead), 2 processes",
            "cases": cases,
            "columns": [
                {"metric": "warm_us_per_member", "label": "warm: per member (us)", "fmt": ".1f"},
                {"metric": "warm_s", "label": "warm: all members (s)", "fmt": ".3f"},
                COLD,
                PSS,
            ],
            "ratios": [
                {
                    "metric": "warm_s",
                    "baseline": "tiny-joblib",
                    "kind": "speedup",
                    "label": "warm: speed-up vs joblib",
                }
            ],
            "note": "The last two rows persist every result: pipefunc one file per member in "
            "its run folder, ensembles a Zarr store; the others keep results in memory.",
        }
    )
    b.targets.append(
        {
            "label": f"{n:,} tiny members, warm: ensembles `compute()` speed-up over joblib",
            "case": "tiny-ensembles",
            "baseline": "tiny-joblib",
            "metric": "warm_s",
            "kind": "speedup",
            "op": ">=",
            "threshold": 1.5,
            "reason": REASON_TASKS,
        }
    )


def _cpu(b: Any, n: int) -> None:
    cases = ["cpu-loop", "cpu-joblib", "cpu-pipefunc", "cpu-ensembles"]
    b.tables.append(
        {
            "title": f"{n} CPU-bound members of about 20 ms, 2 processes",
            "cases": cases,
            "columns": [{"metric": "warm_s", "label": "warm (s)", "fmt": ".2f"}, COLD, PSS],
            "ratios": [
                {
                    "metric": "warm_s",
                    "baseline": "cpu-loop",
                    "kind": "speedup",
                    "label": "warm: speed-up vs the loop",
                },
                {
                    "metric": "peak_pss_mib",
                    "baseline": "cpu-joblib",
                    "kind": "relative",
                    "label": "peak PSS / joblib's",
                },
            ],
        }
    )
    for peer in ("joblib", "pipefunc"):
        b.targets.append(
            {
                "label": f"{n} CPU-bound members, warm: ensembles' speed-up over {peer}",
                "case": "cpu-ensembles",
                "baseline": f"cpu-{peer}",
                "metric": "warm_s",
                "kind": "speedup",
                "op": ">=",
                "threshold": 1.0,
                "reason": REASON_CPU,
            }
        )
    b.targets.append(
        {
            "label": "peak PSS of the process tree, CPU-bound run: ensembles' / joblib's",
            "case": "cpu-ensembles",
            "baseline": "cpu-joblib",
            "metric": "peak_pss_mib",
            "kind": "relative",
            "op": "<=",
            "threshold": 1.5,
            "reason": REASON_MEMORY,
        }
    )


def _cold(b: Any) -> None:
    b.tables.append(
        {
            "title": "Cold start in a fresh process (tool imported, no pool or cluster yet), "
            "10 members",
            "cases": [
                "cold-joblib",
                "cold-pipefunc",
                "cold-ensembles",
                "cold-ensembles-zarr",
                "cli",
                "no-guard",
            ],
            "columns": [
                {
                    "metric": "first_member_s",
                    "label": "call to first member in a worker (s)",
                    "fmt": ".2f",
                },
                {"metric": "all_s", "label": "call to all done (s)", "fmt": ".2f"},
                {"metric": "wall_s", "label": "whole process (s)", "fmt": ".2f"},
                PSS,
            ],
            "ratios": [
                {
                    "metric": "first_member_s",
                    "baseline": "cold-joblib",
                    "kind": "relative",
                    "label": "first member: time / joblib's",
                }
            ],
            "note": "`ensembles run` and the script without a main guard (`to_zarr` at module "
            "level) are timed as whole commands (interpreter start, imports, the run, writing "
            "the store); the script is stopped after 60 s.",
        }
    )
    _cold_targets(b)


def _cold_targets(b: Any) -> None:
    b.targets.append(
        {
            "label": "a script calling `to_zarr` at module level, no main guard: works, or "
            "fails within 5 s (1 = yes)",
            "case": "no-guard",
            "metric": "works_or_fails_fast",
            "kind": "value",
            "op": ">=",
            "threshold": 1.0,
            "fmt": ".0f",
            "reason": "the embedded cluster starts worker processes by spawn, which re-run "
            "the script; the run hangs (stopped after 60 s)",
        }
    )
    for case, what in (("cold-ensembles", "compute()"), ("cold-ensembles-zarr", "to_zarr()")):
        b.targets.append(
            {
                "label": f"cold start: `{what}` to first member, time / joblib's",
                "case": case,
                "baseline": "cold-joblib",
                "metric": "first_member_s",
                "kind": "relative",
                "op": "<=",
                "threshold": 1.2,
                "reason": REASON_START,
            }
        )
    b.targets.append(
        {
            "label": "`ensembles run` of a 10-member spec, all told",
            "case": "cli",
            "metric": "wall_s",
            "kind": "value",
            "op": "<=",
            "threshold": 3.0,
            "unit": " s",
            "fmt": ".2f",
            "reason": REASON_START,
        }
    )


def peers_tables(b: Any, only: set[str], sizes: dict[str, int]) -> None:
    """Add the tables and targets of the parts that ran."""
    if "tiny" in only:
        _tiny(b, sizes["tiny"])
    if "cpu" in only:
        _cpu(b, sizes["cpu"])
    if "cold" in only:
        _cold(b)
