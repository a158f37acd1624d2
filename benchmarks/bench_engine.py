"""Engine benchmarks: per-member overhead, CPU-bound speed-up, storage throughput, memory.

Every number is a ratio against a baseline measured in the same run:

* 20,000 tiny members through ``Ensemble.compute()`` vs a plain loop and joblib
  ``Parallel(n_jobs=2)`` (auto batching);
* 100 CPU-bound pure-Python members (~30-50 ms) vs the plain loop;
* a (10,000 members x 1,000 steps) float64 output through ``to_zarr`` vs ``numpy.save``
  (fsynced) of the same bytes;
* peak proportional set size (driver + workers) of ``to_zarr`` for 10,000 and 100,000
  members x 1,000 float32 steps;
* resuming a complete 10,000-member store.

Run: ``python benchmarks/bench_engine.py`` (writes ``docs/benchmarks_engine.md``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

import _members

import ensembles as ens
from ensembles.execution.submit import default_client


def best_of(fn, repeats=3):
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


class PeakPSS:
    """Samples the proportional set size of a process tree (shared pages count once)."""

    def __init__(self, pids):
        import psutil

        self.procs = [psutil.Process(p) for p in pids]
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            total = 0
            for p in self.procs:
                with contextlib.suppress(Exception):
                    total += p.memory_full_info().pss
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def bench_tiny(n=20_000):
    xs = np.arange(n, dtype=float)
    design = ens.Sample(x=ens.Uniform(0, 1), n=n, seed=1)
    xs = design.table()["x"]

    def loop():
        return [_members.tiny(seed=i, x=x) for i, x in enumerate(xs)]

    def joblib_run():
        from joblib import Parallel, delayed

        return Parallel(n_jobs=2)(delayed(_members.tiny)(seed=i, x=x) for i, x in enumerate(xs))

    e = ens.Ensemble(_members.tiny, design, seeds=1, root_seed=1)
    e.compute(progress=False)  # warm: the embedded cluster is started once per process
    joblib_run()
    t_loop, _ = best_of(loop)
    t_joblib, _ = best_of(joblib_run)
    t_ens, ds = best_of(lambda: e.compute(progress=False))
    assert int((ds["status"].values == 1).sum()) == n
    return [
        ("plain loop (1 core)", t_loop, t_loop / n * 1e6),
        ("joblib Parallel(n_jobs=2)", t_joblib, t_joblib / n * 1e6),
        ("ensembles compute() (2 worker processes)", t_ens, t_ens / n * 1e6),
    ], t_joblib / t_ens


def _in_clean_process(fn, *args):
    """``fn(*args)`` in a fresh process with no dask threads (a fair single-core baseline)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def bench_cpu(n=40, rounds=3):
    """Rounds of (plain loop, ensemble), back to back: a ratio per round, so a slow spell of
    this shared machine hits both sides of a ratio, not one."""
    design = ens.Grid(x=np.arange(n, dtype=float))
    e = ens.Ensemble(_members.cpu_bound, design, seeds=1, root_seed=1)
    e.compute(progress=False)
    loops, runs = [], []
    for _ in range(rounds):
        # the baseline runs in a clean process: here, the client's and scheduler's threads
        # would steal the GIL from a pure-Python loop and flatter the ensemble
        loops.append(_in_clean_process(_members.cpu_loop, n))
        start = time.perf_counter()
        e.compute(progress=False)
        runs.append(time.perf_counter() - start)
    ratios = sorted(a / b for a, b in zip(loops, runs, strict=True))
    t_loop, t_ens = float(np.median(loops)), float(np.median(runs))
    return (
        [
            ("plain loop (1 core), median of rounds", t_loop, t_loop / n * 1e3),
            ("ensembles compute() (2 worker processes), median", t_ens, t_ens / n * 1e3),
        ],
        float(np.median(ratios)),
        (ratios[0], ratios[-1]),
    )


def bench_write(tmp, members=10_000, steps=1000):
    design = ens.Sample(x=ens.Uniform(0, 1), n=members, seed=2)
    # default settings: automatic batching (whose probe also picks the output codec)
    e = ens.Ensemble(_members.trace, design, seeds=1, root_seed=3, fixed={"steps": steps})
    nbytes = members * steps * 8
    e.to_zarr(Path(tmp) / "warm.zarr", progress=False)

    def zarr_run():
        path = Path(tmp) / "w.zarr"
        e.to_zarr(path, mode="w", progress=False)

    data = np.random.default_rng(0).standard_normal((members, steps))

    def npy_run():
        path = Path(tmp) / "w.npy"
        with open(path, "wb") as f:
            np.save(f, data)
            f.flush()
            os.fsync(f.fileno())

    from ensembles.store.zarr_store import EnsembleStore

    runner = e._runner(running=True, n_workers=2, on_error="record")
    blocks = [(bid, runner.run_block(bid)) for bid in runner.members.block_ids()]
    store = EnsembleStore(str(Path(tmp) / "warm.zarr"))

    def writer_run():  # the store's block writer alone, one process, the same bytes
        for bid, res in blocks:
            store.write_block(res, runner.members.block_slices(bid))

    client = default_client(processes=True)
    [shared] = client.scatter([(runner, store)], broadcast=True)
    results = [
        client.submit(_run_only, shared, bid, pure=False) for bid in runner.members.block_ids()
    ]
    for fut in results:
        fut.result()  # computed and held on the workers; only the writes are timed

    def workers_run():  # both workers write their blocks at once, as in a run
        spans = client.gather([client.submit(_write_only, shared, r, pure=False) for r in results])
        return max(end for _, end in spans) - min(start for start, _ in spans)

    # interleaved rounds, best of each: a slow spell of the machine hits every writer
    times: dict[str, list[float]] = {"npy": [], "writer": [], "workers": [], "zarr": []}
    for _ in range(3):
        times["npy"].append(best_of(npy_run, repeats=1)[0])
        times["writer"].append(best_of(writer_run, repeats=1)[0])
        times["workers"].append(workers_run())
        times["zarr"].append(best_of(zarr_run, repeats=1)[0])
    t_npy, t_writer, t_workers, t_zarr = (min(times[k]) for k in times)
    size = sum(p.stat().st_size for p in (Path(tmp) / "w.zarr").rglob("*") if p.is_file())
    return (
        [
            ("numpy.save + fsync (in-memory array)", t_npy, nbytes / t_npy / 2**20),
            ("ensembles block writer alone (one process)", t_writer, nbytes / t_writer / 2**20),
            (
                "ensembles block writers on the 2 workers at once (blocks computed before)",
                t_workers,
                nbytes / t_workers / 2**20,
            ),
            ("ensembles to_zarr (compute + write)", t_zarr, nbytes / t_zarr / 2**20),
        ],
        (nbytes / t_zarr) / (nbytes / t_npy),
        size / nbytes,
        t_npy / t_writer,
        t_npy / t_workers,
    )


def _run_only(shared, block_id):
    runner, _ = shared
    return runner.run_block(block_id)


def _write_only(shared, result):
    runner, store = shared
    start = time.time()
    store.write_block(result, runner.members.block_slices(result.block_id))
    return start, time.time()


def bench_memory(tmp, sizes=(10_000, 100_000), steps=1000):
    client = default_client(processes=True)
    import psutil

    # this process (client, scheduler, the nannies' threads) and every process it started:
    # the two workers and multiprocessing's resource tracker, each counted once
    client.run(os.getpid)  # the workers are up
    me = psutil.Process()
    pids = sorted({me.pid, *(p.pid for p in me.children(recursive=True))})
    rows = []
    for n in (sizes[0] // 10, *sizes):  # the first, small run warms every process up
        if n == sizes[0] // 10:
            design = ens.Sample(x=ens.Uniform(0, 1), n=n, seed=4)
            ens.Ensemble(
                _members.trace, design, seeds=1, fixed={"steps": steps, "dtype": "float32"}
            ).to_zarr(Path(tmp) / "warm-up.zarr", mode="w", progress=False)
            continue
        design = ens.Sample(x=ens.Uniform(0, 1), n=n, seed=4)
        e = ens.Ensemble(
            _members.trace,
            design,
            seeds=1,
            root_seed=3,
            fixed={"steps": steps, "dtype": "float32"},
            batch_size=2000,
        )
        path = Path(tmp) / f"m{n}.zarr"
        with PeakPSS(pids) as peak:
            e.to_zarr(path, mode="w", progress=False)
        rows.append((n, n * steps * 4 / 2**20, peak.peak / 2**20))
        shutil.rmtree(path)
    return rows


def bench_ising(n_samples=23, seeds=4, L=100, n_sweeps=4000, rounds=2):
    """Ensemble throughput vs two cores' worth of single-member throughput.

    Each round measures the single member, the ensemble and two bare processes back to
    back; efficiencies are medians over rounds.
    """
    from concurrent.futures import ProcessPoolExecutor

    from ensembles.models import ising

    fixed = {"L": L, "n_sweeps": n_sweeps, "burn_in": n_sweeps // 10, "thin": 10}
    design = ens.Points([{"T": 3.0}]) + ens.Sample(T=ens.Normal(3.0, 0.05), n=n_samples, seed=1)
    e = ens.Ensemble(ising.simulate, design, seeds=seeds, root_seed=1, fixed=fixed)
    e.compute(progress=False)  # warm the embedded (threaded) cluster
    n = len(e)
    t1s, t_enss, t_twos = [], [], []
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_members.ising_loop, [1, 1], [fixed, fixed]))  # warm
        for _ in range(rounds):
            t1s.append(_in_clean_process(_members.ising_one, fixed))  # one quiet core
            start = time.perf_counter()
            e.compute(progress=False)
            t_enss.append(time.perf_counter() - start)
            # the hardware's own ceiling: two independent processes looping the kernel
            per_proc = list(pool.map(_members.ising_loop, [n // 2, n // 2], [fixed, fixed]))
            t_twos.append(max(per_proc))
    eff = float(np.median([(n / te) / (2 / t1) for te, t1 in zip(t_enss, t1s, strict=True)]))
    eff_two = float(np.median([(n / tt) / (2 / t1) for tt, t1 in zip(t_twos, t1s, strict=True)]))
    med = [float(np.median(v)) for v in (t1s, t_enss, t_twos)]
    return med[0], n, med[1], eff, med[2], eff_two


def bench_resume(tmp, members=10_000):
    design = ens.Sample(x=ens.Uniform(0, 1), n=members, seed=5)
    e = ens.Ensemble(_members.tiny, design, seeds=1, root_seed=1)
    path = Path(tmp) / "r.zarr"
    e.to_zarr(path, progress=False)
    t, _ = best_of(lambda: e.to_zarr(path, mode="resume", progress=False))
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "benchmarks_engine.md")
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    args = parser.parse_args()
    quick = args.quick
    lines = [
        "# Engine benchmarks",
        "",
        f"Measured {date.today().isoformat()} on this machine ({os.cpu_count()} cores), with "
        "`python benchmarks/bench_engine.py`. Every row is compared with a baseline measured "
        "in the same run, warm (the embedded local cluster already started). This 2-core "
        "machine is shared, and its speed drifts by up to 50 % within minutes: baselines "
        "and candidates are measured back to back in rounds (best of 3, or the median of "
        "per-round ratios where said), so a slow spell hits both sides of a ratio.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows, speedup = bench_tiny(2_000 if quick else 20_000)
        lines += [
            "## Tiny members: per-member overhead (20,000 members)",
            "",
            "| runner | total (s) | per member (us) |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {t:.3f} | {us:.1f} |" for name, t, us in rows]
        lines += ["", f"ensembles is **{speedup:.2f}x** faster than joblib (target >= 1.5x).", ""]
        print("\n".join(lines[-8:]), flush=True)

        rows, speedup, (low, high) = bench_cpu(10 if quick else 100)
        lines += [
            "## 100 CPU-bound pure-Python members (~30 ms each)",
            "",
            "| runner | total (s) | per member (ms) |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {t:.2f} | {ms:.1f} |" for name, t, ms in rows]
        lines += [
            "",
            f"ensembles is **{speedup:.2f}x** faster than the plain loop (median of the "
            f"rounds' ratios; range {low:.2f}-{high:.2f}x; target >= 1.6x on 2 cores).",
            "",
        ]
        print("\n".join(lines[-7:]), flush=True)

        rows, frac, ratio, writer, workers = bench_write(tmp, 1000 if quick else 10_000)
        lines += [
            "## Store write throughput: 10,000 members x 1,000 float64 steps (80 MB)",
            "",
            "| writer | time (s) | MiB/s |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {t:.3f} | {mbs:.0f} |" for name, t, mbs in rows]
        lines += [
            "",
            f"The store's block writer reaches **{100 * writer:.0f} %** of numpy.save's "
            f"throughput in one process and **{100 * workers:.0f} %** on the two workers "
            f"writing at once, as in a run (target >= 50 %); a whole `to_zarr` run, members "
            f"computed and the store created, reopened and consolidated, reaches "
            f"{100 * frac:.0f} %. Stored size is {100 * ratio:.0f} % of the raw bytes: the "
            "values are noise, which blosc-lz4 shrinks by under 10 %, so the store keeps "
            "them raw (the probe member decides per output; outputs that compress get "
            "blosc-lz4 + shuffle).",
            "",
        ]
        print("\n".join(lines[-8:]), flush=True)

        rows = bench_memory(tmp, (1000, 10_000) if quick else (10_000, 100_000))
        lines += [
            "## Peak memory of to_zarr (driver + 2 workers, PSS), float32 x 1,000 steps",
            "",
            "| members | data written (MiB) | peak PSS (MiB) |",
            "|---|---|---|",
        ]
        lines += [f"| {n:,} | {mb:.0f} | {pss:.0f} |" for n, mb, pss in rows]
        (n0, mb0, pss0), (n1, mb1, pss1) = rows[0], rows[-1]
        lines += [
            "",
            f"Peak PSS of the driver and its two workers together (each process counted "
            f"once; the measurement runs last, after the other benchmarks warmed the same "
            f"processes). {n1 // n0}x the members and {mb1 - mb0:.0f} MiB more data cost "
            f"{pss1 - pss0:.0f} MiB more ({100 * (pss1 / pss0 - 1):.0f} %): the data "
            "is written by the workers block by block and never gathered; what grows is "
            "per-member bookkeeping (parameters, seeds, status) in the driver and workers.",
            "",
        ]
        print("\n".join(lines[-7:]), flush=True)

        t1, n, t_ens, eff, t_two, eff_two = bench_ising(4 if quick else 23)
        lines += [
            "## Ising ensemble on two cores (L = 100, 4,000 sweeps, T around 3.0)",
            "",
            "| | value |",
            "|---|---|",
            f"| one member, one core (s) | {t1:.3f} |",
            f"| {n} members, ensembles compute() (s) | {t_ens:.2f} |",
            f"| ideal for 2 cores (s) | {n * t1 / 2:.2f} |",
            f"| two independent processes looping {n // 2} members each (s) | {t_two:.2f} |",
            "",
            f"The ensemble runs at **{100 * eff:.0f} %** of two cores' single-member "
            f"throughput (target >= 85 %); two independent processes, with no framework at "
            f"all, reach {100 * eff_two:.0f} % (two busy cores run slower than one: shared "
            "caches, lower all-core clock), so the ensemble is at "
            f"{100 * eff / eff_two:.0f} % of what this machine allows.",
            "",
        ]
        print("\n".join(lines[-10:]), flush=True)

        t = bench_resume(tmp, 1000 if quick else 10_000)
        lines += [
            "## Resuming a complete store",
            "",
            f"Resuming a complete 10,000-member store (nothing to run) takes "
            f"**{t:.2f} s** (target < 2 s).",
            "",
        ]
        print("\n".join(lines[-4:]), flush=True)
    if not quick:
        Path(args.out).write_text("\n".join(lines))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
