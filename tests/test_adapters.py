"""ModelClass and MesaModel: model classes as simulations, tested against real Mesa."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import xarray as xr

import ensembles as ens
from ensembles.errors import OutputMismatchError, SimulationError, SpecError
from ensembles.simulations.contract import Output, Simulation, as_simulation
from ensembles.simulations.mesa import MesaModel
from ensembles.simulations.model_class import ModelClass

mesa = pytest.importorskip("mesa")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mesa_model.py"


# -- plain model classes -------------------------------------------------------------------


class Walker:
    """A random walk: ``step()`` moves, ``run()`` does ``n`` steps and reports."""

    def __init__(self, drift=0.0, n=4, seed=None):
        self.rng = np.random.default_rng(seed)
        self.drift, self.n = drift, n
        self.x = 0.0
        self.path = []

    def step(self):
        self.x += self.drift + self.rng.standard_normal()
        self.path.append(self.x)

    def run(self):
        for _ in range(self.n):
            self.step()
        return {"final": self.x, "path": np.array(self.path)}

    def advance(self):
        self.x += 1.0


class RngModel:
    """Takes a numpy Generator rather than an integer seed."""

    def __init__(self, scale, rng):
        self.scale, self.rng = scale, rng

    def run(self):
        return {"draw": self.scale * self.rng.random()}


class Deterministic:
    def __init__(self, k=2):
        self.k = k

    def run(self):
        return {"square": self.k**2}


class Silent:
    def __init__(self, seed=None):
        self.value = 3.0

    def run(self):
        self.value += 1


def position(model):
    return {"x": model.x, "xy": np.array([model.x, -model.x])}


def test_run_mode_returns_the_run_result():
    sim = ModelClass(Walker)
    out = sim(drift=1.0, n=3, seed=5)
    expected = Walker(drift=1.0, n=3, seed=5).run()
    assert out["final"] == expected["final"]
    np.testing.assert_array_equal(out["path"], expected["path"])
    assert sim.parameters == ("drift", "n")
    assert sim.required == ()
    assert sim.seed_argument == "seed"
    assert sim.name == "model:tests.test_adapters:Walker"


def test_run_mode_seed_rng_or_nothing():
    rng_sim = ModelClass(RngModel)
    assert rng_sim.seed_argument == "rng"
    assert rng_sim.required == ("scale",)
    expected = 2.0 * np.random.default_rng(7).random()
    assert rng_sim(scale=2.0, seed=7)["draw"] == expected
    plain = ModelClass(Deterministic)
    assert plain.seed_argument is None
    assert plain(k=3, seed=1)["square"] == 9


def test_run_mode_with_collect_reads_the_model_after_run():
    sim = ModelClass(Silent, collect=["value"])
    assert sim(seed=0) == {"value": 4.0}
    with pytest.raises(OutputMismatchError, match=r"run\(\) returned None.*collect="):
        ModelClass(Silent)(seed=0)


def test_step_mode_records_on_a_step_dimension():
    sim = ModelClass(Walker, steps=5, collect=position)
    ds = sim(drift=0.5, seed=2)
    assert ds["x"].dims == ("step",)
    assert ds["xy"].dims == ("step", "xy_dim_0")
    assert ds["step"].values.tolist() == [1, 2, 3, 4, 5]
    ref = Walker(drift=0.5, seed=2)
    for _ in range(5):
        ref.step()
    np.testing.assert_array_equal(ds["x"].values, ref.path)


@pytest.mark.parametrize(
    "collect",
    [["x"], "x", {"x": "x"}, {"x": lambda m: m.x}],
    ids=["list", "str", "dict-attr", "dict-func"],
)
def test_step_mode_collect_forms(collect):
    ds = ModelClass(Walker, steps=3, step="advance", collect=collect, include_initial=True)(seed=0)
    assert ds["step"].values.tolist() == [0, 1, 2, 3]
    assert ds["x"].values.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_step_mode_declared_dims():
    outputs = {"xy": Output(dims=("step", "axis"))}
    sim = ModelClass(Walker, steps=2, collect=lambda m: {"xy": [m.x, 0.0]}, outputs=outputs)
    ds = sim(seed=0)
    assert ds["xy"].dims == ("step", "axis")
    schema = sim.schema_from_result(ds, {})
    assert schema.outputs["xy"].shape == (2, 2)


def test_step_mode_errors():
    with pytest.raises(SimulationError, match="needs collect="):
        ModelClass(Walker, steps=3)
    with pytest.raises(SimulationError, match="steps must be a positive integer"):
        ModelClass(Walker, steps=0, collect=["x"])
    with pytest.raises(SimulationError, match="has no method 'jump'"):
        ModelClass(Walker, steps=1, step="jump", collect=["x"])(seed=0)
    with pytest.raises(SimulationError, match="must name a method"):
        ModelClass(Walker, run="not a name")
    with pytest.raises(SimulationError, match="collect must be a function"):
        ModelClass(Walker, steps=1, collect=3)
    with pytest.raises(SimulationError, match="needs a class"):
        ModelClass(42)
    growing = ModelClass(Walker, steps=2, collect=lambda m: {"p": list(m.path)})
    with pytest.raises(OutputMismatchError, match="changes shape across steps"):
        growing(seed=0)
    changing = ModelClass(Walker, steps=2, collect=lambda m: {f"x{len(m.path)}": m.x})
    with pytest.raises(OutputMismatchError, match="record the same outputs at every step"):
        changing(seed=0)
    text = ModelClass(Walker, steps=1, collect=lambda m: {"s": "high"})
    with pytest.raises(OutputMismatchError, match="not numbers"):
        text(seed=0)
    missing = ModelClass(Walker, steps=2, collect=lambda m: {"s": None if m.x < 0 else 1})
    assert missing.call({}, 0)["s"].dtype == np.float64  # None is a missing value: NaN


def test_model_class_check_parameters_and_contract():
    sim = ModelClass(RngModel)
    assert isinstance(sim, Simulation)
    assert as_simulation(sim) is sim
    assert sim.releases_gil is False
    sim.check_parameters(["scale"])
    with pytest.raises(SimulationError, match=r"requires parameter\(s\) \['scale'\]"):
        sim.check_parameters([])
    with pytest.raises(SimulationError, match=r"does not accept parameter\(s\) \['size'\]"):
        sim.check_parameters(["scale", "size"])


def test_model_class_ensemble_equals_members_built_by_hand():
    sim = ModelClass(Walker, steps=4, collect=["x"])
    e = ens.Ensemble(sim, ens.Grid(drift=[0.0, 1.0]), seeds=2, root_seed=3)
    ds = e.to_dataset().compute(scheduler="synchronous")
    assert ds["x"].dims == ("drift", "seed", "step")
    for drift in (0.0, 1.0):
        for k in range(2):
            member = ds.sel(drift=drift).isel(seed=k)
            ref = Walker(drift=drift, seed=int(member["member_seed"]))
            for _ in range(4):
                ref.step()
            np.testing.assert_array_equal(member["x"].values, ref.path)


class Int32Seeded:
    """Keeps its seed in a signed 32-bit integer, as many C extensions do."""

    def __init__(self, a=0.0, seed=None):
        self.seed = int(np.int32(seed))  # raises OverflowError for seeds of 32 bits or more
        self.a = a

    def run(self):
        return {"got_seed": self.seed, "y": self.a}


def test_model_class_with_seed_bits_gets_seeds_its_constructor_takes():
    design = ens.Grid(a=[0.0, 1.0])
    with pytest.raises(ens.MemberError, match="OverflowError"):
        ens.Ensemble(ModelClass(Int32Seeded), design, seeds=2, root_seed=3).to_dataset()
    sim = ModelClass(Int32Seeded, seed_bits=31)
    ds = ens.Ensemble(sim, design, seeds=2, root_seed=3).to_dataset().compute(scheduler="sync")
    np.testing.assert_array_equal(ds["got_seed"].values, ds["member_seed"].values)
    assert int(ds["member_seed"].max()) <= 2**31 - 1
    assert ModelClass.from_dict(sim.to_dict()).seed_bits == 31


# -- Mesa ----------------------------------------------------------------------------------


class Coin(mesa.Agent):
    def __init__(self, model):
        super().__init__(model)
        self.wealth = 1

    def step(self):
        if self.wealth:
            other = self.random.choice(self.model.coins)
            other.wealth += 1
            self.wealth -= 1


def richest(model):
    return max(a.wealth for a in model.agents)


class Exchange(mesa.Model):
    """Coin exchange; collects in __init__ and in step() (the usual Mesa pattern)."""

    def __init__(self, n=10, seed=None):
        super().__init__(seed=seed)
        Coin.create_agents(self, n)
        self.coins = list(self.agents)
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "richest": richest,
                "broke": lambda m: sum(a.wealth == 0 for a in m.agents),
                "total": "total_wealth",
            }
        )
        self.datacollector.collect(self)

    @property
    def total_wealth(self):
        return sum(a.wealth for a in self.agents)

    def step(self):
        self.agents.shuffle_do("step")
        self.datacollector.collect(self)


class StepOnlyCollector(Exchange):
    """Collects only in step(), not in __init__."""

    def __init__(self, n=10, seed=None):
        super().__init__(n=n, seed=seed)
        self.datacollector = mesa.DataCollector(model_reporters={"richest": richest})


class NoCollector(mesa.Model):
    def __init__(self, rate=0.5, rng=None):
        super().__init__(rng=rng)
        self.rate, self.count = rate, 0

    def step(self):
        self.count += int(self.random.random() < self.rate)


class Unseeded(mesa.Model):
    def __init__(self, n=1):
        super().__init__()

    def step(self):
        pass


class DoubleCollect(Exchange):
    def step(self):
        super().step()
        self.datacollector.collect(self)


def _by_hand(model_cls, steps, **kwargs):
    model = model_cls(**kwargs)
    for _ in range(steps):
        model.step()
    return model.datacollector.get_model_vars_dataframe()


def test_mesa_reporters_become_outputs_on_a_step_dimension():
    sim = MesaModel(Exchange, steps=6)
    ds = sim(n=12, seed=4)
    assert set(ds.data_vars) == {"richest", "broke", "total"}
    assert ds["richest"].dims == ("step",)
    assert ds["step"].values.tolist() == list(range(7))
    frame = _by_hand(Exchange, 6, n=12, seed=4)
    for name in ("richest", "broke", "total"):
        np.testing.assert_array_equal(ds[name].values, frame[name].to_numpy())
    assert (ds["total"] == 12).all()
    assert sim.parameters == ("n",)
    assert sim.seed_argument == "seed"
    assert sim.name == "mesa:tests.test_adapters:Exchange"


def test_mesa_seeds_make_members_reproducible_and_different():
    sim = MesaModel(Exchange, steps=10)
    a, b, c = sim(n=30, seed=1), sim(n=30, seed=1), sim(n=30, seed=2)
    xr.testing.assert_identical(a, b)
    assert not a["richest"].equals(c["richest"])


def test_mesa_step_labels_follow_when_rows_were_collected():
    ds = MesaModel(StepOnlyCollector, steps=4)(n=5, seed=0)
    assert ds["step"].values.tolist() == [1, 2, 3, 4]
    with pytest.raises(OutputMismatchError, match="more than once in one step"):
        MesaModel(DoubleCollect, steps=2)(n=5, seed=0)


def test_mesa_reporter_selection_and_own_collection():
    ds = MesaModel(Exchange, steps=3, reporters=["richest"])(n=5, seed=0)
    assert list(ds.data_vars) == ["richest"]
    with pytest.raises(SimulationError, match=r"reporters \['poorest'\] are not model reporters"):
        MesaModel(Exchange, steps=3, reporters=["poorest"])(n=5, seed=0)
    own = MesaModel(NoCollector, steps=5, reporters={"count": "count"})
    assert own.seed_argument == "rng"
    ds = own(rate=1.0, seed=3)
    assert ds["count"].values.tolist() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(SimulationError, match="has no DataCollector"):
        MesaModel(NoCollector, steps=2)(seed=0)


def test_mesa_construction_errors(monkeypatch):
    with pytest.raises(SimulationError, match="takes neither seed nor rng"):
        MesaModel(Unseeded, steps=2)
    with pytest.raises(SimulationError, match=r"subclass of mesa\.Model"):
        MesaModel(Walker, steps=2)
    with pytest.raises(SimulationError, match="needs steps="):
        MesaModel(Exchange, steps=None)
    monkeypatch.setitem(sys.modules, "mesa", None)  # as if Mesa were not installed
    with pytest.raises(SimulationError, match="pip install mesa"):
        MesaModel(Exchange, steps=2)


def test_mesa_ensemble():
    sim = MesaModel(Exchange, steps=5, reporters=["richest", "total"])
    e = ens.Ensemble(sim, ens.Grid(n=[5, 20]), seeds=3, root_seed=11)
    ds = e.to_dataset().compute(scheduler="synchronous")
    assert ds["richest"].dims == ("n", "seed", "step")
    assert ds["total"].sel(n=20).values.min() == 20
    member = ds.sel(n=5).isel(seed=2)
    frame = _by_hand(Exchange, 5, n=5, seed=int(member["member_seed"]))
    np.testing.assert_array_equal(member["richest"].values, frame["richest"].to_numpy())


def test_example_mesa_model():
    spec = importlib.util.spec_from_file_location("example_mesa_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sim = MesaModel(module.WealthModel, steps=20)
    ds = sim(n=30, p_give=1.0, seed=0)
    assert set(ds.data_vars) == {"gini", "top_share"}
    assert ds["gini"].values[0] == 0.0  # everyone starts with one coin
    assert 0.2 < ds["gini"].values[-5:].mean() < 0.9
    assert np.all((ds["top_share"] >= 0.1) & (ds["top_share"] <= 1.0))
    copy = cloudpickle.loads(cloudpickle.dumps(sim))  # a class defined in a script ships too
    xr.testing.assert_identical(copy(n=30, p_give=1.0, seed=0), ds)


@pytest.mark.distributed
def test_example_mesa_main_writes_the_envelope_plot(client, tmp_path):
    spec = importlib.util.spec_from_file_location("example_mesa_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.main(tmp_path, seeds=4, steps=10, scheduler=client)
    assert path.exists()
    assert path.stat().st_size > 10_000


# -- specs and pickling --------------------------------------------------------------------


def test_to_dict_from_dict_roundtrip():
    sim = ModelClass(Walker, steps=3, collect=position, include_initial=True)
    d = sim.to_dict()
    assert d == {
        "model": "tests.test_adapters:Walker",
        "steps": 3,
        "collect": "tests.test_adapters:position",
        "include_initial": True,
    }
    again = ModelClass.from_dict(d)
    assert again.cls is Walker
    assert again.collect is position
    xr.testing.assert_identical(again(seed=4), sim(seed=4))
    by_name = ModelClass(Walker, steps=2, collect={"x": "x", "pos": position})
    assert by_name.to_dict()["collect"] == {"x": "x", "pos": "tests.test_adapters:position"}
    assert ModelClass.from_dict(by_name.to_dict()).collect == {"x": "x", "pos": position}
    mesa_sim = MesaModel(Exchange, steps=4, reporters=["richest"])
    assert mesa_sim.to_dict() == {
        "mesa_model": "tests.test_adapters:Exchange",
        "steps": 4,
        "reporters": ["richest"],
    }
    xr.testing.assert_identical(
        MesaModel.from_dict(mesa_sim.to_dict())(n=4, seed=1), mesa_sim(n=4, seed=1)
    )
    narrow = MesaModel(Exchange, steps=4, seed_bits=31)
    assert narrow.to_dict()["seed_bits"] == 31
    assert MesaModel.from_dict(narrow.to_dict()).seed_bits == 31
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['ticks'\]"):
        MesaModel.from_dict({"mesa_model": "tests.test_adapters:Exchange", "ticks": 3})
    with pytest.raises(SpecError, match="needs 'model'"):
        ModelClass.from_dict({"steps": 3})


SIMULATIONS = {
    "run": lambda: ModelClass(Walker),
    "step": lambda: ModelClass(Walker, steps=3, collect=position),
    "lambda": lambda: ModelClass(Walker, steps=3, collect={"x": lambda m: m.x}),
    "mesa": lambda: MesaModel(Exchange, steps=3),
    "mesa-own": lambda: MesaModel(NoCollector, steps=3, reporters={"count": "count"}),
}


@pytest.mark.parametrize("kind", list(SIMULATIONS))
def test_cloudpickle_roundtrip(kind):
    sim = SIMULATIONS[kind]()
    copy = cloudpickle.loads(cloudpickle.dumps(sim))
    assert type(copy) is type(sim)
    params = {"rate": 0.5} if kind == "mesa-own" else {}
    a, b = sim(seed=5, **params), copy(seed=5, **params)
    if isinstance(a, xr.Dataset):
        xr.testing.assert_identical(a, b)
    else:
        assert a["final"] == b["final"]
    assert pickle.loads(pickle.dumps(a)) is not None  # results travel too


def test_plain_pickle_of_a_mesa_model_reading_its_datacollector():
    sim = MesaModel(Exchange, steps=2, reporters=["richest"], collect_every=2)
    copy = pickle.loads(pickle.dumps(sim))
    assert copy.to_dict() == sim.to_dict()
    xr.testing.assert_identical(copy(n=3, seed=0), sim(n=3, seed=0))


def test_a_declared_rank_that_does_not_match_the_records_is_named():
    from ensembles.simulations.model_class import stack_records

    with pytest.raises(OutputMismatchError, match=r"'xy' has shape \(1, 2\) but is declared"):
        stack_records([{"xy": [1.0, 2.0]}], np.array([1]), {"xy": ("step",)})
