"""The simulation contract: one base every kind implements."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import SimulationError
from ensembles.simulations.contract import FunctionSimulation, Simulation, as_simulation

from . import sims

# -- one contract -----------------------------------------------------------------------------


def test_simulation_of_a_function_is_the_function_implementation():
    sim = ens.Simulation(sims.seeded, seed_bits=31)
    assert type(sim) is FunctionSimulation
    assert isinstance(sim, ens.Simulation)
    assert isinstance(sims.declared, ens.Simulation)  # decorated with @ens.simulation
    assert isinstance(as_simulation(sims.walk), ens.Simulation)
    assert (sim.name, sim.seed_bits, sim.parameters, sim.required) == (
        "tests.sims:seeded",
        31,
        ("a", "b"),
        ("a",),
    )
    assert sim(seed=5, a=2.0) == sims.seeded(seed=5, a=2.0)  # calling it calls the function


@pytest.mark.parametrize("func", [sims.seeded, sims.walk, sims.pid], ids=["seed", "rng", "none"])
def test_direct_call_does_what_call_does(func):
    sim = ens.Simulation(func)
    params = {"seeded": {"a": 2.0}, "walk": {"drift": 1.0}, "pid": {"a": 0.0}}[func.__name__]
    a, b = sim.call(params, 12345), sim.direct_call()(params, 12345)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_every_kind_is_a_simulation_initialised_by_the_base(tmp_path):
    from ensembles.simulations.mesa import MesaModel

    pytest.importorskip("mesa")
    from mesa.examples import BoltzmannWealth

    kinds = [
        ens.Simulation(sims.seeded),
        ens.Command(["prog", "{a}", "{output}"], output="o.csv", seed_bits=31),
        ens.ModelClass(dict, seed_bits=20),
        MesaModel(BoltzmannWealth, steps=3),
    ]
    for sim in kinds:
        assert isinstance(sim, ens.Simulation)
        # the base's settings, set by Simulation.__init__ itself
        assert {"name", "outputs", "coords", "seed_bits", "releases_gil"} <= set(vars(sim))
        assert sim.direct_call() is None or isinstance(sim, FunctionSimulation)
        copy = pickle.loads(pickle.dumps(sim))
        assert type(copy) is type(sim)
        assert copy.to_dict() == sim.to_dict()
    assert [k.seed_bits for k in kinds] == [63, 31, 20, 63]


def test_a_subclass_must_implement_the_contract():
    class Half(Simulation):
        def call(self, params, seed):
            return {"y": 1.0}

    with pytest.raises(TypeError, match="abstract"):
        Half(name="half")
    with pytest.raises(SimulationError, match="must be callable"):
        ens.Simulation(42)


def test_a_simulation_written_against_the_contract_runs_everywhere(tmp_path):
    sim = sims.Polynomial(scale=0.5)
    design = ens.Grid(c0=[0.0, 10.0], c1=[1.0])
    e = ens.Ensemble(sim, design, seeds=3, root_seed=4)
    lazy = e.to_dataset().compute(scheduler="synchronous")
    ran = e.compute(progress=False)
    stored = e.to_zarr(tmp_path / "poly.zarr", progress=False)
    for ds in (lazy, ran, stored):
        assert ds["y"].dims == ("c0", "c1", "seed", "x_dim")
        assert ds["index"].values.ravel().tolist() == list(range(6))  # member= reached it
        np.testing.assert_array_equal(ds["y"].values, lazy["y"].values)
    member = lazy.isel(c0=1, c1=0, seed=2)
    by_hand = sim.call({"c0": 10.0, "c1": 1.0}, int(member["member_seed"]))
    np.testing.assert_array_equal(member["y"].values, by_hand["y"])
    assert int(lazy["member_seed"].max()) < 2**40  # its seed_bits


def test_closures_pickle_by_value_and_module_functions_by_reference():
    offset = 3.0

    def shifted(*, seed, a):
        return {"y": a + offset}

    sim = ens.Simulation(shifted)
    copy = cloudpickle.loads(cloudpickle.dumps(sim))
    assert copy is not sim
    assert copy(seed=0, a=1.0) == {"y": 4.0}
    assert pickle.loads(pickle.dumps(sims.declared)) is sims.declared
    assert pickle.loads(pickle.dumps(ens.Simulation(sims.walk))).func is sims.walk
