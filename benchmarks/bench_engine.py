"""Engine benchmarks: store writes, memory of a large run, Ising ensemble efficiency, resume.

Every case is a fresh process and rounds interleave the cases (see ``_harness.py``):

* **store writes**: ``to_zarr`` of 10,000 members x 1,000 float64 steps of a nearly free
  simulation against a plain loop computing the same members and saving them with
  ``numpy.save``; both without fsync (what ``to_zarr`` does), and both with it (the loop
  fsyncs its file; the store's files and folders are fsynced after ``to_zarr`` returns);
* **memory**: peak PSS of the process tree of ``to_zarr`` for 10,000 and 100,000 members
  x 1,000 float32 steps;
* **Ising ensemble**: 96 members (L = 100, 4,000 sweeps) through ``compute()`` against
  two cores' worth of single-member throughput (the target), with two bare processes
  looping the kernel beside it (what this machine reaches without any framework);
* **resume**: resuming a complete 10,000-member store.

Run ``python benchmarks/bench_engine.py [--quick] [--busy]``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

ISING = {"L": 100, "n_sweeps": 4000, "burn_in": 400, "thin": 10}


def _fsync_tree(root: str) -> None:
    """fsync every file and folder under ``root`` (what a durable store write costs)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_store(*, tool, members, steps, folder, fsync):
    """Write ``members`` x ``steps`` float64: a warm-up run, then the timed one."""
    import _members
    import numpy as np

    xs = np.linspace(0.0, 1.0, members)
    if tool == "numpy":

        def run(path):
            data = np.stack([_members.trace_values(i + 1, x, steps) for i, x in enumerate(xs)])
            with open(path, "wb") as f:
                np.save(f, data)
                if fsync:
                    f.flush()
                    os.fsync(f.fileno())
            return data.nbytes

    else:
        import ensembles as ens

        e = ens.Ensemble(
            _members.trace, ens.Grid(x=xs), seeds=1, root_seed=3, fixed={"steps": steps}
        )

        def run(path):
            ds = e.to_zarr(path, mode="w", progress=False)
            if fsync:
                _fsync_tree(path)
            return int(ds["y"].nbytes)

    run(os.path.join(folder, "warm"))
    start = time.perf_counter()
    nbytes = run(os.path.join(folder, "timed"))
    elapsed = time.perf_counter() - start
    return {"write_s": elapsed, "mib_s": nbytes / elapsed / 2**20, "nbytes": nbytes}


def memory_run(*, members, steps, folder):
    """``to_zarr`` of ``members`` x ``steps`` float32 in a fresh process (PSS by the parent)."""
    import _members
    import numpy as np

    import ensembles as ens

    xs = np.linspace(0.0, 1.0, members)
    e = ens.Ensemble(
        _members.trace,
        ens.Grid(x=xs),
        seeds=1,
        root_seed=3,
        batch_size=2000,
        fixed={"steps": steps, "dtype": "float32"},
    )
    start = time.perf_counter()
    ds = e.to_zarr(folder, progress=False)
    return {"run_s": time.perf_counter() - start, "data_mib": ds["y"].nbytes / 2**20}


def ising(*, how, n, fixed):
    """Seconds per member per core: one member alone, the ensemble, or two bare processes."""
    import _members

    if how == "one":
        from ensembles.models import ising as model

        model.simulate(T=3.0, seed=1, **fixed)  # compile or load the kernel
        times = []
        for i in range(3):
            start = time.perf_counter()
            model.simulate(T=3.0, seed=i + 2, **fixed)
            times.append(time.perf_counter() - start)
        return {"core_s_per_member": sorted(times)[1]}
    if how == "two":
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_members.ising_loop, [1, 1], [fixed, fixed]))  # warm
            start = time.perf_counter()
            list(pool.map(_members.ising_loop, [n // 2, n // 2], [fixed, fixed]))
            elapsed = time.perf_counter() - start
        return {"core_s_per_member": 2 * elapsed / n, "run_s": elapsed}
    import ensembles as ens
    from ensembles.models import ising as model

    design = ens.Points([{"T": 3.0}]) + ens.Sample(T=ens.Normal(3.0, 0.05), n=n // 4 - 1, seed=1)
    e = ens.Ensemble(model.simulate, design, seeds=4, root_seed=1, fixed=fixed)
    e.compute(progress=False)  # warm: pool started, kernel loaded
    start = time.perf_counter()
    e.compute(progress=False)
    elapsed = time.perf_counter() - start
    return {"core_s_per_member": 2 * elapsed / len(e), "run_s": elapsed}


def resume_complete(*, members, folder):
    """Seconds to resume a complete store (nothing left to run)."""
    import _members
    import numpy as np

    import ensembles as ens

    e = ens.Ensemble(_members.tiny, ens.Grid(x=np.linspace(0, 1, members)), seeds=1, root_seed=1)
    e.to_zarr(folder, progress=False)
    start = time.perf_counter()
    e.to_zarr(folder, mode="resume", progress=False)
    return {"resume_s": time.perf_counter() - start}


CANDIDATES = {
    "write": write_store,
    "memory": memory_run,
    "ising": ising,
    "resume": resume_complete,
}


def plan(b: _harness.Bench) -> None:
    q = b.quick
    rounds = b.args.rounds or (1 if q else 3)
    members, steps = (1000, 200) if q else (10_000, 1000)
    mem_sizes = (1000, 10_000) if q else (10_000, 100_000)
    n_ising = 8 if q else 96
    fixed = {**ISING, "n_sweeps": 400, "burn_in": 40} if q else ISING
    b.params = {
        "write": [members, steps],
        "memory": list(mem_sizes),
        "ising": n_ising,
        "ising_fixed": fixed,
    }
    cases = {}
    for tool in ("numpy", "ensembles"):
        for sync in (False, True):
            folder = str(b.tmp / f"w-{tool}-{sync}")
            os.makedirs(folder, exist_ok=True)
            params = {
                "tool": tool,
                "members": members,
                "steps": steps,
                "folder": folder,
                "fsync": sync,
            }
            cases[f"write-{tool}{'-fsync' if sync else ''}"] = ("write", params)
    for n in mem_sizes:
        cases[f"memory-{n}"] = (
            "memory",
            {"members": n, "steps": steps, "folder": str(b.tmp / f"m{n}.zarr")},
        )
    for how in ("one", "ensemble", "two"):
        cases[f"ising-{how}"] = ("ising", {"how": how, "n": n_ising, "fixed": fixed})
    for rnd in range(rounds):
        for case, (cand, params) in cases.items():
            if case.startswith("memory-"):  # a new store each time
                params = {**params, "folder": f"{params['folder']}-{rnd}"}
            b.run(case, cand, params, rnd)
        b.run("resume", "resume", {"members": members, "folder": str(b.tmp / f"r{rnd}.zarr")}, rnd)
    _labels(b, n_ising)
    _write_tables(b, members, steps)
    _memory_tables(b, steps, mem_sizes)
    _ising_tables(b, n_ising)
    _resume_tables(b, members)


def _labels(b: _harness.Bench, n_ising: int) -> None:
    b.labels.update(
        {
            "write-numpy": "plain loop + `numpy.save`, no fsync",
            "write-ensembles": "ensembles `to_zarr`, no fsync",
            "write-numpy-fsync": "plain loop + `numpy.save` + fsync of the file",
            "write-ensembles-fsync": "ensembles `to_zarr`, then fsync of every file and folder",
            "ising-one": "one member alone on one core (the target's reference)",
            "ising-ensemble": f"{n_ising} members, ensembles `compute()`",
            "ising-two": f"two bare processes looping {n_ising // 2} members each",
            "resume": "resume a complete store (nothing to run)",
        }
    )


def _write_tables(b, members, steps) -> None:
    mib = members * steps * 8 / 2**20
    b.tables.append(
        {
            "title": f"Store writes: {members:,} members x {steps:,} float64 steps "
            f"({mib:.0f} MiB), members computed and written, warm",
            "cases": [
                "write-numpy",
                "write-ensembles",
                "write-numpy-fsync",
                "write-ensembles-fsync",
            ],
            "columns": [
                {"metric": "write_s", "label": "time (s)", "fmt": ".3f"},
                {"metric": "mib_s", "label": "MiB/s", "fmt": ".0f"},
            ],
            "ratios": [
                {
                    "metric": "write_s",
                    "kind": "speedup",
                    "label": "throughput vs numpy.save",
                    "baseline": {
                        "write-ensembles": "write-numpy",
                        "write-ensembles-fsync": "write-numpy-fsync",
                        "write-numpy": "write-numpy",
                        "write-numpy-fsync": "write-numpy-fsync",
                    },
                }
            ],
        }
    )
    for sync in ("", "-fsync"):
        b.targets.append(
            {
                "label": f"store write{' with fsync' if sync else ', no fsync'}: to_zarr vs "
                "loop + numpy.save (throughput)",
                "case": f"write-ensembles{sync}",
                "baseline": f"write-numpy{sync}",
                "metric": "write_s",
                "kind": "speedup",
                "op": ">=",
                "threshold": 0.5,
                "reason": "to_zarr also plans the run, creates, consolidates and reopens the "
                "store, and sends every block to a worker process and back",
            }
        )


def _memory_tables(b, steps, mem_sizes) -> None:
    small, large = (f"memory-{n}" for n in mem_sizes)
    b.tables.append(
        {
            "title": f"Peak PSS of the process tree of `to_zarr`, float32 x {steps:,} steps",
            "cases": [small, large],
            "columns": [
                {"metric": "data_mib", "label": "data written (MiB)", "fmt": ".0f"},
                {"metric": "peak_pss_mib", "label": "peak PSS (MiB)", "fmt": ".0f"},
                {"metric": "run_s", "label": "run (s)", "fmt": ".2f"},
            ],
            "ratios": [
                {
                    "metric": "peak_pss_mib",
                    "kind": "relative",
                    "baseline": small,
                    "label": f"peak PSS / at {mem_sizes[0]:,} members",
                }
            ],
        }
    )
    b.labels.update({small: f"{mem_sizes[0]:,} members", large: f"{mem_sizes[1]:,} members"})
    b.targets.append(
        {
            "label": f"peak PSS of `to_zarr`, {mem_sizes[1]:,} members",
            "case": large,
            "metric": "peak_pss_mib",
            "kind": "value",
            "op": "<",
            "threshold": 1024,
            "unit": " MiB",
            "fmt": ".0f",
            "reason": "more processes or per-member bookkeeping",
        }
    )


def _ising_tables(b, n_ising) -> None:
    b.tables.append(
        {
            "title": f"Ising ensemble on two cores (L = {ISING['L']}, T around 3.0)",
            "cases": ["ising-one", "ising-ensemble", "ising-two"],
            "columns": [
                {"metric": "core_s_per_member", "label": "core-seconds per member", "fmt": ".3f"},
                {"metric": "run_s", "label": "run (s)", "fmt": ".2f"},
            ],
            "ratios": [
                {
                    "metric": "core_s_per_member",
                    "baseline": "ising-one",
                    "kind": "speedup",
                    "label": "throughput vs two cores of the single member",
                },
                {
                    "metric": "core_s_per_member",
                    "baseline": {"ising-ensemble": "ising-two"},
                    "kind": "speedup",
                    "label": "vs two bare processes",
                },
            ],
            "note": "Two busy cores run slower than one (shared caches, a lower all-core clock): "
            "the last column compares the ensemble with what two bare processes reach "
            "in the same round. The target is the first ratio.",
        }
    )
    b.targets.append(
        {
            "label": f"Ising ensemble ({n_ising} members) vs two cores' single-member throughput",
            "case": "ising-ensemble",
            "baseline": "ising-one",
            "metric": "core_s_per_member",
            "kind": "speedup",
            "op": ">=",
            "threshold": 0.85,
            "reason": "two busy cores run each member slower than one quiet core; see the "
            "two-bare-processes row for what the machine itself reaches",
        }
    )


def _resume_tables(b, members) -> None:
    b.tables.append(
        {
            "title": f"Resuming a complete {members:,}-member store",
            "cases": ["resume"],
            "columns": [{"metric": "resume_s", "label": "time (s)", "fmt": ".2f"}],
        }
    )
    b.targets.append(
        {
            "label": "resume a complete store",
            "case": "resume",
            "metric": "resume_s",
            "kind": "value",
            "op": "<",
            "threshold": 2.0,
            "unit": " s",
            "fmt": ".2f",
            "reason": "starting the local pool and reading the store's status",
        }
    )


if __name__ == "__main__":
    sys.exit(_harness.main("engine", __file__, __doc__, CANDIDATES, plan))
