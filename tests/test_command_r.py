"""The R workflow of examples/ising_R, with real R: the script, Command, a spec via the CLI.

The README's commands and Python code run as written, only with smaller sizes (the one
line of sizes in the Python code and the sizes in the spec are replaced).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ensembles as ens
from ensembles.simulations.command import Command, CommandError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ising_R"
README = EXAMPLE / "README.md"
SCRIPT = "run_ising_model.R"

pytestmark = pytest.mark.skipif(
    shutil.which("Rscript") is None,
    reason="Rscript is not on PATH (install R: apt-get install r-base-core; .ci/run does)",
)

SMALL = {"L": 8, "n_sweeps": 60, "burn_in": 10, "thin": 5}
ARGV = [
    "Rscript", SCRIPT, "--temps", "{T}", "--grid-size", "{L}", "--n-sweeps", "{n_sweeps}",
    "--burn-in", "{burn_in}", "--thin", "{thin}", "--seed", "{seed}", "--output", "{output}",
]  # fmt: skip


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """A copy of the example directory, made the working directory (as the README says)."""
    for name in (SCRIPT, "ising_R.toml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _env() -> dict[str, str]:
    return {**os.environ, "MPLBACKEND": "Agg"}


def _ensembles_cli() -> list[str]:
    exe = Path(sys.executable).with_name("ensembles")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ensembles.cli"]


def _console(prefix: str) -> list[tuple[list[str], list[str]]]:
    """The README's console commands starting with ``prefix``, with their shown output."""
    found = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), re.S):
        for chunk in block.split("$ ")[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            if command.startswith(prefix):
                found.append((shlex.split(command), output))
    assert found, f"the README shows no command starting with {prefix!r}"
    return found


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, f"{shlex.join(argv)}\n{result.stdout}\n{result.stderr}"
    return result


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once"
    return text.replace(old, new)


# -- the script --------------------------------------------------------------------------


def test_the_readme_commands_by_hand_print_what_it_shows(here):
    for argv, _ in _console("Rscript "):
        _run(argv, here)
    for argv, shown in _console("head "):
        assert _run(argv, here).stdout.splitlines() == shown
    table = pd.read_csv(here / "results.csv")
    assert list(table.columns) == ["temperature", "sweep", "M", "E"]
    assert table["sweep"].tolist()[:3] == [110, 120, 130]
    ordered = table[table["temperature"] == 2.0]  # below T_c = 2.269: ordered
    assert ordered["M"].mean() > 0.85
    assert -1.8 < ordered["E"].mean() < -1.7  # exact energy per spin at T = 2: -1.7455


def test_the_script_refuses_seeds_set_seed_refuses(here):
    argv = ["Rscript", SCRIPT, "--temps", "3.0", "--grid-size", "8", "--n-sweeps", "20"]
    argv += ["--burn-in", "0", "--thin", "5", "--output", "out.csv", "--seed"]
    _run([*argv, str(2**31 - 1)], here)
    assert (here / "out.csv").read_text().splitlines()[1].startswith("3,5,")  # 3.0 as `3`
    refused = subprocess.run(
        [*argv, str(2**31)], cwd=here, capture_output=True, text=True, timeout=300, check=False
    )
    assert refused.returncode != 0
    assert "supplied seed is not a valid integer" in refused.stderr


# -- through Command -----------------------------------------------------------------------


def test_command_runs_the_r_script_with_31_bit_seeds(here):
    sim = Command(ARGV, output="results.csv", index="sweep", inputs=[SCRIPT], seed_bits=31)
    # T0 = 3.0 first: R writes it as `3`, the others as decimals; all columns are read
    design = ens.Points([{"T": 3.0}]) + ens.Sample(T=ens.Normal(3.0, 0.05), n=2, seed=123)
    e = ens.Ensemble(sim, design, seeds=2, root_seed=2024, fixed=SMALL)
    ds = e.to_zarr(here / "r.zarr", progress=False)
    assert (ds["status"] == 1).all()
    assert ds["temperature"].dtype == np.float64
    np.testing.assert_allclose(
        ds["temperature"].isel(sweep=0, seed=0).values, ds["T"].values, rtol=1e-14
    )
    seeds = ds["member_seed"].values
    assert seeds.max() <= 2**31 - 1
    # a member rerun by hand with its stored seed gives its stored M
    member = ds.isel(sample=1, seed=1)
    argv = [a.format(T=float(member["T"]), seed=int(member["member_seed"]),
                     output="by_hand.csv", **SMALL) for a in ARGV]  # fmt: skip
    _run(argv, here)
    np.testing.assert_array_equal(pd.read_csv(here / "by_hand.csv")["M"], member["M"].values)


def test_command_with_63_bit_seeds_fails_with_r_error_and_a_hint(here):
    sim = Command(ARGV, output="results.csv", index="sweep", inputs=[SCRIPT])
    with pytest.raises(CommandError) as info:
        sim(T=3.0, seed=2**40, **SMALL)
    message = str(info.value)
    assert "supplied seed is not a valid integer" in message
    assert "pass seed_bits=31 to Command" in message
    assert f"--seed {2**40} " in message  # the command line as it was run


# -- the README's workflow ------------------------------------------------------------------


def test_the_readme_workflow_runs_as_written(here):
    """The README's Python code, then its spec through the `ensembles` CLI: same store."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), re.S))
    code = _replace_once(
        code,
        "L, N_SWEEPS, BURN_IN, THIN, N_SAMPLES = 32, 2000, 100, 10, 50",
        "L, N_SWEEPS, BURN_IN, THIN, N_SAMPLES = 8, 60, 10, 5, 3",
    )
    (here / "workflow.py").write_text(code)
    printed = _run([sys.executable, "workflow.py"], here).stdout
    ds = ens.open_ensemble(here / "ising_R.zarr")
    assert dict(ds["M"].sizes) == {"sample": 4, "seed": 1, "sweep": 10}
    assert (ds["status"] == 1).all()
    assert (here / "envelope.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the printed command reruns member 3 exactly
    rerun = shlex.split(printed.strip().splitlines()[-1])
    assert rerun[:2] == ["Rscript", SCRIPT]
    _run(rerun, here)
    by_hand = pd.read_csv(here / "member3.csv")
    np.testing.assert_array_equal(by_hand["M"], ds["M"].isel(sample=3, seed=0).values)

    spec = (here / "ising_R.toml").read_text()
    smaller = {"n = 50,": "n = 3,", "L = 32\n": "L = 8\n", "n_sweeps = 2000\n": "n_sweeps = 60\n",
               "burn_in = 100\n": "burn_in = 10\n", "thin = 10\n": "thin = 5\n"}  # fmt: skip
    for old, new in smaller.items():
        spec = _replace_once(spec, old, new)
    (here / "ising_R.toml").write_text(spec)
    for argv, _ in _console("ensembles "):
        _run([*_ensembles_cli(), *argv[1:]], here)
    cli = ens.open_ensemble(here / "ising_R_cli.zarr")
    assert (cli["status"] == 1).all()
    np.testing.assert_array_equal(cli["member_seed"].values, ds["member_seed"].values)
    np.testing.assert_array_equal(cli["M"].values, ds["M"].values)
    assert (here / "envelope_cli.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
