"""Scale benchmark: a million tiny members through ``Ensemble.to_zarr`` on dask.distributed.

For each member count, in a fresh process (so peak memory is that run's alone), it measures

* graph build: ``Ensemble.to_dataset()`` of a declared simulation (nothing runs);
* submit: time from the call to ``to_zarr`` until every task has been handed to dask, the
  time spent inside ``Client.submit``, the number of tasks and the most tasks ever live;
* the whole ``to_zarr`` run (planning, template, running every member, writing the store);
* the client process's peak resident memory (``ru_maxrss``).

The cluster is either a real ``dask scheduler`` + ``dask worker`` pair started as
subprocesses on 127.0.0.1 (``remote``: the client process holds only the client) or the
embedded default (``embedded``: scheduler and client share the process).

Usage::

    python benchmarks/bench_scale.py                     # 100k and 1M, remote, auto batch
    python benchmarks/bench_scale.py --sizes 100000 --modes remote embedded \\
        --batch-sizes 0 1000 --write docs/benchmarks_scale.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# the repository root, for tests._cluster: the real-cluster helper the tests use too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._cluster import REPO, RealCluster, start_cluster, stop_cluster


def _tiny_simulation():
    from ensembles.simulations.contract import Output, simulation

    @simulation(outputs={"y": Output(dims=(), shape=(), dtype="float64")}, name="bench:tiny")
    def tiny(*, seed, a):
        return {"y": a + (seed % 7)}

    return tiny


def _ensemble(n_members: int, batch_size: int | None):
    import ensembles as ens

    seeds = 10
    design = ens.Grid(a=np.arange(n_members // seeds, dtype=np.float64))
    return ens.Ensemble(
        _tiny_simulation(), design, seeds=seeds, root_seed=1, batch_size=batch_size
    )


def measure(n_members: int, mode: str, batch_size: int | None, n_workers: int) -> dict:
    """One run, in this process; returns the measurements."""
    import distributed

    stats = {"submit_calls": 0, "submit_seconds": 0.0, "last_submit": 0.0, "live_max": 0}
    live: set = set()
    original_submit = distributed.Client.submit

    def timed_submit(self, *args, **kwargs):
        start = time.perf_counter()
        fut = original_submit(self, *args, **kwargs)
        now = time.perf_counter()
        stats["submit_seconds"] += now - start
        stats["submit_calls"] += 1
        stats["last_submit"] = now
        live.add(fut.key)
        live.difference_update([k for k in list(live) if k not in self.futures])
        stats["live_max"] = max(stats["live_max"], len(live))
        return fut

    distributed.Client.submit = timed_submit  # type: ignore[method-assign]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    cluster: RealCluster | None = None
    try:
        e = _ensemble(n_members, batch_size)
        t0 = time.perf_counter()
        lazy = e.to_dataset(batch_size=batch_size)
        build = time.perf_counter() - t0
        n_graph_tasks = len(lazy["y"].data.__dask_graph__())
        del lazy
        if mode == "remote":
            cluster = start_cluster(tmp, n_workers=n_workers, dashboard=False)
            client = distributed.Client(cluster.address, set_as_default=False)
            client.wait_for_workers(n_workers, timeout=60)
            scheduler = client
        else:
            from ensembles.execution.submit import default_client

            client = default_client(processes=True, n_workers=n_workers)
            scheduler = client
        # warm the workers (imports), so the timing is ensembles' and not Python's startup
        client.run(__import__, "ensembles.ensemble")
        start = time.perf_counter()
        ds = e.to_zarr(tmp / "run.zarr", scheduler=scheduler, progress=False)
        total = time.perf_counter() - start
        status = ds["status"].values
        assert (status == 1).all(), "not every member ran"
        n_tasks = stats["submit_calls"] - 1  # minus the task that loads the shared object
        client.close()
    finally:
        distributed.Client.submit = original_submit  # type: ignore[method-assign]
        if cluster is not None:
            stop_cluster(cluster)
        shutil.rmtree(tmp, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "members": n_members,
        "mode": mode,
        "batch_size": batch_size or "auto",
        "build_s": build,
        "graph_tasks": n_graph_tasks,
        "tasks": n_tasks,
        "live_max": stats["live_max"],
        "submit_done_s": stats["last_submit"] - start,
        "submit_call_s": stats["submit_seconds"],
        "total_s": total,
        "peak_rss_mib": rss / 2**20,
    }


def run_child(args: argparse.Namespace, n: int, mode: str, batch: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(n),
        mode,
        str(batch),
        "--workers",
        str(args.workers),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    if out.returncode != 0:
        msg = f"benchmark child failed ({' '.join(cmd)}):\n{out.stderr[-4000:]}"
        raise RuntimeError(msg)
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = (
        "| members | cluster | batch | tasks | max live | graph build | all submitted "
        "| in submit() | whole run | client peak RSS |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['members']:,} | {r['mode']} | {r['batch_size']} | {r['tasks']:,} | "
        f"{r['live_max']} | {r['build_s'] * 1e3:.0f} ms | {r['submit_done_s']:.2f} s | "
        f"{r['submit_call_s']:.2f} s | {r['total_s']:.2f} s | {r['peak_rss_mib']:.0f} MiB |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--modes", nargs="+", default=["remote"], choices=["remote", "embedded"])
    p.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[0], help="0: ensembles' automatic choice"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--write", metavar="MD", help="write the table to this Markdown file")
    p.add_argument("--child", nargs=3, metavar=("N", "MODE", "BATCH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        n, mode, batch = int(args.child[0]), args.child[1], int(args.child[2])
        print(json.dumps(measure(n, mode, batch or None, args.workers)))
        return 0
    rows = []
    for mode in args.modes:
        for batch in args.batch_sizes:
            for n in args.sizes:
                row = run_child(args, n, mode, batch)
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
    text = table(rows)
    print(text)
    if args.write:
        command = "python benchmarks/bench_scale.py " + " ".join(argv or sys.argv[1:])
        _write_markdown(Path(args.write), text, command, args.workers)
    return 0


def _write_markdown(path: Path, text: str, command: str, workers: int) -> None:
    import dask
    import distributed

    import ensembles

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    path.write_text(
        "# Scale benchmark: a million tiny members\n\n"
        f"Measured {now} on {platform.machine()} Linux, {cpus} cores, Python "
        f"{platform.python_version()}, dask/distributed {dask.__version__}/"
        f"{distributed.__version__}, ensembles {ensembles.__version__}; {workers} "
        "single-threaded workers.\n\n"
        f"```\n{command}\n```\n\n"
        "Each row is a fresh process running `Ensemble(tiny, Grid(a=...), seeds=10)"
        ".to_zarr(...)` of a declared tiny simulation (one float64 per member). *graph "
        "build* is `to_dataset()` (the lazy graph, nothing runs); *all submitted* is the time "
        "from calling `to_zarr` until the last task was handed to dask (with waves, "
        "submission ends close to the end of the run); *in submit()* is the time spent "
        "inside `Client.submit`; *whole run* includes planning, creating the store, running "
        "every member and writing it; *max live* is the most tasks submitted and not yet "
        "finished at once, counting the future that holds the run's shared state and one "
        "finished task not yet released (`run_tasks` keeps at most `max_in_flight` = 4 per "
        "worker thread, at least 8, block tasks live). *Client peak RSS* is `ru_maxrss` of "
        "the process that called `to_zarr`; "
        "with the `embedded` cluster it also holds the dask scheduler.\n\n"
        f"{text}\n"
        "Targets (issue 5): both sizes grow no faster than linearly; 1,000,000 members "
        "submitted in under 60 s; client memory under 2 GiB.\n"
    )


if __name__ == "__main__":
    sys.exit(main())
