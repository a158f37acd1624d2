"""Tests of ensembles.sweep: layout, tables, coords, reproducibility, dict forms, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ensembles.errors import DesignError
from ensembles.sweep import (
    Concat,
    Design,
    Grid,
    LatinHypercube,
    Points,
    Product,
    Sample,
    Sobol,
    design_from_dict,
)
from ensembles.sweep.distributions import Choice, LogUniform, Normal, ScipyDistribution, Uniform

SETTINGS = settings(max_examples=40, deadline=None)

# --------------------------------------------------------------------------------------------
# strategies: a design is generated for a schema, a tuple of (name, kind) with kind one of
# "num", "str", "bool", so that concatenated parts agree and product factors are disjoint
# --------------------------------------------------------------------------------------------

NAMES = ["T", "L", "h", "beta", "x y", "n", "scramble", "μ"]
seeds = st.integers(min_value=0, max_value=2**32 - 1)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
numbers = st.one_of(st.integers(-1000, 1000), finite)
texts = st.text("abcxyz_", max_size=3)


def elements(kind: str) -> st.SearchStrategy:
    return {"bool": st.booleans(), "str": texts, "num": numbers}[kind]


def value_lists(kind: str, unique: bool) -> st.SearchStrategy[list]:
    return st.lists(elements(kind), min_size=1, max_size=3, unique=unique)


def dists(kind: str) -> st.SearchStrategy:
    if kind == "num":
        return st.one_of(
            st.builds(Normal, finite, st.floats(1e-3, 1e3)),
            st.builds(lambda lo, w: Uniform(lo, lo + w), finite, st.floats(1e-3, 1e3)),
            st.builds(
                lambda lo, w: LogUniform(lo, lo * w), st.floats(1e-3, 1e3), st.floats(2, 10)
            ),
            st.builds(lambda a: ScipyDistribution(stats.gamma(a)), st.floats(0.5, 5.0)),
            value_lists("num", unique=True).map(Choice),
        )
    return value_lists(kind, unique=True).map(Choice)


schemas = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(["num", "num", "str", "bool"])),
    min_size=1,
    max_size=3,
    unique_by=lambda item: item[0],
).map(tuple)


@st.composite
def base_designs(draw, schema):
    kind = draw(st.sampled_from(["grid", "points", "sample", "lhs", "sobol"]))
    if kind == "grid":
        return Grid(**{name: draw(value_lists(k, unique=True)) for name, k in schema})
    if kind == "points":
        n = draw(st.integers(1, 4))
        columns = {name: draw(st.lists(elements(k), min_size=n, max_size=n)) for name, k in schema}
        return Points([{name: columns[name][i] for name, _ in schema} for i in range(n)])
    params = {name: draw(dists(k)) for name, k in schema}
    n, seed = draw(st.integers(1, 6)), draw(seeds)
    if kind == "sample":
        return Sample(n=n, seed=seed, params=params)
    if kind == "lhs":
        return LatinHypercube(n=n, seed=seed, params=params)
    return Sobol(n=n, seed=seed, scramble=draw(st.booleans()), params=params)


@st.composite
def designs(draw, schema=None, depth=0):
    if schema is None:
        schema = draw(schemas)
    options = ["base"]
    if depth < 2:
        options += ["concat"] + (["product"] if len(schema) > 1 else [])
    kind = draw(st.sampled_from(options))
    if kind == "product":
        split = draw(st.integers(1, len(schema) - 1))
        left = draw(designs(schema[:split], depth + 1))
        return left * draw(designs(schema[split:], depth + 1))
    if kind == "concat":
        other = draw(st.permutations(schema))  # the parameter order of parts may differ
        return draw(designs(schema, depth + 1)) + draw(designs(tuple(other), depth + 1))
    return draw(base_designs(schema))


def assert_tables_identical(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name], b[name])


# --------------------------------------------------------------------------------------------
# properties of every design
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(design=designs())
def test_len_shape_and_table_agree(design):
    assert len(design) == math.prod(design.shape)
    assert len(design.dims) == len(design.shape)
    assert design.sizes == dict(zip(design.dims, design.shape, strict=True))
    table = design.table()
    assert tuple(table) == design.params
    assert all(column.shape == (len(design),) for column in table.values())


@SETTINGS
@given(design=designs())
def test_iteration_matches_table(design):
    table = design.table()
    rows = list(design)
    assert len(rows) == len(design)
    for i, row in enumerate(rows):
        assert list(row) == list(design.params)
        assert row == {name: table[name][i].item() for name in design.params}
        assert all(type(v) in (bool, int, float, str) for v in row.values())


@SETTINGS
@given(design=designs())
def test_coords_broadcast_to_the_table(design):
    index = np.indices(design.shape)
    table = design.table()
    coords = design.coords()
    assert set(coords) == set(design.params)
    for name, (dims, values) in coords.items():
        assert set(dims) <= set(design.dims)
        assert values.shape == tuple(design.sizes[d] for d in dims)
        full = values[tuple(index[design.dims.index(d)] for d in dims)]
        np.testing.assert_array_equal(full.ravel(), table[name])


@SETTINGS
@given(design=designs())
def test_dict_form_round_trips_through_json(design):
    d = json.loads(json.dumps(design.to_dict()))
    back = design_from_dict(d)
    assert back == design
    assert hash(back) == hash(design)
    assert Design.from_dict(d) == design
    assert_tables_identical(back.table(), design.table())
    assert back.dims == design.dims
    assert back.shape == design.shape


@SETTINGS
@given(design=designs(), data=st.data())
def test_rows_equal_the_table_without_building_it(design, data):
    fresh = design_from_dict(design.to_dict())  # nothing cached
    points = data.draw(st.lists(st.integers(0, len(design) - 1), max_size=6))
    rows = fresh.rows(np.array(points, dtype=np.int64))
    if not isinstance(fresh, (LatinHypercube, Sobol)):  # these draw all their points at once
        assert "_cached_table" not in fresh.__dict__
    table = design.table()
    assert list(rows) == list(design.params)
    for name in design.params:
        assert rows[name].dtype.kind == table[name].dtype.kind, name
        assert rows[name].tolist() == table[name][points].tolist(), name
    assert {n: v.tolist() for n, v in design.rows(points).items()} == {
        n: v[points].tolist() for n, v in table.items()
    }  # the cached table gives the same


def test_rows_of_a_huge_product_touch_only_the_points_asked_for():
    huge = Grid(a=range(10_000), b=range(10_000)) * Grid(c=range(10_000))
    assert len(huge) == 10**12
    rows = huge.rows([[0, 1], [10**12 - 1, 123_456_789_012]])
    assert rows["a"].tolist() == [[0, 0], [9999, 1234]]
    assert rows["b"].tolist() == [[0, 0], [9999, 5678]]
    assert rows["c"].tolist() == [[0, 1], [9999, 9012]]
    with pytest.raises(IndexError, match=r"point 1000000000000 is out of range"):
        huge.rows([10**12])
    with pytest.raises(TypeError, match="integer indices"):
        huge.rows([0.5])
    mixed = Points([{"x": 1}]) + Sample(n=10**6, seed=0, x=(0.0, 1.0))
    assert mixed.rows([0])["x"].dtype == np.float64  # ints of one part are floats overall
    assert mixed.rows([0, 2])["x"].tolist() == mixed.table()["x"][[0, 2]].tolist()


@SETTINGS
@given(design=designs())
def test_pickle_round_trip(design):
    design.table()  # fill the cache, which is not pickled
    back = pickle.loads(pickle.dumps(design))
    assert back == design
    assert_tables_identical(back.table(), design.table())


@SETTINGS
@given(a=designs(schema=(("T", "num"),)), b=designs(schema=(("L", "str"), ("h", "num"))))
def test_product_and_concat_sizes(a, b):
    product = a * b
    assert len(product) == len(a) * len(b)
    if "sample" in a.dims and "sample" in b.dims:
        assert product.dims == ("sample",)
    else:
        assert product.dims == a.dims + b.dims
        assert product.shape == a.shape + b.shape
    assert product.params == a.params + b.params
    assert list(product) == [{**x, **y} for x, y in itertools.product(a, b)]
    concat = a + a
    assert len(concat) == 2 * len(a)
    assert concat.dims == ("sample",)
    assert list(concat) == list(a) + list(a)


# --------------------------------------------------------------------------------------------
# Grid and Points
# --------------------------------------------------------------------------------------------


def test_grid_layout_table_and_coords():
    g = Grid(T=[1.5, 2.0, 2.5], L=[16, 32])
    assert g.params == ("T", "L")
    assert g.dims == ("T", "L")
    assert g.shape == (3, 2)
    assert len(g) == 6
    table = g.table()
    assert table["T"].tolist() == [1.5, 1.5, 2.0, 2.0, 2.5, 2.5]
    assert table["L"].tolist() == [16, 32, 16, 32, 16, 32]
    assert table["L"].dtype == np.int64
    coords = g.coords()
    assert coords["T"][0] == ("T",)
    assert coords["T"][1].tolist() == [1.5, 2.0, 2.5]
    assert coords["L"][1].dtype == np.int64
    assert g.values("L").tolist() == [16, 32]
    assert repr(g) == "Grid(T=[1.5, 2.0, 2.5], L=[16, 32])"
    assert g.to_dict() == {"grid": {"T": [1.5, 2.0, 2.5], "L": [16, 32]}}


def test_grid_value_types():
    g = Grid(flag=[True, False], name=["a", "bb"], x=np.array([1, 2], dtype=np.int32), y=[1, 2.5])
    table = g.table()
    assert table["flag"].dtype == bool
    assert table["name"].dtype.kind == "U"
    assert table["x"].dtype == np.int64
    assert table["y"].dtype == np.float64
    assert next(iter(g)) == {"flag": True, "name": "a", "x": 1, "y": 1.0}
    assert Grid(T=[1, 2]) != Grid(T=[1.0, 2.0])
    assert Grid(T=range(3)).shape == (3,)


def test_long_grid_repr_is_short():
    assert repr(Grid(T=np.arange(10.0))) == "Grid(T=[0.0, 1.0, 2.0, ..., 9.0] (10 values))"


def test_points():
    p = Points([{"T": 3.0, "L": 16}, {"L": 32, "T": 2}])
    assert p.params == ("T", "L")
    assert p.dims == ("sample",)
    assert p.shape == (2,)
    assert p.table()["T"].tolist() == [3.0, 2.0]
    assert p.table()["L"].dtype == np.int64
    assert p.coords()["T"][0] == ("sample",)
    assert repr(p) == "Points(2 points: T, L)"
    assert repr(Points([{"T": 3.0}])) == "Points(1 point: T)"
    assert p.to_dict() == {"points": [{"T": 3.0, "L": 16}, {"T": 2.0, "L": 32}]}
    assert len(Points([{"T": 1}, {"T": 1}])) == 2  # repeated points are allowed


# --------------------------------------------------------------------------------------------
# sampled designs
# --------------------------------------------------------------------------------------------


def test_sample_follows_the_documented_streams():
    s = Sample(n=5, seed=7, T=Uniform(0.0, 1.0), L=Choice([16, 32]))
    key = int.from_bytes(hashlib.blake2b(b"T", digest_size=4).digest(), "little")
    rng = np.random.default_rng(np.random.SeedSequence(7, spawn_key=(key,)))
    np.testing.assert_array_equal(s.table()["T"], rng.random(5))
    assert s.table()["L"].dtype == np.int64
    assert s.dims == ("sample",)
    assert repr(s) == "Sample(n=5, seed=7, T=Uniform(low=0.0, high=1.0), L=Choice([16, 32]))"


@SETTINGS
@given(
    n1=st.integers(1, 60),
    extra=st.integers(0, 60),
    seed=seeds,
    dist=dists("num"),
)
def test_sample_is_prefix_stable(n1, extra, seed, dist):
    small = Sample(n=n1, seed=seed, T=dist, L=Choice(["a", "b"]))
    large = Sample(n=n1 + extra, seed=seed, T=dist, L=Choice(["a", "b"]))
    for name in ("T", "L"):
        np.testing.assert_array_equal(large.table()[name][:n1], small.table()[name])


@SETTINGS
@given(n=st.integers(1, 30), seed=seeds, dist=dists("num"), other=dists("num"))
def test_sample_columns_do_not_depend_on_other_parameters(n, seed, dist, other):
    alone = Sample(n=n, seed=seed, T=dist)
    more = Sample(n=n, seed=seed, other=other, T=dist, third=(0.0, 1.0))
    np.testing.assert_array_equal(more.table()["T"], alone.table()["T"])


def test_sample_parameters_get_independent_streams():
    s = Sample(n=1000, seed=0, a=(0.0, 1.0), b=(0.0, 1.0))
    assert abs(np.corrcoef(s.table()["a"], s.table()["b"])[0, 1]) < 0.1
    assert not np.array_equal(s.table()["a"], Sample(n=1000, seed=1, a=(0.0, 1.0)).table()["a"])


def test_sample_draws_follow_the_distribution():
    values = Sample(n=4000, seed=3, T=Normal(3.0, 0.05)).table()["T"]
    assert values.mean() == pytest.approx(3.0, abs=0.005)
    assert values.std() == pytest.approx(0.05, rel=0.05)


def test_sample_accepts_frozen_scipy_and_tuples_and_params_dict():
    s = Sample(n=4, seed=0, params={"n": stats.gamma(2.0)}, x=(1, 2))
    assert s.params == ("n", "x")
    assert s.dists == (("n", ScipyDistribution(stats.gamma(2.0))), ("x", Uniform(1.0, 2.0)))
    assert repr(s).endswith(
        "x=Uniform(low=1.0, high=2.0), params={'n': ScipyDistribution(gamma(2.0))})"
    )


def test_sample_rejects_names_sharing_a_stream():
    # a known collision of the 32-bit stream key; such names would draw identical uniforms
    with pytest.raises(DesignError, match=r"'p56886' and 'p91703' hash to the same random"):
        Sample(n=2, seed=0, p56886=(0, 1), p91703=(0, 1))


def test_latin_hypercube_is_stratified_and_reproducible():
    d = LatinHypercube(n=10, seed=5, x=(0.0, 1.0), y=LogUniform(1.0, 1e4))
    table = d.table()
    assert sorted(np.floor(table["x"] * 10).astype(int).tolist()) == list(range(10))
    assert sorted(np.floor(np.log10(table["y"]) * 2.5).astype(int).tolist()) == sorted(
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    )
    again = LatinHypercube(n=10, seed=5, x=(0.0, 1.0), y=LogUniform(1.0, 1e4))
    assert_tables_identical(again.table(), table)


@SETTINGS
@given(n1=st.integers(1, 40), extra=st.integers(0, 40), seed=seeds, scramble=st.booleans())
def test_sobol_is_prefix_stable_for_any_n(n1, extra, seed, scramble):
    # n need not be a power of 2; scipy's balance warning would fail the test (filterwarnings)
    params = {"x": (0.0, 1.0), "y": Normal(0.0, 1.0)}
    small = Sobol(n=n1, seed=seed, scramble=scramble, **params)
    large = Sobol(n=n1 + extra, seed=seed, scramble=scramble, **params)
    assert_tables_identical({k: v[:n1] for k, v in large.table().items()}, small.table())
    assert np.all(np.isfinite(large.table()["y"]))


def test_sobol_balance_and_repr():
    s = Sobol(n=16, seed=1, x=(0.0, 1.0))
    assert sorted(np.floor(s.table()["x"] * 16).astype(int).tolist()) == list(range(16))
    assert repr(Sobol(n=8, seed=1, scramble=False, x=(0.0, 1.0))) == (
        "Sobol(n=8, seed=1, scramble=False, x=Uniform(low=0.0, high=1.0))"
    )
    assert Sobol(n=8, seed=1, x=(0, 1)) != Sobol(n=8, seed=1, scramble=False, x=(0, 1))
    assert Sobol(n=8, seed=1, x=(0, 1)) != Sample(n=8, seed=1, x=(0, 1))


# --------------------------------------------------------------------------------------------
# Product and Concat
# --------------------------------------------------------------------------------------------


def test_product_of_sample_and_grid_keeps_both_dims():
    s = Sample(n=3, seed=1, T=Normal(3.0, 0.05))
    d = s * Grid(L=[16, 32])
    assert isinstance(d, Product)
    assert d.dims == ("sample", "L")
    assert d.shape == (3, 2)
    assert d.coords()["T"][0] == ("sample",)
    np.testing.assert_array_equal(d.coords()["T"][1], s.table()["T"])
    assert d.coords()["L"][0] == ("L",)
    assert d.table()["L"].tolist() == [16, 32] * 3


def test_product_of_two_samples_is_flattened():
    a = Sample(n=3, seed=1, x=(0.0, 1.0))
    b = Points([{"y": 1}, {"y": 2}])
    d = a * b
    assert d.dims == ("sample",)
    assert d.shape == (6,)
    assert d.table()["y"].tolist() == [1, 2, 1, 2, 1, 2]
    np.testing.assert_array_equal(d.table()["x"], np.repeat(a.table()["x"], 2))
    # (a * b) * grid: the flattened product then the grid dim
    e = d * Grid(L=[16, 32])
    assert (e.dims, e.shape) == (("sample", "L"), (6, 2))
    assert e.coords()["y"][0] == ("sample",)
    assert e.coords()["y"][1].tolist() == [1, 2, 1, 2, 1, 2]


def test_product_structure_and_equality():
    a, b, c = Grid(a=[1, 2]), Grid(b=[1]), Grid(c=[1, 2, 3])
    assert (a * b) * c == Product(a, b, c)
    assert ((a * b) * c).factors == (a, b, c)
    assert a * (b * c) != (a * b) * c  # a nested right factor is kept (its dims may differ)
    assert (a * (b * c)).dims == ("a", "b", "c")
    assert repr(a * (b * c)) == "Grid(a=[1, 2]) * (Grid(b=[1]) * Grid(c=[1, 2, 3]))"
    assert (a * b).to_dict() == {"product": [a.to_dict(), b.to_dict()]}


def test_concat_flattens_and_promotes():
    d = Points([{"T": 3}]) + Sample(T=Normal(3.0, 0.05), n=50, seed=123)
    assert isinstance(d, Concat)
    assert len(d) == 51
    assert d.dims == ("sample",)
    assert d.table()["T"].dtype == np.float64
    assert d.table()["T"][0] == 3.0
    e = d + Grid(T=[1.0, 2.0])
    assert len(e.parts) == 3
    assert e == Concat(
        Points([{"T": 3}]), Sample(T=Normal(3.0, 0.05), n=50, seed=123), Grid(T=[1.0, 2.0])
    )
    assert e.coords()["T"][0] == ("sample",)
    assert repr(Points([{"T": 1}]) + Grid(T=[2])) == "Points(1 point: T) + Grid(T=[2])"
    mixed_order = Grid(a=[1], b=[2]) + Points([{"b": 3, "a": 4}])
    assert mixed_order.params == ("a", "b")
    assert mixed_order.table()["a"].tolist() == [1, 4]


def test_operators_reject_non_designs():
    with pytest.raises(TypeError):
        Grid(T=[1]) * 2
    with pytest.raises(TypeError):
        Grid(T=[1]) + {"grid": {"T": [2]}}


# --------------------------------------------------------------------------------------------
# immutability and caching
# --------------------------------------------------------------------------------------------


def test_designs_are_frozen_hashable_and_cache_read_only_tables():
    g = Grid(T=[1.5, 2.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.axes = ()  # type: ignore[misc]
    assert hash(g) == hash(Grid(T=[1.5, 2.0]))
    assert len({g, Grid(T=[1.5, 2.0]), Grid(T=[2.0])}) == 2
    table = g.table()
    assert table["T"] is g.table()["T"]  # cached
    with pytest.raises(ValueError, match="read-only"):
        table["T"][0] = 9.0
    table.pop("T")
    assert "T" in g.table()  # each call returns a new dict
    with pytest.raises(ValueError, match="read-only"):
        g.coords()["T"][1][0] = 9.0


# --------------------------------------------------------------------------------------------
# dict forms
# --------------------------------------------------------------------------------------------


def test_dict_forms():
    s = Sample(n=50, seed=123, T=Normal(3.0, 0.05))
    assert s.to_dict() == {
        "sample": {
            "n": 50,
            "seed": 123,
            "params": {"T": {"dist": "normal", "loc": 3.0, "scale": 0.05}},
        }
    }
    assert LatinHypercube(n=4, seed=1, x=(0, 1)).to_dict() == {
        "lhs": {"n": 4, "seed": 1, "params": {"x": {"dist": "uniform", "low": 0.0, "high": 1.0}}}
    }
    assert Sobol(n=4, seed=1, x=(0, 1)).to_dict()["sobol"]["scramble"] is True
    assert (Grid(T=[1]) + Points([{"T": 2}])).to_dict() == {
        "concat": [{"grid": {"T": [1]}}, {"points": [{"T": 2}]}]
    }


def test_from_dict_short_human_forms():
    d = design_from_dict(
        {
            "product": [
                {
                    "sobol": {
                        "n": 8,
                        "seed": 1,
                        "params": {"x": [0, 1], "k": {"dist": "gamma", "a": 2}},
                    }
                },
                {"grid": {"L": [16, 32]}},
                {"grid": {"q": ["a"]}},
            ]
        }
    )
    assert d == Product(
        Sobol(n=8, seed=1, x=Uniform(0, 1), k=stats.gamma(a=2)), Grid(L=[16, 32]), Grid(q=["a"])
    )
    a, b, c = ({"grid": {name: [1]}} for name in "abc")
    nested = design_from_dict({"product": [{"product": [a, b]}, c]})
    assert nested == Grid(a=[1]) * Grid(b=[1]) * Grid(c=[1])
    g = Grid(T=[1])
    assert design_from_dict(g) is g


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------

S = {"T": (0.0, 1.0)}

ERRORS = [
    pytest.param(
        lambda: Grid(T=2.0), r"'T' got the scalar 2\.0.*\[2\.0\].*fixed=", id="grid-scalar"
    ),
    pytest.param(lambda: Grid(T="abc"), r"got the scalar 'abc'", id="grid-string-scalar"),
    pytest.param(lambda: Grid(T=[]), r"'T' is empty", id="grid-empty"),
    pytest.param(lambda: Grid(T=[1, 2, 1]), r"duplicate values \[1\]", id="grid-duplicate"),
    pytest.param(lambda: Grid(T=[1.0, float("nan")]), r"value nan.*finite", id="grid-nan"),
    pytest.param(lambda: Grid(T=[float("inf")]), r"value inf.*finite", id="grid-inf"),
    pytest.param(lambda: Grid(T=[1, "a"]), r"mixes values of types \['int', 'str'\]", id="mix"),
    pytest.param(lambda: Grid(T=[True, 2]), r"mixes values of types", id="grid-bool-int"),
    pytest.param(lambda: Grid(T=[[1, 2]]), r"value \[1, 2\] of type list", id="grid-nested"),
    pytest.param(lambda: Grid(T=np.ones((2, 2))), r"one-dimensional.*\(2, 2\)", id="grid-2d"),
    pytest.param(lambda: Grid(T=[2**70]), r"outside the 64-bit range", id="grid-bigint"),
    pytest.param(lambda: Grid(T={"a": 1}), r"got the mapping", id="grid-mapping"),
    pytest.param(lambda: Grid(seed=[1]), r"'seed' is reserved", id="reserved-seed"),
    pytest.param(lambda: Grid(rng=[1]), r"'rng' is reserved", id="reserved-rng"),
    pytest.param(lambda: Grid(sample=[1]), r"'sample' is reserved", id="reserved-sample"),
    pytest.param(lambda: Grid(**{"": [1]}), r"empty name ''", id="empty-name"),
    pytest.param(lambda: Grid(), r"at least one parameter", id="grid-no-params"),
    pytest.param(lambda: Points([]), r"Points is empty", id="points-empty"),
    pytest.param(lambda: Points({"T": 1}), r"one dict .*wrap it", id="points-dict"),
    pytest.param(lambda: Points(3), r"list of dicts", id="points-scalar"),
    pytest.param(lambda: Points([{}]), r"at least one parameter", id="points-no-params"),
    pytest.param(lambda: Points([3]), r"point 0 must be a dict", id="points-not-dict"),
    pytest.param(
        lambda: Points([{"T": 1}, {"T": 2}, {"x": 1}]),
        r"point 2 \{'x': 1\} sets \['x'\] but point 0 sets \['T'\] \(missing \['T'\], extra",
        id="points-keys",
    ),
    pytest.param(lambda: Points([{"T": [1, 2]}]), r"point 0 must be a single value", id="pt-list"),
    pytest.param(lambda: Points([{"T": float("nan")}]), r"value nan", id="points-nan"),
    pytest.param(lambda: Points([{"seed": 1}]), r"'seed' is reserved", id="points-reserved"),
    pytest.param(lambda: Sample(n=0, seed=1, **S), r"n must be an integer >= 1, got 0", id="n0"),
    pytest.param(lambda: Sample(n=2.5, seed=1, **S), r"n must be an integer.*2\.5", id="n-float"),
    pytest.param(lambda: Sample(n=True, seed=1, **S), r"n must be an integer", id="n-bool"),
    pytest.param(
        lambda: Sample(n=2, seed=-1, **S), r"seed must be an integer >= 0", id="seed-neg"
    ),
    pytest.param(lambda: Sample(n=2, seed=1.0, **S), r"seed must be an integer", id="seed-float"),
    pytest.param(lambda: Sample(n=2, seed=None, **S), r"seed must be an integer", id="seed-none"),
    pytest.param(lambda: Sample(n=2, seed=1), r"at least one parameter", id="sample-no-params"),
    pytest.param(lambda: Sample(n=2, seed=1, T=[0, 1]), r"Choice\(\[\.\.\.\]\)", id="s-list"),
    pytest.param(lambda: Sample(n=2, seed=1, T=3.0), r"got 3\.0; use a fixed", id="s-scalar"),
    pytest.param(lambda: Sample(n=2, seed=1, T=(1, 0)), r"low < high", id="sample-reversed"),
    pytest.param(lambda: Sample(n=2, seed=1, rng=(0, 1)), r"'rng' is reserved", id="s-reserved"),
    pytest.param(
        lambda: Sample(n=2, seed=1, params={"T": (0, 1)}, T=(0, 1)),
        r"\['T'\] both in params= and as keywords",
        id="sample-twice",
    ),
    pytest.param(lambda: Sample(n=2, seed=1, params=[1]), r"params must be a dict", id="s-params"),
    pytest.param(lambda: LatinHypercube(n=0, seed=1, **S), r"LatinHypercube n must", id="lhs-n"),
    pytest.param(lambda: Sobol(n=4, seed=1, scramble=1, **S), r"scramble must be True", id="scr"),
    pytest.param(
        lambda: Grid(T=[1]) * Sample(n=2, seed=0, **S),
        r"factors 0 and 1 both set the parameters \['T'\]",
        id="product-shared",
    ),
    pytest.param(lambda: Product(Grid(T=[1])), r"at least two designs", id="product-one"),
    pytest.param(lambda: Product(Grid(T=[1]), 3), r"combines designs.*got 3", id="product-int"),
    pytest.param(
        lambda: Grid(T=[1], L=[2]) + Points([{"T": 1, "x": 2}]),
        r"\['L'\] only in part 0, \['x'\] only in part 1",
        id="concat-params",
    ),
    pytest.param(
        lambda: Grid(T=[1]) + Points([{"T": "a"}]),
        r"'T' mixes kinds of values \(part 0: numbers, part 1: strings\)",
        id="concat-kinds",
    ),
]


@pytest.mark.parametrize(("make", "match"), ERRORS)
def test_invalid_designs(make, match):
    with pytest.raises(DesignError, match=match):
        make()


SAMPLE_BODY = {"n": 4, "seed": 1, "params": {"T": [0, 1]}}

DICT_ERRORS = [
    pytest.param({"lattice": {}}, r"unknown design 'lattice'; use one of", id="unknown-kind"),
    pytest.param({"grid": {"T": [1]}, "points": []}, r"exactly one key", id="two-keys"),
    pytest.param([{"grid": {"T": [1]}}], r"exactly one key", id="not-a-dict"),
    pytest.param({"grid": [1, 2]}, r"'grid' takes a dict", id="grid-list"),
    pytest.param({"grid": {"T": 1.5}}, r"'T' got the scalar 1\.5", id="grid-scalar"),
    pytest.param({"grid": {1: [1]}}, r"names must be strings, got 1", id="grid-int-name"),
    pytest.param({"points": {"T": 1}}, r"list of dicts", id="points-dict"),
    pytest.param({"sample": [1]}, r"'sample' takes a dict with 'n'", id="sample-list"),
    pytest.param({"sample": {"seed": 1, "params": {}}}, r"missing \['n'\]", id="missing-n"),
    pytest.param(
        {"sample": {**SAMPLE_BODY, "scramble": True}},
        r"unknown keys \['scramble'\]",
        id="sample-scramble",
    ),
    pytest.param({"lhs": {**SAMPLE_BODY, "n": "4"}}, r"n must be an integer.*'4'", id="n-str"),
    pytest.param({"sobol": {**SAMPLE_BODY, "params": [1]}}, r"params must be a dict", id="prm"),
    pytest.param(
        {"sample": {**SAMPLE_BODY, "params": {"T": {"dist": "normal", "loc": 0, "scale": -1}}}},
        r"design 'sample' parameter 'T': Normal scale must be > 0, got -1",
        id="bad-dist",
    ),
    pytest.param(
        {"sample": {**SAMPLE_BODY, "params": {"T": 3.0}}}, r"parameter 'T': a distribution", id="d"
    ),
    pytest.param({"product": {"grid": {"T": [1]}}}, r"takes a list of designs", id="product-dict"),
    pytest.param({"concat": [{"grid": {"T": [1]}}]}, r"at least two designs", id="concat-one"),
]


@pytest.mark.parametrize(("d", "match"), DICT_ERRORS)
def test_invalid_design_dicts(d, match):
    with pytest.raises(DesignError, match=match):
        design_from_dict(d)


# every error names the parameter it concerns, the design kind, and how to fix it
A = {"n": 4, "seed": 1}

NAMED_ERRORS = [
    pytest.param(
        lambda: Grid(alpha=[1.0, float("nan")]),
        r"^Grid parameter 'alpha' has the value nan; .*finite.*remove it",
        id="grid-nan",
    ),
    pytest.param(
        lambda: Grid(alpha=[]), r"^Grid parameter 'alpha' is empty; give", id="grid-empty"
    ),
    pytest.param(
        lambda: Grid(alpha=[1, 1]),
        r"^Grid parameter 'alpha' has the duplicate values \[1\].*give each value once",
        id="grid-duplicates",
    ),
    pytest.param(
        lambda: Points([{"alpha": 1.0}, {"alpha": float("inf")}]),
        r"^Points parameter 'alpha' has the value inf; .*remove it",
        id="points-inf",
    ),
    pytest.param(
        lambda: Points([{"alpha": [1]}]),
        r"^Points parameter 'alpha' of point 0 must be a single value",
        id="points-list",
    ),
    pytest.param(
        lambda: Sample(**A, alpha=(3.0, 1.0)),
        r"^Sample parameter 'alpha': Uniform bounds must satisfy low < high, got low=3\.0, "
        r"high=1\.0; swap them$",
        id="sample-reversed",
    ),
    pytest.param(
        lambda: LatinHypercube(**A, alpha=(3.0, 1.0)),
        r"^LatinHypercube parameter 'alpha': Uniform bounds must satisfy low < high, got "
        r"low=3\.0, high=1\.0; swap them$",
        id="lhs-reversed",
    ),
    pytest.param(
        lambda: Sobol(**A, alpha=(1.0, 1.0)),
        r"^Sobol parameter 'alpha': Uniform bounds .*high=1\.0; for a constant, .*fixed=",
        id="sobol-equal-bounds",
    ),
    pytest.param(
        lambda: Sample(**A, alpha=(0.0, float("inf"))),
        r"^Sample parameter 'alpha': Uniform high must be a finite number, got inf",
        id="sample-inf-bound",
    ),
    pytest.param(
        lambda: Sample(**A, alpha=(-1e308, 1e308)),
        r"^Sample parameter 'alpha': Uniform bounds .* too far apart .*narrow the range",
        id="sample-overflow",
    ),
    pytest.param(
        lambda: LatinHypercube(**A, alpha=stats.gamma(-1.0)),
        r"^LatinHypercube parameter 'alpha': invalid arguments for scipy\.stats\.gamma",
        id="lhs-scipy",
    ),
    pytest.param(
        lambda: Sobol(**A, alpha=[1, 2]),
        r"^Sobol parameter 'alpha' must be a distribution .*use Choice\(\[\.\.\.\]\)",
        id="sobol-list",
    ),
    pytest.param(
        lambda: Sample(**A, params={"alpha": 2.0}),
        r"^Sample parameter 'alpha' must be a distribution .*fixed=",
        id="sample-scalar",
    ),
    pytest.param(
        lambda: Sample(n=0, seed=1, alpha=(0, 1)),
        r"^Sample n must be an integer >= 1, got 0, e\.g\. n=64",
        id="sample-n",
    ),
    pytest.param(
        lambda: Sobol(n=8, seed=-2, alpha=(0, 1)),
        r"^Sobol seed must be an integer >= 0, got -2, e\.g\. seed=0",
        id="sobol-seed",
    ),
    pytest.param(
        lambda: Grid(alpha=[1]) * Sample(**A, alpha=(0, 1)),
        r"^Product factors 0 and 1 both set the parameters \['alpha'\].*remove it",
        id="product-shared",
    ),
    pytest.param(
        lambda: Grid(alpha=[1]) + Points([{"alpha": "x"}]),
        r"^Concat parameter 'alpha' mixes kinds of values .*use all numbers",
        id="concat-kinds",
    ),
    pytest.param(
        lambda: Grid(alpha=[1]) + Points([{"beta": 1}]),
        r"^Concat parts .*\['alpha'\] only in part 0, \['beta'\] only in part 1\); give every",
        id="concat-params",
    ),
    pytest.param(
        lambda: Normal(0.0, -1.0),
        r"^Normal scale must be > 0, got -1\.0; it is the standard deviation",
        id="normal-scale",
    ),
    pytest.param(
        lambda: LogUniform(0.0, 1.0),
        r"^LogUniform low must be > 0, got 0\.0: .*use Uniform",
        id="loguniform-low",
    ),
    pytest.param(
        lambda: Choice([1, 2], p=[0.5, 0.6]),
        r"^Choice p must sum to 1, .*divide each probability by their sum",
        id="choice-p",
    ),
]


@pytest.mark.parametrize(("make", "match"), NAMED_ERRORS)
def test_errors_name_the_parameter_and_say_how_to_fix_it(make, match):
    with pytest.raises(DesignError, match=match):
        make()


def body(kind, **params):
    return {kind: {"n": 4, "seed": 1, "params": params}}


NAMED_DICT_ERRORS = [
    pytest.param(
        body("lhs", alpha=[3.0, 1.0]),
        r"^design 'lhs' parameter 'alpha': Uniform bounds must satisfy low < high, got "
        r"low=3\.0, high=1\.0; swap them$",
        id="lhs-reversed",
    ),
    pytest.param(
        body("sample", alpha={"dist": "choice", "values": [1, 1]}),
        r"^design 'sample' parameter 'alpha': Choice values has the duplicate values \[1\]",
        id="choice-duplicates",
    ),
    pytest.param(
        body("sobol", alpha={"dist": "gamma", "a": -1.0}),
        r"^design 'sobol' parameter 'alpha': invalid arguments for scipy\.stats\.gamma",
        id="scipy-arguments",
    ),
    pytest.param(
        body("sample", alpha={"dist": "normal", "loc": 0.0}),
        r"^design 'sample' parameter 'alpha': distribution 'normal' is missing \['scale'\]",
        id="missing-key",
    ),
    pytest.param(
        body("sample", alpha=[1, 2, 3]),
        r"^design 'sample' parameter 'alpha': .* must be \[low, high\].*'dist': 'choice'",
        id="three-values",
    ),
    pytest.param(
        body("lhs", alpha={"dist": "lognormal", "s": 1.0}),
        r"^design 'lhs' parameter 'alpha': unknown distribution 'lognormal'; use one of",
        id="unknown-dist",
    ),
    pytest.param(
        {"product": [{"grid": {"alpha": [1, 1]}}, {"grid": {"b": [1]}}]},
        r"^Grid parameter 'alpha' has the duplicate values \[1\]",
        id="nested-grid",
    ),
    pytest.param(
        {"concat": [{"points": [{"alpha": 1}]}, {"points": [{"alpha": float("nan")}]}]},
        r"^Points parameter 'alpha' has the value nan",
        id="nested-points",
    ),
]


@pytest.mark.parametrize(("d", "match"), NAMED_DICT_ERRORS)
def test_dict_form_errors_name_the_design_and_the_parameter(d, match):
    with pytest.raises(DesignError, match=match):
        design_from_dict(d)
