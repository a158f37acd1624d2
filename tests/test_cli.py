"""The command line: run, resume, info, demo; one-line errors and exit codes."""

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
                "-q",
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
