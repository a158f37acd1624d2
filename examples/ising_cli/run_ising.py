#!/usr/bin/env python3
"""A standalone 2D Ising model program: the kind of external code ``ens.Command`` runs.

Metropolis dynamics on an L x L square lattice with periodic boundaries and J = 1,
updated in checkerboard half-sweeps with numpy (no numba, no ensembles import). It takes
the flags of the seed tutorial's ``run_ising_model.R`` and writes one CSV in long form::

    ParamValue,sweep,M,E
    1.5,110,0.9861,-1.9653
    ...

``ParamValue`` is the temperature, ``sweep`` the sweep number (recorded every ``--thin``
sweeps after ``--burn-in``), ``M`` the magnetization per spin and ``E`` the energy per spin.
Every temperature starts from the all-up lattice and uses its own random stream, spawned
from ``--seed``.

Usage::

    python run_ising.py --temps "1.5,2.0" --grid-size 32 --n-sweeps 1000 \\
        --burn-in 100 --thin 10 --seed 42 --output results.csv
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temps", required=True, help='comma-separated temperatures: "1.5,2.0"')
    parser.add_argument("--grid-size", type=int, default=32, help="lattice side L")
    parser.add_argument("--n-sweeps", type=int, default=1000, help="total sweeps per temperature")
    parser.add_argument("--burn-in", type=int, default=100, help="sweeps discarded first")
    parser.add_argument("--thin", type=int, default=10, help="record every THIN sweeps")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--output", required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    try:
        args.temps = [float(t) for t in args.temps.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--temps must be comma-separated numbers, got {args.temps!r}")
    if not args.temps or any(not t > 0 for t in args.temps):
        parser.error("--temps needs at least one positive temperature")
    if args.grid_size < 2 or args.grid_size % 2:
        parser.error(f"--grid-size must be an even number >= 2, got {args.grid_size}")
    if args.thin < 1 or args.burn_in < 0 or args.n_sweeps < args.burn_in + args.thin:
        parser.error("need --thin >= 1, --burn-in >= 0 and --n-sweeps >= --burn-in + --thin")
    return args


def simulate(
    temp: float, size: int, n_sweeps: int, burn_in: int, thin: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run one temperature; return recorded sweep numbers, M and E per spin."""
    spins = np.ones((size, size), dtype=np.int8)
    i, j = np.indices((size, size))
    colors = [(i + j) % 2 == 0, (i + j) % 2 == 1]
    # acceptance probability by local field h = sum of 4 neighbours: dE = 2 s h
    accept = np.minimum(1.0, np.exp(-2.0 * np.arange(-4, 5) / temp))
    sweeps, mags, energies = [], [], []
    n = size * size
    for sweep in range(1, n_sweeps + 1):
        for mask in colors:
            field = (
                np.roll(spins, 1, 0) + np.roll(spins, -1, 0)
                + np.roll(spins, 1, 1) + np.roll(spins, -1, 1)
            )  # fmt: skip
            s_h = spins * field  # in -4..4; dE = 2 * s_h
            flip = mask & (rng.random((size, size)) < accept[s_h + 4])
            spins[flip] *= -1
        if sweep > burn_in and (sweep - burn_in) % thin == 0:
            bonds = spins * (np.roll(spins, 1, 0) + np.roll(spins, 1, 1))
            sweeps.append(sweep)
            mags.append(spins.sum(dtype=np.int64) / n)
            energies.append(-bonds.sum(dtype=np.int64) / n)
    return np.array(sweeps), np.array(mags), np.array(energies)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    streams = np.random.SeedSequence(args.seed).spawn(len(args.temps))
    rows = ["ParamValue,sweep,M,E"]
    for temp, stream in zip(args.temps, streams, strict=True):
        rng = np.random.default_rng(stream)
        sweeps, mags, energies = simulate(
            temp, args.grid_size, args.n_sweeps, args.burn_in, args.thin, rng
        )
        rows.extend(
            f"{temp!r},{s},{m!r},{e!r}"
            for s, m, e in zip(sweeps.tolist(), mags.tolist(), energies.tolist(), strict=True)
        )
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
