"""Crash, then finish: each tool's run is SIGKILLed midway and started again.

The work is 200 CPU-bound members of about 20 ms (``_members.cpu_logged``: each member
appends a line to a log when it is done, so the harness kills the whole process tree as
soon as half of them are done, and the restarted run counts what it recomputes). Per
round and tool, three fresh processes: an uninterrupted run (its own folder), a run
killed midway, and the restart in the killed run's folder. What each tool does on restart:

* ensembles: ``to_zarr(path, mode="resume")`` runs only the members the store lacks;
* pipefunc: ``pipeline.map(..., resume=True)`` with its ``file_array`` storage reuses the
  outputs already written;
* joblib: nothing by itself; the usual way is ``joblib.Memory``, whose on-disk cache
  returns the calls already made (used here);
* the plain loop: nothing; it starts over.

Run ``python benchmarks/bench_resume.py [--quick] [--busy]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

TOOLS = ("loop", "joblib", "pipefunc", "ensembles")


def _count(log: str) -> int:
    try:
        with open(log, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def restartable(*, tool, xs, seeds, folder, log, resume=False):
    """Run every member through ``tool`` with on-disk results in ``folder`` (restartable)."""
    import _tools
    import numpy as np

    os.environ["BENCH_MEMBER_LOG"] = log
    kw = {"cache": folder} if tool == "joblib" else {"folder": folder, "resume": resume}
    if tool == "ensembles":
        kw["folder"] = str(Path(folder) / "run.zarr")
    run = _tools.RUNNERS[tool]("cpu_logged", xs, np.asarray(seeds), **kw)
    before = _count(log)
    start = time.perf_counter()
    y = run()
    elapsed = time.perf_counter() - start
    return {"run_s": elapsed, "recomputed": _count(log) - before, "digest": _tools.digest(y)}


CANDIDATES = {"restartable": restartable}


def one_round(b: _harness.Bench, rnd: int, common: dict, members: int) -> None:
    for tool in TOOLS:
        base = b.tmp / f"{tool}-{rnd}"
        logs = {k: str(b.tmp / f"{tool}-{rnd}-{k}.log") for k in ("full", "crash")}
        full = {**common, "tool": tool, "folder": str(base / "full"), "log": logs["full"]}
        b.run(f"full-{tool}", "restartable", full, rnd)
        crash = {**common, "tool": tool, "folder": str(base / "crash"), "log": logs["crash"]}
        half = members // 2
        rec = b.run(
            f"crash-{tool}",
            "restartable",
            crash,
            rnd,
            kill_when=lambda log=logs["crash"], half=half: _count(log) >= half,
        )
        rec["done_at_kill"] = _count(logs["crash"])
        b.run(f"resume-{tool}", "restartable", {**crash, "resume": True}, rnd)


def plan(b: _harness.Bench) -> None:
    import _tools

    members = 40 if b.quick else 200
    rounds = b.args.rounds or (1 if b.quick else 3)
    xs, n_seeds = _tools.design(members)
    seeds = _tools.member_seeds("cpu", xs, n_seeds).tolist()
    b.params = {"members": members, "processes": 2, "kill_when_done": members // 2}
    common = {"xs": xs.tolist(), "seeds": seeds}
    names = {
        "loop": ("plain loop", "starts over"),
        "joblib": ("joblib", "`joblib.Memory` cache"),
        "pipefunc": ("pipefunc `map`, `file_array`", "`map(resume=True)`"),
        "ensembles": ("ensembles `to_zarr()`", '`to_zarr(mode="resume")`'),
    }
    for tool, (name, how) in names.items():
        b.labels[f"full-{tool}"] = name
        b.labels[f"crash-{tool}"] = f"{name}, killed midway"
        b.labels[f"resume-{tool}"] = f"{name}: restart, {how}"
    for rnd in range(rounds):
        one_round(b, rnd, common, members)
    finals = {r.get("digest") for r in b.runs if r["case"].split("-")[0] in ("full", "resume")}
    b.check(
        "results after crash and restart equal the uninterrupted run's, every tool",
        len(finals) == 1,
        "identical" if len(finals) == 1 else f"{len(finals)} results",
    )
    killed = [r for r in b.runs if r["case"].startswith("crash-")]
    b.check(
        "every crash run was killed midway",
        all(r.get("killed") and 0 < r["done_at_kill"] < members for r in killed),
        "",
    )
    _tables(b, members)


def _tables(b: _harness.Bench, members: int) -> None:
    resumes = [f"resume-{t}" for t in TOOLS]
    b.tables.append(
        {
            "title": f"Restart after a SIGKILL at half of {members} CPU-bound members of about "
            "20 ms, 2 processes",
            "cases": resumes,
            "columns": [
                {"metric": "recomputed", "label": "members recomputed", "fmt": ".0f"},
                {"metric": "run_s", "label": "restart: the call (s)", "fmt": ".2f"},
                {"metric": "wall_s", "label": "restart: whole process (s)", "fmt": ".2f"},
            ],
            "ratios": [
                {
                    "metric": "run_s",
                    "kind": "relative",
                    "label": "call: time / an uninterrupted run's",
                    "baseline": {f"resume-{t}": f"full-{t}" for t in TOOLS},
                }
            ],
            "note": "The crashed run's members done when it was killed are in the raw results "
            "(`done_at_kill`); a member in flight at the kill is lost by every tool.",
        }
    )
    b.tables.append(
        {
            "title": "Uninterrupted runs (fresh process each)",
            "cases": [f"full-{t}" for t in TOOLS],
            "columns": [
                {"metric": "run_s", "label": "the call (s)", "fmt": ".2f"},
                {"metric": "wall_s", "label": "whole process (s)", "fmt": ".2f"},
            ],
        }
    )
    for peer in ("joblib", "pipefunc"):
        b.targets.append(
            {
                "label": f"restart after a crash, the call: ensembles' speed-up over {peer}",
                "case": "resume-ensembles",
                "baseline": f"resume-{peer}",
                "metric": "run_s",
                "kind": "speedup",
                "op": ">=",
                "threshold": 1.0,
                "reason": "in a fresh process to_zarr lays out its store with xarray "
                "after probing two members: its workers wait while xarray, pandas, "
                "dask.array and pint load (a second and more here); joblib's cache needs "
                "none of it",
            }
        )


if __name__ == "__main__":
    sys.exit(_harness.main("resume", __file__, __doc__, CANDIDATES, plan))
