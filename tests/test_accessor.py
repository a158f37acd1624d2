"""The ``.ens`` accessor: registered on Dataset and DataArray, lazy, delegating."""

from __future__ import annotations

import inspect
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import xarray as xr

import ensembles.analysis.accessor
from ensembles.analysis import convergence, plot, reduce, sensitivity
from ensembles.analysis import summary as tables

from ._analysis_data import grid2_ensemble, grid_ensemble, no_compute, sample_ensemble


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_accessor_is_registered_on_both_types():
    ds = grid_ensemble()
    assert isinstance(ds.ens, ensembles.analysis.accessor.EnsembleDatasetAccessor)
    assert isinstance(ds["M"].ens, ensembles.analysis.accessor.EnsembleDataArrayAccessor)
    assert ds.ens.member_dims == ("T", "seed")
    assert ds["M"].ens.member_dims == ("T", "seed")


def test_the_module_imports_standalone():
    code = "import xarray as xr, ensembles.analysis.accessor; assert hasattr(xr.DataArray, 'ens')"
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True)


LAZY = {
    "count": (lambda o: o.ens.count(over="seed"), lambda o: reduce.count(o, over="seed")),
    "mean": (lambda o: o.ens.mean(), lambda o: reduce.mean(o)),
    "std": (lambda o: o.ens.std(over="seed", ddof=0), lambda o: reduce.std(o, "seed", 0)),
    "sem": (lambda o: o.ens.sem(over="seed"), lambda o: reduce.sem(o, over="seed")),
    "quantile": (
        lambda o: o.ens.quantile([0.2, 0.8], over="seed", method="hazen"),
        lambda o: reduce.quantile(o, [0.2, 0.8], over="seed", method="hazen"),
    ),
    "envelope": (
        lambda o: o.ens.envelope(over=("T", "seed"), q=(0.1, 0.9), median=True),
        lambda o: reduce.envelope(o, over=("T", "seed"), q=(0.1, 0.9), median=True),
    ),
    "bootstrap_ci": (
        lambda o: o.ens.bootstrap_ci("median", over="seed", n=30, level=0.8, method="lower"),
        lambda o: reduce.bootstrap_ci(o, "median", over="seed", n=30, level=0.8, method="lower"),
    ),
    "envelope-method": (
        lambda o: o.ens.envelope(method="weibull"),
        lambda o: reduce.envelope(o, method="weibull"),
    ),
    "check_convergence": (
        lambda o: o.ens.check_convergence(0.5, n=30),
        lambda o: convergence.check_convergence(o, 0.5, n=30),
    ),
}


@pytest.mark.parametrize("calls", list(LAZY.values()), ids=list(LAZY))
@pytest.mark.parametrize("kind", ["DataArray", "Dataset"])
def test_accessor_methods_are_lazy_and_delegate(calls, kind):
    ds = grid_ensemble()
    obj = ds["M"] if kind == "DataArray" else ds
    via_accessor, direct = calls
    with no_compute():
        result = via_accessor(obj)
        expected = direct(obj)
    xr.testing.assert_identical(result.compute(), expected.compute())


def test_dataarray_only_methods_delegate():
    ds = grid2_ensemble()
    with no_compute():
        conv = ds["y"].ens.convergence(sizes=[2, 4], n=20)
        sens = ds["y"].ens.sensitivity()
        effects = ds["y"].ens.main_effects()
    xr.testing.assert_identical(
        conv.compute(), convergence.convergence(ds["y"], sizes=[2, 4], n=20).compute()
    )
    xr.testing.assert_identical(sens.compute(), sensitivity.sensitivity(ds["y"]).compute())
    xr.testing.assert_identical(effects.compute(), sensitivity.main_effects(ds["y"]).compute())


def test_tables_through_the_accessor():
    ds = sample_ensemble(n=5)
    pd.testing.assert_frame_equal(ds.ens.summary(vars=["y"]), tables.summary(ds, vars=["y"]))
    pd.testing.assert_frame_equal(ds["y"].ens.summary(), tables.summary(ds["y"]))
    pd.testing.assert_frame_equal(ds["M"].ens.to_frame(), tables.to_frame(ds["M"]))
    assert ds.ens.groups(vars=["y"]) == tables.groups(ds, vars=["y"])


def test_plots_through_the_accessor(tmp_path):
    ds = grid2_ensemble()
    ax = ds["M"].ens.plot_envelope(over=("L", "seed"), hue="T")
    assert len(ax.lines) == 3
    ax.figure.savefig(tmp_path / "envelope.png")
    ax = ds.ens.plot_sensitivity("T", var="y", hue="L")
    assert len(ax.containers) == 2
    ax = ds["y"].ens.plot_heatmap("T", "L")
    assert ax.get_xlabel() == "T"
    assert isinstance(ax, type(plot.plot_heatmap(ds["y"], "T", "L")))


# --------------------------------------------------------------------------------------
# one rule for over=None
# --------------------------------------------------------------------------------------


def test_every_over_defaults_to_none():
    for cls in (
        ensembles.analysis.accessor.EnsembleDatasetAccessor,
        ensembles.analysis.accessor.EnsembleDataArrayAccessor,
    ):
        takes_over = [
            name
            for name, method in inspect.getmembers(cls, inspect.isfunction)
            if "over" in inspect.signature(method).parameters
        ]
        assert len(takes_over) >= 13
        for name in takes_over:
            assert inspect.signature(getattr(cls, name)).parameters["over"].default is None, name


def test_statistics_reduce_every_member_dim():
    ds = grid_ensemble()
    everything = ("T", "seed")
    xr.testing.assert_identical(ds["M"].ens.mean(), reduce.mean(ds["M"], over=everything))
    assert ds["M"].ens.quantile(0.5).dims == ("sweep",)
    assert ds["M"].ens.envelope().attrs["over"] == ["T", "seed"]
    assert ds["M"].ens.bootstrap_ci(n=10).attrs["over"] == ["T", "seed"]
    assert ds.ens.count()["chi"].dims == ()


def test_per_design_point_methods_reduce_the_seeds():
    ds = grid2_ensemble()
    pd.testing.assert_frame_equal(
        ds.ens.summary(vars=["y"]), tables.summary(ds, over="seed", vars=["y"])
    )
    assert len(ds.ens.summary(vars=["y"])) == 6  # one row per (T, L)
    assert ds.ens.groups(vars=["y"]) == tables.groups(ds, over="seed", vars=["y"])
    check = ds["y"].ens.check_convergence(0.5, n=20)
    assert check["converged"].dims == ("T", "L")
    conv = ds["y"].ens.convergence(sizes=[2, 4], n=20)
    assert conv.attrs["over"] == ["seed"]
    assert ds["y"].ens.sensitivity().attrs["over"] == ["seed"]
    assert ds["y"].ens.main_effects().attrs["over"] == ["seed"]


def test_plots_keep_the_dims_they_draw():
    ds = grid2_ensemble()
    ax = ds["M"].ens.plot_envelope(hue="T", over=None)  # reduces L and seed, keeps T
    assert len(ax.lines) == 3
    assert "over L, seed" in ax.get_title()
    ax = ds.ens.plot_sensitivity("T", var="y")  # reduces L and seed
    assert "over L, seed" in ax.get_title()
    ax = ds["y"].ens.plot_heatmap("T", "L")  # reduces seed
    assert ax.get_title() == "y: mean over seed"
