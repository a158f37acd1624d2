"""Confidence intervals on NumPy arrays: values, invariants and coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from ensembles.analysis import intervals
from ensembles.analysis.intervals import (
    interval,
    mean_interval,
    min_members,
    quantile_interval,
    quantile_ranks,
    std_interval,
    stein_interval,
)
from ensembles.errors import AnalysisError, EnsembleError

# members x positions, with NaN holes so each position has its own member count
members = arrays(
    np.float64,
    st.tuples(st.integers(0, 40), st.integers(1, 4)),
    elements=st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), st.just(np.nan)
    ),
)
levels = st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99])
probabilities = st.sampled_from([0.025, 0.1, 0.5, 0.9, 0.975])


def _bonett(x: np.ndarray, level: float) -> tuple[float, float]:
    """Bonett's interval of the standard deviation, straight from the paper's formulas."""
    n = len(x)
    z = stats.norm.ppf((1 + level) / 2)
    m = stats.trim_mean(x, 1 / (2 * np.sqrt(n - 4)))
    kurtosis = n * np.sum((x - m) ** 4) / np.sum((x - x.mean()) ** 2) ** 2
    c = n / (n - z)
    se = c * np.sqrt((kurtosis - (n - 3) / n) / (n - 1))
    var = np.var(x, ddof=1)
    return np.sqrt(c * var * np.exp(-z * se)), np.sqrt(c * var * np.exp(z * se))


# --------------------------------------------------------------------------------------
# values against references
# --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(members, levels)
def test_mean_interval_is_the_t_interval_of_the_present_members(x, level):
    ci = mean_interval(x, level=level)
    for j in range(x.shape[1]):
        col = x[:, j][~np.isnan(x[:, j])]
        assert ci.n[j] == col.size
        if col.size < 2:
            assert ci.half_width[j] == np.inf
            assert ci.lower[j] == -np.inf
            assert ci.upper[j] == np.inf
            continue
        sem = stats.sem(col)
        lo, hi = stats.t.interval(level, col.size - 1, col.mean(), sem) if sem else (col[0],) * 2
        np.testing.assert_allclose([ci.lower[j], ci.upper[j]], [lo, hi], rtol=1e-9, atol=1e-9)
        assert ci.estimate[j] == pytest.approx(col.mean(), rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(members, probabilities, levels)
def test_quantile_interval_bounds_are_the_order_statistics_of_the_ranks(x, q, level):
    ci = quantile_interval(x, q, level=level)
    for j in range(x.shape[1]):
        col = np.sort(x[:, j][~np.isnan(x[:, j])])
        lo_rank, up_rank = quantile_ranks(col.size, q, level)
        if col.size == 0:
            assert np.isnan(ci.estimate[j])
            assert ci.half_width[j] == np.inf
            continue
        assert ci.estimate[j] == pytest.approx(np.quantile(col, q), rel=1e-12, abs=1e-9)
        expected_lo = col[lo_rank - 1] if lo_rank >= 1 else -np.inf
        expected_up = col[up_rank - 1] if up_rank <= col.size else np.inf
        assert ci.lower[j] == min(expected_lo, ci.estimate[j])
        assert ci.upper[j] == max(expected_up, ci.estimate[j])


def test_std_interval_matches_bonetts_formulas():
    rng = np.random.default_rng(3)
    for n in (5, 6, 9, 17, 64, 301):
        for level in (0.9, 0.95):
            x = rng.gamma(2.0, size=n)
            ci = std_interval(x[:, None], level=level)
            np.testing.assert_allclose([ci.lower[0], ci.upper[0]], _bonett(x, level), rtol=1e-10)
            assert ci.estimate[0] == pytest.approx(np.std(x, ddof=1))


def test_stein_interval_takes_the_spread_from_the_pilot_and_the_mean_from_all():
    x = np.array([[0.0, 2.0, 10.0, 10.0, 10.0, np.nan]]).T
    ci = stein_interval(x, pilot=2)
    t = stats.t.ppf(0.975, 1)
    assert ci.n[0] == 5
    assert ci.estimate[0] == pytest.approx(32.0 / 5)
    assert ci.half_width[0] == pytest.approx(t * np.sqrt(2.0) / np.sqrt(5))
    assert ci.method == "stein"
    # a pilot with fewer than two members present gives no interval
    assert stein_interval(np.array([[1.0, np.nan, 3.0]]).T, pilot=2).half_width[0] == np.inf


def test_quantile_ranks_have_coverage_at_least_level_and_equal_tails_as_tight_as_possible():
    n = np.arange(0, 500)
    for q in (0.025, 0.1, 0.5, 0.975):
        for level in (0.9, 0.95, 0.99):
            lo, up = quantile_ranks(n, q, level)
            tail = (1 - level) / 2
            below = np.where(lo >= 1, stats.binom.cdf(lo - 1, n, q), 0.0)
            above = np.where(up <= n, stats.binom.sf(up - 1, n, q), 0.0)
            assert (below <= tail + 1e-12).all()
            assert (above <= tail + 1e-12).all()
            assert (1 - below - above >= level - 1e-12).all()
            # one rank further in would break the tail bound (where a rank exists)
            inner_lo = stats.binom.cdf(lo, n, q)
            assert (inner_lo[lo < n] > tail).all()
            inner_up = stats.binom.sf(up - 2, n, q)
            assert (inner_up[up >= 2] > tail).all()


def test_min_members_is_where_the_quantile_interval_becomes_finite():
    for q in (0.025, 0.05, 0.5, 0.975):
        m = min_members("quantile", q)
        x = np.arange(float(m))[:, None]
        assert np.isfinite(quantile_interval(x, q).half_width[0])
        assert quantile_interval(x[:-1], q).half_width[0] == np.inf
    assert min_members("quantile", 0.975) == 146
    assert min_members("mean") == 2
    assert min_members("std") == 5


def test_interval_layout_member_axis_anywhere_and_blocks(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 50, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    whole = {s: interval(x, s, 0.9 if s == "quantile" else None, axis=1) for s in intervals.STATS}
    monkeypatch.setattr(intervals, "_BLOCK", 7)  # force many blocks of positions
    for stat, ref in whole.items():
        ci = interval(np.moveaxis(x, 1, -1), stat, 0.9 if stat == "quantile" else None, axis=-1)
        assert ci.estimate.shape == (3, 4)
        for name in ("estimate", "lower", "upper", "half_width", "n"):
            np.testing.assert_array_equal(getattr(ci, name), getattr(ref, name))


def test_no_members_at_all():
    empty = np.zeros((0, 3))
    for stat, q in (("mean", None), ("quantile", 0.5), ("std", None)):
        ci = interval(empty, stat, q)
        assert ci.n.tolist() == [0, 0, 0]
        assert (ci.half_width == np.inf).all()


def test_constant_members_give_a_zero_width_interval():
    x = np.full((20, 1), 3.0)
    assert mean_interval(x).half_width[0] == 0.0
    assert std_interval(x).half_width[0] == 0.0
    assert quantile_interval(x, 0.5).half_width[0] == 0.0


# --------------------------------------------------------------------------------------
# invariants
# --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(members, levels, probabilities, st.sampled_from(intervals.STATS), st.randoms())
def test_invariants(x, level, q, stat, rnd):
    q = q if stat == "quantile" else None
    ci = interval(x, stat, q, level=level)
    ok = np.isfinite(ci.half_width)
    assert (ci.n == (~np.isnan(x)).sum(axis=0)).all()
    assert (ci.half_width >= 0).all()
    assert (ci.lower[ok] <= ci.estimate[ok]).all()
    assert (ci.estimate[ok] <= ci.upper[ok]).all()
    arms = np.maximum(ci.estimate - ci.lower, ci.upper - ci.estimate)
    np.testing.assert_array_equal(ci.half_width[ok], arms[ok])
    # the members' order does not matter
    order = list(range(x.shape[0]))
    rnd.shuffle(order)
    shuffled = interval(x[order], stat, q, level=level)
    np.testing.assert_allclose(shuffled.lower, ci.lower, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(shuffled.upper, ci.upper, rtol=1e-9, atol=1e-6)
    # a higher level gives a wider interval containing this one
    wider = interval(x, stat, q, level=min(0.999, level + 0.04))
    assert (wider.lower <= ci.lower + 1e-9).all()
    assert (wider.upper >= ci.upper - 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(members, st.floats(-100, 100), st.floats(0.1, 10), st.sampled_from(intervals.STATS))
def test_location_and_scale_equivariance(x, shift, scale, stat):
    q = 0.9 if stat == "quantile" else None
    ci = interval(x, stat, q)
    moved = interval(x * scale + shift, stat, q)
    offset = 0.0 if stat == "std" else shift
    ok = np.isfinite(ci.half_width)
    np.testing.assert_allclose(
        moved.estimate[ok], ci.estimate[ok] * scale + offset, rtol=1e-7, atol=1e-6
    )
    np.testing.assert_allclose(
        moved.half_width[ok], ci.half_width[ok] * scale, rtol=1e-6, atol=1e-6
    )
    assert (np.isfinite(moved.half_width) == ok).all()


# --------------------------------------------------------------------------------------
# coverage by simulation (known distributions; fixed seeds; 4 standard errors of slack)
# --------------------------------------------------------------------------------------

REPS = 4000
SLACK = 4 * np.sqrt(0.05 * 0.95 / REPS)  # 0.014


def _covers(ci, truth) -> float:
    return float(((ci.lower <= truth) & (truth <= ci.upper)).mean())


def test_t_interval_coverage_is_exact_for_normal_members():
    x = np.random.default_rng(10).normal(3.0, 2.0, size=(10, REPS))
    assert abs(_covers(mean_interval(x), 3.0) - 0.95) < SLACK


def test_quantile_interval_coverage_is_the_binomial_value_for_continuous_members():
    n, q = 60, 0.1
    x = np.random.default_rng(11).exponential(size=(n, REPS))
    truth = -np.log(1 - q)
    lo, up = quantile_ranks(n, q)
    exact = stats.binom.cdf(up - 1, n, q) - stats.binom.cdf(lo - 1, n, q)
    assert exact >= 0.95
    assert abs(_covers(quantile_interval(x, q), truth) - exact) < SLACK


def test_quantile_interval_coverage_at_least_level_for_discrete_members():
    x = np.random.default_rng(12).poisson(3.0, size=(40, REPS)).astype(float)
    for q in (0.25, 0.5, 0.9):
        truth = stats.poisson(3.0).ppf(q)
        assert _covers(quantile_interval(x, q), truth) >= 0.95 - SLACK


def test_std_interval_coverage_normal_and_moderately_skewed():
    rng = np.random.default_rng(13)
    normal = rng.normal(0.0, 2.0, size=(40, REPS))
    assert abs(_covers(std_interval(normal), 2.0) - 0.95) < SLACK
    gamma = rng.gamma(8.0, size=(100, REPS))  # skewness 0.71
    assert _covers(std_interval(gamma), np.sqrt(8.0)) >= 0.95 - 2 * SLACK


def test_stein_coverage_is_exact_whatever_size_the_pilot_chose():
    rng = np.random.default_rng(14)
    pilot, sigma = 10, 3.0
    x = rng.normal(1.0, sigma, size=(400, REPS))
    s0 = x[:pilot].std(axis=0, ddof=1)
    size = np.clip(np.ceil((2.26 * s0 / 1.5) ** 2), pilot, 400).astype(int)  # chosen from s0
    x = np.where(np.arange(400)[:, None] < size, x, np.nan)
    assert abs(_covers(stein_interval(x, pilot), 1.0) - 0.95) < SLACK


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: mean_interval([[1.0]], level=1.5), "level=1.5"),
        (lambda: mean_interval([[1.0]], level=True), "level=True"),
        (lambda: quantile_interval([[1.0]], q=1.0), "q=1.0"),
        (lambda: interval([[1.0]], "median"), "stat='median'"),
        (lambda: interval([[1.0]], "mean", q=0.5), "q=0.5"),
        (lambda: interval([[1.0]], "quantile"), "q=None"),
        (lambda: mean_interval([[1.0]], axis=2), "axis=2"),
        (lambda: mean_interval(np.array([["a"]])), "dtype <U1"),
        (lambda: stein_interval([[1.0]], pilot=1), "pilot=1"),
        (lambda: quantile_ranks([-1], 0.5), "n=[-1]"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(call, needle):
    with pytest.raises(AnalysisError) as info:
        call()
    assert needle in str(info.value)
    assert isinstance(info.value, EnsembleError)
    assert isinstance(info.value, ValueError)
