"""ensembles against a plain loop, joblib and pipefunc: overhead, speed-up, cold start, memory.

The same members through every tool (``_tools.py``: the very same functions, parameter
values and member seeds, so every tool must produce the same numbers):

* **tiny**: 20,000 members of a few microseconds (2,000 parameter values x 10 seeds):
  per-member overhead. pipefunc writes its ``file_array`` storage and ensembles a Zarr
  store in the persisted rows; joblib, the loop and ``compute()`` keep results in memory.
* **cpu**: 200 CPU-bound pure-Python members of about 20 ms (20 values x 10 seeds) on 2
  processes: speed-up over the plain loop, cold (imports, pool or cluster start, first
  call) and warm (the second call in the same process), and peak PSS of the process tree.
* **cold start**: from the call in a fresh process to the first member running in a
  worker process (ensembles ``compute()`` and ``to_zarr()``, joblib, pipefunc), and
  ``ensembles run`` of a 10-member spec, the whole command.

Each candidate is a fresh process; rounds interleave the tools. Run
``python benchmarks/bench_peers.py [--quick] [--busy] [--only tiny cpu cold]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

TOOLS = ("loop", "joblib", "pipefunc", "ensembles")


def throughput(*, tool, workload, xs, seeds, folder=None, storage="file_array"):
    """Build the tool's runner, run the members twice: cold and warm seconds, digest."""
    t0 = time.perf_counter()
    import _tools
    import numpy as np

    run = _tools.RUNNERS[tool](workload, xs, np.asarray(seeds), folder=folder, storage=storage)
    t1 = time.perf_counter()
    y = run()
    t2 = time.perf_counter()
    y = run()
    t3 = time.perf_counter()
    n = int(np.size(y))
    return {
        "cold_s": t2 - t0,
        "setup_s": t1 - t0,
        "warm_s": t3 - t2,
        "warm_us_per_member": (t3 - t2) / n * 1e6,
        "members": n,
        "digest": _tools.digest(y),
    }


def cold_start(*, tool, folder, members=10):
    """Seconds from the call to the first member running in another process, and in all.

    The tool is imported (and an ensemble built) before the clock starts: the figure is
    what calling it costs in a fresh process with no pool, cluster or client yet.
    """
    import _members
    import numpy as np

    me = os.getpid()
    if tool == "joblib":
        from joblib import Parallel, delayed

        t_call = time.time()
        stamps = Parallel(n_jobs=2)(delayed(_members.stamp_plain)(i) for i in range(members))
    elif tool == "pipefunc":
        from concurrent.futures import ProcessPoolExecutor

        from pipefunc import Pipeline, pipefunc

        pipeline = Pipeline(
            [pipefunc(output_name="s", mapspec="i[n] -> s[n]")(_members.stamp_plain)]
        )
        t_call = time.time()
        with ProcessPoolExecutor(2) as ex:
            res = pipeline.map(
                {"i": np.arange(members)}, run_folder=folder, executor=ex, show_progress=False
            )
        stamps = list(res["s"].output)
    else:
        import ensembles as ens

        e = ens.Ensemble(_members.stamp, ens.Grid(x=np.arange(float(members))), seeds=1)
        t_call = time.time()
        if tool == "ensembles-zarr":
            ds = e.to_zarr(folder, progress=False)
        else:
            ds = e.compute(progress=False)
        stamps = list(
            zip(ds["t"].values.ravel(), ds["pid"].values.ravel().astype(int), strict=True)
        )
    done = time.time()
    in_workers = [t for t, pid in stamps if pid != me]
    return {
        "first_member_s": min(in_workers) - t_call if in_workers else None,
        "all_s": done - t_call,
        "in_workers": len(in_workers),
    }


CANDIDATES = {"throughput": throughput, "cold": cold_start}

SPEC = """\
[simulation]
function = "_members:tiny"
[design.grid]
x = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
[run]
seeds = 1
root_seed = 1
"""


NO_GUARD = """\
import numpy as np
import ensembles as ens
import _members
e = ens.Ensemble(_members.tiny, ens.Grid(x=np.arange(10.0)), seeds=1, root_seed=1)
e.to_zarr({path!r}, progress=False)
print("done")
"""


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("ensembles")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ensembles.cli"]


def plan_throughput(b: _harness.Bench, workload: str, n_members: int, rounds: int) -> None:
    import _tools

    xs, n_seeds = _tools.design(n_members)
    seeds = _tools.member_seeds(workload, xs, n_seeds).tolist()
    common = {"workload": workload, "xs": xs.tolist(), "seeds": seeds}
    cases = {f"{workload}-{t}": ("throughput", {**common, "tool": t}) for t in TOOLS}
    if workload == "tiny":  # persisted results: pipefunc's file storage, ensembles' Zarr
        cases[f"{workload}-pipefunc"][1]["folder"] = str(b.tmp / "pf-tiny")
        cases[f"{workload}-ensembles-zarr"] = (
            "throughput",
            {**common, "tool": "ensembles", "folder": str(b.tmp / "tiny.zarr")},
        )
        cases[f"{workload}-pipefunc-dict"] = (
            "throughput",
            {**common, "tool": "pipefunc", "storage": "dict", "folder": None},
        )
    else:
        cases[f"{workload}-pipefunc"][1]["folder"] = str(b.tmp / "pf-cpu")
    b.rounds(cases, rounds)
    digests = {r.get("digest") for r in b.runs if r["case"] in cases}
    b.check(
        f"{workload}: every tool's results, member for member",
        len(digests) == 1,
        "identical" if len(digests) == 1 else f"{len(digests)} different results",
    )


def plan_cold(b: _harness.Bench, rounds: int) -> None:
    spec = b.tmp / "ten.toml"
    spec.write_text(SPEC)
    for rnd in range(rounds):
        for tool in ("joblib", "pipefunc", "ensembles", "ensembles-zarr"):
            folder = str(b.tmp / f"cold-{tool}-{rnd}")
            b.run(f"cold-{tool}", "cold", {"tool": tool, "folder": folder}, rnd)
        out = b.tmp / f"cli-{rnd}.zarr"
        b.run_argv("cli", [*_cli(), "run", str(spec), "-o", str(out), "-q"], rnd)
        script = b.tmp / f"no_guard_{rnd}.py"  # to_zarr at module level, no main guard
        script.write_text(NO_GUARD.format(path=str(b.tmp / f"guard-{rnd}.zarr")))
        rec = b.run_argv("no-guard", [sys.executable, str(script)], rnd, may_fail=True, timeout=60)
        rec["works_or_fails_fast"] = float(rec["rc"] == 0 or rec["wall_s"] <= 5.0)
    ok = [r for r in b.runs if r["case"].startswith("cold-") and r["rc"] == 0]
    b.check(
        "cold start: members ran in worker processes",
        all(r.get("in_workers", 0) >= 1 for r in ok),
        "members in workers: "
        + ", ".join(f"{r['case']} {r.get('in_workers')}" for r in ok if r["round"] == 0),
    )


def plan(b: _harness.Bench) -> None:
    only = set(b.args.only or ("tiny", "cpu", "cold"))
    rounds = b.args.rounds or (1 if b.quick else 3)
    sizes = {"tiny": 400 if b.quick else 20_000, "cpu": 20 if b.quick else 200}
    b.params = {"members": sizes, "processes": 2, "cpu_member_iterations": 260_000}
    labels = {
        "loop": "plain loop (1 process)",
        "joblib": "joblib `Parallel(n_jobs=2)`",
        "pipefunc": "pipefunc `map`, 2-process pool, `file_array` storage",
        "pipefunc-dict": "pipefunc `map`, 2-process pool, `dict` storage",
        "ensembles": "ensembles `compute()`",
        "ensembles-zarr": "ensembles `to_zarr()`",
    }
    for w in ("tiny", "cpu"):
        b.labels.update({f"{w}-{k}": v for k, v in labels.items()})
    b.labels.update({f"cold-{k}": v for k, v in labels.items()})
    b.labels["cli"] = "`ensembles run` of a 10-member spec, whole command"
    b.labels["no-guard"] = "a script calling `to_zarr` at module level, no main guard"
    for w in ("tiny", "cpu"):
        if w in only:
            plan_throughput(b, w, sizes[w], rounds)
    if "cold" in only:
        plan_cold(b, rounds)
    from _peers_tables import peers_tables

    peers_tables(b, only, sizes)


def _extra(p) -> None:
    p.add_argument("--only", nargs="+", choices=("tiny", "cpu", "cold"), help="some parts")


if __name__ == "__main__":
    sys.exit(_harness.main("peers", __file__, __doc__, CANDIDATES, plan, extra=_extra))
