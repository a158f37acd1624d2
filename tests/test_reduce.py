"""Ensemble reductions: laziness, equality with NumPy, member exclusion and counts."""

from __future__ import annotations

import warnings

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ensembles.analysis import kernels as reduce_engine
from ensembles.analysis import reduce
from ensembles.analysis.reduce import AnalysisError
from ensembles.errors import EnsembleError

from ._analysis_data import (
    grid_ensemble,
    ising_ensemble,
    no_compute,
    ok_values,
    sample_ensemble,
)

HYPOTHESIS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _nan_reference(func, *args, **kwargs):
    """NumPy nan-reductions warn on empty slices; the reference only wants the values."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return func(*args, **kwargs)


# --------------------------------------------------------------------------------------
# laziness
# --------------------------------------------------------------------------------------

LAZY_CALLS = {
    "count": lambda o: reduce.count(o, over="seed"),
    "mean": lambda o: reduce.mean(o),
    "std": lambda o: reduce.std(o, over=("T", "seed")),
    "sem": lambda o: reduce.sem(o, over="seed"),
    "quantile": lambda o: reduce.quantile(o, [0.1, 0.9], over="seed"),
    "quantile-scalar": lambda o: reduce.quantile(o, 0.5),
    "envelope": lambda o: reduce.envelope(o, over="seed", median=True),
    "bootstrap_ci": lambda o: reduce.bootstrap_ci(o, "median", over="seed", n=50),
}


@pytest.mark.parametrize("call", list(LAZY_CALLS.values()), ids=list(LAZY_CALLS))
@pytest.mark.parametrize("kind", ["DataArray", "Dataset"])
def test_reductions_are_lazy(call, kind):
    ds = grid_ensemble()
    obj = ds["M"] if kind == "DataArray" else ds
    with no_compute():
        result = call(obj)
    variables = result.to_dataset(name="x") if isinstance(result, xr.DataArray) else result
    assert all(isinstance(v.data, dask.array.Array) for v in variables.data_vars.values())
    result.compute()  # and it does compute afterwards


# --------------------------------------------------------------------------------------
# equality with numpy on random data
# --------------------------------------------------------------------------------------


@st.composite
def ensembles_with_masks(draw):
    n_t = draw(st.integers(1, 4))
    seeds = draw(st.integers(1, 6))
    steps = draw(st.integers(1, 4))
    shape = (n_t, seeds, steps)
    values = draw(
        hnp.arrays(np.float64, shape, elements=st.floats(-1e6, 1e6, allow_subnormal=False))
    )
    nan = draw(hnp.arrays(np.bool_, shape))
    status = draw(hnp.arrays(np.int8, (n_t, seeds), elements=st.sampled_from([0, 1, 1, 1, 2])))
    junk = draw(st.booleans())  # values of non-ok members: NaN or (untrusted) numbers
    values = np.where(nan & draw(st.booleans()), np.nan, values)
    da = xr.DataArray(
        values,
        dims=("T", "seed", "sweep"),
        coords={"T": np.arange(n_t) + 1.0, "status": (("T", "seed"), status)},
        name="M",
    )
    if not junk:
        da = da.where(da.status == 1)
    chunks = {
        "T": draw(st.integers(1, n_t)),
        "seed": draw(st.integers(1, seeds)),
        "sweep": draw(st.integers(1, steps)),
    }
    over = draw(st.sampled_from([("seed",), ("T", "seed"), ("seed", "T"), ("T",), None]))
    return da.chunk(chunks), over


def _reference_values(da, over):
    dims = tuple(da.status.dims) if over is None else over
    return ok_values(da, dims)


def _close(actual, expected, scale):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * scale)


@HYPOTHESIS
@given(ensembles_with_masks())
def test_mean_std_sem_count_match_numpy(case):
    da, over = case
    ref = _reference_values(da, over)
    scale = max(1.0, float(np.nanmax(np.abs(ref), initial=0.0)))
    n = np.sum(~np.isnan(ref), axis=0)
    mean = reduce.mean(da, over=over).compute()
    _close(mean.values, _nan_reference(np.nanmean, ref, axis=0), scale)
    np.testing.assert_array_equal(mean["count"].values, n)
    np.testing.assert_array_equal(reduce.count(da, over=over).values, n)
    std = reduce.std(da, over=over).values
    _close(std, _nan_reference(np.nanstd, ref, axis=0, ddof=1), scale)
    _close(reduce.std(da, over=over, ddof=0).values, _nan_reference(np.nanstd, ref, axis=0), scale)
    sem = reduce.sem(da, over=over).values
    expected = _nan_reference(np.nanstd, ref, axis=0, ddof=1) / np.sqrt(n)
    _close(sem, np.where(n > 1, expected, np.nan), scale)


@HYPOTHESIS
@given(ensembles_with_masks(), st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_quantile_and_envelope_match_numpy(case, q):
    da, over = case
    ref = _reference_values(da, over)
    scale = max(1.0, float(np.nanmax(np.abs(ref), initial=0.0)))
    expected = _nan_reference(np.nanquantile, ref, q, axis=0)
    result = reduce.quantile(da, q, over=over).compute()
    _close(result.values, expected, scale)
    assert result.dims[0] == "quantile"
    lo, hi = sorted(q[:2]) if len(q) > 1 else (q[0], q[0])
    band = reduce.envelope(da, over=over, q=(lo, hi), median=True).compute()
    _close(band["lower"].values, _nan_reference(np.nanquantile, ref, lo, axis=0), scale)
    _close(band["upper"].values, _nan_reference(np.nanquantile, ref, hi, axis=0), scale)
    _close(band["median"].values, _nan_reference(np.nanmedian, ref, axis=0), scale)
    _close(band["mean"].values, _nan_reference(np.nanmean, ref, axis=0), scale)
    np.testing.assert_array_equal(band["count"].values, np.sum(~np.isnan(ref), axis=0))


def test_quantile_is_bitwise_numpy_without_missing_values():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(6, 50, 7))
    da = xr.DataArray(values, dims=("T", "seed", "sweep")).chunk({"T": 2, "seed": 10})
    q = [0.0, 0.025, 0.3, 0.5, 0.975, 1.0]
    result = reduce.quantile(da, q, over=("T", "seed")).values
    np.testing.assert_array_equal(result, np.quantile(values.reshape(300, 7), q, axis=0))


def test_numpy_backed_input_is_reduced_eagerly():
    ds = grid_ensemble().compute()
    band = reduce.envelope(ds["M"], over="seed")
    assert isinstance(band["mean"].data, np.ndarray)
    np.testing.assert_allclose(band["mean"], ok_values(ds["M"], ["seed"]).mean(axis=0))
    assert isinstance(reduce.std(ds["M"]).data, np.ndarray)


# --------------------------------------------------------------------------------------
# member exclusion and counts
# --------------------------------------------------------------------------------------


def _status_with_failures():
    status = np.ones((4, 5), dtype=np.int8)
    status[0, 1] = 2  # failed
    status[2, [0, 3]] = 0  # pending
    status[3, :] = 2  # a design point where everything failed
    return status


def test_failed_and_pending_members_are_excluded_even_with_junk_values():
    ds = grid_ensemble(status=_status_with_failures())
    junk = ds["M"].fillna(1e9)  # a store might hold garbage for members that did not run
    band = reduce.envelope(junk, over="seed").compute()
    np.testing.assert_array_equal(band["count"].isel(sweep=0), [4, 5, 3, 0])
    good = ds["M"].values
    np.testing.assert_allclose(band["mean"].isel(T=0), np.nanmean(good[0], axis=0))
    np.testing.assert_allclose(band["upper"].isel(T=2), np.nanquantile(good[2], 0.975, axis=0))
    assert band["mean"].isel(T=3).isnull().all()
    assert band["lower"].isel(T=3).isnull().all()
    assert reduce.sem(junk, over="seed").isel(T=3).isnull().all()
    assert int(reduce.mean(junk)["count"].isel(sweep=0)) == 12


def test_nan_values_of_ok_members_are_skipped_and_counted_per_position():
    ds = grid_ensemble()
    values = ds["M"].values.copy()
    values[0, 0, 3] = np.nan
    da = ds["M"].copy(data=values).chunk({"T": 1})
    counts = reduce.count(da, over="seed").values
    assert counts[0, 3] == 4
    assert counts[0, 2] == 5
    assert counts.sum() == 4 * 5 * 12 - 1


def test_live_store_uses_only_members_written_so_far(tmp_path):
    """A store whose run is in progress: pending members are NaN with status 0."""
    status = np.zeros((4, 5), dtype=np.int8)
    status[:2] = 1
    ds = grid_ensemble(status=status, chunks={"T": 1, "seed": 5})
    path = tmp_path / "live.zarr"
    ds.to_zarr(path, zarr_format=3, consolidated=False)
    band = reduce.envelope(xr.open_zarr(path, consolidated=False)["M"], over="seed").compute()
    np.testing.assert_array_equal(band["count"].isel(sweep=0), [5, 5, 0, 0])
    # two more design points finish: write their data, then their status
    full = grid_ensemble(chunks={"T": 1, "seed": 5})
    region = {"T": slice(2, 4), "seed": slice(0, 5)}
    full[["M", "E", "chi"]].isel(T=slice(2, 4)).drop_vars(["member_seed", "status", "T"]).to_zarr(
        path, region={**region, "sweep": slice(None)}, consolidated=False
    )
    xr.Dataset({"status": full["status"].isel(T=slice(2, 4))}).drop_vars(
        ["T", "seed", "member_seed"]
    ).to_zarr(path, region=region, consolidated=False)
    live = xr.open_zarr(path, consolidated=False)
    band = reduce.envelope(live["M"], over="seed").compute()
    np.testing.assert_array_equal(band["count"].isel(sweep=0), [5, 5, 5, 5])
    np.testing.assert_allclose(band["mean"], reduce.mean(full["M"], over="seed"))


# --------------------------------------------------------------------------------------
# result layout
# --------------------------------------------------------------------------------------


def test_envelope_of_a_dataarray_keeps_attrs_and_remaining_coords():
    ds = sample_ensemble()
    band = reduce.envelope(ds["M"], over="seed")
    assert set(band.data_vars) == {"mean", "lower", "upper", "count"}
    assert band["mean"].dims == ("sample", "sweep")
    assert "T" in band.coords  # the parameter along ``sample`` stays
    assert "member_seed" not in band.coords
    assert "status" not in band.coords
    assert band["count"].dtype == np.int64
    assert band.attrs["over"] == ["seed"]
    assert band.attrs["q"] == [0.025, 0.975]
    flagship = reduce.envelope(ds["M"], over=("sample", "seed"), q=(0.1, 0.9))
    assert flagship["upper"].dims == ("sweep",)


def test_envelope_attrs_come_from_the_variable():
    band = reduce.envelope(grid_ensemble()["M"], over="seed")
    assert band["mean"].attrs["units"] == "1"
    assert band["mean"].attrs["long_name"] == "magnetization per spin"
    assert "cell_methods" in band["upper"].attrs
    assert band.attrs["variable"] == "M"


def test_envelope_of_a_dataset_names_variables_by_output():
    ds = grid_ensemble()
    band = reduce.envelope(ds, over="seed", median=True)
    expected = {f"{v}_{s}" for v in ("M", "E", "chi") for s in ("mean", "lower", "upper")}
    expected |= {f"{v}_{s}" for v in ("M", "E", "chi") for s in ("median", "count")}
    assert set(band.data_vars) == expected
    assert band["chi_mean"].dims == ("T",)
    xr.testing.assert_allclose(band["E_upper"], reduce.envelope(ds["E"], over="seed")["upper"])


def test_dataset_reductions_carry_one_count_per_variable():
    ds = grid_ensemble(status=_status_with_failures())
    result = reduce.mean(ds, over="seed")
    assert set(result.data_vars) == {"M", "E", "chi"}
    assert {"M_count", "E_count", "chi_count"} <= set(result.coords)
    np.testing.assert_array_equal(result["chi_count"], [4, 5, 3, 0])
    q = reduce.quantile(ds, [0.25, 0.75], over="seed")
    assert q["M"].dims == ("quantile", "T", "sweep")


def test_default_over_is_every_member_dim():
    ds = grid_ensemble()
    assert reduce.member_dims(ds["M"]) == ("T", "seed")
    assert reduce.mean(ds["M"]).dims == ("sweep",)
    assert reduce.mean(ds["M"])["count"].values[0] == 20


def test_quantile_over_many_chunks_splits_columns_not_members(monkeypatch):
    """Blocks hold every member of a few columns; no task holds the whole array."""
    monkeypatch.setattr(reduce_engine, "_MAX_BLOCK_BYTES", 8 * 40 * 3)
    monkeypatch.setattr(reduce_engine, "_MIN_BLOCK_BYTES", 1)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 12))
    da = xr.DataArray(values, dims=("seed", "sweep")).chunk({"seed": 4})
    result = reduce.quantile(da, [0.1, 0.9], over="seed")
    assert result.chunks[1] == (3, 3, 3, 3)
    np.testing.assert_array_equal(result.values, np.quantile(values, [0.1, 0.9], axis=0))


def test_kernel_tasks_read_input_chunks_without_rechunk_tasks():
    da = grid_ensemble(T=np.linspace(1, 3, 10), chunks={"T": 2})["M"]
    graph = reduce.envelope(da, over=("T", "seed"))["mean"].data.dask
    (kernel,) = [name for name in graph.layers if name.startswith("ensemble-sorted_kernel")]
    assert da.data.name in graph.dependencies[kernel]  # reads the input chunks directly
    assert len(graph.layers[kernel]) == 1  # one task: every member of the 12 columns


def test_no_status_needs_explicit_over():
    da = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("seed", "t"))
    with pytest.raises(AnalysisError, match=r"no 'status' coordinate.*pass over="):
        reduce.mean(da)
    np.testing.assert_allclose(reduce.mean(da, over="seed"), [1.5, 2.5, 3.5])
    np.testing.assert_allclose(reduce.quantile(da, 0.5, over="seed"), [1.5, 2.5, 3.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"over": "nope"}, r"dim 'nope' is not a dim"),
        ({"over": ()}, r"over=\(\) reduces nothing"),
        ({"over": ("seed", "seed")}, r"names a dim twice"),
        ({"q": (0.9, 0.1)}, r"lower <= upper"),
        ({"q": (0.1, 0.5, 0.9)}, r"not a \(lower, upper\) pair"),
        ({"q": (-0.1, 0.5)}, r"probabilities in \[0, 1\]"),
    ],
    ids=["unknown-dim", "empty-over", "duplicate-dim", "reversed-q", "three-q", "negative-q"],
)
def test_envelope_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(AnalysisError, match=match) as info:
        reduce.envelope(grid_ensemble()["M"], **kwargs)
    assert isinstance(info.value, EnsembleError)
    assert isinstance(info.value, ValueError)


def test_non_numeric_variables_are_rejected_or_skipped():
    ds = grid_ensemble()
    ds["note"] = ds["chi"].astype(str)
    assert "note" not in reduce.mean(ds, over="seed").data_vars
    with pytest.raises(AnalysisError, match="not numeric"):
        reduce.mean(ds["note"], over="seed")


def test_std_is_nan_without_enough_members():
    ds = grid_ensemble(seeds=1)
    assert reduce.std(ds["chi"], over="seed").isnull().all()
    np.testing.assert_array_equal(reduce.std(ds["chi"], over="seed", ddof=0), 0.0)
    with pytest.raises(AnalysisError, match="ddof=-1"):
        reduce.std(ds["chi"], over="seed", ddof=-1)


def test_integer_outputs_are_reduced_as_floats():
    ds = grid_ensemble()
    counts = (ds["chi"] * 10).astype(np.int64)
    band = reduce.envelope(counts, over="seed").compute()
    ref = np.trunc(ds["chi"].values * 10)
    np.testing.assert_allclose(band["mean"], ref.mean(axis=1))


def test_moments_merge_over_many_chunks(monkeypatch):
    monkeypatch.setattr(reduce_engine, "_MERGE_BYTES", 1)  # pairwise merges: a deep tree
    rng = np.random.default_rng(1)
    values = rng.normal(loc=1e6, size=(3, 64, 5))
    da = xr.DataArray(values, dims=("T", "seed", "sweep")).chunk({"T": 1, "seed": 3})
    std = reduce.std(da, over=("T", "seed")).values
    np.testing.assert_allclose(std, values.reshape(-1, 5).std(axis=0, ddof=1), rtol=1e-12)


# --------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------


def test_bootstrap_ci_covers_the_true_mean_at_the_asked_level():
    rng = np.random.default_rng(5)
    values = rng.normal(size=(40, 400))  # 400 independent columns of 40 members
    da = xr.DataArray(values, dims=("seed", "col")).chunk({"col": 100})
    ci = reduce.bootstrap_ci(da, "mean", over="seed", n=400, level=0.9).compute()
    covered = float(((ci["lower"] <= 0) & (ci["upper"] >= 0)).mean())
    assert 0.82 < covered < 0.96
    np.testing.assert_allclose(ci["estimate"], values.mean(axis=0))
    assert (ci["count"] == 40).all()


@pytest.mark.parametrize(
    "stat",
    ["mean", "median", "std", 0.9, np.max],
    ids=["mean", "median", "std", "q0.9", "callable"],
)
def test_bootstrap_ci_is_deterministic_and_chunking_independent(stat):
    ds = grid_ensemble(seeds=8, status=np.where(np.eye(4, 8, dtype=bool), 2, 1).astype("i1"))
    a = reduce.bootstrap_ci(ds["M"], stat, over=("seed",), n=60, rng_seed=3).compute()
    b = reduce.bootstrap_ci(
        ds["M"].chunk({"T": 4, "seed": 3, "sweep": 5}), stat, over="seed", n=60, rng_seed=3
    ).compute()
    xr.testing.assert_identical(a, b)
    assert bool((a["lower"] <= a["upper"]).all())
    assert (a["count"] == 7).all()


def test_bootstrap_ci_of_a_dataset_and_errors():
    ds = grid_ensemble()
    ci = reduce.bootstrap_ci(ds, "mean", over="seed", n=20)
    assert {"M_estimate", "M_lower", "M_upper", "M_count", "chi_upper"} <= set(ci.data_vars)
    with pytest.raises(AnalysisError, match="stat='mode'"):
        reduce.bootstrap_ci(ds["M"], "mode", over="seed")
    with pytest.raises(AnalysisError, match=r"level=1\.5"):
        reduce.bootstrap_ci(ds["M"], over="seed", level=1.5)
    with pytest.raises(AnalysisError, match="n=0"):
        reduce.bootstrap_ci(ds["M"], over="seed", n=0)


# --------------------------------------------------------------------------------------
# the Ising model, computed independently
# --------------------------------------------------------------------------------------


def test_ising_envelope_matches_an_independent_computation():
    pytest.importorskip("ensembles.models.ising")
    ds = ising_ensemble()
    m = ds["M"].values
    band = reduce.envelope(ds["M"], over="seed", q=(0.025, 0.975)).compute()
    np.testing.assert_allclose(band["mean"], m.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(band["upper"], np.quantile(m, 0.975, axis=1), rtol=1e-12)
    flat = reduce.envelope(ds["M"], over=("T", "seed")).compute()
    np.testing.assert_allclose(flat["lower"], np.quantile(m.reshape(-1, m.shape[2]), 0.025, 0))
    # ordered phase at T = 1.5: |M| close to one
    assert float(abs(band["mean"].sel(T=1.5)).min()) > 0.8


def test_dask_scheduler_config_is_respected():
    """The kernels run wherever dask runs them: the synchronous scheduler works too."""
    with dask.config.set(scheduler="synchronous"):
        band = reduce.envelope(grid_ensemble()["M"]).compute()
    assert band["count"].values[0] == 20


@pytest.mark.distributed
def test_reductions_run_on_a_distributed_cluster(client):
    ds = grid_ensemble(status=_status_with_failures())
    band = reduce.envelope(ds["M"], over="seed")
    ci = reduce.bootstrap_ci(ds["chi"], "mean", over="seed", n=50)
    std = reduce.std(ds["E"], over=("T", "seed"))
    band_d, ci_d, std_d = client.compute([band, ci, std], sync=True)
    xr.testing.assert_identical(band_d, band.compute(scheduler="sync"))
    xr.testing.assert_identical(ci_d, ci.compute(scheduler="sync"))
    xr.testing.assert_allclose(std_d, std.compute(scheduler="sync"))


def test_in_memory_status_with_dask_data():
    ds = grid_ensemble(status=_status_with_failures())
    da = ds["M"].assign_coords(status=ds["status"].compute())
    assert not isinstance(da["status"].data, dask.array.Array)
    with no_compute():
        band = reduce.envelope(da, over="seed")
    np.testing.assert_array_equal(band["count"].isel(sweep=0), [4, 5, 3, 0])
