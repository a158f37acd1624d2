"""The Boltzmann wealth model (Mesa 3) that both Mesa's batch_run and ensembles run."""

from __future__ import annotations

import mesa
import numpy as np


def gini(model):
    """Gini coefficient of the agents' wealth."""
    x = np.sort(np.fromiter((a.wealth for a in model.agents), dtype=float))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    return float(1 + 1 / n - 2 * np.sum(np.cumsum(x)) / (n * x.sum()))


class MoneyAgent(mesa.Agent):
    """An agent with one unit of wealth that moves and gives a unit to a cellmate."""

    def __init__(self, model):
        super().__init__(model)
        self.wealth = 1

    def step(self):
        grid = self.model.grid
        moves = grid.get_neighborhood(self.pos, moore=True, include_center=False)
        grid.move_agent(self, self.random.choice(moves))
        if self.wealth > 0:
            mates = grid.get_cell_list_contents([self.pos])
            if len(mates) > 1:
                other = self.random.choice(mates)
                other.wealth += 1
                self.wealth -= 1


class BoltzmannWealth(mesa.Model):
    """``n`` agents on a ``width`` x ``height`` torus; collects the Gini every step."""

    def __init__(self, n=50, width=10, height=10, seed=None):
        super().__init__(seed=seed)
        self.grid = mesa.space.MultiGrid(width, height, torus=True)
        for _ in range(n):
            agent = MoneyAgent(self)
            x = self.random.randrange(width)
            y = self.random.randrange(height)
            self.grid.place_agent(agent, (x, y))
        self.datacollector = mesa.DataCollector(model_reporters={"Gini": gini})
        self.datacollector.collect(self)

    def step(self):
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)
