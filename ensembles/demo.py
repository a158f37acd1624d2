"""The demo: the seed-style Ising temperature ensemble, stored, with its envelope plotted.

One run at T0 = 3.0 plus temperatures drawn from Normal(T0, 0.05), several seeds each;
magnetization per sweep; mean and 2.5-97.5 % envelope over samples and seeds.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["T0", "demo_ensemble", "run_demo"]

T0 = 3.0


def demo_ensemble(
    samples: int = 50, seeds: int = 4, L: int = 100, n_sweeps: int = 10_000, root_seed: int = 42
) -> Any:
    """The demo's :class:`~ensembles.Ensemble` (nothing runs).

    Examples
    --------
    >>> len(demo_ensemble(samples=10, seeds=2))
    22
    """
    from .ensemble import Ensemble
    from .models import ising
    from .sweep import Points, Sample
    from .sweep.distributions import Normal

    design = Points([{"T": T0}]) + Sample(T=Normal(T0, 0.05), n=samples, seed=123)
    burn_in = max(n_sweeps // 10, 1) if n_sweeps > 1 else 0
    thin = max(min(10, (n_sweeps - burn_in) // 10), 1)
    fixed = {"L": L, "n_sweeps": n_sweeps, "burn_in": burn_in, "thin": thin}
    return Ensemble(ising.simulate, design, seeds=seeds, root_seed=root_seed, fixed=fixed)


def run_demo(
    out: str | os.PathLike[str] = ".",
    *,
    samples: int = 50,
    seeds: int = 4,
    L: int = 100,
    n_sweeps: int = 10_000,
    overwrite: bool = False,
    progress: bool = True,
    scheduler: Any = None,
    workers: int | None = None,
) -> tuple[str, str]:
    """Run the demo ensemble into ``out/ising-demo.zarr`` and plot its envelope.

    Returns
    -------
    store, png : str
        Paths of the Zarr store and of the envelope plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .analysis.plot import plot_envelope
    from .store.zarr_store import open_ensemble

    os.makedirs(out, exist_ok=True)
    store = os.path.join(os.fspath(out), "ising-demo.zarr")
    png = os.path.join(os.fspath(out), "ising-demo-envelope.png")
    ensemble = demo_ensemble(samples=samples, seeds=seeds, L=L, n_sweeps=n_sweeps)
    ensemble.to_zarr(
        store,
        mode="w" if overwrite else "w-",
        progress=progress,
        scheduler=scheduler,
        workers=workers,
    )
    ds = open_ensemble(store)
    ax = plot_envelope(ds["M"], over=("sample", "seed"), q=(0.025, 0.975))
    ax.set_title(f"Ising L={L}: magnetization envelope around T0 = {T0}")
    ax.figure.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    return store, png
