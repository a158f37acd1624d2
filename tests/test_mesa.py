"""MesaModel at parity with Mesa's batch_run: agent reporters, stopping early, thinning.

Every model here is a real Mesa 3 model: Mesa's own examples (BoltzmannWealth, Schelling)
and small ones defined below, run by hand with Mesa to check what the adapter records.
"""

from __future__ import annotations

import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import MemberError, OutputMismatchError, SimulationError
from ensembles.simulations.mesa import MesaModel

mesa = pytest.importorskip("mesa")
from mesa.examples import BoltzmannWealth, Schelling  # noqa: E402

# -- models ---------------------------------------------------------------------------------


class Trader(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.wealth = 1

    def step(self):
        if self.wealth:
            other = self.random.choice(self.model.traders)
            other.wealth += 1
            self.wealth -= 1


class Wealth(mesa.Model):
    """Boltzmann wealth exchange that records nothing itself (no DataCollector)."""

    def __init__(self, n=10, seed=None):
        super().__init__(seed=seed)
        Trader.create_agents(self, n)
        self.traders = list(self.agents)

    def step(self):
        self.agents.shuffle_do("step")


class Cell(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.age = 0

    def step(self):
        self.age += 1
        if self.random.random() < self.model.p_die:
            self.remove()


class Colony(mesa.Model):
    """Agents die at random and two are born per step: the population comes and goes."""

    def __init__(self, n=4, p_die=0.3, seed=None):
        super().__init__(seed=seed)
        self.p_die = p_die
        Cell.create_agents(self, n)
        self.datacollector = mesa.DataCollector(
            model_reporters={"alive": lambda m: len(m.agents)},
            agent_reporters={"age": "age"},
        )
        self.datacollector.collect(self)

    def step(self):
        self.agents.shuffle_do("step")
        Cell.create_agents(self, 2)
        self.datacollector.collect(self)


class Fuse(mesa.Model):
    """Burns one unit per step and stops (``running = False``) when a random draw says so."""

    def __init__(self, p_stop=0.2, seed=None):
        super().__init__(seed=seed)
        self.p_stop, self.burnt = p_stop, 0
        self.datacollector = mesa.DataCollector(model_reporters={"burnt": "burnt"})
        self.datacollector.collect(self)

    def step(self):
        self.burnt += 1
        self.running = self.random.random() >= self.p_stop
        self.datacollector.collect(self)


def _run_by_hand(model_cls, steps, stop_early=False, **kwargs):
    """Mesa alone, as batch_run runs a model: step while running, up to ``steps``."""
    model = model_cls(**kwargs)
    while model.steps < steps and (model.running or not stop_early):
        model.step()
    return model


# -- agent reporters ------------------------------------------------------------------------


def test_agent_reporters_of_the_datacollector_over_step_and_agent():
    sim = MesaModel(BoltzmannWealth, steps=12, agent_reporters=["Wealth"])
    ds = sim(n=25, seed=3)
    assert ds["Wealth"].dims == ("step", "agent")
    assert ds["agent"].values.tolist() == list(range(1, 26))  # Mesa's unique_id
    assert ds["step"].values.tolist() == list(range(13))
    frame = _run_by_hand(BoltzmannWealth, 12, n=25, seed=3).datacollector
    wide = frame.get_agent_vars_dataframe()["Wealth"].unstack("AgentID")
    np.testing.assert_array_equal(ds["Wealth"].values, wide.to_numpy())
    assert ds["Wealth"].dtype.kind == "i"  # a fixed population keeps its dtype
    assert (ds["Wealth"].sum("agent") == 25).all()
    gini = frame.get_model_vars_dataframe()["Gini"].to_numpy()
    np.testing.assert_array_equal(ds["Gini"].values, gini)


def test_agent_reporters_collected_by_the_adapter():
    sim = MesaModel(Wealth, steps=5, reporters={}, agent_reporters={"wealth": "wealth"})
    ds = sim(n=8, seed=1)
    assert list(ds.data_vars) == ["wealth"]
    assert ds["step"].values.tolist() == [0, 1, 2, 3, 4, 5]
    model = Wealth(n=8, seed=1)
    np.testing.assert_array_equal(ds["wealth"].values[0], np.ones(8))
    for k in range(1, 6):
        model.step()
        by_id = {a.unique_id: a.wealth for a in model.agents}
        assert ds["wealth"].values[k].tolist() == [by_id[i] for i in range(1, 9)]
    both = MesaModel(
        Wealth, steps=3, reporters={"richest": lambda m: max(a.wealth for a in m.agents)},
        agent_reporters={"w": lambda a: a.wealth},
    )(n=8, seed=1)  # fmt: skip
    np.testing.assert_array_equal(both["richest"].values, both["w"].max("agent").values)


def test_agents_that_come_and_go_are_refused_without_agents():
    with pytest.raises(OutputMismatchError, match=r"agents changed at step 1 .*pass agents=N"):
        MesaModel(Colony, steps=4, agent_reporters=["age"])(seed=2)


def test_agents_that_come_and_go_are_kept_by_unique_id_with_nan_padding():
    sim = MesaModel(Colony, steps=6, agent_reporters=["age"], agents=20)
    ds = sim(n=4, p_die=0.3, seed=5)
    assert ds["age"].dims == ("step", "agent")
    assert ds["agent"].values.tolist() == list(range(1, 21))
    assert ds["age"].dtype == np.float64
    frame = _run_by_hand(Colony, 6, n=4, p_die=0.3, seed=5).datacollector
    records = frame.get_agent_vars_dataframe()["age"]
    expected = np.full((7, 20), np.nan)
    for (step, uid), age in records.items():
        expected[step, uid - 1] = age
    np.testing.assert_array_equal(ds["age"].values, expected)
    assert np.isnan(ds["age"].values[0, 4:]).all()  # not born yet
    np.testing.assert_array_equal(ds["alive"].values, (~np.isnan(expected)).sum(axis=1))
    with pytest.raises(OutputMismatchError, match=r"unique_id 6 exists, beyond agents=5"):
        MesaModel(Colony, steps=6, agent_reporters=["age"], agents=5)(seed=5)


def test_agent_reporter_ensemble_through_the_store(tmp_path):
    sim = MesaModel(Colony, steps=5, agent_reporters=["age"], agents=16)
    e = ens.Ensemble(sim, ens.Grid(p_die=[0.1, 0.5]), seeds=3, root_seed=7)
    ds = e.to_zarr(tmp_path / "colony.zarr", progress=False)
    assert ds["age"].dims == ("p_die", "seed", "step", "agent")
    member = ds.sel(p_die=0.5).isel(seed=1)
    alone = sim(p_die=0.5, seed=int(member["member_seed"]))
    np.testing.assert_array_equal(member["age"].values, alone["age"].values)
    mean_age = ds["age"].ens.mean(over=["seed", "agent"]).compute()  # NaN (absent) ignored
    assert np.isfinite(mean_age.values).all()


# -- stopping early -------------------------------------------------------------------------


def test_stop_early_leaves_the_steps_after_the_stop_missing():
    sim = MesaModel(Fuse, steps=15, stop_early=True)
    ds = sim(p_stop=0.25, seed=11)
    model = _run_by_hand(Fuse, 15, stop_early=True, p_stop=0.25, seed=11)
    ran = model.steps
    assert 0 < ran < 15  # this seed stops early
    assert ds["step"].values.tolist() == list(range(16))
    assert ds["burnt"].dtype == np.float64
    np.testing.assert_array_equal(ds["burnt"].values[: ran + 1], np.arange(ran + 1))
    assert np.isnan(ds["burnt"].values[ran + 1 :]).all()
    ignored = MesaModel(Fuse, steps=15)(p_stop=0.25, seed=11)  # the default: all steps
    assert ignored["burnt"].values.tolist() == list(range(16))


def test_stop_early_on_mesas_schelling_model():
    sim = MesaModel(Schelling, steps=40, stop_early=True)
    ds = sim(width=10, height=10, seed=2)
    model = _run_by_hand(Schelling, 40, stop_early=True, width=10, height=10, seed=2)
    assert not model.running
    assert model.steps < 40
    happy = model.datacollector.get_model_vars_dataframe()["happy"].to_numpy()
    np.testing.assert_array_equal(ds["happy"].values[: model.steps + 1], happy)
    assert np.isnan(ds["happy"].values[model.steps + 1 :]).all()


def test_statistics_count_the_steps_after_a_stop_as_missing(tmp_path):
    sim = MesaModel(Fuse, steps=12, stop_early=True)
    e = ens.Ensemble(sim, ens.Grid(p_stop=[0.05, 0.3]), seeds=8, root_seed=1)
    e.to_zarr(tmp_path / "fuse.zarr", progress=False)
    ds = ens.open_ensemble(tmp_path / "fuse.zarr")
    burnt = ds["burnt"]
    ran = np.zeros((2, 8), dtype=int)  # steps each member ran, by Mesa alone
    for i, p in enumerate([0.05, 0.3]):
        for k in range(8):
            seed = int(ds["member_seed"].values[i, k])
            ran[i, k] = _run_by_hand(Fuse, 12, stop_early=True, p_stop=p, seed=seed).steps
    assert ran[1].min() < 12  # some members stopped early
    expected_count = (np.arange(13)[None, None, :] <= ran[:, :, None]).sum(axis=1)
    count = burnt.ens.count(over="seed").compute()
    np.testing.assert_array_equal(count.values, expected_count)
    values = np.ma.masked_invalid(burnt.values)
    expected_mean = values.mean(axis=1).filled(np.nan)
    mean = burnt.ens.mean(over="seed").compute()
    np.testing.assert_allclose(mean.values, expected_mean)
    assert np.isnan(mean.values[expected_count == 0]).all()
    band = burnt.ens.envelope(over="seed").compute()
    np.testing.assert_array_equal(band["count"].values, expected_count)
    np.testing.assert_allclose(band["mean"].values, expected_mean)
    reached = expected_count > 0
    assert (
        band["upper"].values[reached] <= np.broadcast_to(np.arange(13), reached.shape)[reached]
    ).all()


# -- thinning ----------------------------------------------------------------------------------


def test_collect_every_thins_the_steps_and_keeps_the_last():
    full = MesaModel(BoltzmannWealth, steps=10, agent_reporters=["Wealth"])(n=12, seed=4)
    thin = MesaModel(BoltzmannWealth, steps=10, agent_reporters=["Wealth"], collect_every=3)
    ds = thin(n=12, seed=4)
    assert ds["step"].values.tolist() == [0, 3, 6, 9, 10]
    np.testing.assert_array_equal(ds["Gini"].values, full["Gini"].sel(step=[0, 3, 6, 9, 10]))
    np.testing.assert_array_equal(ds["Wealth"].values, full["Wealth"].sel(step=[0, 3, 6, 9, 10]))
    own = MesaModel(Wealth, steps=7, reporters={"top": "steps"}, collect_every=3)
    assert own(seed=0)["top"].values.tolist() == [0, 3, 6, 7]  # collected at kept steps only
    ds = MesaModel(Fuse, steps=9, stop_early=True, collect_every=4)(p_stop=0.0, seed=0)
    assert ds["step"].values.tolist() == [0, 4, 8, 9]
    assert ds["burnt"].values.tolist() == [0.0, 4.0, 8.0, 9.0]


# -- settings and specs ----------------------------------------------------------------------


def test_new_settings_round_trip_through_a_spec():
    sim = MesaModel(
        Colony, steps=8, reporters=["alive"], agent_reporters=["age"], agents=30,
        stop_early=True, collect_every=2,
    )  # fmt: skip
    d = sim.to_dict()
    assert d == {
        "mesa_model": "tests.test_mesa:Colony",
        "steps": 8,
        "reporters": ["alive"],
        "agent_reporters": ["age"],
        "agents": 30,
        "stop_early": True,
        "collect_every": 2,
    }
    again = MesaModel.from_dict(d)
    np.testing.assert_array_equal(again(seed=3)["age"].values, sim(seed=3)["age"].values)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"agents": 0}, SimulationError, r"agents= a positive integer .* got 0"),
        ({"collect_every": 1.5}, SimulationError, r"collect_every= a positive integer"),
        ({"agent_reporters": 3}, SimulationError, r"agent_reporters= must be a list"),
    ],
)
def test_bad_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        MesaModel(Colony, steps=3, **kwargs)


def test_unknown_reporters_are_named():
    with pytest.raises(SimulationError, match=r"agent_reporters \['size'\] are not agent rep"):
        MesaModel(Colony, steps=2, agent_reporters=["size"])(seed=0)
    with pytest.raises(SimulationError, match="nothing to record"):
        MesaModel(Wealth, steps=2, reporters=[])(seed=0)


def test_different_populations_across_members_need_agents():
    e = ens.Ensemble(
        MesaModel(BoltzmannWealth, steps=2, agent_reporters=["Wealth"]),
        ens.Grid(n=[5, 8]),
        seeds=1,
        root_seed=0,
    )
    with pytest.raises(MemberError, match="coordinate 'agent'"):
        e.to_dataset().compute(scheduler="synchronous")
    e = ens.Ensemble(
        MesaModel(BoltzmannWealth, steps=2, agent_reporters=["Wealth"], agents=8),
        ens.Grid(n=[5, 8]),
        seeds=1,
        root_seed=0,
    )
    ds = e.to_dataset().compute(scheduler="synchronous")
    assert np.isnan(ds["Wealth"].sel(n=5).values[..., 5:]).all()
    assert (ds["Wealth"].sel(n=8).notnull()).all()


MODULES_MODEL = """
import os, sys
import mesa
import ensembles as ens


class Counter(mesa.Model):
    def __init__(self, x=0, seed=None):
        super().__init__(seed=seed)
        self.n = 0
        self.datacollector = mesa.DataCollector(model_reporters={
            "n": "n",
            "in_driver": lambda m: float(os.getpid() == DRIVER),
            "heavy": lambda m: float(any(k in sys.modules for k in ("xarray", "dask", "pint"))),
        })
        self.datacollector.collect(self)

    def step(self):
        self.n += 1
        self.datacollector.collect(self)


DRIVER = int(os.environ["DRIVER"]) if "DRIVER" in os.environ else os.getpid()
os.environ["DRIVER"] = str(DRIVER)
e = ens.Ensemble(ens.MesaModel(Counter, steps=3), ens.Grid(x=[0, 1, 2, 3]), seeds=8)
ds = e.compute(progress=False)
in_workers = ds["in_driver"].values == 0
print("members in workers", int(in_workers.all(axis=-1).sum()))
print("heavy in workers", float(ds["heavy"].values[in_workers].max()))
print("n", ds["n"].isel(step=-1).values.min())
"""


def test_a_mesa_members_worker_never_loads_xarray(tmp_path):
    """A Mesa member hands its arrays to the engine without building a Dataset: a fresh
    worker never imports xarray, dask or pint (a second and more of imports per worker)."""
    from tests.test_pool import run_script

    done = run_script(tmp_path, MODULES_MODEL, name="counter.py", start="spawn")
    assert done.returncode == 0, done.stderr
    lines = dict(line.rsplit(" ", 1) for line in done.stdout.splitlines())
    assert int(lines["members in workers"]) > 0  # the members ran in fresh workers
    assert float(lines["heavy in workers"]) == 0.0
    assert float(lines["n"]) == 3.0
