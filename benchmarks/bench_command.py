"""Per-member overhead of ``Command`` against a plain ``subprocess.run`` loop, same run.

Both run the same tiny program once per member, on one process, one member at a time:

* plain loop: ``subprocess.run(argv, check=True)`` writing into one fixed directory, then
  ``numpy.loadtxt`` of the CSV it wrote (the least a by-hand loop does);
* ``Command.call``: placeholders filled, a fresh scratch directory, the program run in its
  own session with stdout/stderr captured to files, the CSV parsed into an
  ``xarray.Dataset``, the scratch directory removed.

Rounds of the two alternate, so drifting machine load hits both alike; the table reports
the median over rounds of the mean time per member. Programs: a tiny Python script
(``python -S``, the realistic case for an interpreter-driven model) and ``cp`` of a
ready-made CSV (almost no work: the ratio there is the pure overhead bound).

Run ``python benchmarks/bench_command.py`` (``--help`` for options); it writes
``docs/benchmarks_command.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ensembles.simulations.command import Command

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "import sys; open(sys.argv[1], 'w').write('step,x\\n0,' + sys.argv[2] + '\\n1,2.5\\n')"
TARGET = 1.3


def programs(workdir: Path) -> dict[str, list[str]]:
    """The tiny programs, as argv templates (``{output}`` and ``{a}`` placeholders)."""
    found = {"python -S (tiny script)": [sys.executable, "-S", "-c", SCRIPT, "{output}", "{a}"]}
    cp = shutil.which("cp")
    if cp is not None:
        source = workdir / "ready.csv"
        source.write_text("step,x\n0,1.5\n1,2.5\n")
        found["cp (no work: overhead bound)"] = [cp, str(source), "{output}"]
    return found


def plain_loop(argv: list[str], n: int, workdir: Path, name: str = "plain.csv") -> float:
    """Seconds per member of the by-hand loop."""
    out = workdir / name
    filled = [a.replace("{output}", str(out)).replace("{a}", "1.5") for a in argv]
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(filled, check=True)
        np.loadtxt(out, delimiter=",", skiprows=1)
    return (time.perf_counter() - start) / n


def two_plain_loops(argv: list[str], n: int, workdir: Path) -> float:
    """Seconds per member of two by-hand loops at once (the machine's ceiling for 2x)."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda i: plain_loop(argv, n, workdir, f"plain{i}.csv"), range(2)))
    return (time.perf_counter() - start) / (2 * n)


def command_loop(sim: Command, n: int, params: dict) -> float:
    """Seconds per member of ``Command.call``."""
    start = time.perf_counter()
    for seed in range(n):
        sim.call(params, seed)
    return (time.perf_counter() - start) / n


def ensemble_run(sim: Command, n: int, params: dict) -> float:
    """Seconds per member of ``Ensemble.compute`` on the embedded default (2 threads)."""
    import ensembles as ens

    design = ens.Grid(a=[1.5 + i for i in range(n)]) if params else ens.Points([{}] * n)
    e = ens.Ensemble(sim, design, seeds=1, root_seed=0)
    e.compute(progress=False, workers=2)  # warm the embedded cluster
    start = time.perf_counter()
    e.compute(progress=False, workers=2)
    return (time.perf_counter() - start) / n


def measure(members: int, rounds: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-command-") as tmp:
        workdir = Path(tmp)
        for label, argv in programs(workdir).items():
            sim = Command(argv, output="out.csv", index="step", scratch_dir=workdir / "scratch")
            params = {"a": 1.5} if "{a}" in argv else {}
            plain_loop(argv, 3, workdir)  # warm both paths (imports, page cache)
            command_loop(sim, 3, params)
            plain, cmd = [], []
            for _ in range(rounds):
                plain.append(plain_loop(argv, members, workdir))
                cmd.append(command_loop(sim, members, params))
            p, c = statistics.median(plain), statistics.median(cmd)
            # as many members as the loops ran in all: a run long enough (a few seconds)
            # that starting it (probe, plan, first tasks) is not most of it
            two = ensemble_run(sim, members * rounds, params) if params else float("nan")
            ceiling = two_plain_loops(argv, members, workdir) if params else float("nan")
            rows.append(
                {
                    "program": label,
                    "plain_ms": p * 1e3,
                    "command_ms": c * 1e3,
                    "overhead_ms": (c - p) * 1e3,
                    "ratio": c / p,
                    "members": members * rounds,
                    "ensemble_ms": two * 1e3,
                    "speedup": p / two,
                    "ceiling": p / ceiling,
                }
            )
            assert not any((workdir / "scratch").iterdir()), "scratch directories left behind"
    return rows


def markdown(rows: list[dict], command: str) -> str:
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Benchmark: `Command` per-member overhead",
        "",
        "`Command.call` (placeholders, fresh scratch directory, no shell, stdout/stderr to",
        "files, CSV parsed into an `xarray.Dataset`, scratch directory removed) against a",
        "plain `subprocess.run` + `numpy.loadtxt` loop over the same program, one member at a",
        f"time on one process. Target: ratio < {TARGET}x for a program that does real work",
        "(any interpreter-driven model starts slower than the `python -S` script here).",
        "",
        f"Command: `{command}`  ",
        f"Date: {today}  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()}; load average at start "
        f"{load:.1f}",
        "",
        "| program | members | plain loop (ms/member) | Command (ms/member) "
        "| overhead (ms/member) | ratio | ensemble, 2 workers (ms/member) | speed-up vs loop "
        "| two plain loops at once: speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['program']} | {r['members']} | {r['plain_ms']:.2f} | {r['command_ms']:.2f} "
            f"| {r['overhead_ms']:.2f} | {r['ratio']:.2f}x | "
            + (
                f"{r['ensemble_ms']:.2f} | {r['speedup']:.2f}x | {r['ceiling']:.2f}x |"
                if r["speedup"] == r["speedup"]
                else "n/a | n/a | n/a |"
            )
        )
    lines += [
        "",
        "The last two columns run the same program as an ensemble (`Ensemble.compute`, the",
        "embedded default: two worker threads, each waiting on its own subprocess) over as",
        "many members as the loops ran in all, against the plain loop's time per member",
        "(target: close to 2x).",
        "The last column is the machine's own ceiling: two plain loops run at once, each",
        "over the same number of members, on this machine's cores.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=40, help="members per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks_command.md"))
    args = parser.parse_args(argv)
    rows = measure(args.members, args.rounds)
    command = "python benchmarks/bench_command.py " + " ".join(argv or sys.argv[1:])
    text = markdown(rows, command.strip())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
