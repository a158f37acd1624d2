"""Main effects and sensitivity indices of grid and sampled designs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ensembles.analysis import sensitivity
from ensembles.analysis.reduce import AnalysisError

from ._analysis_data import ensemble, grid2_ensemble, no_compute, sample_ensemble


def _grid(func, seeds=3, noise=0.0):
    a = np.array([0.0, 1.0, 2.0])
    b = np.array([0.0, 1.0])
    rng = np.random.default_rng(0)
    y = func(a[:, None, None], b[None, :, None]) + noise * rng.normal(size=(3, 2, seeds))
    return ensemble({"a": a, "b": b}, seeds, {"y": ((), y)}, chunks={"a": 1})["y"]


def _anova_reference(y):
    """First-order and total indices of a full 2-D grid, by hand."""
    total = y.var()
    s1 = [y.mean(axis=1).var() / total, y.mean(axis=0).var() / total]
    st = [y.var(axis=0).mean() / total, y.var(axis=1).mean() / total]
    return np.array(s1), np.array(st)


def test_anova_of_an_additive_function():
    da = _grid(lambda a, b: 2 * a + b)
    with no_compute():
        res = sensitivity.sensitivity(da)
    res = res.compute()
    assert res.attrs["method"] == "anova"
    assert list(res["param"].values) == ["a", "b"]
    np.testing.assert_allclose(res["S1"], res["ST"])  # no interaction
    np.testing.assert_allclose(res["S1"].sum(), 1.0)
    s1, st = _anova_reference((2 * np.array([0.0, 1, 2])[:, None] + np.array([0.0, 1])).copy())
    np.testing.assert_allclose(res["S1"], s1)
    np.testing.assert_allclose(res["ST"], st)


def test_anova_with_an_interaction():
    da = _grid(lambda a, b: a * b + 0.1 * a, noise=0.01)
    res = sensitivity.sensitivity(da).compute()
    y = da.mean("seed").values
    s1, st = _anova_reference(y)
    np.testing.assert_allclose(res["S1"], s1, rtol=1e-12)
    np.testing.assert_allclose(res["ST"], st, rtol=1e-12)
    assert bool((res["ST"] > res["S1"]).all())


def test_anova_per_step_and_main_effects():
    ds = grid2_ensemble()
    res = sensitivity.sensitivity(ds["M"]).compute()
    assert res["S1"].dims == ("param", "sweep")
    effects = sensitivity.main_effects(ds["M"], aggregate="mean").compute()
    y = ds["M"].values.mean(axis=-1).mean(axis=-1)  # per-member time mean, then seeds
    np.testing.assert_allclose(effects["effect_T"], y.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(effects["effect_L"], y.mean(axis=0), rtol=1e-12)


def test_rbd_fast_on_a_sampled_design():
    ds = sample_ensemble(n=150)
    with no_compute():
        res = sensitivity.sensitivity(ds["y"], num_resamples=20)
    res = res.compute()
    assert res.attrs["method"] == "rbd_fast"
    assert list(res["param"].values) == ["T", "h"]
    assert float(res["S1"].sel(param="T")) > 0.9  # y = 3 T + 0.3 h + noise
    assert float(res["S1"].sel(param="h")) < 0.2
    assert set(res.data_vars) == {"S1", "S1_conf"}


def test_rbd_fast_per_step_skips_design_points_without_members():
    status = np.ones((60, 3), dtype=np.int8)
    status[:5] = 2
    ds = sample_ensemble(n=60, status=status)
    res = sensitivity.sensitivity(ds["M"], num_resamples=5).compute()
    assert res["S1"].dims == ("param", "sweep")
    assert bool(np.isfinite(res["S1"]).all())


def test_sensitivity_errors():
    ds = sample_ensemble(n=20)
    with pytest.raises(AnalysisError, match=r"method='sobol' is not known"):
        sensitivity.sensitivity(ds["y"], method="sobol")
    with pytest.raises(AnalysisError, match=r"needs a full grid"):
        sensitivity.sensitivity(ds["y"], method="anova")
    with pytest.raises(AnalysisError, match=r"leaves no design dim"):
        sensitivity.sensitivity(ds["y"], over=("sample", "seed"))
    with pytest.raises(AnalysisError, match=r"no grid parameter"):
        sensitivity.main_effects(ds["y"])


def test_too_few_samples_give_nan():
    ds = sample_ensemble(n=5)
    res = sensitivity.sensitivity(ds["y"], num_resamples=5).compute()
    assert bool(res["S1"].isnull().all())
    assert isinstance(res, xr.Dataset)
