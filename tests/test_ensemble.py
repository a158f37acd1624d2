"""The Ensemble: lazy graphs, running, layout, seeds and errors, on real dask clusters."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import ensembles as ens
from ensembles.errors import DesignError, MemberError, OutputMismatchError, SimulationError

from . import sims


def _read_calls(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


# -- laziness ----------------------------------------------------------------------------


def test_to_dataset_of_declared_simulation_runs_nothing(counting_scheduler, tmp_path):
    log = tmp_path / "calls.txt"
    e = ens.Ensemble(
        sims.declared,
        ens.Grid(a=[1.0, 2.0, 3.0]),
        seeds=5,
        root_seed=3,
        fixed={"n": 6, "log": str(log)},
    )
    ds = e.to_dataset()
    assert counting_scheduler.computes == 0
    assert _read_calls(log) == []
    assert ds["z"].dims == ("a", "seed", "step")
    assert ds["z"].shape == (3, 5, 6)
    assert ds["z"].attrs["units"] == "m"
    assert ds["step"].values.tolist() == [0, 10, 20, 30, 40, 50]
    # reductions stay lazy too
    mean = ds["z"].mean(("seed",))
    assert counting_scheduler.computes == 0
    mean.compute()
    assert counting_scheduler.computes == 1
    assert len(_read_calls(log)) == 15


def test_to_dataset_of_undeclared_simulation_probes_once_and_reuses(tmp_path):
    log = tmp_path / "calls.txt"
    e = ens.Ensemble(
        sims.counting,
        ens.Grid(a=[1.0, 2.0]),
        seeds=3,
        root_seed=1,
        fixed={"log": str(log)},
        batch_size=2,
    )
    ds = e.to_dataset()
    assert len(_read_calls(log)) == 1  # the probe
    ds.compute(scheduler="synchronous")
    assert len(_read_calls(log)) == 6  # 6 members, the probe's result reused
    assert ds["y"].dims == ("a", "seed", "y_dim_0")


def test_graph_has_tasks_per_block_not_per_member():
    e = ens.Ensemble(
        sims.declared, ens.Grid(a=np.arange(100.0)), seeds=100, root_seed=0, batch_size=1000
    )
    ds = e.to_dataset()
    graph = ds["z"].data.__dask_graph__()
    # 10,000 members in 10 blocks: one run task per block, one getter per block, the runner
    assert len(graph) == 10 + 10 + 1


# -- layout ------------------------------------------------------------------------------


def test_grid_dims_and_sel():
    e = ens.Ensemble(
        sims.seeded, ens.Grid(a=[1.0, 2.0], b=[10.0, 20.0, 30.0]), seeds=2, root_seed=5
    )
    ds = e.to_dataset().compute(scheduler="synchronous")
    assert ds["y"].dims == ("a", "b", "seed")
    assert float(ds["y"].sel(a=2.0, b=30.0, seed=1)) == 60.0
    assert ds["status"].values.min() == ds["status"].values.max() == 1


def test_sampled_design_layout():
    design = ens.Points([{"a": 3.0}]) + ens.Sample(a=ens.Normal(3.0, 0.05), n=10, seed=123)
    e = ens.Ensemble(sims.seeded, design, seeds=4, root_seed=42)
    ds = e.to_dataset()
    assert ds["y"].dims == ("sample", "seed")
    assert ds.sizes == {"sample": 11, "seed": 4}
    assert ds["a"].dims == ("sample",)
    assert float(ds["a"][0]) == 3.0
    np.testing.assert_array_equal(ds["a"].values, design.table()["a"])


def test_product_of_sample_and_grid():
    design = ens.Sample(a=ens.Uniform(0.0, 1.0), n=3, seed=1) * ens.Grid(b=[1.0, 2.0])
    ds = ens.Ensemble(sims.seeded, design, seeds=2, root_seed=0).to_dataset()
    assert ds["y"].dims == ("sample", "b", "seed")
    out = ds.compute(scheduler="synchronous")
    np.testing.assert_allclose(out["y"].sel(b=2.0), 2.0 * out["a"].values[:, None] * [1, 1])


def test_dataset_results_keep_dims_and_coords():
    e = ens.Ensemble(sims.as_dataset, ens.Grid(a=[0.0, 1.0]), seeds=2, root_seed=0)
    ds = e.to_dataset()
    assert ds["v"].dims == ("a", "seed", "t")
    assert ds["t"].values.tolist() == [0.0, 0.5, 1.0]
    out = ds.compute(scheduler="synchronous")
    seed = int(out["member_seed"].values[1, 1])
    np.testing.assert_array_equal(out["v"].values[1, 1], sims.as_dataset(seed=seed, a=1.0)["v"])


def test_output_coordinates_must_agree_across_members():
    e = ens.Ensemble(sims.moving_coord, ens.Grid(a=[0.0, 1.0]), seeds=1, root_seed=0)
    with pytest.raises(MemberError, match=r"a=1\.0.*coordinate 't'.*same for every member"):
        e.to_dataset().compute(scheduler="synchronous")


# -- seeds -------------------------------------------------------------------------------


def test_member_seed_is_what_the_member_received_and_reruns_it():
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 0.5]), seeds=3, root_seed=9)
    ds = e.to_dataset().compute(scheduler="synchronous")
    for i, drift in enumerate([0.0, 0.5]):
        for s in range(3):
            seed = int(ds["member_seed"].values[i, s])
            rerun = sims.walk(rng=np.random.default_rng(seed), drift=drift)
            np.testing.assert_array_equal(ds["x"].values[i, s], rerun["x"])
    got = ens.Ensemble(sims.seeded, ens.Grid(a=[1.0]), seeds=3, root_seed=9).to_dataset()
    got = got.compute(scheduler="synchronous")
    assert (got["seed_lo"].values == got["member_seed"].values % 1_000_003).all()


@pytest.mark.parametrize("batch_size", [1, 2, 5, 1000], ids=lambda b: f"batch{b}")
def test_results_do_not_depend_on_batch_size(batch_size):
    design = ens.Grid(drift=[0.0, 1.0, 2.0])
    ref = ens.Ensemble(sims.walk, design, seeds=4, root_seed=7, batch_size=3).to_dataset()
    got = ens.Ensemble(sims.walk, design, seeds=4, root_seed=7, batch_size=batch_size)
    xr.testing.assert_identical(
        got.to_dataset().compute(scheduler="synchronous")["x"],
        ref.compute(scheduler="threads")["x"],
    )


def test_growing_the_sweep_keeps_old_members_seeds():
    small = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0]), seeds=3, root_seed=11)
    big = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0, 2.0]), seeds=5, root_seed=11)
    a = small.to_dataset().compute(scheduler="synchronous")
    b = big.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(a["x"].values, b["x"].values[:2, :3])
    np.testing.assert_array_equal(a["member_seed"].values, b["member_seed"].values[:2, :3])
    grown = ens.Sample(drift=ens.Normal(0, 1), n=8, seed=2)
    c = (
        ens.Ensemble(
            sims.walk, ens.Sample(drift=ens.Normal(0, 1), n=4, seed=2), seeds=2, root_seed=11
        )
        .to_dataset()
        .compute(scheduler="synchronous")
    )
    d = ens.Ensemble(sims.walk, grown, seeds=2, root_seed=11).to_dataset()
    np.testing.assert_array_equal(c["x"].values, d["x"][:4].compute(scheduler="synchronous"))


def test_root_seed_changes_results_and_default_is_recorded():
    a = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=2, root_seed=1)
    b = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=2, root_seed=2)
    assert not np.array_equal(a.to_dataset()["member_seed"], b.to_dataset()["member_seed"])
    c = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=2)
    assert 0 <= c.root_seed < 2**128
    assert c.to_dataset().attrs["ensembles_root_seed"] == str(c.root_seed)


# -- running on dask.distributed -------------------------------------------------------------


def test_compute_on_client_equals_lazy_and_direct_calls(client, tmp_path):
    design = ens.Grid(drift=[0.0, 1.0, 2.0])
    e = ens.Ensemble(sims.walk, design, seeds=4, root_seed=3)
    lazy = e.to_dataset().compute(scheduler="synchronous")
    ran = e.compute(scheduler=client, progress=False)
    xr.testing.assert_equal(lazy.drop_vars("status"), ran.drop_vars("status"))
    assert (ran["status"].values == 1).all()


def test_compute_runs_on_worker_processes_by_default(tmp_path):
    # the embedded default: one process per core for GIL-holding Python code
    e = ens.Ensemble(sims.pid, ens.Grid(a=np.arange(8.0)), seeds=2, root_seed=0, batch_size=2)
    ds = e.compute(progress=False)
    import os

    pids = set(np.unique(ds["pid"].values).tolist())
    assert os.getpid() not in pids or len(pids) > 1


def test_probe_result_is_reused_when_running(client, tmp_path):
    log = tmp_path / "calls.txt"
    e = ens.Ensemble(
        sims.counting,
        ens.Grid(a=[1.0, 2.0, 3.0]),
        seeds=3,
        root_seed=1,
        fixed={"log": str(log)},
        batch_size=2,
    )
    e.compute(scheduler=client, progress=False)
    assert len(_read_calls(log)) == 9


def test_progress_line(client, capsys):
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0]), seeds=3, root_seed=3)
    e.compute(scheduler=client, progress=True)
    err = capsys.readouterr().err
    assert "members: 6/6 (100.0%)" in err


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fixed": {"nope": 1}}, SimulationError, r"does not accept parameter\(s\) \['nope'\]"),
        ({"seeds": 0}, DesignError, "seeds must be a positive integer"),
        ({"seeds": 2.5}, DesignError, "seeds must be a positive integer"),
        ({"root_seed": -1}, DesignError, "root_seed"),
        ({"fixed": {"a": 1.0}}, DesignError, r"both in the design and in fixed"),
        ({"fixed": {"seed": 1}}, DesignError, "cannot set"),
        ({"batch_size": 0}, DesignError, "batch_size"),
    ],
    ids=[
        "unknown-param",
        "zero-seeds",
        "float-seeds",
        "neg-root",
        "fixed-clash",
        "fixed-seed",
        "zero-batch",
    ],
)
def test_invalid_ensembles_fail_before_running(kwargs, error, match):
    with pytest.raises(error, match=match):
        ens.Ensemble(sims.seeded, ens.Grid(a=[1.0]), **kwargs)


def test_missing_required_parameter():
    with pytest.raises(SimulationError, match=r"requires parameter\(s\) \['a'\]"):
        ens.Ensemble(sims.seeded, ens.Grid(b=[1.0]))


def test_output_named_like_a_parameter_is_refused():
    e = ens.Ensemble(sims.echo_param, ens.Grid(a=[1.0]), root_seed=0)
    with pytest.raises(SimulationError, match=r"output named 'a'.*rename the output"):
        e.to_dataset()


def test_design_must_be_a_design():
    with pytest.raises(DesignError, match="design must be a Design"):
        ens.Ensemble(sims.seeded, [1, 2, 3])


def test_failing_member_is_named(client):
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, 2.0, -1.0]), seeds=2, root_seed=0)
    with pytest.raises(MemberError, match=r"a=-1\.0.*seed=\d+.*ValueError: a must be non-neg"):
        e.compute(scheduler=client, progress=False)
    with pytest.raises(MemberError, match=r"a=-1\.0"):
        e.to_dataset().compute(scheduler="synchronous")


def test_record_failures_keeps_the_others(client, capsys):
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, -2.0, 3.0]), seeds=2, root_seed=0)
    ds = e.compute(scheduler=client, progress=True, on_error="record")
    assert ds["status"].values.tolist() == [[1, 1], [2, 2], [1, 1]]
    assert np.isnan(ds["y"].values[1]).all()
    assert ds["y"].values[[0, 2]].tolist() == [[1.0, 1.0], [3.0, 3.0]]
    err = capsys.readouterr().err
    assert "2 of 6 members failed" in err
    assert "ValueError" in err


def test_output_mismatch_names_the_member():
    e = ens.Ensemble(sims.ragged, ens.Grid(a=[2.0, 3.0]), seeds=1, root_seed=0)
    with pytest.raises(MemberError, match=r"member 1 .*a=3\.0.*shape \(3,\).*\(2,\)") as info:
        e.to_dataset().compute(scheduler="synchronous")
    assert isinstance(info.value.__cause__, OutputMismatchError)


def test_bad_on_error():
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0]), root_seed=0)
    with pytest.raises(ValueError, match="on_error must be"):
        e.compute(on_error="ignore")


def test_decorated_simulations_pickle_by_reference():
    import pickle

    assert pickle.loads(pickle.dumps(sims.declared)) is sims.declared
    plain = ens.Simulation(sims.walk)
    again = pickle.loads(pickle.dumps(plain))
    assert again.func is sims.walk


LIGHT_DRIVER = """
import json, sys
import ensembles as ens

def member(*, seed, x):
    return {"y": x + seed % 7, "xarray_here": float("xarray" in sys.modules)}

e = ens.Ensemble(member, ens.Grid(x=[1.0, 2.0, 3.0]), seeds=4, root_seed=3)
built = [m for m in ("xarray", "pandas", "zarr", "distributed") if m in sys.modules]
ds = e.compute(progress=False, workers=1)
means = ds.ens.mean("seed")["y"].values.tolist()
print(json.dumps([built, float(ds["xarray_here"].max()), means]))
"""


def test_building_an_ensemble_loads_no_xarray_and_the_result_still_has_its_accessor(tmp_path):
    """A driver loads xarray (and pandas) while its first members run, not before; the
    members' forked workers never have it; the result is a Dataset with ``.ens``."""
    import json
    import subprocess
    import sys

    script = tmp_path / "light.py"
    script.write_text(LIGHT_DRIVER)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    built, in_workers, means = json.loads(done.stdout.strip().splitlines()[-1])
    assert built == []
    assert in_workers == 0.0  # forked before xarray loaded, and never loading it
    same = ens.Ensemble(lambda *, seed, x: {}, ens.Grid(x=[1.0, 2.0, 3.0]), seeds=4, root_seed=3)
    seeds = same.members().seeds  # the member seeds depend on the design and root seed only
    expected = [x + np.mean(row % 7) for x, row in zip([1.0, 2.0, 3.0], seeds, strict=True)]
    np.testing.assert_allclose(means, expected)
