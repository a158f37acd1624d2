"""Benchmark harness: each candidate in a fresh process, rounds interleaved, peak PSS of the
process tree, an optional CPU hog, and the raw per-run results saved as JSON.

A benchmark script defines its candidates as plain functions in a ``CANDIDATES`` dict and
calls :func:`main` with a ``plan`` function. :func:`main` re-invokes the script with
``--candidate NAME --params JSON`` for every run; the candidate prints one JSON object
(its own inner measurements) as the last line of its stdout. The parent adds the wall time
of the whole process and the peak proportional set size (PSS) of the process and all its
descendants, sampled every 0.1 s from ``/proc/<pid>/smaps_rollup`` (reading it walks a
process's memory map: sampled every 20 ms, it took up to a quarter of a core of this
2-core machine away from the candidate).

Rounds interleave the cases (A B C A B C ...), every case runs the same work the same
number of times, and the table writer (``_report.py``) turns the saved runs into medians,
ranges and per-round ratios against a named baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
SAMPLE_S = 0.1
PEERS = (
    "ensembles",
    "numpy",
    "dask",
    "distributed",
    "xarray",
    "zarr",
    "joblib",
    "mesa",
    "pipefunc",
    "ema_workbench",
    "xclim",
    "numba",
)


# -- measuring a process tree ------------------------------------------------------------


def pss_kib(pid: int) -> int:
    """Proportional set size of one process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def start_time(pid: int) -> int | None:
    """The start time of a process (clock ticks since boot): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """The pids of every living descendant of ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class TreeSampler:
    """Samples the summed PSS of a process and its descendants every ``interval`` s."""

    def __init__(self, pid: int, interval: float = SAMPLE_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.seen: dict[int, int | None] = {}  # pid: start time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [self.pid, *descendants(self.pid)]
            for pid in pids:
                if pid not in self.seen:
                    self.seen[pid] = start_time(pid)
            self.peak_kib = max(self.peak_kib, sum(pss_kib(p) for p in pids))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _kill_seen(seen: dict[int, int | None], skip: int) -> None:
    """SIGKILL the processes in ``seen`` that still run (same pid and start time)."""
    for pid, started in list(seen.items()):
        if pid != skip and started is not None and start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _kill_tree(proc: subprocess.Popen, seen: dict[int, int | None]) -> None:
    """SIGKILL the candidate's process group and every descendant, seen before or now.

    ``seen`` gains the descendants found at the kill.
    """
    for pid in descendants(proc.pid):
        seen.setdefault(pid, start_time(pid))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _kill_seen(seen, proc.pid)
    proc.wait()


def candidate_env() -> dict[str, str]:
    """The environment of a candidate: the repository and benchmarks/ importable."""
    env = dict(os.environ)
    paths = [str(ROOT), str(BENCH), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _watch(
    proc: subprocess.Popen,
    sampler: TreeSampler,
    deadline: float,
    kill_after: float | None,
    marker: str | None,
    kill_when: Callable[[], bool] | None,
) -> str | None:
    """Wait for ``proc``; kill its tree when due (``"killed"``) or late (``"timed_out"``)."""
    armed_at = None if kill_after is None else (None if marker else time.perf_counter())
    while proc.poll() is None:
        now = time.perf_counter()
        if armed_at is None and marker and os.path.exists(marker):
            armed_at = now
        due = kill_when is not None and kill_when()
        if kill_after is not None and armed_at is not None and now > armed_at + kill_after:
            due = True
        if due or now > deadline:
            _kill_tree(proc, sampler.seen)
            return "killed" if due else "timed_out"
        time.sleep(0.005)
    return None


def run_process(
    argv: list[str],
    *,
    timeout: float = 900.0,
    kill_after: float | None = None,
    marker: str | None = None,
    kill_when: Callable[[], bool] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    """Run ``argv`` in a fresh process; measure wall time and peak PSS of its process tree.

    With ``kill_after``, the whole tree is SIGKILLed that many seconds after ``marker``
    (a file the candidate creates when its work starts) appears; with ``kill_when``, as soon
    as it returns True (polled every 5 ms). The last stdout line that parses as a JSON
    object is merged into the returned record.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            env=candidate_env(),
            cwd=cwd or str(ROOT),
            start_new_session=True,
        )
        with TreeSampler(proc.pid) as sampler:
            ended = _watch(proc, sampler, start + timeout, kill_after, marker, kill_when)
        wall = time.perf_counter() - start
        _kill_seen(sampler.seen, proc.pid)  # workers a killed or finished parent left behind
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    record: dict[str, Any] = {
        "rc": proc.returncode,
        "wall_s": wall,
        "peak_pss_mib": sampler.peak_kib / 1024,
        "processes": len(sampler.seen),
        "pids": sorted(sampler.seen),
    }
    killed = ended == "killed"
    if ended:
        record[ended] = True
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record.update(json.loads(line))
                break
    if proc.returncode != 0 and not killed:
        record["stderr"] = stderr[-3000:]
    return record


# -- a CPU hog beside the benchmark -------------------------------------------------------


@contextlib.contextmanager
def cpu_hog(enabled: bool) -> Iterator[subprocess.Popen | None]:
    """With ``enabled``, one ``python -c "while True: pass"`` process runs meanwhile."""
    if not enabled:
        yield None
        return
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


# -- rounds --------------------------------------------------------------------------------


class Bench:
    """One benchmark run: its options, its cases' runs and what the page shows of them."""

    def __init__(self, name: str, script: str, args: argparse.Namespace) -> None:
        self.name = name
        self.script = script
        self.args = args
        self.runs: list[dict[str, Any]] = []
        self.labels: dict[str, str] = {}
        self.tables: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.params: dict[str, Any] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self.started = _now()
        self.load_start = os.getloadavg()

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    def argv(self, candidate: str, params: Mapping[str, Any]) -> list[str]:
        """The command line that runs one candidate in a fresh interpreter."""
        blob = json.dumps(dict(params))
        if len(blob) > 20_000:  # too long for a command-line argument: pass a file
            fd, name = tempfile.mkstemp(suffix=".json", dir=self.tmp)
            with os.fdopen(fd, "w") as f:
                f.write(blob)
            blob = "@" + name
        return [sys.executable, self.script, "--candidate", candidate, "--params", blob]

    def run(
        self, case: str, candidate: str, params: Mapping[str, Any], rnd: int, **kwargs: Any
    ) -> dict[str, Any]:
        """Run one candidate once in a fresh process and record the result under ``case``."""
        record = run_process(self.argv(candidate, params), **kwargs)
        record.update(case=case, round=rnd)
        self.runs.append(record)
        status = "ok" if record["rc"] == 0 else ("killed" if record.get("killed") else "FAILED")
        print(
            f"  [{self.name}] round {rnd} {case}: {status}, wall {record['wall_s']:.2f} s, "
            f"peak PSS {record['peak_pss_mib']:.0f} MiB",
            flush=True,
        )
        if status == "FAILED":
            print(record.get("stderr", ""), file=sys.stderr, flush=True)
        return record

    def rounds(
        self, cases: Mapping[str, tuple[str, Mapping[str, Any]]], n: int, **kwargs: Any
    ) -> None:
        """``n`` rounds; each round runs every case once, in order (A B C A B C ...)."""
        for rnd in range(n):
            for case, (candidate, params) in cases.items():
                self.run(case, candidate, params, rnd, **kwargs)

    def run_argv(
        self, case: str, argv: list[str], rnd: int, may_fail: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        """Run any command (not a candidate) once and record it under ``case``.

        With ``may_fail``, a failure is a result (its figures count), not an error.
        """
        record = run_process(argv, **kwargs)
        record.update(case=case, round=rnd)
        if may_fail:
            record["may_fail"] = True
        self.runs.append(record)
        print(
            f"  [{self.name}] round {rnd} {case}: rc {record['rc']}, wall "
            f"{record['wall_s']:.2f} s",
            flush=True,
        )
        return record

    def values(self, case: str, metric: str) -> list[float]:
        return [r[metric] for r in self.runs if r["case"] == case and metric in r]

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        """Record a correctness check (shown on the page; a failure fails the script)."""
        self.checks.append({"what": what, "ok": bool(ok), "detail": detail})
        print(f"  [{self.name}] check {'ok' if ok else 'FAILED'}: {what} {detail}", flush=True)

    def payload(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "command": " ".join(["python", f"benchmarks/{Path(self.script).name}", *sys.argv[1:]]),
            "started": self.started,
            "finished": _now(),
            "machine": machine(self.load_start),
            "versions": versions(),
            "quick": self.quick,
            "busy": bool(self.args.busy),
            "params": self.params,
            "labels": self.labels,
            "tables": self.tables,
            "targets": self.targets,
            "checks": self.checks,
            "notes": self.notes,
            "runs": [
                {k: v for k, v in r.items() if k not in ("stderr", "pids")} for r in self.runs
            ],
        }

    def save(self) -> Path:
        """Write the raw results as ``<results>/<name>[-busy][-quick].json``."""
        folder = Path(self.args.results)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ("-busy" if self.args.busy else "") + ("-quick" if self.quick else "")
        path = folder / f"{self.name}{suffix}.json"
        path.write_text(json.dumps(self.payload(), indent=1, default=float) + "\n")
        return path


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine(load_start: tuple[float, ...]) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    """Versions of the packages the benchmarks compare (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PEERS:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


# -- the script's entry point --------------------------------------------------------------


def parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, seconds (smoke test)")
    p.add_argument("--busy", action="store_true", help="one CPU hog process runs beside it")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    p.add_argument("--results", default=str(RESULTS), help="folder for the JSON results")
    p.add_argument("--no-table", action="store_true", help="do not print the markdown table")
    p.add_argument("--candidate", help=argparse.SUPPRESS)
    p.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    return p


def main(
    name: str,
    script: str,
    doc: str,
    candidates: Mapping[str, Callable[..., dict[str, Any]]],
    plan: Callable[[Bench], None],
    argv: list[str] | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Run the benchmark (``plan``) or, with ``--candidate``, one candidate in this process."""
    p = parser(doc)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.candidate:
        blob = args.params
        if blob.startswith("@"):
            blob = Path(blob[1:]).read_text()
        result = candidates[args.candidate](**json.loads(blob))
        print("\n" + json.dumps(result, default=float), flush=True)
        return 0
    bench = Bench(name, script, args)
    try:
        with cpu_hog(args.busy):
            plan(bench)
    finally:
        import shutil

        shutil.rmtree(bench.tmp, ignore_errors=True)
    path = bench.save()
    failed = [r for r in bench.runs if r["rc"] != 0 and not (r.get("killed") or r.get("may_fail"))]
    if not args.no_table:
        from _report import render

        print(render(json.loads(path.read_text())))
    print(f"wrote {path}", flush=True)
    bad = [c for c in bench.checks if not c["ok"]]
    return 1 if failed or bad else 0
