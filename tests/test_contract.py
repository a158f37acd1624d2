"""The simulation contract: one base every kind implements, and bare results as one output."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import MemberError, OutputMismatchError, SimulationError
from ensembles.simulations.contract import FunctionSimulation, Simulation, as_simulation
from ensembles.simulations.schema import normalize_result

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


# -- bare results -----------------------------------------------------------------------------

BARE = {
    "float": (sims.energy, "energy", ()),
    "numpy-scalar": (sims.energy32, "energy32", ()),
    "0-d": (sims.level, "level", ()),
    "1-d": (sims.trace, "trace", ("trace_dim_0",)),
    "2-d": (sims.grid, "grid", ("grid_dim_0", "grid_dim_1")),
    "list": (sims.listed, "listed", ("listed_dim_0",)),
    "declared": (sims.declared_bare, "E", ("t",)),
}


@pytest.mark.parametrize("kind", list(BARE))
def test_a_bare_result_is_one_output(kind, tmp_path):
    func, name, dims = BARE[kind]
    e = ens.Ensemble(func, ens.Grid(T=[1.0, 2.5]), seeds=3, root_seed=9)
    lazy = e.to_dataset()
    assert list(lazy.data_vars) == [name]
    assert lazy[name].dims == ("T", "seed", *dims)
    computed = lazy.compute(scheduler="synchronous")
    ran = e.compute(progress=False)
    stored = e.to_zarr(tmp_path / "bare.zarr", progress=False)
    for ds in (ran, stored):
        assert ds[name].dims == computed[name].dims
        np.testing.assert_array_equal(ds[name].values, computed[name].values)
        assert (ds["status"].values == 1).all()
    plain = getattr(func, "func", func)
    for i, T in enumerate([1.0, 2.5]):
        for k in range(3):
            seed = int(computed["member_seed"].values[i, k])
            arg = {"rng": np.random.default_rng(seed)} if kind == "1-d" else {"seed": seed}
            np.testing.assert_allclose(computed[name].values[i, k], plain(T=T, **arg))


def test_bare_results_keep_their_dtype():
    ds = ens.Ensemble(sims.energy32, ens.Grid(T=[1.0]), seeds=2, root_seed=0).to_dataset()
    assert ds["energy32"].dtype == np.float32


def test_results_that_are_not_one_output_are_refused_with_a_fix():
    e = ens.Ensemble(sims.pair, ens.Grid(T=[1.0]), seeds=1, root_seed=0)
    with pytest.raises(MemberError, match="returned a tuple; return a mapping"):
        e.to_dataset()
    anonymous = ens.Ensemble(lambda *, seed, T: T, ens.Grid(T=[1.0]), seeds=1, root_seed=0)
    with pytest.raises(MemberError, match="has no name to store it under"):
        anonymous.to_dataset()
    two = ens.simulation(outputs={"a": ("x",), "b": ("x",)})(sims.listed)
    with pytest.raises(MemberError, match=r"declares outputs \['a', 'b'\]"):
        ens.Ensemble(two, ens.Grid(T=[1.0]), seeds=1, root_seed=0).to_dataset()
    with pytest.raises(OutputMismatchError, match="or one number or array, got str"):
        normalize_result("text", {}, bare="x")
