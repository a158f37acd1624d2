"""NumPy's quantile methods: bit-for-bit agreement with numpy, laziness, errors."""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ensembles.analysis import plot, reduce
from ensembles.analysis import summary as tables
from ensembles.analysis.quantiles import column_quantiles, sorted_quantiles
from ensembles.analysis.reduce import QUANTILE_METHODS, AnalysisError
from ensembles.errors import EnsembleError

from ._analysis_data import grid_ensemble, ok_values

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMPY_METHODS = (
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
    "hazen",
    "weibull",
    "linear",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "midpoint",
    "nearest",
)


def _nanquantile(values, q, method):
    """numpy.nanquantile along axis 0, without its warning for all-NaN columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanquantile(values, q, axis=0, method=method)


def _same(actual, expected):
    """Bit for bit, NaN where NumPy has NaN."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.array_equal(actual, expected, equal_nan=True), np.argwhere(
        ~((actual == expected) | (np.isnan(actual) & np.isnan(expected)))
    )


probabilities = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.25]), st.floats(0, 1)), min_size=1, max_size=5
)
values = st.one_of(
    st.floats(-1e6, 1e6, allow_subnormal=False),
    st.sampled_from([0.0, 1.0, -2.5, 3.0]),  # ties: the discrete methods pick among them
)


@st.composite
def ensembles_with_gaps(draw):
    """Ensembles whose member count varies by position: NaN values, failed/pending members."""
    n_t = draw(st.integers(1, 3))
    seeds = draw(st.integers(1, 9))
    steps = draw(st.integers(1, 5))
    shape = (n_t, seeds, steps)
    data = draw(hnp.arrays(np.float64, shape, elements=values))
    data = np.where(draw(hnp.arrays(np.bool_, shape)), np.nan, data)
    status = draw(hnp.arrays(np.int8, (n_t, seeds), elements=st.sampled_from([0, 1, 1, 1, 2])))
    da = xr.DataArray(
        data,
        dims=("T", "seed", "sweep"),
        coords={"T": np.arange(n_t) + 1.0, "status": (("T", "seed"), status)},
        name="M",
    )
    chunks = {"T": draw(st.integers(1, n_t)), "seed": draw(st.integers(1, seeds)), "sweep": 2}
    over = draw(st.sampled_from([("seed",), ("T", "seed"), ("seed", "T"), ("T",)]))
    return da.chunk(chunks), over


def test_the_methods_are_numpys():
    assert QUANTILE_METHODS == NUMPY_METHODS
    for method in QUANTILE_METHODS:  # NumPy knows each of them by this name
        np.quantile([1.0, 2.0, 4.0], 0.3, method=method)


@HYPOTHESIS
@given(ensembles_with_gaps(), st.sampled_from(NUMPY_METHODS), probabilities)
def test_quantile_equals_numpy_nanquantile_bit_for_bit(case, method, q):
    da, over = case
    expected = _nanquantile(ok_values(da, over), q, method)
    _same(reduce.quantile(da, q, over=over, method=method).values, expected)
    scalar = reduce.quantile(da, q[0], over=over, method=method)
    _same(scalar.values, expected[0])
    assert float(scalar["quantile"]) == q[0]


@HYPOTHESIS
@given(ensembles_with_gaps(), st.sampled_from(NUMPY_METHODS), probabilities)
def test_envelope_equals_numpy_nanquantile_bit_for_bit(case, method, q):
    da, over = case
    lo, hi = min(q), max(q)
    ref = ok_values(da, over)
    band = reduce.envelope(da, over=over, q=(lo, hi), median=True, method=method).compute()
    _same(band["lower"].values, _nanquantile(ref, lo, method))
    _same(band["upper"].values, _nanquantile(ref, hi, method))
    _same(band["median"].values, _nanquantile(ref, 0.5, method))
    np.testing.assert_array_equal(band["count"].values, np.sum(~np.isnan(ref), axis=0))


@HYPOTHESIS
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 30), st.integers(1, 4)),
        elements=values,
    ),
    st.sampled_from(NUMPY_METHODS),
    probabilities,
    st.integers(1, 7),
)
def test_quantile_of_complete_members_equals_numpy_quantile(data, method, q, chunk):
    da = xr.DataArray(data, dims=("seed", "sweep")).chunk({"seed": chunk})
    expected = np.quantile(data, q, axis=0, method=method)
    _same(reduce.quantile(da, q, over="seed", method=method).values, expected)


@pytest.mark.parametrize("method", NUMPY_METHODS)
def test_kernels_equal_numpy_on_columns_of_different_counts(method):
    rng = np.random.default_rng(4)
    data = np.round(rng.normal(size=(12, 40)), 1)  # ties
    data[rng.random(data.shape) < rng.random(40)] = np.nan  # 0 to 12 values per column
    q = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.6, 0.75, 0.99, 1.0])
    expected = _nanquantile(data, q, method)
    _same(column_quantiles(data, q, method), expected)
    _same(
        sorted_quantiles(np.sort(data, axis=0), (~np.isnan(data)).sum(axis=0), q, method), expected
    )


def test_methods_differ_where_numpys_differ():
    da = xr.DataArray(np.arange(8.0)[:, None], dims=("seed", "sweep"))
    got = {m: float(reduce.quantile(da, 0.3, over="seed", method=m)[0]) for m in NUMPY_METHODS}
    assert got == {m: float(np.quantile(np.arange(8.0), 0.3, method=m)) for m in NUMPY_METHODS}
    assert len(set(got.values())) >= 5


def test_quantile_methods_stay_lazy(counting_scheduler):
    ds = grid_ensemble()
    results = [
        reduce.quantile(ds["M"], [0.0, 0.3, 1.0], over="seed", method=m) for m in NUMPY_METHODS
    ]
    results.append(reduce.quantile(ds, 0.9, method="hazen"))
    results.append(reduce.envelope(ds["M"], over="seed", median=True, method="weibull"))
    results.append(reduce.bootstrap_ci(ds["M"], 0.9, over="seed", n=20, method="lower"))
    results.append(ds["M"].ens.quantile(0.1, method="nearest"))
    results.append(ds.ens.envelope(method="median_unbiased"))
    results.append(ds["chi"].ens.bootstrap_ci(over="seed", n=20, method="hazen"))
    assert counting_scheduler.computes == 0
    computed = dask.compute(*results)
    assert counting_scheduler.computes == 1
    expected = _nanquantile(ok_values(ds["M"], ["seed"]), [0.0, 0.3, 1.0], "inverted_cdf")
    _same(computed[0].values, expected)


def test_method_is_recorded_in_the_attrs():
    band = reduce.envelope(grid_ensemble()["M"], over="seed", method="hazen")
    assert band.attrs["method"] == "hazen"
    assert "quantile(0.025) (method: hazen)" in band["lower"].attrs["cell_methods"]
    assert reduce.envelope(grid_ensemble()["M"]).attrs["method"] == "linear"
    ci = reduce.bootstrap_ci(grid_ensemble()["chi"], over="seed", n=10, method="weibull")
    assert ci.attrs["method"] == "weibull"


def test_bootstrap_quantile_statistic_uses_the_method():
    ds = grid_ensemble(seeds=9)
    ci = reduce.bootstrap_ci(ds["chi"], 0.8, over="seed", n=50, method="higher").compute()
    expected = np.quantile(ds["chi"].values, 0.8, axis=1, method="higher")
    _same(ci["estimate"].values, expected)
    assert ci.attrs["stat"] == "quantile(0.8)"
    linear = reduce.bootstrap_ci(ds["chi"], 0.8, over="seed", n=50).compute()
    assert not np.array_equal(linear["estimate"].values, expected)


CALLS = {
    "quantile": lambda ds, m: reduce.quantile(ds["M"], 0.5, method=m),
    "envelope": lambda ds, m: reduce.envelope(ds, method=m),
    "bootstrap_ci": lambda ds, m: reduce.bootstrap_ci(ds["M"], n=5, method=m),
    "summary": lambda ds, m: tables.summary(ds, vars=["chi"], method=m),
    "accessor": lambda ds, m: ds["M"].ens.quantile(0.5, method=m),
    "plot_envelope": lambda ds, m: plot.plot_envelope(ds["M"], method=m),
}


@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
@pytest.mark.parametrize("method", ["cubic", "Linear", None, 7])
def test_an_unknown_method_is_named_and_the_valid_ones_listed(call, method):
    with pytest.raises(AnalysisError) as info:
        call(grid_ensemble(), method)
    text = str(info.value)
    assert f"method={method!r} is not a quantile method" in text
    assert all(name in text for name in NUMPY_METHODS)
    assert isinstance(info.value, EnsembleError)
    assert isinstance(info.value, ValueError)
