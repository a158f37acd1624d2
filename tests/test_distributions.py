"""Tests of ensembles.sweep.distributions: ppf against scipy, validation, equality, dict forms."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ensembles.errors import DesignError
from ensembles.sweep.distributions import (
    Choice,
    Distribution,
    LogUniform,
    Normal,
    ScipyDistribution,
    Uniform,
    as_distribution,
    distribution_from_dict,
)

SETTINGS = settings(max_examples=40, deadline=None)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e3)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def uniforms(seed: int, n: int = 64) -> np.ndarray:
    """Random uniforms strictly inside (0, 1), so that no clipping applies."""
    u = np.random.default_rng(seed).random(n)
    return u[u > 0.0]


@st.composite
def bounds(draw, low_min: float = -1e6) -> tuple[float, float]:
    low = draw(st.floats(min_value=low_min, max_value=1e6))
    width = draw(st.floats(min_value=1e-3, max_value=1e6))
    return low, low + width


@st.composite
def choices(draw) -> Choice:
    values = draw(
        st.one_of(
            st.lists(st.integers(-1000, 1000), min_size=1, max_size=5, unique=True),
            st.lists(finite, min_size=1, max_size=5, unique=True),
            st.lists(st.text("abcxyz", max_size=3), min_size=1, max_size=5, unique=True),
            st.lists(st.booleans(), min_size=1, max_size=2, unique=True),
        )
    )
    if draw(st.booleans()):
        weights = draw(st.lists(st.integers(1, 10), min_size=len(values), max_size=len(values)))
        return Choice(values, p=[w / sum(weights) for w in weights])
    return Choice(values)


distributions = st.one_of(
    st.builds(Normal, finite, positive),
    bounds().map(lambda b: Uniform(*b)),
    bounds(low_min=1e-6).map(lambda b: LogUniform(*b)),
    choices(),
    st.builds(lambda a, s: ScipyDistribution(stats.gamma(a, scale=s)), positive, positive),
    st.builds(lambda mu: ScipyDistribution(stats.poisson(mu)), positive),
)


# --------------------------------------------------------------------------------------------
# ppf against scipy.stats
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(loc=finite, scale=positive, seed=seeds)
def test_normal_ppf_matches_scipy(loc, scale, seed):
    u = uniforms(seed)
    expected = stats.norm(loc, scale).ppf(u)
    np.testing.assert_allclose(Normal(loc, scale).ppf(u), expected, rtol=1e-12, atol=1e-9 * scale)


@SETTINGS
@given(b=bounds(), seed=seeds)
def test_uniform_ppf_matches_scipy(b, seed):
    low, high = b
    u = uniforms(seed)
    expected = stats.uniform(loc=low, scale=high - low).ppf(u)
    np.testing.assert_allclose(Uniform(low, high).ppf(u), expected, rtol=1e-12, atol=1e-9)


@SETTINGS
@given(b=bounds(low_min=1e-6), seed=seeds)
def test_loguniform_ppf_matches_scipy(b, seed):
    low, high = b
    u = uniforms(seed)
    np.testing.assert_allclose(LogUniform(low, high).ppf(u), stats.loguniform(low, high).ppf(u))


@pytest.mark.parametrize(
    "frozen",
    [
        stats.gamma(2.0, scale=0.5),
        stats.beta(2, 5),
        stats.lognorm(0.5, loc=1.0),
        stats.t(3),
        stats.poisson(4.0),
        stats.binom(10, 0.3),
    ],
    ids=["gamma", "beta", "lognorm", "t", "poisson", "binom"],
)
def test_scipy_distribution_ppf_matches_frozen(frozen):
    u = uniforms(0, 200)
    values = ScipyDistribution(frozen).ppf(u)
    np.testing.assert_array_equal(values, frozen.ppf(u))
    discrete = isinstance(frozen.dist, stats.rv_discrete)
    assert values.dtype == (np.int64 if discrete else np.float64)


@SETTINGS
@given(d=choices(), seed=seeds)
def test_choice_ppf_matches_rv_discrete(d, seed):
    u = uniforms(seed)
    k = len(d.values)
    p = d.p if d.p is not None else [1 / k] * k
    index = stats.rv_discrete(values=(np.arange(k), p)).ppf(u).astype(int)
    expected = np.array(d.values)[index]
    np.testing.assert_array_equal(d.ppf(u), expected)


def test_choice_ppf_bins_and_dtypes():
    d = Choice([16, 32, 64, 128])
    np.testing.assert_array_equal(
        d.ppf([0.0, 0.2499, 0.25, 0.5, 0.99, 1.0]), [16, 16, 32, 64, 128, 128]
    )
    assert d.ppf([0.1]).dtype == np.int64
    assert Choice([1.0, 2.5]).ppf([0.9]).dtype == np.float64
    assert Choice([True, False]).ppf([0.9]).tolist() == [False]
    assert Choice(["a", "b"]).ppf([0.9]).tolist() == ["b"]


def test_choice_zero_probability_is_never_drawn():
    d = Choice(["a", "b", "c"], p=[0.5, 0.0, 0.5])
    values = d.ppf(np.linspace(0.0, 1.0, 1001))
    assert set(values.tolist()) == {"a", "c"}


def test_choice_frequencies_follow_p():
    d = Choice([1, 2], p=[0.25, 0.75])
    values = d.ppf(np.random.default_rng(1).random(20_000))
    assert abs((values == 1).mean() - 0.25) < 0.02


@pytest.mark.parametrize(
    "dist",
    [Normal(0.0, 1.0), ScipyDistribution(stats.norm(0, 1)), ScipyDistribution(stats.poisson(2))],
    ids=["normal", "scipy-norm", "scipy-poisson"],
)
def test_unbounded_distributions_stay_finite_at_0_and_1(dist):
    values = dist.ppf(np.array([0.0, 1.0]))
    assert np.all(np.isfinite(values))
    assert values[0] < values[1]


@pytest.mark.parametrize("dist", [Uniform(1.0, 3.0), LogUniform(1.0, 100.0)], ids=["u", "logu"])
def test_bounded_distributions_hit_their_bounds(dist):
    np.testing.assert_allclose(dist.ppf(np.array([0.0, 1.0])), [dist.low, dist.high])


def test_ppf_keeps_shape():
    u = np.full((2, 3), 0.5)
    assert Normal(1.0, 2.0).ppf(u).shape == (2, 3)
    assert Choice([1, 2]).ppf(u).shape == (2, 3)


@pytest.mark.parametrize("u", [-0.1, 1.5, float("nan")], ids=["negative", "above-1", "nan"])
def test_ppf_rejects_non_uniforms(u):
    with pytest.raises(DesignError, match=r"uniforms in \[0, 1\]"):
        Normal(0.0, 1.0).ppf(np.array([0.5, u]))


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(
            lambda: Normal(0.0, 0.0), r"scale must be > 0, got 0\.0", id="normal-scale-0"
        ),
        pytest.param(lambda: Normal(0.0, -1.0), r"scale must be > 0", id="normal-scale-neg"),
        pytest.param(lambda: Normal(float("nan"), 1.0), r"loc must be a finite", id="normal-nan"),
        pytest.param(
            lambda: Normal(0.0, float("inf")), r"scale must be a finite", id="normal-inf"
        ),
        pytest.param(lambda: Normal("3", 1.0), r"loc must be a finite number, got '3'", id="str"),
        pytest.param(lambda: Normal(True, 1.0), r"loc must be a finite number", id="bool"),
        pytest.param(lambda: Uniform(2.0, 1.0), r"low < high, got low=2\.0", id="uniform-rev"),
        pytest.param(lambda: Uniform(1.0, 1.0), r"low < high", id="uniform-equal"),
        pytest.param(lambda: Uniform(0.0, float("inf")), r"high must be a finite", id="uni-inf"),
        pytest.param(lambda: Uniform(-1e308, 1e308), r"too far apart", id="uniform-overflow"),
        pytest.param(lambda: LogUniform(0.0, 1.0), r"low must be > 0, got 0\.0", id="logu-zero"),
        pytest.param(lambda: LogUniform(-1.0, 1.0), r"low must be > 0", id="logu-negative"),
        pytest.param(lambda: LogUniform(2.0, 1.0), r"low < high", id="logu-reversed"),
        pytest.param(lambda: Choice([]), r"Choice values is empty", id="choice-empty"),
        pytest.param(lambda: Choice(3), r"got the scalar 3", id="choice-scalar"),
        pytest.param(lambda: Choice([1, 1]), r"duplicate values \[1\]", id="choice-duplicate"),
        pytest.param(lambda: Choice([1.0, float("nan")]), r"value nan", id="choice-nan"),
        pytest.param(lambda: Choice([1, "a"]), r"mixes values of types", id="choice-mixed"),
        pytest.param(lambda: Choice([None]), r"value None of type NoneType", id="choice-none"),
        pytest.param(lambda: Choice(["a\x00"]), r"NUL", id="choice-nul"),
        pytest.param(lambda: Choice([1, 2], p=[1.0]), r"1 probabilities \[1\.0\]", id="p-len"),
        pytest.param(lambda: Choice([1, 2], p=[0.5, 0.6]), r"must sum to 1", id="p-sum"),
        pytest.param(lambda: Choice([1, 2], p=[1.5, -0.5]), r"non-negative", id="p-negative"),
        pytest.param(
            lambda: Choice([1, 2], p=[0.5, float("nan")]), r"p must be a fin", id="p-nan"
        ),
        pytest.param(lambda: Choice([1, 2], p=0.5), r"list of probabilities", id="p-scalar"),
        pytest.param(
            lambda: ScipyDistribution(stats.gamma(-1.0)), r"invalid arguments", id="scipy-invalid"
        ),
        pytest.param(
            lambda: ScipyDistribution(stats.norm(np.array([0.0, 1.0]))),
            r"must be a number",
            id="scipy-array-arg",
        ),
        pytest.param(
            lambda: ScipyDistribution(stats.multivariate_normal([0.0, 0.0])),
            r"one-dimensional scipy\.stats distribution",
            id="scipy-multivariate",
        ),
        pytest.param(
            lambda: ScipyDistribution(
                stats.rv_histogram((np.array([1, 2]), np.array([0.0, 1.0, 2.0]))).freeze()
            ),
            r"distribution of scipy\.stats by name",
            id="scipy-unnamed",
        ),
        pytest.param(lambda: ScipyDistribution(3.0), r"frozen one-dimensional", id="scipy-scalar"),
    ],
)
def test_invalid_distributions(make, match):
    with pytest.raises(DesignError, match=match):
        make()


# --------------------------------------------------------------------------------------------
# frozen dataclasses, equality
# --------------------------------------------------------------------------------------------


def test_distributions_are_frozen_hashable_and_comparable():
    assert Normal(3, 1) == Normal(3.0, 1.0)
    assert hash(Normal(3, 1)) == hash(Normal(3.0, 1.0))
    assert isinstance(Normal(3, 1).loc, float)
    assert Normal(3, 1) != Normal(3, 2)
    assert Uniform(0, 1) != LogUniform(0.5, 1)
    assert len({Choice([1, 2]), Choice([1, 2]), Choice([1, 2], p=[0.5, 0.5])}) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        Normal(0, 1).loc = 2.0  # type: ignore[misc]
    assert dataclasses.is_dataclass(ScipyDistribution(stats.norm(0, 1)))


def test_choice_equality_distinguishes_value_types():
    assert Choice([1, 2]) != Choice([1.0, 2.0])
    assert Choice([True, False]) != Choice([1, 0])
    assert Choice([1, 2.5]).values == (1.0, 2.5)  # ints mixed with floats become floats


def test_scipy_distribution_attributes_and_equality():
    d = ScipyDistribution(stats.gamma(2.0, scale=0.5, loc=1))
    assert (d.name, d.args, d.kwds) == ("gamma", (2.0,), (("loc", 1), ("scale", 0.5)))
    assert d == ScipyDistribution(stats.gamma(2.0, loc=1, scale=0.5))
    assert hash(d) == hash(ScipyDistribution(stats.gamma(2.0, loc=1, scale=0.5)))
    assert d.frozen.mean() == pytest.approx(stats.gamma(2.0, scale=0.5, loc=1).mean())
    assert not d.discrete
    assert ScipyDistribution(stats.poisson(3)).discrete


def test_reprs():
    assert repr(Normal(3.0, 0.05)) == "Normal(loc=3.0, scale=0.05)"
    assert repr(Uniform(0, 1)) == "Uniform(low=0.0, high=1.0)"
    assert repr(Choice(["a", "b"])) == "Choice(['a', 'b'])"
    assert repr(Choice([1, 2], p=[0.25, 0.75])) == "Choice([1, 2], p=[0.25, 0.75])"
    assert repr(ScipyDistribution(stats.t(3, scale=2))) == "ScipyDistribution(t(3, scale=2))"


# --------------------------------------------------------------------------------------------
# dict forms
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(dist=distributions)
def test_to_dict_round_trips_through_json(dist):
    d = json.loads(json.dumps(dist.to_dict()))
    back = distribution_from_dict(d)
    assert back == dist
    assert hash(back) == hash(dist)
    u = np.linspace(0.0, 1.0, 11)
    np.testing.assert_array_equal(back.ppf(u), dist.ppf(u))


def test_dict_forms():
    assert Normal(3.0, 0.05).to_dict() == {"dist": "normal", "loc": 3.0, "scale": 0.05}
    assert LogUniform(1, 10).to_dict() == {"dist": "loguniform", "low": 1.0, "high": 10.0}
    assert Choice([16, 32]).to_dict() == {"dist": "choice", "values": [16, 32]}
    assert ScipyDistribution(stats.binom(10, 0.5)).to_dict() == {
        "dist": "scipy",
        "name": "binom",
        "args": [10, 0.5],
        "kwds": {},
    }


@pytest.mark.parametrize(
    ("d", "expected"),
    [
        pytest.param([0, 2], Uniform(0.0, 2.0), id="list-uniform"),
        pytest.param((1, 2), Uniform(1.0, 2.0), id="tuple-uniform"),
        pytest.param({"dist": "uniform", "low": 0, "high": 1}, Uniform(0, 1), id="uniform"),
        pytest.param(
            {"dist": "choice", "values": ["a", "b"], "p": [0.5, 0.5]},
            Choice(["a", "b"], p=[0.5, 0.5]),
            id="choice",
        ),
        pytest.param(
            {"dist": "gamma", "a": 2.0, "scale": 0.5},
            ScipyDistribution(stats.gamma(a=2.0, scale=0.5)),
            id="scipy-short",
        ),
        pytest.param(
            {"dist": "scipy", "name": "poisson", "args": [3.0]},
            ScipyDistribution(stats.poisson(3.0)),
            id="scipy-no-kwds",
        ),
        pytest.param(Normal(0, 1), Normal(0, 1), id="instance"),
    ],
)
def test_distribution_from_dict_short_forms(d, expected):
    assert distribution_from_dict(d) == expected


@pytest.mark.parametrize(
    ("d", "match"),
    [
        pytest.param({"dist": "normal", "loc": 0.0}, r"missing \['scale'\]", id="missing-key"),
        pytest.param(
            {"dist": "normal", "loc": 0, "scale": 1, "sd": 1}, r"unknown keys \['sd'\]", id="extra"
        ),
        pytest.param({"dist": "cauchyish"}, r"unknown distribution 'cauchyish'", id="unknown"),
        pytest.param({"loc": 0.0}, r"with a 'dist' key", id="no-dist"),
        pytest.param([0, 1, 2], r"must be \[low, high\]", id="list-3"),
        pytest.param("normal", r"with a 'dist' key", id="string"),
        pytest.param({"dist": "scipy", "name": "nope"}, r"unknown scipy.stats .*'nope'", id="sc"),
        pytest.param(
            {"dist": "scipy", "name": "norm", "args": 1.0}, r"args must be a list", id="sc-args"
        ),
        pytest.param(
            {"dist": "scipy", "name": "norm", "kwds": [1]}, r"kwds must be a mapping", id="kwds"
        ),
        pytest.param({"dist": "gamma", "b": 1.0}, r"invalid arguments for scipy", id="sc-kw"),
        pytest.param({"dist": "norm", "loc": "x"}, r"must be a number, got 'x'", id="sc-str"),
    ],
)
def test_distribution_from_dict_errors(d, match):
    with pytest.raises(DesignError, match=match):
        distribution_from_dict(d)


def test_as_distribution():
    assert as_distribution((0, 1)) == Uniform(0, 1)
    assert as_distribution(stats.norm(0, 1)) == ScipyDistribution(stats.norm(0, 1))
    d = Normal(0, 1)
    assert as_distribution(d) is d
    assert isinstance(d, Distribution)
    with pytest.raises(DesignError, match=r"'T' must be a distribution.*Choice\(\[\.\.\.\]\)"):
        as_distribution([16, 32], "parameter 'T'")
    with pytest.raises(DesignError, match=r"got 2\.0; use a fixed parameter"):
        as_distribution(2.0)
    with pytest.raises(DesignError, match=r"got \(1, 2, 3\)"):
        as_distribution((1, 2, 3))
