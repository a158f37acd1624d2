"""Local process pool benchmark: ensembles' LocalPool vs joblib (loky) and the standard
library's ProcessPoolExecutor, 2 workers each, the same work on every side.

Cases, each candidate in a fresh process, rounds interleaved (the candidates' order
rotates every round):

* cold start: from creating the pool in a fresh interpreter (its module already
  imported; the import is timed apart) to the first task running on a worker;
* warm throughput: 200 CPU-bound pure-Python tasks of ~20 ms, once the pool is warm,
  on a quiet machine and with one CPU hog (``python -c "while True: pass"``, started
  in a session of its own like another program) beside it;
* tiny tasks: 20,000 tasks of a few hundred nanoseconds batched into 200 calls of 100
  (joblib also as users write it: 20,000 calls, auto-batched);
* peak PSS of the process tree (driver and descendants, ``/proc/<pid>/smaps_rollup``
  sampled every 20 ms) over a whole warm-throughput process;
* the cost of ``report_member`` in a worker and outside one.

Run ``python benchmarks/bench_pool.py`` (``--quick`` for a smoke test with tiny sizes).
It prints a markdown table of medians and ranges; on a shared machine the numbers are
indicative only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

import _pool_kernels as kernels  # noqa: E402

CANDIDATES = ("ensembles", "joblib", "ppe")
LABELS = {
    "ensembles": "ensembles LocalPool",
    "joblib": "joblib loky",
    "ppe": "ProcessPoolExecutor",
    "loop": "plain loop",
    "joblib-auto": "joblib, one call per tiny task, auto-batched",
}
N_WORKERS = 2


# -- the candidates, inside a child process ---------------------------------------------------


class Candidate:
    """One way to run tasks: ``start()`` the pool, ``run(fn, args)`` a batch, ``close()``."""

    def __init__(self, name: str) -> None:
        self.name = name
        start = time.monotonic()
        if name == "ensembles":
            from ensembles.execution.pool import LocalPool

            self._make = lambda: LocalPool(N_WORKERS)
        elif name in ("joblib", "joblib-auto"):
            from joblib import Parallel

            self._make = lambda: Parallel(n_jobs=N_WORKERS, backend="loky")
        elif name == "ppe":
            from concurrent.futures import ProcessPoolExecutor

            self._make = lambda: ProcessPoolExecutor(N_WORKERS)
        else:
            self._make = lambda: None
        self.import_seconds = time.monotonic() - start
        self.pool = None

    def start(self) -> None:
        self.pool = self._make()

    def run(self, fn, args: list[tuple]) -> list:
        if self.name in ("ensembles", "ppe"):
            return [f.result() for f in [self.pool.submit(fn, *a) for a in args]]
        if self.name.startswith("joblib"):
            from joblib import delayed

            return self.pool(delayed(fn)(*a) for a in args)
        return [fn(*a) for a in args]

    def close(self) -> None:
        if self.name in ("ensembles", "ppe"):
            self.pool.shutdown(wait=True)


def child(name: str, case: str, params: dict) -> dict:
    cand = Candidate(name)
    if case == "cold":
        t0 = time.monotonic()
        cand.start()
        stamps = cand.run(kernels.stamp, [()] * N_WORKERS)
        first = min(s for pid, s in stamps if pid != os.getpid())
        cand.close()
        return {"import": cand.import_seconds, "start": first - t0}
    cand.start()
    if case == "report":
        n = params["n"]
        inside = cand.run(kernels.report_cost, [(n,)])[0]
        return {"inside": inside, "outside": kernels.report_cost(n)}
    if case in ("throughput", "memory"):
        fn, args = kernels.spin, [(seed, params["n"]) for seed in range(params["tasks"])]
    elif name == "joblib-auto":
        fn, args = kernels.tiny, [(x,) for x in range(params["tasks"])]
    else:
        chunk = params["chunk"]
        fn, args = kernels.tiny_chunk, [(s, chunk) for s in range(0, params["tasks"], chunk)]
    cand.run(fn, args[: 2 * N_WORKERS])  # warm: workers started, modules imported
    start = time.perf_counter()
    results = cand.run(fn, args)
    seconds = time.perf_counter() - start
    assert len(results) == len(args)
    cand.close()
    return {"seconds": seconds}


# -- the driver: fresh processes, interleaved rounds -------------------------------------------


def tree_pss(pid: int) -> int:
    """Bytes of proportional set size of ``pid`` and its descendants."""
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def run_child(name: str, case: str, params: dict, sample: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", name, case, json.dumps(params)]
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    peak = [0]
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_pss(proc.pid))
            stop.wait(0.02)

    thread = threading.Thread(target=sampler, daemon=True)
    if sample:
        thread.start()
    out, _ = proc.communicate(timeout=1800)
    stop.set()
    if sample:
        thread.join()
    if proc.returncode:
        raise RuntimeError(f"{name} {case} failed with status {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    if sample:
        result["pss"] = peak[0]
    return result


@contextlib.contextmanager
def cpu_hog(on: bool):
    if not on:
        yield
        return
    # in a session of its own, like another program (Linux gives it its own autogroup)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def calibrate(target: float) -> int:
    """Iterations of ``spin`` that take about ``target`` seconds here (best of 5 timings)."""
    n = 200_000
    took = min(_timed(kernels.spin, 123, n) for _ in range(5))
    return max(1000, int(n * target / took))


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def measure(rounds: int, quick: bool) -> dict[str, dict[str, list[float]]]:
    n = calibrate(0.002 if quick else 0.020)
    cpu = {"n": n, "tasks": 20 if quick else 200}
    tiny = {"tasks": 2_000 if quick else 20_000, "chunk": 100}
    heavy = f"{cpu['tasks']} x {2 if quick else 20} ms, warm"
    small = f"{tiny['tasks']:,} tiny in calls of {tiny['chunk']}, warm"
    with_auto = (*CANDIDATES, "joblib-auto")
    cases = [
        ("cold start, quiet", "cold", {}, CANDIDATES, False, "start"),
        ("cold start, CPU hog", "cold", {}, CANDIDATES, True, "start"),
        ("import of the pool's module", "cold", {}, CANDIDATES, False, "import"),
        (f"{heavy}, quiet", "throughput", cpu, (*CANDIDATES, "loop"), False, "seconds"),
        (f"{heavy}, CPU hog", "throughput", cpu, CANDIDATES, True, "seconds"),
        (f"{small}, quiet", "tiny", tiny, with_auto, False, "seconds"),
        (f"{small}, CPU hog", "tiny", tiny, with_auto, True, "seconds"),
        (f"peak PSS of the tree (MB), {heavy}", "memory", cpu, CANDIDATES, False, "pss"),
    ]
    data: dict[str, dict[str, list[float]]] = {}
    cold_cache: dict[tuple[str, bool], dict] = {}
    for r in range(rounds):
        for label, case, params, names, hog, key in cases:
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                if key == "import":  # measured by the quiet cold-start run of this round
                    value = cold_cache[(name, False)]["import"]
                else:
                    with cpu_hog(hog):
                        res = run_child(name, case, params, sample=key == "pss")
                    if case == "cold":
                        cold_cache[(name, hog)] = res
                    value = res[key] / 2**20 if key == "pss" else res[key]
                data.setdefault(label, {}).setdefault(name, []).append(value)
            print(f"round {r + 1}/{rounds}: {label} done", file=sys.stderr, flush=True)
    report = run_child("ensembles", "report", {"n": 10_000 if quick else 1_000_000})
    data["report_member (ns per call)"] = {
        "ensembles": [report["inside"]],
        "outside": [report["outside"]],
    }
    return data


def table(data: dict[str, dict[str, list[float]]]) -> str:
    lines = [
        "| case | candidate | median | range | / joblib |",
        "|---|---|---|---|---|",
    ]
    for label, by_name in data.items():
        base = by_name.get("joblib")
        base_median = statistics.median(base) if base else None
        for name, values in by_name.items():
            median = statistics.median(values)
            unit = "" if "PSS" in label or "ns per" in label else " s"
            fmt = "{:.0f}" if unit == "" else "{:.3f}"
            ratio = f"{median / base_median:.2f}x" if base_median else ""
            spread = f"{fmt.format(min(values))}-{fmt.format(max(values))}{unit}"
            row = f"| {label} | {LABELS.get(name, name)} | {fmt.format(median)}{unit} | "
            lines.append(row + f"{spread} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, case, params = args.child
        print(json.dumps(child(name, case, json.loads(params))), flush=True)
        return
    rounds = 1 if args.quick and args.rounds == 5 else args.rounds
    data = measure(rounds, args.quick)
    print(f"{os.cpu_count()} cores, {rounds} round(s), {N_WORKERS} workers; '/ joblib' is the")
    print("median over joblib's median (below 1: less time or memory than joblib)\n")
    print(table(data))


if __name__ == "__main__":
    main()
