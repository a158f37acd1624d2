"""Run every benchmark and rewrite the tables of docs/benchmarks*.md from their JSON results.

Usage::

    python benchmarks/run_all.py                  # every script, then the pages' tables
    python benchmarks/run_all.py --busy           # the same with one CPU hog beside each run
    python benchmarks/run_all.py --only peers ema # some scripts
    python benchmarks/run_all.py --tables-only    # only regenerate the pages from the JSON
    python benchmarks/run_all.py --final          # drop the "provisional" line (quiet machine)
    python benchmarks/run_all.py --quick --results /tmp/r --docs /tmp/docs  # smoke test

Each script writes its raw runs to ``<results>/<name>[-busy][-quick].json``; the tables
between ``<!-- BEGIN bench:NAME -->`` and ``<!-- END bench:NAME -->`` in the pages (and
the targets summary in docs/benchmarks.md) are printed from those files by ``_report.py``.
A ``--quick`` run never touches the pages unless ``--docs`` names a folder.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import RESULTS, ROOT, candidate_env
from _report import render, summary, update_doc

#: name: (script, page); run in this order
SCRIPTS = {
    "ising": ("bench_ising.py", "benchmarks_ising.md"),
    "engine": ("bench_engine.py", "benchmarks_engine.md"),
    "command": ("bench_command.py", "benchmarks_command.md"),
    "envelope": ("bench_envelope.py", "benchmarks_analysis.md"),
    "scale": ("bench_scale.py", "benchmarks_scale.md"),
    "peers": ("bench_peers.py", "benchmarks_peers.md"),
    "resume": ("bench_resume.py", "benchmarks_peers.md"),
    "mesa": ("bench_mesa.py", "benchmarks_peers.md"),
    "ema": ("bench_ema.py", "benchmarks_peers.md"),
    "stragglers": ("bench_stragglers.py", "benchmarks_engine.md"),
    "adaptive": ("bench_adaptive.py", "benchmarks_adaptive.md"),
}


def run_scripts(names: list[str], args: argparse.Namespace) -> dict[str, int]:
    """Run each script in its own process; returns their exit codes."""
    codes = {}
    for name in names:
        script = Path(__file__).resolve().parent / SCRIPTS[name][0]
        argv = [sys.executable, str(script), "--results", str(args.results), "--no-table"]
        argv += ["--quick"] * args.quick + ["--busy"] * args.busy
        print(f"== {name}: {' '.join(argv[1:])}", flush=True)
        start = time.perf_counter()
        codes[name] = subprocess.run(argv, env=candidate_env(), cwd=ROOT, check=False).returncode
        print(
            f"== {name}: exit {codes[name]} after {time.perf_counter() - start:.0f} s", flush=True
        )
    return codes


def load(results: Path, quick: bool) -> dict[str, dict]:
    """The results files there are: ``{name or name-busy: payload}``."""
    found = {}
    for name in SCRIPTS:
        for busy in ("", "-busy"):
            path = results / f"{name}{busy}{'-quick' if quick else ''}.json"
            if path.exists():
                found[name + busy] = json.loads(path.read_text())
    return found


def write_pages(payloads: dict[str, dict], docs: Path, final: bool) -> list[str]:
    """Rewrite the marked blocks of the pages; returns the blocks that had no marker."""
    missing = []
    for key, payload in payloads.items():
        page = docs / SCRIPTS[key.removesuffix("-busy")][1]
        if not page.exists() or not update_doc(page, key, render(payload, final)):
            missing.append(f"{page.name}: bench:{key}")
    pages = {name: page for name, (_, page) in SCRIPTS.items()}
    index = docs / "benchmarks.md"
    if index.exists() and not update_doc(index, "targets", summary(payloads, pages, final)):
        missing.append("benchmarks.md: bench:targets")
    return missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--busy", action="store_true", help="one CPU hog beside every run")
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS), help="run only these scripts")
    p.add_argument("--tables-only", action="store_true", help="regenerate the pages only")
    p.add_argument("--final", action="store_true", help="figures from a quiet machine")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON results")
    p.add_argument("--docs", type=Path, default=None, help="folder of the pages to rewrite")
    args = p.parse_args(argv)
    codes = {} if args.tables_only else run_scripts(args.only or list(SCRIPTS), args)
    docs = args.docs or (None if args.quick else ROOT / "docs")
    if docs is not None:
        missing = write_pages(load(args.results, args.quick), docs, args.final)
        for block in missing:
            print(f"no markers for {block}", file=sys.stderr)
        print(f"pages in {docs} rewritten from {args.results}")
    failed = [name for name, code in codes.items() if code != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
