"""The Ising temperature ensemble: temperatures sampled around T0, a 2.5-97.5 % envelope.

This is the workflow of "run one task per temperature, download the CSVs, merge them and
plot the envelope", in one ensembles script: the sweep, the seeds, the parallel run, the
store and the envelope. Set ENSEMBLES_EXAMPLE_SMALL=1 for a seconds-long version.

    python examples/ising_envelope.py
"""

import os

import matplotlib

matplotlib.use("Agg")

import ensembles as ens
from ensembles.analysis.plot import plot_envelope
from ensembles.models import ising

SMALL = os.environ.get("ENSEMBLES_EXAMPLE_SMALL") == "1"
T0, SIGMA = 3.0, 0.05

if __name__ == "__main__":
    sweep = ens.Points([{"T": T0}]) + ens.Sample(
        T=ens.Normal(T0, SIGMA), n=5 if SMALL else 50, seed=123
    )
    fixed = (
        {"L": 16, "n_sweeps": 200, "burn_in": 20, "thin": 2}
        if SMALL
        else {"L": 100, "n_sweeps": 10_000, "burn_in": 1_000, "thin": 10}
    )
    e = ens.Ensemble(ising.simulate, sweep, seeds=2 if SMALL else 4, root_seed=42, fixed=fixed)
    ds = e.to_zarr("ising-envelope.zarr", mode="w")

    band = ds["M"].ens.envelope(over=("sample", "seed"), q=(0.025, 0.975)).compute()
    print(
        f"{int(band['count'].min())} members; mean M over the run "
        f"{float(band['mean'].mean()):+.4f}, mean band width "
        f"{float((band['upper'] - band['lower']).mean()):.4f}"
    )

    # the exact (infinite lattice) energy at T0 against the ensemble's mean energy
    e_mean = float(ds["E"].sel(sample=0).mean())
    print(f"E at T0: ensemble {e_mean:.4f}, exact {ising.exact_energy(T0):.4f}")

    ax = plot_envelope(ds["M"], over=("sample", "seed"))
    ax.set_title(f"Ising: envelope around T0 = {T0}")
    ax.figure.savefig("ising-envelope.png", dpi=120, bbox_inches="tight")
    print("wrote ising-envelope.zarr and ising-envelope.png")
