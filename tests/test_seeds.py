"""The seed tree: vectorized SeedSequence equals numpy's; keys are stable."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ensembles as ens
from ensembles.errors import SimulationError, SpecError
from ensembles.members.seeds import member_seed, member_seeds, point_keys
from ensembles.simulations.command import Command
from ensembles.simulations.model_class import ModelClass
from ensembles.spec import simulation_from_spec

from . import sims


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


# -- seed_bits: seeds a program accepts ------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    root=st.integers(0, 2**128 - 1),
    key=st.integers(0, 2**64 - 1),
    index=st.integers(0, 2**32 - 1),
    bits=st.integers(1, 63),
)
def test_seed_bits_are_the_top_bits_of_the_seedsequence_word(root, key, index, bits):
    got = int(member_seeds(root, np.array([key], dtype=np.uint64), 0, index, bits=bits)[0])
    ss = np.random.SeedSequence(root, spawn_key=(key >> 32, key & 0xFFFFFFFF, 0, index))
    assert got == int(ss.generate_state(1, np.uint64)[0]) >> (64 - bits)
    assert got == member_seed(root, key, 0, index, bits=bits)
    assert 0 <= got < 2**bits
    # fewer bits are a prefix of the default seed, so both are derived from one word
    assert got == member_seed(root, key, 0, index) >> (63 - bits)


def test_default_seeds_are_those_earlier_versions_gave():
    """Stores written before seed_bits existed resume with the very same member seeds."""
    e = ens.Ensemble(sims.declared, ens.Grid(a=[1.0, 2.0]), seeds=3, root_seed=2)
    assert e.members().seeds.tolist() == [
        [5145474486954740001, 7780998452842337987, 4834422899081233429],
        [7272987006402272339, 2229257852761507313, 5553429878847168499],
    ]
    assert "seed_bits" not in e.spec()["simulation"]  # so stored specs compare equal


def test_31_bit_seeds_fit_a_signed_32_bit_integer():
    keys = np.arange(2000, dtype=np.uint64)
    seeds = member_seeds(7, keys[:, None], 0, np.arange(50)[None, :], bits=31)
    assert seeds.dtype == np.int64
    assert seeds.min() >= 0
    assert seeds.max() <= 2**31 - 1
    assert seeds.max() > 2**30  # the whole range is used
    # 100 000 seeds of 2**31 values: a few pairs collide (the birthday bound in the docs)
    assert len(np.unique(seeds)) > seeds.size - 20


def _builders():
    command = ["prog", "{seed}", "{output}"]
    return {
        "function": lambda bits: ens.Simulation(sims.seeded, seed_bits=bits),
        "decorator": lambda bits: ens.simulation(seed_bits=bits),
        "command": lambda bits: Command(command, output="o.csv", seed_bits=bits),
        "model": lambda bits: ModelClass(dict, seed_bits=bits),
        "member_seeds": lambda bits: member_seeds(1, np.zeros(1, np.uint64), 0, 0, bits=bits),
    }


@pytest.mark.parametrize("bits", [0, 64, -1, 31.0, True, "31", None])
@pytest.mark.parametrize("where", list(_builders()))
def test_bad_seed_bits_are_refused_naming_the_value(where, bits):
    with pytest.raises(
        SimulationError, match=rf"seed_bits must be an integer from 1 to 63, got {bits!r}"
    ):
        _builders()[where](bits)


def test_seed_bits_travel_through_specs_and_pickles():
    sim = Command(["prog", "{seed}", "{output}"], output="o.csv", seed_bits=31)
    assert sim.to_dict()["seed_bits"] == 31
    assert Command.from_dict(sim.to_dict()).seed_bits == 31
    assert "seed_bits" not in Command(["prog", "{output}"], output="o.csv").to_dict()
    model = ModelClass(dict, seed_bits=20)
    assert ModelClass.from_dict(model.to_dict()).seed_bits == 20
    func = ens.Simulation(sims.seeded, seed_bits=31)
    assert func.to_dict() == {"function": "tests.sims:seeded", "seed_bits": 31}
    assert pickle.loads(pickle.dumps(func)).seed_bits == 31
    # a spec's seed_bits wrap a plain function, and must agree with a decorated one's
    plain = simulation_from_spec({"function": "tests.sims:seeded", "seed_bits": 12})
    assert plain.seed_bits == 12
    assert plain.func is sims.seeded
    assert pickle.loads(pickle.dumps(plain)).seed_bits == 12
    assert simulation_from_spec({"function": "tests.sims:declared"}) is sims.declared
    with pytest.raises(
        SpecError, match=r"sets seed_bits = 12 but 'tests\.sims:declared' declares"
    ):
        simulation_from_spec({"function": "tests.sims:declared", "seed_bits": 12})
    with pytest.raises(SpecError, match="takes only 'seed_bits'"):
        simulation_from_spec({"function": "tests.sims:declared", "bits": 12})
