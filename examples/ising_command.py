"""An external program as a simulation: the Ising CLI program run once per member.

The program takes the tutorial's flags and writes a long CSV (ParamValue, sweep, M, E),
here one temperature per member, so ``sweep`` indexes the rows;
ensembles fills the flags per member, runs it with no shell in a scratch directory, parses
the CSV and stacks every member into one Dataset. Set ENSEMBLES_EXAMPLE_SMALL=1 for a
seconds-long version.

    python examples/ising_command.py
"""

import os
import sys
from pathlib import Path

import ensembles as ens

SMALL = os.environ.get("ENSEMBLES_EXAMPLE_SMALL") == "1"
PROGRAM = Path(__file__).resolve().parent / "ising_cli" / "run_ising.py"

if __name__ == "__main__":
    command = ens.Command(
        [
            sys.executable,
            str(PROGRAM),
            "--temps",
            "{T}",
            "--grid-size",
            "{L}",
            "--n-sweeps",
            "{n_sweeps}",
            "--burn-in",
            "{burn_in}",
            "--thin",
            "{thin}",
            "--seed",
            "{seed}",
            "--output",
            "{output}",
        ],
        output="results.csv",
        index="sweep",
        variables=["M", "E"],
        timeout=600,
    )
    sizes = (
        {"L": 8, "n_sweeps": 40, "burn_in": 10, "thin": 5}
        if SMALL
        else {"L": 32, "n_sweeps": 2000, "burn_in": 200, "thin": 20}
    )
    e = ens.Ensemble(
        command, ens.Grid(T=[1.5, 2.0, 2.5]), seeds=2 if SMALL else 8, root_seed=7, fixed=sizes
    )
    ds = e.to_zarr("ising-command.zarr", mode="w")
    print(ds["M"].dims, dict(ds.sizes))
    summary = abs(ds["M"]).mean(("seed", "sweep")).compute()
    for T, m in zip(summary["T"].values, summary.values, strict=True):
        print(f"T = {T}: mean |M| = {m:.3f}")
