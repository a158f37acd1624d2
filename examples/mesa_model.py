"""A small Mesa model (Boltzmann wealth exchange) run as an ensemble, with an envelope plot.

Agents start with one coin each; every step, each agent that still has a coin gives it,
with probability ``p_give``, to another agent picked at random. Inequality grows until the
wealth distribution settles near a geometric one (Gini about 0.6 for 50 agents). The model's
``DataCollector`` records the Gini coefficient and the share of the richest tenth at every
step; :class:`ensembles.MesaModel` turns those model reporters into outputs over
a ``step`` dimension, so the ensemble has dims ``(p_give, seed, step)``.

Run it with ``python examples/mesa_model.py [OUT_DIR]``: it writes ``mesa_wealth.png``
(mean line and 2.5-97.5 % band of the Gini coefficient over the seeds, per ``p_give``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mesa
import numpy as np


def gini(model: mesa.Model) -> float:
    """Gini coefficient of the agents' wealth (0: equal, towards 1: one agent has all)."""
    wealth = np.sort(np.fromiter((a.wealth for a in model.agents), dtype=float))
    n = wealth.size
    rank = np.arange(1, n + 1)
    return float(2.0 * np.sum(rank * wealth) / (n * wealth.sum()) - (n + 1) / n)


def top_share(model: mesa.Model) -> float:
    """Share of all wealth held by the richest 10 % of agents."""
    wealth = np.sort(np.fromiter((a.wealth for a in model.agents), dtype=float))[::-1]
    top = max(1, wealth.size // 10)
    return float(wealth[:top].sum() / wealth.sum())


class Trader(mesa.Agent):
    """An agent holding whole coins."""

    def __init__(self, model: WealthModel) -> None:
        super().__init__(model)
        self.wealth = 1

    def step(self) -> None:
        if self.wealth == 0 or self.random.random() >= self.model.p_give:
            return
        other = self.random.choice(self.model.traders)
        other.wealth += 1
        self.wealth -= 1


class WealthModel(mesa.Model):
    """Random coin exchange between ``n`` agents.

    Parameters
    ----------
    n : int
        Number of agents.
    p_give : float
        Probability that an agent with a coin gives one away in a step.
    seed : int, optional
        Seeds Mesa's ``random`` and ``rng``; ensembles passes each member's seed.
    """

    def __init__(self, n: int = 50, p_give: float = 1.0, seed: Any = None) -> None:
        super().__init__(seed=seed)
        self.p_give = float(p_give)
        Trader.create_agents(self, int(n))
        self.traders = list(self.agents)
        self.datacollector = mesa.DataCollector(
            model_reporters={"gini": gini, "top_share": top_share}
        )
        self.datacollector.collect(self)

    def step(self) -> None:
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)


def main(
    out_dir: str | Path = ".",
    *,
    seeds: int = 20,
    steps: int = 100,
    scheduler: Any = None,
) -> Path:
    """Run the ensemble, plot the Gini envelope per ``p_give``, return the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import ensembles as ens
    from ensembles.analysis.reduce import envelope
    from ensembles.simulations.mesa import MesaModel

    sim = MesaModel(WealthModel, steps=steps)
    ensemble = ens.Ensemble(
        sim, ens.Grid(p_give=[0.2, 1.0]), seeds=seeds, root_seed=2024, fixed={"n": 50}
    )
    ds = ensemble.compute(scheduler=scheduler, progress=False)
    band = envelope(ds["gini"], over="seed").compute()

    fig, ax = plt.subplots(figsize=(7, 4))
    for p in band["p_give"].values:
        b = band.sel(p_give=p)
        line = ax.plot(b["step"], b["mean"], label=f"p_give = {p:g}")[0]
        ax.fill_between(b["step"], b["lower"], b["upper"], color=line.get_color(), alpha=0.25)
    ax.set(xlabel="step", ylabel="Gini coefficient", title=f"Wealth exchange, {seeds} seeds")
    ax.legend(title="mean and 95 % band")
    fig.tight_layout()
    path = Path(out_dir) / "mesa_wealth.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    print(f"wrote {main(sys.argv[1] if len(sys.argv) > 1 else '.')}")
