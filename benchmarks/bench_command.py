"""``Command`` against a plain ``subprocess.run`` loop: per-member overhead and ensemble speed-up.

The same tiny program once per member on every side:

* plain loop: ``subprocess.run(argv, check=True)`` writing into one fixed folder, then
  ``numpy.loadtxt`` of the CSV it wrote (the least a by-hand loop does);
* ``Command.call``: placeholders filled, a fresh scratch folder, the program in its own
  session with stdout/stderr to files, the CSV parsed into an ``xarray.Dataset``, the
  scratch folder removed; one member at a time, one process;
* ensemble: ``Ensemble.compute()`` of the same members on the embedded default (two
  worker threads, each waiting on its own program), warm;
* two plain loops at once (threads), each over half the members: the machine's ceiling.

Every side runs the same members (80 and 200) the same number of rounds, each case a fresh
process, rounds interleaved. Programs: a tiny Python script (``python -S``, the realistic
case for an interpreter-driven model) and ``cp`` of a ready-made CSV (almost no work: the
ratio there is the pure overhead bound).

Run ``python benchmarks/bench_command.py [--quick] [--busy]``.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

SCRIPT = "import sys; open(sys.argv[1], 'w').write('step,x\\n0,' + sys.argv[2] + '\\n1,2.5\\n')"


def _argv(program: str, workdir: Path) -> list[str]:
    if program == "python":
        return [sys.executable, "-S", "-c", SCRIPT, "{output}", "{a}"]
    source = workdir / "ready.csv"
    source.write_text("step,x\n0,1.5\n1,2.5\n")
    return [shutil.which("cp") or "cp", str(source), "{output}"]


def _plain(argv: list[str], n: int, out: Path) -> None:
    import subprocess

    import numpy as np

    filled = [a.replace("{output}", str(out)).replace("{a}", "1.5") for a in argv]
    for _ in range(n):
        subprocess.run(filled, check=True)
        np.loadtxt(out, delimiter=",", skiprows=1)


def members(*, how, program, n, workdir):
    """Milliseconds per member of one way of running ``n`` members of ``program``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = _argv(program, workdir)
    params = {"a": 1.5} if program == "python" else {}
    if how in ("plain", "two"):
        _plain(argv, 3, workdir / "warm.csv")
        start = time.perf_counter()
        if how == "plain":
            _plain(argv, n, workdir / "plain.csv")
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:
                outs = [workdir / f"plain{i}.csv" for i in range(2)]
                list(pool.map(lambda o: _plain(argv, n // 2, o), outs))
        return {"ms_per_member": (time.perf_counter() - start) / n * 1e3}
    import ensembles as ens

    sim = ens.Command(argv, output="out.csv", index="step", scratch_dir=workdir / "scratch")
    if how == "command":
        for seed in range(3):
            sim.call(params, seed)
        start = time.perf_counter()
        for seed in range(n):
            sim.call(params, seed)
        elapsed = time.perf_counter() - start
    else:
        warm = ens.Ensemble(sim, ens.Grid(a=[1.5, 2.5, 3.5, 4.5]), seeds=1, root_seed=0)
        warm.compute(progress=False, workers=2)  # the embedded cluster started
        e = ens.Ensemble(sim, ens.Grid(a=[1.5 + i for i in range(n)]), seeds=1, root_seed=0)
        start = time.perf_counter()
        ds = e.compute(progress=False, workers=2)
        elapsed = time.perf_counter() - start
        assert int((ds["status"].values == 1).sum()) == n
    left = list((workdir / "scratch").iterdir())
    return {"ms_per_member": elapsed / n * 1e3, "scratch_left": len(left)}


CANDIDATES = {"members": members}


def plan(b: _harness.Bench) -> None:
    sizes = (8, 20) if b.quick else (80, 200)
    rounds = b.args.rounds or (1 if b.quick else 3)
    programs = ["python"] + (["cp"] if shutil.which("cp") else [])
    b.params = {"members": list(sizes), "programs": programs}
    for rnd in range(rounds):
        for n in sizes:
            for program in programs:
                hows = (
                    ("plain", "command", "ensemble", "two")
                    if program == "python"
                    else ("plain", "command")
                )
                for how in hows:
                    case = f"{program}-{n}-{how}"
                    workdir = str(b.tmp / f"{case}-{rnd}")
                    params = {"how": how, "program": program, "n": n, "workdir": workdir}
                    b.run(case, "members", params, rnd)
    left = [r for r in b.runs if r.get("scratch_left")]
    b.check("Command removes its scratch folders", not left, f"{len(left)} runs left some")
    _tables(b, sizes, programs)


def _tables(b: _harness.Bench, sizes: tuple[int, int], programs: list[str]) -> None:
    names = {"python": "python -S (tiny script)", "cp": "cp (no work: overhead bound)"}
    hows = {
        "plain": "plain `subprocess.run` loop",
        "command": "`Command.call` loop",
        "ensemble": "ensemble, `compute()`, 2 workers",
        "two": "two plain loops at once",
    }
    for program in programs:
        for n in sizes:
            cases = [
                f"{program}-{n}-{h}"
                for h in hows
                if program == "python" or h in ("plain", "command")
            ]
            b.labels.update({c: hows[c.rsplit("-", 1)[1]] for c in cases})
            base = f"{program}-{n}-plain"
            b.tables.append(
                {
                    "title": f"{names[program]}, {n} members",
                    "cases": cases,
                    "columns": [
                        {"metric": "ms_per_member", "label": "ms per member", "fmt": ".2f"}
                    ],
                    "ratios": [
                        {
                            "metric": "ms_per_member",
                            "baseline": base,
                            "kind": "speedup",
                            "label": "speed-up vs the plain loop",
                        }
                    ],
                }
            )
            if program == "python":
                _targets(b, n, base)


def _targets(b: _harness.Bench, n: int, base: str) -> None:
    b.targets.append(
        {
            "label": f"`Command` per-member overhead, python -S, {n} members "
            "(time vs the plain loop)",
            "case": f"python-{n}-command",
            "baseline": base,
            "metric": "ms_per_member",
            "kind": "relative",
            "op": "<",
            "threshold": 1.3,
            "reason": "a scratch folder, files for stdout and stderr and the CSV "
            "parsed into a Dataset per member",
        }
    )
    b.targets.append(
        {
            "label": f"`Command` ensemble, 2 workers, {n} members: speed-up vs the plain loop",
            "case": f"python-{n}-ensemble",
            "baseline": base,
            "metric": "ms_per_member",
            "kind": "speedup",
            "op": ">=",
            "threshold": 1.8,
            "reason": "the per-member Python work (scratch folder, CSV parsing) "
            "shares the 2 cores with the programs; compare the two-plain-loops row",
        }
    )


if __name__ == "__main__":
    sys.exit(_harness.main("command", __file__, __doc__, CANDIDATES, plan))
