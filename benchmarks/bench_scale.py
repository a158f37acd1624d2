"""Scale benchmark: a million tiny members through ``Ensemble.to_zarr`` on dask.distributed.

For each member count, mode and batch size, in a fresh process (so peak memory is that
run's alone), it measures

* graph build: ``Ensemble.to_dataset()`` of a declared simulation (nothing runs);
* submit: time from the call to ``to_zarr`` until every task has been handed to dask, the
  time spent inside ``distributed.Client.submit``, the number of tasks and the most tasks
  ever live (n/a when the run does not go through a ``distributed.Client``);
* the whole ``to_zarr`` run (planning, template, running every member, writing the store);
* the client process's peak resident memory (``ru_maxrss``), and the harness's peak PSS of
  the whole process tree.

The cluster is either a real ``dask scheduler`` + ``dask worker`` pair started as
subprocesses on 127.0.0.1 (``remote``: the client process holds only the client) or the
embedded default (``embedded``: whatever ``to_zarr`` starts by itself, warmed up by a small
run first).

Run ``python benchmarks/bench_scale.py [--quick] [--busy] [--sizes N ...] [--modes ...]
[--batch-sizes 0 1000]`` (batch size 0: ensembles' automatic choice).
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# the repository root, for tests._cluster: the real-cluster helper the tests use too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests._cluster import RealCluster, start_cluster, stop_cluster


def _tiny_simulation():
    import ensembles as ens

    @ens.simulation(
        outputs={"y": ens.Output(dims=(), shape=(), dtype="float64")}, name="bench:tiny"
    )
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
            # warm the workers (imports), so the timing is ensembles', not Python's startup
            client.run(__import__, "ensembles")
        else:  # the embedded default, started and warmed by a small run
            client, scheduler = None, None
            _ensemble(1000, None).to_zarr(tmp / "warm.zarr", progress=False, workers=n_workers)
            stats.update(submit_calls=0, submit_seconds=0.0, last_submit=0.0, live_max=0)
        start = time.perf_counter()
        ds = e.to_zarr(tmp / "run.zarr", scheduler=scheduler, progress=False, workers=n_workers)
        total = time.perf_counter() - start
        status = ds["status"].values
        assert (status == 1).all(), "not every member ran"
        n_tasks = stats["submit_calls"] - 1  # minus the task that loads the shared object
        if client is not None:
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
        "tasks": n_tasks if n_tasks > 0 else None,
        "live_max": stats["live_max"] or None,
        "submit_done_s": stats["last_submit"] - start if n_tasks > 0 else None,
        "submit_call_s": stats["submit_seconds"] if n_tasks > 0 else None,
        "total_s": total,
        "peak_rss_mib": rss / 2**20,
    }


CANDIDATES = {"scale": measure}


def plan(b) -> None:
    a = b.args
    sizes = a.sizes or ([2_000, 20_000] if b.quick else [100_000, 1_000_000])
    modes = a.modes or (["embedded"] if b.quick else ["remote", "embedded"])
    batches = a.batch_sizes or ([0] if b.quick else [0, 1000])
    rounds = a.rounds or (1 if b.quick else 2)
    b.params = {"sizes": sizes, "modes": modes, "batch_sizes": batches, "workers": a.workers}
    cases = {}
    for mode in modes:
        for batch in batches:
            for n in sizes:
                case = f"{mode}-{batch or 'auto'}-{n}"
                b.labels[case] = f"{n:,} members, {mode}, batch {batch or 'auto'}"
                params = {
                    "n_members": n,
                    "mode": mode,
                    "batch_size": batch or None,
                    "n_workers": a.workers,
                }
                cases[case] = ("scale", params)
    b.rounds(cases, rounds)
    b.tables.append(
        {
            "title": "Tiny members through `to_zarr`, one fresh process per run",
            "cases": list(cases),
            "columns": [
                {"metric": "tasks", "label": "tasks", "fmt": ".0f"},
                {"metric": "live_max", "label": "max live", "fmt": ".0f"},
                {"metric": "build_s", "label": "graph build (ms)", "fmt": ".0f", "scale": 1e3},
                {"metric": "submit_done_s", "label": "all submitted (s)", "fmt": ".2f"},
                {"metric": "submit_call_s", "label": "in submit() (s)", "fmt": ".2f"},
                {"metric": "total_s", "label": "whole run (s)", "fmt": ".2f"},
                {"metric": "peak_rss_mib", "label": "client peak RSS (MiB)", "fmt": ".0f"},
                {"metric": "peak_pss_mib", "label": "process tree peak PSS (MiB)", "fmt": ".0f"},
            ],
        }
    )
    _targets(b, sizes, modes)


def _targets(b, sizes, modes) -> None:
    big = max(sizes)
    for mode in modes:
        b.targets.append(
            {
                "label": f"{big:,} members, {mode}, automatic batch: whole run",
                "case": f"{mode}-auto-{big}",
                "metric": "total_s",
                "kind": "value",
                "op": "<",
                "threshold": 60.0,
                "unit": " s",
                "fmt": ".1f",
                "reason": "see the table",
            }
        )
        b.targets.append(
            {
                "label": f"{big:,} members, {mode}, automatic batch: client memory",
                "case": f"{mode}-auto-{big}",
                "metric": "peak_rss_mib",
                "kind": "value",
                "op": "<",
                "threshold": 2048,
                "unit": " MiB",
                "fmt": ".0f",
                "reason": "per-member bookkeeping in the client",
            }
        )


def _extra(p) -> None:
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--modes", nargs="+", choices=["remote", "embedded"])
    p.add_argument("--batch-sizes", type=int, nargs="+", help="0: ensembles' automatic choice")
    p.add_argument("--workers", type=int, default=2)


if __name__ == "__main__":
    import _harness

    sys.exit(_harness.main("scale", __file__, __doc__, CANDIDATES, plan, extra=_extra))
