"""bootstrap_ci: whole-member resampling against a direct computation, gaps, the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr

from ensembles.analysis import reduce
from ensembles.analysis.bootstrap import replicates

from ._analysis_data import grid_ensemble

ROOT = Path(__file__).resolve().parent.parent


def _std(values):
    return np.std(values, ddof=1) if values.size > 1 else np.nan


STATS = {  # reference statistic given the quantile method; compared to rounding only?
    "mean": (lambda method: np.mean, True),
    "median": (lambda method: np.median, False),
    "std": (lambda method: _std, True),
    0.9: (lambda method: lambda v: np.quantile(v, 0.9, method=method), False),
}


def _reference(column, ok, stat, n, level, rng_seed, method):
    """One column the slow, obvious way: resample its ok members, skip their NaN."""
    func = STATS[stat][0](method)
    members = column[ok]
    used = members.size
    present = members[~np.isnan(members)]
    if present.size == 0:
        return np.nan, np.nan, np.nan
    draws = np.random.default_rng([rng_seed, used]).integers(0, used, (n, used))
    reps = np.array(
        [func(v[~np.isnan(v)]) if (~np.isnan(v)).any() else np.nan for v in members[draws]]
    )
    tail = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lower, upper = np.nanquantile(reps, [tail, 1 - tail], method=method)
    return func(present), lower, upper


def _series_with_gaps(rng_seed=0, temps=3, seeds=12, steps=9):
    """M(T, seed, sweep): failed and pending members, and series that stop early (NaN)."""
    rng = np.random.default_rng(rng_seed)
    values = rng.normal(size=(temps, seeds, steps))
    status = np.ones((temps, seeds), dtype=np.int8)
    status[0, 2] = 2
    status[1, [0, 5]] = 0
    ends = rng.integers(2, steps, (temps, seeds))
    stops = rng.random((temps, seeds)) < 0.4
    values[stops[..., None] & (np.arange(steps) >= ends[..., None])] = np.nan
    values[status != 1] = np.nan
    return xr.DataArray(
        values,
        dims=("T", "seed", "sweep"),
        coords={"T": [1.0, 2.0, 3.0][:temps], "status": (("T", "seed"), status)},
        name="M",
    )


@pytest.mark.parametrize("stat", list(STATS), ids=[str(s) for s in STATS])
@pytest.mark.parametrize("method", ["linear", "median_unbiased"])
def test_bootstrap_ci_equals_a_direct_computation(stat, method):
    da = _series_with_gaps()
    ci = reduce.bootstrap_ci(
        da.chunk({"T": 1, "sweep": 4}), stat, over="seed", n=300, rng_seed=5, method=method
    ).compute()
    ok = da["status"].values == 1
    for t in range(da.sizes["T"]):
        for s in range(da.sizes["sweep"]):
            column = da.values[t, :, s]
            expected = _reference(column, ok[t], stat, 300, 0.95, 5, method)
            got = [ci[k].values[t, s] for k in ("estimate", "lower", "upper")]
            if STATS[stat][1]:  # sums over drawn members: the same to rounding
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
            else:  # order statistics: bit for bit
                np.testing.assert_array_equal(got, expected)
            assert ci["count"].values[t, s] == np.sum(ok[t] & ~np.isnan(column))


def test_complete_positions_resample_exactly_their_members():
    """Where every ok member has a value, the draws are those of [rng_seed, ok members]."""
    da = _series_with_gaps()
    ci = reduce.bootstrap_ci(da, "median", over="seed", n=200, rng_seed=1).compute()
    first = da.isel(T=0, sweep=0).values  # no series has ended at the first step
    members = first[da["status"].values[0] == 1]
    assert not np.isnan(members).any()
    draws = np.random.default_rng([1, members.size]).integers(0, members.size, (200, members.size))
    reps = np.median(members[draws], axis=1)
    expected = np.quantile(reps, [0.025, 0.975])
    np.testing.assert_array_equal([ci["lower"][0, 0], ci["upper"][0, 0]], expected)


@pytest.mark.parametrize("stat", ["mean", "median", "std", 0.25, np.nanmax])
def test_bootstrap_ci_with_gaps_does_not_depend_on_chunking(stat):
    da = _series_with_gaps(rng_seed=3, seeds=15, steps=11)
    a = reduce.bootstrap_ci(da, stat, over=("T", "seed"), n=80, rng_seed=2).compute()
    b = reduce.bootstrap_ci(
        da.chunk({"T": 1, "seed": 4, "sweep": 3}), stat, over=("T", "seed"), n=80, rng_seed=2
    ).compute()
    xr.testing.assert_identical(a, b)
    assert bool((a["lower"] <= a["upper"]).all())


def test_resamples_without_a_value_are_left_out():
    """One ok member of nine has a value: most resamples draw none; the rest agree."""
    values = np.full((9, 2), np.nan)
    values[4] = [2.5, 7.0]
    values[:, 1] = np.arange(9.0)  # a complete column beside it
    da = xr.DataArray(values, dims=("seed", "sweep"))
    ci = reduce.bootstrap_ci(da, "mean", over="seed", n=100).compute()
    np.testing.assert_array_equal(ci["lower"].values[0], 2.5)
    np.testing.assert_array_equal(ci["upper"].values[0], 2.5)
    assert ci["count"].values.tolist() == [1, 9]
    assert ci["lower"].values[1] < 4.0 < ci["upper"].values[1]


def test_replicates_skip_missing_values_of_drawn_members():
    x = np.array([[1.0, 1.0, 4.0], [3.0, np.nan, np.nan], [5.0, 2.0, np.nan]])
    draws = np.array([[0, 1, 2], [1, 1, 1], [2, 2, 0]])
    got = replicates(x, draws, "mean", np.mean)
    expected = [[3.0, 1.5, 4.0], [3.0, np.nan, np.nan], [11 / 3, 5 / 3, 4.0]]
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    median = replicates(x, draws, "median", np.median)
    np.testing.assert_array_equal(
        median, [[3.0, 1.5, 4.0], [3.0, np.nan, np.nan], [5.0, 2.0, 4.0]]
    )


def test_bootstrap_stays_lazy(counting_scheduler):
    da = _series_with_gaps().chunk({"T": 1})
    ci = [reduce.bootstrap_ci(da, s, over="seed", n=30) for s in ("mean", "std", "median")]
    ci.append(grid_ensemble()["M"].ens.bootstrap_ci(over="seed", n=30))
    assert counting_scheduler.computes == 0
    dask.compute(*ci)
    assert counting_scheduler.computes == 1


def test_benchmark_quick_mode_runs(tmp_path):
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_bootstrap.py"),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio varying / constant" in result.stdout
    report = json.loads(out.read_text())
    (round_,) = report["results"]["mean"]
    assert round_["ratio"] > 0
    assert report["counts"]["constant"]["distinct"] == 1
    assert report["counts"]["varying"]["distinct"] > 1
