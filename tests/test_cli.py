"""The command line: run, resume, info, demo; one-line errors, exit codes, conventions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ensembles as ens
from ensembles.cli import main

SPEC = """
[simulation]
function = "ensembles.models.ising:simulate"
[design.grid]
T = [1.5, 2.0, 2.5]
[fixed]
L = 8
n_sweeps = 60
burn_in = 10
thin = 5
[run]
seeds = 2
root_seed = 42
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def test_run_then_info(spec, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(spec), "-o", str(out), "--quiet"]) == 0
    assert "6 of 6 members ok" in capsys.readouterr().out
    ds = ens.open_ensemble(out)
    assert ds["M"].dims == ("T", "seed", "sweep")
    assert ds["T"].values.tolist() == [1.5, 2.0, 2.5]
    # the same run through the Python API gives the same values
    from ensembles.models import ising

    e = ens.Ensemble(
        ising.simulate,
        ens.Grid(T=[1.5, 2.0, 2.5]),
        seeds=2,
        root_seed=42,
        fixed={"L": 8, "n_sweeps": 60, "burn_in": 10, "thin": 5},
    )
    ref = e.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(ds["M"].values, ref["M"].values)
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "members:    6 ok, 0 failed, 0 pending of 6" in text
    assert "T: 3, seed: 2, sweep: 10" in text
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["design"] == {"grid": {"T": [1.5, 2.0, 2.5]}}


def test_run_refuses_existing_store_then_overwrite_and_resume(spec, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(spec), "-o", str(out), "-q"]) == 0
    assert main(["run", str(spec), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ensembles: error: a store already exists")
    assert "Traceback" not in err
    assert main(["run", str(spec), "-o", str(out), "-q", "--overwrite"]) == 0
    # extend from a grown spec: only new members run
    grown = tmp_path / "grown.toml"
    grown.write_text(SPEC.replace("seeds = 2", "seeds = 3"))
    assert main(["run", str(grown), "-o", str(out), "-q", "--resume"]) == 0
    assert ens.open_ensemble(out).sizes["seed"] == 3
    assert main(["resume", str(out), "-q"]) == 0


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            "[simulation]\nfunction = 'nope.nothing:f'\n[design.grid]\nT = [1.0]\n",
            "cannot import module 'nope.nothing'",
        ),
        ("[simulation]\nfunction = 'ensembles.models.ising:simulate'\n", "missing the [design]"),
        (
            "[simulation]\nfunction = 'ensembles.models.ising:simulate'\n[design.grid]\nT = []\n",
            "T",
        ),
        (
            "[simulation]\nfunction='ensembles.models.ising:simulate'\n[design.grid]\nT=[1.0]\n"
            "[fixed]\nbogus = 1\n",
            "does not accept parameter",
        ),
        (
            "[simulation]\nfunction='x:y'\n[design.grid]\nT=[1.0]\n[run]\nseedz = 1\n",
            "unknown key",
        ),
        ("not toml ===", "is not valid TOML"),
    ],
    ids=["bad-import", "no-design", "empty-grid", "unknown-param", "unknown-run-key", "bad-toml"],
)
def test_bad_specs_give_one_line_errors(tmp_path, capsys, content, match):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    assert main(["run", str(path), "-o", str(tmp_path / "o.zarr"), "-q"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert match in err
    assert not (tmp_path / "o.zarr").exists()


def test_info_of_missing_store(tmp_path, capsys):
    assert main(["info", str(tmp_path / "none.zarr")]) == 1
    assert "no ensemble store" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(ens.StoreError):
        main(["--debug", "info", str(tmp_path / "none.zarr")])


def test_entry_point_and_demo(tmp_path):
    """The installed `ensembles` command runs the demo (small) in a fresh process."""
    exe = Path(sys.executable).with_name("ensembles")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ensembles.cli"]
    result = subprocess.run(
        [
            *cmd,
            "demo",
            "--out",
            str(tmp_path),
            "--samples",
            "3",
            "--seeds",
            "2",
            "--size",
            "8",
            "--n-sweeps",
            "100",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stderr
    assert "ising-demo.zarr" in result.stdout
    png = tmp_path / "ising-demo-envelope.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ds = ens.open_ensemble(tmp_path / "ising-demo.zarr")
    assert ds.sizes["sample"] == 4
    assert float(ds["T"][0]) == 3.0


def test_summary_and_plot(spec, tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "out.zarr"
    assert main(["run", str(spec), "-o", str(out), "-q"]) == 0
    csv = tmp_path / "summary.csv"
    assert (
        main(
            [
                "summary",
                str(out),
                "--over",
                "seed",
                "--q",
                "0.025",
                "0.5",
                "0.975",
                "--var",
                "M",
                "--aggregate",
                "mean",
                "-o",
                str(csv),
            ]
        )
        == 0
    )
    table = pd.read_csv(csv)
    assert table["T"].tolist() == [1.5, 2.0, 2.5]
    ds = ens.open_ensemble(out)
    want = ds["M"].mean("sweep").mean("seed").values
    np.testing.assert_allclose(table["mean"].to_numpy(), want, rtol=1e-12)
    assert set(table.columns) >= {"n", "mean", "std", "q0.025", "q0.5", "q0.975"}
    assert main(["summary", str(out), "--var", "M", "--aggregate", "last"]) == 0
    assert "q0.975" in capsys.readouterr().out
    png = tmp_path / "env.png"
    assert main(["plot", str(out), "--var", "M", "--over", "T", "seed", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(out), "--var", "nope", "-o", str(png)]) == 1
    assert "no output 'nope'" in capsys.readouterr().err
    assert main(["summary", str(out), "-o", str(tmp_path / "s.xlsx")]) == 1
    assert ".parquet" in capsys.readouterr().err


def _png_dpi(path):
    from PIL import Image

    return Image.open(path).info["dpi"]


def test_summary_of_a_mixed_store_notes_what_it_left_out(tmp_path, capsys):
    """A scalar output and a time series: the default table is the scalar one, with a note."""
    from . import sims

    out = tmp_path / "walk.zarr"
    ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 0.5]), seeds=3, root_seed=1).to_zarr(
        out, progress=False
    )
    assert main(["summary", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == [
        "variable",
        "drift",
        "n",
        "mean",
        "std",
        "q0.025",
        "q0.5",
        "q0.975",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["final", "final"]
    assert "note: left out x" in captured.err
    assert "--var x" in captured.err
    assert "--aggregate mean" in captured.err
    assert main(["summary", str(out), "--aggregate", "mean"]) == 0
    captured = capsys.readouterr()
    assert {line.split()[0] for line in captured.out.strip().splitlines()[1:]} == {"final", "x"}
    assert "note" not in captured.err


def test_summary_and_plot_take_a_quantile_method(spec, tmp_path, capsys):
    import pandas as pd

    from ensembles.analysis import summary as tables

    out = tmp_path / "out.zarr"
    assert main(["run", str(spec), "-o", str(out), "-q"]) == 0
    csv = tmp_path / "hazen.csv"
    args = ["summary", str(out), "--var", "M", "--aggregate", "last", "--method", "hazen"]
    assert main([*args, "-o", str(csv)]) == 0
    expected = tables.summary(ens.open_ensemble(out), vars=["M"], aggregate="last", method="hazen")
    pd.testing.assert_frame_equal(pd.read_csv(csv), expected, check_exact=True)
    png = tmp_path / "env.png"
    assert main(["plot", str(out), "--var", "M", "--method", "weibull", "-o", str(png)]) == 0
    assert _png_dpi(png) == pytest.approx((120, 120), abs=0.1)
    assert main(["summary", str(out), "--method", "cubic"]) == 1
    err = capsys.readouterr().err
    assert "method='cubic' is not a quantile method" in err
    assert "median_unbiased" in err
    assert main(["plot", str(out), "--var", "M", "--method", "cubic", "-o", str(png)]) == 1
    assert "method='cubic'" in capsys.readouterr().err


def test_plot_refuses_too_many_lines_and_names_the_better_call(tmp_path, capsys):
    temps = ", ".join(f"{1.5 + 0.1 * i:.1f}" for i in range(12))
    path = tmp_path / "many.toml"
    path.write_text(
        SPEC.replace("T = [1.5, 2.0, 2.5]", f"T = [{temps}]").replace(
            "n_sweeps = 60", "n_sweeps = 20"
        )
    )
    out = tmp_path / "many.zarr"
    assert main(["run", str(path), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    png = tmp_path / "many.png"
    assert main(["plot", str(out), "--var", "M", "--over", "seed", "-o", str(png)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "12 values of 'T' would draw 12 overlapping lines" in err
    assert "--over T seed" in err
    assert not png.exists()
    assert main(["plot", str(out), "--var", "M", "--over", "T", "seed", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


# -- failed members: exit status and reports -------------------------------------------

FAILING = """
[simulation]
command = [{python!r}, "-c", "{program}", "{{a}}"]
output = "-"
[design.grid]
a = [-1.5, 0.5, -2.0, 3.0]
[run]
seeds = 2
root_seed = 1
"""


#: Prints ``y`` as CSV; exits 1 with "negative: A" on stderr when ``a < 0``.
PROGRAM = (
    "import sys; a = float(sys.argv[1]); print('y'); print(a); "
    "sys.exit('negative: ' + sys.argv[1] if a < 0 else 0)"
)


@pytest.fixture
def failing_spec(tmp_path):
    """A real program that exits 1 for negative ``a``: 4 of 8 members fail."""
    path = tmp_path / "failing.toml"
    path.write_text(FAILING.format(python=sys.executable, program=PROGRAM))
    return path


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ensembles.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_failed_members_make_run_and_resume_exit_3(failing_spec, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    result = _cli("run", str(failing_spec), "-o", str(out))
    assert result.returncode == 3, result.stderr
    assert "4 of 8 members ok, 4 failed" in result.stdout
    # the report names failed members by their parameters, grouped by error
    err = result.stderr
    assert "4 of 8 members failed (recorded in" in err
    group = (
        "  CommandError: command failed with exit code 1 (4 members)\n"
        "    a=-1.5, seed=0\n    a=-1.5, seed=1\n    a=-2.0, seed=0\n    ... and 1 more\n"
    )
    assert group in err
    assert "members 0" not in err
    assert "Traceback" not in err
    # resume: the failures persist, so the status does too; --allow-failures opts out
    assert main(["resume", str(out), "-q"]) == 3
    assert main(["resume", str(out), "-q", "--failed", "--allow-failures"]) == 0
    capsys.readouterr()
    # a run in which every member is ok exits 0, with or without the flag
    ok = tmp_path / "ok.toml"
    ok.write_text(failing_spec.read_text().replace("-1.5", "1.5").replace("-2.0", "2.0"))
    assert main(["run", str(ok), "-o", str(out), "-q", "--overwrite"]) == 0
    assert main(["resume", str(out), "-q"]) == 0


def test_allow_failures_exits_0_and_usage_errors_exit_2(failing_spec, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(failing_spec), "-o", str(out), "-q", "--allow-failures"]) == 0
    assert "4 failed" in capsys.readouterr().out
    assert int((ens.open_ensemble(out)["status"] == 2).sum()) == 4
    with pytest.raises(SystemExit) as usage:
        main(["run", str(failing_spec)])  # no -o
    assert usage.value.code == 2
    # an error (not failed members) is 1
    assert main(["run", str(failing_spec), "-o", str(out), "-q"]) == 1


def test_info_names_failed_members_by_parameters(failing_spec, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(failing_spec), "-o", str(out), "-q", "--allow-failures"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "members:    4 ok, 4 failed, 0 pending of 8" in text
    assert "CommandError: command failed with exit code 1 (4 members)" in text
    assert "      a=-1.5, seed=0\n      a=-1.5, seed=1\n      a=-2.0, seed=0\n" in text
    assert " x CommandError" not in text
    # --failed: every failed member with its parameters, seed index, member seed, error
    assert main(["info", str(out), "--failed"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["a", "seed", "member_seed", "error", "message"]
    ds = ens.open_ensemble(out)
    want = []
    for a in (-1.5, -2.0):
        for seed in (0, 1):
            member_seed = int(ds["member_seed"].sel(a=a, seed=seed))
            want.append([repr(a), str(seed), str(member_seed), "CommandError"])
    assert [line.split()[:4] for line in lines[1:]] == want
    # --failed --json: the same members, with their full messages
    assert main(["info", str(out), "--failed", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    rows = info["failed_members"]
    assert [(r["a"], r["seed"], r["member_seed"]) for r in rows] == [
        (float(a), int(s), int(m)) for a, s, m, _ in want
    ]
    assert all(f"negative: {r['a']}" in r["message"] for r in rows)  # the program's stderr
    assert info["members"]["failed"] == 4


def test_info_prints_design_and_simulation_readably(failing_spec, tmp_path, capsys):
    sampled = tmp_path / "sampled.toml"
    sampled.write_text(
        "[simulation]\n"
        'function = "tests.sims:seeded"\n'
        "[design.sample]\n"
        "n = 3\n"
        "seed = 7\n"
        'params = {a = {dist = "normal", loc = 3.0, scale = 0.05}}\n'
        "[fixed]\n"
        "b = 2.5\n"
        "[run]\n"
        "seeds = 2\n"
        "root_seed = 4\n"
    )
    out = tmp_path / "s.zarr"
    assert main(["run", str(sampled), "-o", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "  simulation: tests.sims:seeded\n" in text
    assert "  design:     Sample(n=3, seed=7, a=Normal(loc=3.0, scale=0.05))\n" in text
    assert "  fixed:      b=2.5\n" in text
    assert "{" not in text  # no dict reprs
    out2 = tmp_path / "cmd.zarr"
    assert main(["run", str(failing_spec), "-o", str(out2), "-q", "--allow-failures"]) == 0
    capsys.readouterr()
    assert main(["info", str(out2)]) == 0
    text = capsys.readouterr().out
    assert f"  simulation: command {sys.executable} -c " in text
    assert "(output=-)" in text
    assert "  design:     Grid(a=[-1.5, 0.5, -2.0, 3.0])\n" in text
    assert main(["info", str(out2), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["design"] == {"grid": {"a": [-1.5, 0.5, -2.0, 3.0]}}


# -- one set of conventions ---------------------------------------------------------------


def test_help_shows_defaults_an_example_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    assert "exit status:" in top
    for code in ("0", "1", "2", "3", "130", "141"):
        assert f"\n  {code} " in top
    for command in ("run", "resume", "demo", "info", "summary", "plot"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert f"example:\n  ensembles {command} " in text, command
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    run_help = capsys.readouterr().out
    for table in ("[simulation]", "[design]", "[fixed]", "[run]", "[design.grid]"):
        assert table in run_help
    assert "--allow-failures" in run_help
    with pytest.raises(SystemExit):
        main(["resume", "--help"])
    assert "(default: 0)" in capsys.readouterr().out  # --retries
    with pytest.raises(SystemExit):
        main(["summary", "--help"])
    assert "(default: 0.025 0.5 0.975)" in capsys.readouterr().out


def test_q_means_quiet_and_quantiles_are_spelled_out(spec, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(spec), "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().err == ""  # quiet: no progress line
    for command in (["summary", str(out)], ["plot", str(out), "--var", "M", "-o", "x.png"]):
        with pytest.raises(SystemExit) as usage:
            main([*command, "-q", "0.5"])  # -q is not a quantile anywhere
        assert usage.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", str(spec), "-o", str(out), "--q"])  # nor an abbreviation of --quiet
    capsys.readouterr()
    for flag in ("--q", "--quantiles"):
        assert main(["summary", str(out), "--var", "M", "--aggregate", "mean", flag, "0.5"]) == 0
        header = capsys.readouterr().out.splitlines()[0]
        assert "q0.5" in header
        assert "q0.975" not in header
    png = tmp_path / "band.png"
    assert main(["plot", str(out), "--var", "M", "--q", "0.1", "0.9", "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args", [["info", "{out}"], ["info", "{out}", "--failed"], ["summary", "{out}"]]
)
def test_a_closed_pipe_is_not_an_error(spec, tmp_path, args):
    """`ensembles info out.zarr | head` must not print "error: [Errno 32] Broken pipe"."""
    out = tmp_path / "out.zarr"
    assert main(["run", str(spec), "-o", str(out), "-q"]) == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "ensembles.cli", *(a.format(out=out) for a in args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before anything is written, like `| head -0`
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=300) == 141
    assert err == ""


def test_a_failing_member_with_on_error_raise_is_one_line(tmp_path):
    """No "Compute Failed" records from the embedded cluster's workers, no traceback."""
    path = tmp_path / "raise.toml"
    path.write_text(
        '[simulation]\nfunction = "tests.sims:flaky"\n[design.grid]\n'
        "a = [1.0, 2.0, -1.0, 3.0]\n[run]\nseeds = 4\nroot_seed = 1\nbatch_size = 1\n"
        'on_error = "raise"\n'
    )
    result = _cli("run", str(path), "-o", str(tmp_path / "r.zarr"), "-q")
    assert result.returncode == 1
    assert result.stderr.startswith("ensembles: error: member ")
    assert "a must be non-negative, got -1.0" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_local_run_starts_nothing_of_dask_distributed(spec, tmp_path):
    """The local pool needs no scheduler: ``ensembles run`` never imports distributed
    (its import alone is a third of a second of a short command)."""
    code = (
        "import sys\n"
        "from ensembles.cli import main\n"
        f"code = main(['run', {str(spec)!r}, '-o', {str(tmp_path / 'out.zarr')!r}, '-q'])\n"
        "print(code, 'distributed' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["0", "False"]
