"""The per-member loop of a block: the plain loop gives exactly what the general loop gives.

Blocks of a plain function without retries or shared state take the plain loop
(``ensembles/execution/block_loop.py``); ``retries=`` sends every block through the
general loop. Both run here on the local pool's worker processes.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import MemberError
from ensembles.execution.block_loop import BlockArrays, result_signature, run_plain
from ensembles.execution.planning import plan_run
from ensembles.members.blocks import Members
from ensembles.simulations.contract import as_simulation
from ensembles.simulations.schema import Output
from ensembles.sweep.values import first_nonfinite

from . import sims


def _mixed(n=40, batch_size=None):
    points = ens.Points([{"a": float(i % 10)} for i in range(n)])  # repeated values too
    return ens.Ensemble(sims.mixed_kinds, points, seeds=3, root_seed=5, batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [None, 7])
def test_plain_and_general_loops_record_the_same_members(batch_size):
    e = _mixed(batch_size=batch_size)
    plain = e.compute(progress=False, on_error="record")
    general = e.compute(progress=False, on_error="record", retries=1)  # the general loop
    for name in ("y", "s", "status", "member_seed"):
        np.testing.assert_array_equal(plain[name].values, general[name].values)
    status = plain["status"].values
    a = plain["a"].values
    assert (status[(a == 3.0) | (a == 7.0)] == 2).all()  # raised; an array for a scalar
    assert (status[(a != 3.0) & (a != 7.0)] == 1).all()
    assert np.isnan(plain["y"].values[status == 2]).all()
    ok = status == 1
    np.testing.assert_array_equal(plain["s"].values[ok], plain["member_seed"].values[ok])
    expected = np.where(a % 5 == 2, np.floor(a), np.where(a % 5 == 3, a > 2.0, a))
    expected = np.broadcast_to(expected[:, None], ok.shape)
    np.testing.assert_array_equal(plain["y"].values[ok], expected[ok])
    assert plain["y"].dtype == np.float64
    assert plain["s"].dtype == np.int64


def test_a_store_gets_the_same_bookkeeping_from_either_loop(tmp_path):
    e = _mixed(n=20)
    plain = e.to_zarr(tmp_path / "plain.zarr", progress=False)
    general = e.to_zarr(tmp_path / "general.zarr", progress=False, retries=1)
    for name in ("y", "s", "status", "member_seed", "error"):
        np.testing.assert_array_equal(plain[name].values, general[name].values)
    np.testing.assert_array_equal(plain["attempts"].values, 1)
    a = plain["a"].values
    assert (general["attempts"].values[a == 3.0] == 2).all()  # raised: retried once
    assert (general["attempts"].values[a == 7.0] == 1).all()  # a wrong output: not retried
    wall = plain["wall_time"].values
    assert np.isfinite(wall).all()
    assert (wall >= 0).all()
    errors = plain["error"].values[a == 3.0]
    assert all(text.startswith("ValueError: three is bad (seed ") for text in errors.ravel())


def test_a_failing_member_stops_a_plain_block_with_its_name():
    e = _mixed(n=5)  # a = 3 is the only failing member
    with pytest.raises(MemberError, match=r"raised ValueError: three is bad") as info:
        e.compute(progress=False)
    assert info.value.params == {"a": 3.0}


def test_the_plain_loop_records_errors_and_reuses_probed_members():
    members = Members(ens.Grid(a=[1.0, 3.0, 4.0, 6.0]), 2, 9, (4, 2))
    outputs = {"y": Output((), (), "float64"), "s": Output((), (), "int64")}
    block = BlockArrays(members, outputs, (0, 0), None)
    probed = block.take([0, 1, 100])  # members 0 and 1 ran while planning
    assert probed == [0, 1]
    sim = as_simulation(sims.mixed_kinds)
    calls = []

    def call(params, seed):
        calls.append(params["a"])
        return sim.direct_call()(params, seed)

    run_plain(
        block,
        call,
        fixed={},
        finish=lambda member, raw: {k: np.asarray(v) for k, v in raw.items()},
        bare=None,
        on_failure=lambda member, exc: None,
        timeout=None,
    )
    assert calls == [3.0, 3.0, 4.0, 4.0, 6.0, 6.0]  # each member once; not the probed ones
    result = block.result()
    assert result.status.tolist() == [[0, 0], [2, 2], [1, 1], [1, 1]]  # probed: left to the caller
    assert [(m, etype) for m, etype, _ in result.errors] == [(2, "ValueError"), (3, "ValueError")]
    assert result.outputs["y"][2:].tolist() == [[4.0, 4.0], [6.0, 6.0]]  # float64, float32
    assert result.outputs["s"][2:].ravel().tolist() == members.seeds[2:].ravel().tolist()
    assert result.attempts.tolist() == [[0, 0], [1, 1], [1, 1], [1, 1]]


def test_bare_scalars_of_several_types_take_the_plain_loop():
    e = ens.Ensemble(sims.energy, ens.Grid(T=np.linspace(1.0, 2.0, 50)), seeds=4, root_seed=2)
    ds = e.compute(progress=False)
    seeds = ds["member_seed"].values
    expected = -2.0 * ds["T"].values[:, None] + (seeds % 1000) / 1000.0
    np.testing.assert_array_equal(ds["energy"].values, expected)
    assert (ds["status"].values == 1).all()


def test_result_signatures_stand_for_what_the_schema_check_decides():
    assert result_signature({"y": 1.5}, 1) == (("y", float),)
    assert result_signature({"y": 2**70}, 1) is None  # too large for any integer output
    assert result_signature({"y": np.zeros(3)}, 1) == (("y", (3,), np.dtype(float)),)
    assert result_signature({"y": 1.0, "z": 2.0}, 1) is None
    assert result_signature(1.5, 1) is None


def test_an_ensemble_works_out_its_members_seeds_once():
    e = ens.Ensemble(sims.seeded, ens.Grid(a=[1.0, 2.0, 3.0]), seeds=4, root_seed=11)
    first = e.members()
    seeds = first.seeds
    again = e.members(batch_size=2)
    assert "seeds" in again.__dict__
    assert again.seeds is seeds
    assert again.block == (1, 2)
    e.root_seed = 12  # another root seed: other seeds
    other = e.members()
    assert not np.array_equal(other.seeds, seeds)
    np.testing.assert_array_equal(other.seeds, Members(e.design, 4, 12).seeds)
    assert pickle.loads(pickle.dumps(again)).seeds.tolist() == seeds.tolist()


def test_the_run_identity_is_the_canonical_json_of_the_spec():
    e = ens.Ensemble(
        sims.seeded, ens.Grid(a=np.linspace(0, 1, 300)), seeds=2, root_seed=1, fixed={"b": 2.0}
    )
    expected = json.dumps(e.spec(), sort_keys=True, default=repr)
    assert e._job().identity == expected
    assert e._job().identity == expected  # the design's part from the cache
    e.fixed = {"b": 3.0}
    assert json.loads(e._job().identity)["fixed"] == {"b": 3.0}


def test_first_nonfinite_finds_values_in_flat_lists_of_plain_values():
    assert first_nonfinite([1, 2.5, True, None, "x", 10**400]) is None
    assert first_nonfinite([1, 2.5, float("-inf")]) == ("[2]", float("-inf"))
    nan = first_nonfinite({"a": [0.0, float("nan")]})
    assert nan is not None
    assert nan[0] == "['a'][1]"
    assert first_nonfinite([[1.0], (2.0, np.float32("inf"))])[0] == "[1][1]"


def test_a_later_run_of_the_same_job_plans_from_what_the_first_learned(tmp_path):
    log = tmp_path / "calls.txt"
    e = ens.Ensemble(
        sims.counting, ens.Grid(a=np.arange(50.0)), seeds=2, root_seed=3, fixed={"log": str(log)}
    )
    memo: list = []
    options = {"running": True, "batch_size": None, "n_workers": 2, "on_error": "raise"}
    first = plan_run(e._job(), **options, memo=memo)
    probed = log.read_text().count("\n")
    assert probed >= 1  # the first members ran here, to learn the outputs and time them
    assert len(memo) == 1
    assert memo[0].fits(e._job())
    again = plan_run(e._job(), **options, memo=memo)
    assert log.read_text().count("\n") == probed  # nothing probed again
    assert again.schema == first.schema
    assert again.members.block == first.members.block
    assert again.precomputed == {}  # every member runs in blocks
    e.fixed = {"log": str(tmp_path / "other.txt")}  # another job: probed anew
    assert not memo[0].fits(e._job())
    plan_run(e._job(), **options, memo=memo)
    assert (tmp_path / "other.txt").exists()
    assert memo[0].fits(e._job())


def test_a_second_compute_gives_the_same_results():
    e = ens.Ensemble(sims.seeded, ens.Grid(a=np.linspace(0, 1, 200)), seeds=5, root_seed=4)
    first = e.compute(progress=False)
    second = e.compute(progress=False)
    assert len(e._memory.learned) == 1
    for name in ("got_a", "seed_lo", "y", "status", "member_seed"):
        np.testing.assert_array_equal(first[name].values, second[name].values)
