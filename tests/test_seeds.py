"""The seed tree: vectorized SeedSequence equals numpy's; keys are stable."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensembles.members.seeds import member_seed, member_seeds, point_keys


@settings(max_examples=50, deadline=None)
@given(
    root=st.integers(0, 2**128 - 1),
    keys=st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20),
    occ=st.integers(0, 2**32 - 1),
    index=st.integers(0, 2**32 - 1),
)
def test_member_seeds_equal_numpy_seedsequence(root, keys, occ, index):
    arr = np.array(keys, dtype=np.uint64)
    got = member_seeds(root, arr, occ, index)
    want = [member_seed(root, k, occ, index) for k in keys]
    assert got.tolist() == want
    ss = np.random.SeedSequence(root, spawn_key=(keys[0] >> 32, keys[0] & 0xFFFFFFFF, occ, index))
    assert int(got[0]) == int(ss.generate_state(1, np.uint64)[0]) >> 1


def test_member_seeds_are_non_negative_int64_and_distinct():
    keys = np.arange(1000, dtype=np.uint64)
    seeds = member_seeds(7, keys[:, None], 0, np.arange(50)[None, :])
    assert seeds.dtype == np.int64
    assert seeds.shape == (1000, 50)
    assert (seeds >= 0).all()
    assert len(np.unique(seeds)) == seeds.size


@pytest.mark.parametrize(
    ("root", "match"),
    [(-1, r"root_seed"), (2**128, r"2\*\*128"), (1.5, "integer"), (True, "integer")],
    ids=["negative", "too-big", "float", "bool"],
)
def test_bad_root_seed(root, match):
    with pytest.raises(ValueError, match=match):
        member_seeds(root, np.zeros(1, np.uint64), 0, 0)


def test_point_keys_depend_on_values_not_order():
    a = {"T": np.array([1.0, 2.0, 3.0]), "L": np.array([8, 16, 32])}
    b = {"L": np.array([32, 8, 16]), "T": np.array([3.0, 1.0, 2.0])}
    ka, _ = point_keys(a)
    kb, _ = point_keys(b)
    assert ka.tolist() == [kb[1], kb[2], kb[0]]
    # ints and floats of equal value are the same point; strings differ from numbers
    k_int, _ = point_keys({"L": np.array([8])})
    k_float, _ = point_keys({"L": np.array([8.0])})
    k_str, _ = point_keys({"L": np.array(["8"])})
    assert k_int[0] == k_float[0] != k_str[0]
    # the parameter name is part of the key
    assert point_keys({"X": np.array([8])})[0][0] != k_int[0]


def test_point_keys_count_duplicates_in_order():
    keys, occ = point_keys({"model": np.array(["a", "b", "a", "a", "b"])})
    assert occ.tolist() == [0, 0, 1, 2, 1]
    assert keys[0] == keys[2] == keys[3] != keys[1]


def test_appending_points_keeps_earlier_keys():
    small = {"T": np.array([1.0, 2.0, 1.0])}
    big = {"T": np.array([1.0, 2.0, 1.0, 5.0, 1.0])}
    ks, os_ = point_keys(small)
    kb, ob = point_keys(big)
    assert ks.tolist() == kb[:3].tolist()
    assert os_.tolist() == ob[:3].tolist()
