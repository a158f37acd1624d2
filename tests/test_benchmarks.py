"""The benchmark harness and scripts: real processes measured, tables printed from JSON.

The harness tests are fast and always run. Each script's ``--quick`` mode is a smoke test
in a subprocess (exit 0, JSON and table written; no timing assertions): the Ising kernel's
runs always, the others are slow and need the ``bench`` extra (the peers) and
``ENSEMBLES_BENCH_SMOKE=1``, since together they take minutes on two cores.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _harness  # noqa: E402
import _report  # noqa: E402

ALLOC = "import time; a = b'x' * ({mib} << 20); time.sleep(0.5)"


def test_run_process_measures_the_whole_tree_and_reads_the_candidates_json():
    child = ALLOC.format(mib=80)
    parent = (
        "import subprocess, sys, json; "
        f"subprocess.run([sys.executable, '-c', {child!r}], check=True); "
        "print(json.dumps({'inner_s': 0.25}))"
    )
    record = _harness.run_process([sys.executable, "-c", parent])
    assert record["rc"] == 0
    assert record["inner_s"] == 0.25  # the parent's last JSON line wins
    assert record["peak_pss_mib"] >= 70  # the child's 80 MiB counted with the parent
    assert record["processes"] >= 2
    assert record["wall_s"] >= 0.5


def test_run_process_kills_the_tree_when_asked(tmp_path):
    marker = tmp_path / "started"
    code = (
        "import subprocess, sys, time, pathlib; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"pathlib.Path({str(marker)!r}).touch(); time.sleep(600)"
    )
    record = _harness.run_process(
        [sys.executable, "-c", code], kill_when=marker.exists, timeout=120
    )
    assert record.get("killed") is True
    assert record["wall_s"] < 60
    assert len(record["pids"]) >= 2
    time.sleep(0.2)
    assert not [p for p in record["pids"] if _alive(p)]  # the grandchild too


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cpu_hog_runs_only_inside_the_block():
    with _harness.cpu_hog(True) as hog:
        assert hog.poll() is None
        assert _alive(hog.pid)
    assert hog.poll() is not None
    with _harness.cpu_hog(False) as none:
        assert none is None


def _payload(runs, targets=(), busy=False):
    return {
        "benchmark": "t",
        "command": "python benchmarks/bench_t.py",
        "started": "2026-12-01 00:00 UTC",
        "machine": {
            "cpu": "x",
            "cores": 2,
            "memory_gib": 24,
            "python": "3.11",
            "load_start": [0.1],
            "load_end": [0.2],
        },
        "versions": {"ensembles": "0"},
        "busy": busy,
        "labels": {"a": "tool A", "b": "tool B"},
        "tables": [
            {
                "title": "T",
                "cases": ["a", "b"],
                "columns": [{"metric": "s", "label": "seconds", "fmt": ".1f"}],
                "ratios": [
                    {"metric": "s", "baseline": "a", "kind": "speedup", "label": "speed-up vs A"}
                ],
            }
        ],
        "targets": list(targets),
        "checks": [{"what": "same numbers", "ok": True, "detail": ""}],
        "notes": [],
        "runs": runs,
    }


def _runs(a, b):
    return [
        {"case": c, "round": r, "rc": 0, "s": v}
        for c, vals in (("a", a), ("b", b))
        for r, v in enumerate(vals)
    ]


def test_report_prints_medians_ranges_and_per_round_ratios():
    text = _report.render(_payload(_runs([4.0, 2.0, 6.0], [2.0, 2.0, 2.0])))
    assert "| tool A | 4.0 (2.0-6.0) | 1 (baseline) |" in text
    # ratios per round: 2, 1, 3 -> median 2, range 1-3
    assert "| tool B | 2.0 | 2.00x (1.00-3.00x) |" in text
    assert "Provisional" in text
    assert "Provisional" not in _report.render(_payload(_runs([1.0], [1.0])), final=True)


def test_report_judges_targets_at_the_median_and_prints_the_reason():
    target = {
        "label": "B vs A",
        "case": "b",
        "baseline": "a",
        "metric": "s",
        "kind": "speedup",
        "op": ">=",
        "threshold": 1.5,
        "reason": "B starts slowly",
    }
    met = _report.render(_payload(_runs([4.0, 2.0, 6.0], [2.0, 2.0, 2.0]), [target]))
    assert "| B vs A | 2.00x (1.00-3.00x) | >= 1.5x | met |" in met
    missed = _report.render(_payload(_runs([2.0, 2.0, 2.0], [2.0, 4.0, 2.0]), [target]))
    assert "| B vs A | 1.00x (0.50-1.00x) | >= 1.5x | not met: B starts slowly |" in missed
    value = {
        "label": "A fast",
        "case": "a",
        "metric": "s",
        "kind": "value",
        "op": "<",
        "threshold": 3.0,
        "unit": " s",
        "reason": "slow",
    }
    assert "| A fast | 4 s (2-6 s) | < 3 s | not met: slow |" in _report.render(
        _payload(_runs([4.0, 2.0, 6.0], [1.0, 1.0, 1.0]), [value])
    )


def test_failed_runs_are_left_out_of_the_figures():
    runs = _runs([1.0, 9.0], [1.0, 1.0])
    runs[1]["rc"] = 1
    assert "| tool A | 1.0 | 1 (baseline) |" in _report.render(_payload(runs))


def test_a_run_that_may_fail_counts_whatever_its_exit_status():
    runs = _runs([1.0], [3.0])
    runs[1].update(rc=-9, may_fail=True)
    assert "| tool B | 3.0 | 0.33x |" in _report.render(_payload(runs))


def test_update_doc_replaces_only_between_the_markers(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("intro\n<!-- BEGIN bench:x -->\nold\n<!-- END bench:x -->\noutro\n")
    assert _report.update_doc(page, "x", "new table")
    assert page.read_text() == (
        "intro\n<!-- BEGIN bench:x -->\nnew table\n<!-- END bench:x -->\noutro\n"
    )
    assert not _report.update_doc(page, "y", "nothing")


def _quick(script: str, tmp_path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--results", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_harness.candidate_env(),
        timeout=1800,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [path] = tmp_path.glob("*-quick.json")
    payload = json.loads(path.read_text())
    assert payload["runs"]
    assert payload["tables"]
    assert all(r["rc"] == 0 for r in payload["runs"] if not r.get("killed"))
    assert "|---|" in out.stdout  # the table was printed
    return payload


def test_ising_quick_and_run_all_rewrite_a_page(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    marked = "# Ising\n<!-- BEGIN bench:ising -->\n<!-- END bench:ising -->\n"
    (docs / "benchmarks_ising.md").write_text(marked)
    (docs / "benchmarks.md").write_text(
        "<!-- BEGIN bench:targets -->\n<!-- END bench:targets -->\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--quick",
            "--only",
            "ising",
            "--results",
            str(tmp_path / "r"),
            "--docs",
            str(docs),
        ],
        capture_output=True,
        text=True,
        env=_harness.candidate_env(),
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    payload = json.loads((tmp_path / "r" / "ising-quick.json").read_text())
    assert {r["case"] for r in payload["runs"]} >= {"kernel", "ours-2.0000-0.0", "numpy-2.0000"}
    page = (docs / "benchmarks_ising.md").read_text()
    assert "ns per attempted flip" in page
    assert "speed-up vs numpy" in page
    assert "Ising kernel, T = 2.0" in (docs / "benchmarks.md").read_text()


PEERS = ("pipefunc", "ema_workbench", "xclim", "mesa", "joblib")
SMOKE = os.environ.get("ENSEMBLES_BENCH_SMOKE") == "1" and all(
    importlib.util.find_spec(p) for p in PEERS
)
WHY = (
    "set ENSEMBLES_BENCH_SMOKE=1 with the bench extra installed (pip install -e '.[bench]') "
    "to run the benchmarks' quick modes"
)


@pytest.mark.slow
@pytest.mark.skipif(not SMOKE, reason=WHY)
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    "script",
    [
        "bench_peers.py",
        "bench_resume.py",
        "bench_mesa.py",
        "bench_ema.py",
        "bench_envelope.py",
        "bench_engine.py",
        "bench_command.py",
        "bench_scale.py",
        "bench_adaptive.py",
    ],
)
def test_quick_mode_runs(script, tmp_path):
    payload = _quick(script, tmp_path)
    assert payload["quick"] is True
    assert all(c["ok"] for c in payload["checks"])
