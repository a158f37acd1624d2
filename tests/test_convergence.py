"""Convergence of ensemble statistics with the number of members."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ensembles.analysis import convergence
from ensembles.analysis.reduce import AnalysisError

from ._analysis_data import grid_ensemble, no_compute


def _normal_members(seeds=60, columns=3, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    values = rng.normal(size=(2, seeds, columns))
    return xr.DataArray(
        values,
        dims=("T", "seed", "sweep"),
        coords={"T": [1.0, 2.0], "status": (("T", "seed"), np.ones((2, seeds), "i1"))},
        name="M",
    ).chunk({"T": 1})


def test_convergence_is_lazy_and_laid_out_by_member_count():
    da = _normal_members()
    with no_compute():
        conv = convergence.convergence(da, over="seed", sizes=[5, 20, 60], n=200)
    assert conv["estimate"].dims == ("n_members", "stat", "T", "sweep")
    assert list(conv["stat"].values) == ["mean", "q0.025", "q0.975"]
    assert list(conv["n_members"].values) == [5, 20, 60]
    conv = conv.compute()
    np.testing.assert_array_equal(conv["count"].isel(T=0, sweep=0), [5, 20, 60])
    full = conv.sel(n_members=60)
    np.testing.assert_allclose(full["estimate"].sel(stat="mean"), da.values.mean(axis=1))
    np.testing.assert_allclose(
        full["estimate"].sel(stat="q0.975"), np.quantile(da.values, 0.975, axis=1)
    )
    first = conv.sel(n_members=5).sel(stat="mean")
    np.testing.assert_allclose(first["estimate"], da.values[:, :5].mean(axis=1))
    # the interval of the mean shrinks roughly like 1 / sqrt(n)
    ratio = conv["half_width"].sel(stat="mean", n_members=5) / conv["half_width"].sel(
        stat="mean", n_members=60
    )
    assert 2.0 < float(ratio.mean()) < 6.0
    assert bool((conv["ci_lower"] <= conv["ci_upper"]).all())


def test_convergence_over_several_dims_uses_the_first_members_in_order():
    ds = grid_ensemble(seeds=6)
    conv = convergence.convergence(ds["chi"], over=("T", "seed"), sizes=[6, 24], n=50).compute()
    first_six = ds["chi"].values[0]  # T = 1.5, its six seeds come first
    np.testing.assert_allclose(
        conv["estimate"].sel(stat="mean", n_members=6), first_six.mean(), rtol=1e-12
    )
    assert int(conv["count"].sel(n_members=24)) == 24


def test_convergence_counts_only_ok_members():
    status = np.ones((4, 8), dtype=np.int8)
    status[:, 1] = 2
    ds = grid_ensemble(seeds=8, status=status)
    conv = convergence.convergence(ds["chi"], over="seed", sizes=[4, 8], n=20).compute()
    np.testing.assert_array_equal(conv["count"].sel(n_members=4), 3)
    np.testing.assert_array_equal(conv["count"].sel(n_members=8), 7)


def test_convergence_rejects_bad_sizes_and_datasets():
    da = _normal_members(seeds=10)
    with pytest.raises(AnalysisError, match=r"between 1 and 10"):
        convergence.convergence(da, sizes=[5, 11])
    with pytest.raises(AnalysisError, match=r"one output \(a DataArray\)"):
        convergence.convergence(da.to_dataset())


def test_default_sizes():
    assert convergence.default_sizes(100) == [5, 8, 12, 18, 28, 42, 65, 100]
    assert convergence.default_sizes(3) == [3]
    assert convergence.default_sizes(1) == [1]


def test_check_convergence_per_design_point():
    status = np.ones((4, 30), dtype=np.int8)
    status[3] = 2  # nothing ran at T = 3.0
    ds = grid_ensemble(seeds=30, status=status)
    with no_compute():
        loose = convergence.check_convergence(ds["M"], tol=10.0, n=100)
        tight = convergence.check_convergence(ds["M"], tol=1e-3, n=100)
    loose, tight = loose.compute(), tight.compute()
    assert loose["half_width"].dims == ("T",)
    np.testing.assert_array_equal(loose["converged"], [True, True, True, False])
    np.testing.assert_array_equal(tight["converged"], [False] * 4)
    np.testing.assert_array_equal(loose["count"], [30, 30, 30, 0])
    # the half-width reported is the worst over the sweeps
    ci_half = ds["M"].isel(T=0).std("seed", ddof=1).max() / np.sqrt(30) * 1.96
    assert float(loose["half_width"][0]) == pytest.approx(float(ci_half), rel=0.3)


def test_check_convergence_relative_and_dataset():
    ds = grid_ensemble(seeds=20)
    rel = convergence.check_convergence(ds["chi"], tol=0.5, relative=True, n=100).compute()
    assert bool(rel["converged"].all())
    both = convergence.check_convergence(ds[["chi", "E"]], tol=10.0, n=50).compute()
    assert {"chi_half_width", "E_converged", "converged"} <= set(both.data_vars)
    assert bool(both["converged"].all())
    with pytest.raises(AnalysisError, match=r"tol=-1"):
        convergence.check_convergence(ds["chi"], tol=-1)


def test_convergence_defaults_to_the_seeds_and_takes_a_quantile_method():
    da = _normal_members(seeds=20)
    conv = convergence.convergence(da, sizes=[20], n=50, q=(0.1, 0.9), method="inverted_cdf")
    assert conv.attrs["over"] == ["seed"]
    assert conv.attrs["method"] == "inverted_cdf"
    estimate = conv["estimate"].sel(stat="q0.9", n_members=20).values
    expected = np.quantile(da.values, 0.9, axis=1, method="inverted_cdf")
    np.testing.assert_array_equal(estimate, expected)
    check = convergence.check_convergence(da, tol=10.0, stat=0.9, n=50, method="lower")
    assert check["converged"].dims == ("T",)
    with pytest.raises(AnalysisError, match="method='nope' is not a quantile method"):
        convergence.convergence(da, method="nope")
