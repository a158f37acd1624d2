"""Member plans: block layout, seeds per member, descriptions."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensembles as ens
from ensembles.members.blocks import Members, block_shape_for
from ensembles.members.seeds import member_seed


@settings(max_examples=100, deadline=None)
@given(
    shape=st.lists(st.integers(1, 12), min_size=1, max_size=4).map(tuple),
    batch=st.integers(1, 500),
)
def test_blocks_tile_the_member_grid_exactly_once(shape, batch):
    block = block_shape_for(shape, batch)
    assert math.prod(block) <= max(batch, 1)
    m = Members(
        {"x": np.arange(math.prod(shape[:-1]))},
        tuple(f"d{i}" for i in range(len(shape) - 1)),
        shape[:-1],
        shape[-1],
        0,
        block,
    )
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
    table = {"T": np.array([1.5, 2.0, 2.5])}
    a = Members(table, ("T",), (3,), 4, 42, (1, 4))
    b = Members(table, ("T",), (3,), 4, 42, (3, 1))
    assert np.array_equal(a.seeds, b.seeds)
    grown = Members({"T": np.array([1.5, 2.0, 2.5, 3.0])}, ("T",), (4,), 6, 42, (1, 6))
    assert np.array_equal(grown.seeds[:3, :4], a.seeds)
    # the scalar reference agrees with the vectorized plan
    keys, occ = a.keys
    assert a.seed(5) == member_seed(42, int(keys[1]), int(occ[1]), 1)


def test_describe_names_member_params_and_seed():
    m = Members({"T": np.array([1.5, 2.0])}, ("T",), (2,), 3, 7, (1, 3))
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
