"""Member plans: block layout, seeds per member, descriptions."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensembles as ens
from ensembles.errors import DesignError
from ensembles.members.blocks import (
    BYTES_PER_MEMBER,
    Members,
    available_memory,
    block_shape_for,
    check_size,
)
from ensembles.members.seeds import member_seed, point_keys


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple),
    batch=st.integers(1, 500),
)
def test_blocks_tile_the_member_grid_exactly_once(shape, batch):
    block = block_shape_for(shape, batch)
    assert math.prod(block) <= max(batch, 1)
    design = ens.Grid(**{f"d{i}": list(range(size)) for i, size in enumerate(shape[:-1])})
    m = Members(design, shape[-1], 0, block)
    seen = np.zeros(shape, dtype=int)
    for bid in m.block_ids():
        seen[m.block_slices(bid)] += 1
        assert m.block_members(bid).shape == seen[m.block_slices(bid)].shape
    assert (seen == 1).all()


def test_block_shape_takes_trailing_dims_whole():
    assert block_shape_for((3, 4, 1000), 500) == (1, 1, 500)
    assert block_shape_for((50, 4), 100) == (25, 4)
    assert block_shape_for((2, 3), 10_000) == (2, 3)
    with pytest.raises(ValueError, match="batch_size"):
        block_shape_for((2, 3), 0)


def test_member_seeds_do_not_depend_on_blocking_or_growth():
    grid = ens.Grid(T=[1.5, 2.0, 2.5])
    a = Members(grid, 4, 42, (1, 4))
    b = Members(grid, 4, 42, (3, 1))
    assert np.array_equal(a.seeds, b.seeds)
    grown = Members(ens.Grid(T=[1.5, 2.0, 2.5, 3.0]), 6, 42, (1, 6))
    assert np.array_equal(grown.seeds[:3, :4], a.seeds)
    # the scalar reference agrees with the vectorized plan
    keys, occ = a.keys
    assert a.seed(5) == member_seed(42, int(keys[1]), int(occ[1]), 1)


def test_describe_names_member_params_and_seed():
    m = Members(ens.Grid(T=[1.5, 2.0]), 3, 7, (1, 3))
    text = m.describe(4)
    assert "member 4" in text
    assert "T=2.0" in text
    assert f"seed={m.seed(4)}" in text
    assert m.params(4) == {"T": 2.0}


def test_result_signature_cache_still_checks_every_new_shape_and_type(client):
    from . import sims

    grid = ens.Grid(a=[1.0, 5.0, 2.0, 3.0, 4.0, 6.0])
    e = ens.Ensemble(sims.shape_shifter, grid, seeds=2, batch_size=12)  # one block
    ds = e.compute(progress=False, scheduler=client, on_error="record")
    status = ds["status"].values
    by_a = dict(zip(ds["a"].values.tolist(), status.tolist(), strict=True))
    assert by_a[1.0] == [1, 1]
    assert by_a[5.0] == [1, 1]
    assert by_a[6.0] == [1, 1]
    assert by_a[2.0] == [2, 2]  # an array where a scalar was promised
    assert by_a[3.0] == [2, 2]  # an int too large for any output dtype
    assert by_a[4.0] == [2, 2]  # a string
    np.testing.assert_array_equal(ds["y"].sel(a=[1.0, 5.0, 6.0]).values[:, 0], [1.0, 5.0, 6.0])
    assert np.isnan(ds["y"].sel(a=[2.0, 3.0, 4.0]).values).all()


def test_one_members_params_and_seed_are_computed_for_it_alone():
    # repeated points get distinct seeds through their occurrence count
    design = ens.Points([{"T": 1.0}, {"T": 2.0}, {"T": 1.0}]) + ens.Sample(
        n=50, seed=3, T=ens.Choice([1.0, 2.0])
    )
    lazy = Members(design, 3, 11)
    full = Members(design, 3, 11)
    for member in [0, 2, 6, 7, 8, 100, 158]:
        assert (
            lazy.params(member) == full.params(member) == {"T": design.table()["T"][member // 3]}
        )
        assert lazy.seed(member) == int(full.seeds.reshape(-1)[member])
    assert "table" not in lazy.__dict__
    assert "seeds" not in lazy.__dict__
    assert lazy.seed(6) != lazy.seed(0)  # point 2 repeats point 0, with its own seed


def test_members_of_a_huge_design_plan_without_touching_every_member():
    big = ens.Grid(a=range(1000), b=range(100)) * ens.Grid(c=range(100))
    m = Members(big, 1, 5)  # 10**7 members
    last = len(m) - 1
    assert m.params(last) == {"a": 999, "b": 99, "c": 99}
    point = big.rows([last])
    keys, occurrences = point_keys(point)
    assert m.seed(last) == member_seed(5, int(keys[0]), int(occurrences[0]), 0)
    assert "seeds" not in m.__dict__
    assert m.with_batch_size(100).block == (1, 1, 100, 1)


def test_pickled_members_carry_every_members_values_and_seed():
    m = Members(ens.Sample(n=7, seed=1, T=(0.0, 1.0)), 2, 3)
    back = pickle.loads(pickle.dumps(m))
    assert {"table", "seeds"} <= set(back.__dict__)
    assert "keys" not in back.__dict__
    np.testing.assert_array_equal(back.seeds, m.seeds)
    np.testing.assert_array_equal(back.table["T"], m.design.table()["T"])
    assert back.describe(5) == m.describe(5)


def test_members_whose_bookkeeping_cannot_fit_in_memory_are_refused():
    available = available_memory()
    n_points = available // BYTES_PER_MEMBER  # twice the share a run may take
    with pytest.raises(DesignError, match=r"the ensemble has [\d,]+ members .* too many"):
        check_size(n_points, 1)
    check_size(1000, 1000)  # 10**6 members: 16 MB
    huge = ens.Grid(a=range(10_000), b=range(10_000)) * ens.Grid(c=range(10_000))
    with pytest.raises(
        DesignError,
        match=r"1,000,000,000,000 members \(1,000,000,000,000 design points x 1 seed\).*"
        r"64\.0 TB.*memory available here\. Run fewer members at a time",
    ):
        Members(huge, 1, 0)
