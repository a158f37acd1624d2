"""Envelope, sensitivity and heatmap plots: saved as PNG, with the expected axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection, QuadMesh

from ensembles.analysis import plot
from ensembles.analysis.reduce import AnalysisError

from ._analysis_data import grid2_ensemble, grid_ensemble, sample_ensemble

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _save(ax, tmp_path, name="figure.png"):
    path = tmp_path / name
    ax.figure.savefig(path)
    assert path.read_bytes()[:8] == PNG
    return path


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_plot_envelope_one_band(tmp_path):
    ds = grid_ensemble()
    ax = plot.plot_envelope(ds["M"], q=(0.05, 0.95))
    _save(ax, tmp_path)
    assert len(ax.lines) == 1
    assert len(_bands(ax)) == 1
    assert ax.get_xlabel() == "sweep"
    assert ax.get_ylabel() == "magnetization per spin"  # units "1": dimensionless, no "[1]"
    assert "over T, seed" in ax.get_title()
    assert "n = 20" in ax.get_title()
    np.testing.assert_allclose(ax.lines[0].get_xdata(), ds["sweep"].values)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["5-95 % band", "mean"]


def test_plot_envelope_one_colour_per_design_point(tmp_path):
    ds = grid_ensemble(status=np.where(np.eye(4, 5, dtype=bool), 2, 1).astype("i1"))
    ax = plot.plot_envelope(ds, over="seed", hue="T", var="M", median=True)
    _save(ax, tmp_path)
    assert len(_bands(ax)) == 4
    assert len(ax.lines) == 8  # mean and median per temperature
    colours = {
        tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
        for line in ax.lines
    }
    assert len(colours) == 4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["T = 1.5", "T = 2", "T = 2.5", "T = 3"]
    assert "n = 4" in ax.get_title()


def test_plot_envelope_many_design_points_use_a_colorbar(tmp_path):
    ds = sample_ensemble(n=25)
    ds = ds.drop_vars("h")  # one parameter along sample: it colours the lines
    ax = plot.plot_envelope(ds["M"], over="seed", max_lines=25)
    _save(ax, tmp_path)
    assert len(ax.lines) == 25
    assert len(ax.figure.axes) == 2  # the plot and its colorbar
    assert ax.figure.axes[1].get_ylabel() == "T"


def test_plot_envelope_of_a_scalar_output_against_its_parameter():
    ax = plot.plot_envelope(grid_ensemble()["chi"], over="seed")
    assert ax.get_xlabel() == "T"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1.5, 2.0, 2.5, 3.0])


def test_plot_envelope_draws_on_the_given_axes():
    _, axes = plt.subplots(1, 2)
    out = plot.plot_envelope(grid_ensemble()["E"], ax=axes[1])
    assert out is axes[1]
    assert out.get_ylabel() == "energy per spin [J]"
    assert not axes[0].lines


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda ds: plot.plot_envelope(ds), r"several outputs .* pass var="),
        (lambda ds: plot.plot_envelope(ds, var="nope"), r"var='nope' is not an output"),
        (lambda ds: plot.plot_envelope(ds["chi"]), r"cannot choose the x axis"),
        (lambda ds: plot.plot_envelope(ds["M"], x="T"), r"x='T' is not a dim left"),
        (lambda ds: plot.plot_envelope(ds["M"], over="seed", hue="L"), r"hue='L'"),
    ],
    ids=["no-var", "unknown-var", "no-x", "reduced-x", "unknown-hue"],
)
def test_plot_envelope_errors(call, match):
    with pytest.raises(AnalysisError, match=match):
        call(grid_ensemble())


def test_plot_envelope_refuses_leftover_dims():
    with pytest.raises(AnalysisError, match=r"dims \['T', 'L'\] remain"):
        plot.plot_envelope(grid2_ensemble()["M"], over="seed")


def test_plot_sensitivity_of_a_grid_parameter(tmp_path):
    ds = grid_ensemble()
    ax = plot.plot_sensitivity(ds, "T", var="M", aggregate="mean")
    _save(ax, tmp_path)
    assert ax.get_xlabel() == "T"
    assert ax.get_ylabel() == "magnetization per spin"
    (container,) = ax.containers
    x, y = container.lines[0].get_data()
    np.testing.assert_allclose(x, ds["T"].values)
    np.testing.assert_allclose(y, ds["M"].values.mean(axis=(1, 2)), rtol=1e-12)
    assert "mean ± sem" in ax.get_title()


def test_plot_sensitivity_main_effect_and_hue(tmp_path):
    ds = grid2_ensemble()
    ax = plot.plot_sensitivity(ds, "T", var="y", errorbar="std")
    (container,) = ax.containers
    np.testing.assert_allclose(container.lines[0].get_ydata(), ds["y"].values.mean(axis=(1, 2)))
    assert "over L, seed" in ax.get_title()
    ax = plot.plot_sensitivity(ds, "T", var="y", hue="L")
    _save(ax, tmp_path)
    assert len(ax.containers) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["L = 8", "L = 16"]


def test_plot_sensitivity_of_a_sampled_parameter(tmp_path):
    ds = sample_ensemble(n=12)
    ax = plot.plot_sensitivity(ds["y"], "T")
    _save(ax, tmp_path)
    x = ax.containers[0].lines[0].get_xdata()
    assert np.all(np.diff(x) >= 0)
    np.testing.assert_allclose(np.sort(ds["T"].values), x)


def test_plot_sensitivity_errors():
    ds = grid_ensemble()
    with pytest.raises(AnalysisError, match=r"output dims \['sweep'\]: pass aggregate="):
        plot.plot_sensitivity(ds, "T", var="M")
    with pytest.raises(AnalysisError, match=r"param='L' is not a parameter"):
        plot.plot_sensitivity(ds, "L", var="chi")
    with pytest.raises(AnalysisError, match=r"errorbar='ci'"):
        plot.plot_sensitivity(ds, "T", var="chi", errorbar="ci")


@pytest.mark.parametrize("stat", ["mean", "std", "count", 0.9])
def test_plot_heatmap(tmp_path, stat):
    ds = grid2_ensemble()
    ax = plot.plot_heatmap(ds, "T", "L", var="M", stat=stat, aggregate="mean")
    _save(ax, tmp_path)
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    assert mesh.get_array().shape == (2, 3)
    assert ax.get_xlabel() == "T"
    assert ax.get_ylabel() == "L"
    assert len(ax.figure.axes) == 2
    if stat == "mean":
        expected = ds["M"].values.mean(axis=(2, 3)).T
        np.testing.assert_allclose(np.asarray(mesh.get_array()), expected, rtol=1e-12)


def test_plot_heatmap_errors():
    ds = grid2_ensemble()
    with pytest.raises(AnalysisError, match=r"'sample' is not a grid dim"):
        plot.plot_heatmap(ds, "T", "sample", var="y")
    with pytest.raises(AnalysisError, match=r"stat='mode'"):
        plot.plot_heatmap(ds, "T", "L", var="y", stat="mode")


def test_axis_label():
    da = grid_ensemble()["E"]
    assert plot.axis_label(da) == "energy per spin [J]"
    assert plot.axis_label(da.copy(data=da.data).rename("x").drop_attrs()) == "x"
    assert plot.axis_label(da.assign_attrs(units="1")) == "energy per spin"
    assert plot.axis_label(da.assign_attrs(units="")) == "energy per spin"
    assert plot.axis_label(da.assign_attrs(units="1/J")) == "energy per spin [1/J]"


# --------------------------------------------------------------------------------------
# readable figures: few lines, legends beside the data, the CLI's resolution
# --------------------------------------------------------------------------------------


def test_too_many_lines_are_refused_with_the_better_call():
    ds = sample_ensemble(n=25)
    with pytest.raises(AnalysisError) as info:
        plot.plot_envelope(ds["M"], over="seed")
    text = str(info.value)
    assert "25 values of 'sample' would draw 25 overlapping lines" in text
    assert "over=('sample', 'seed')" in text
    assert "--over sample seed" in text
    assert "max_lines=25" in text
    assert not plt.get_fignums()  # refused before drawing anything
    ax = plot.plot_envelope(ds["M"], over=("sample", "seed"))  # the better call: one band
    assert len(ax.lines) == 1
    grid = grid2_ensemble(L=tuple(range(8, 20)))
    with pytest.raises(AnalysisError, match=r"12 values of 'L'.*--over L seed"):
        plot.plot_sensitivity(grid, "T", var="y", hue="L")
    assert plot.plot_sensitivity(grid, "T", var="y", hue="L", max_lines=12).containers


def _overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


LEGENDS = {
    "one band": lambda: plot.plot_envelope(grid_ensemble()["M"], median=True),
    "bands per T": lambda: plot.plot_envelope(grid_ensemble()["M"], over="seed"),
    "sensitivity": lambda: plot.plot_sensitivity(grid2_ensemble(), "T", var="y", hue="L"),
    "one series": lambda: plot.plot_sensitivity(grid_ensemble(), "T", var="chi"),
}


@pytest.mark.parametrize("draw", list(LEGENDS.values()), ids=list(LEGENDS))
def test_legends_sit_beside_the_data_and_inside_the_saved_figure(tmp_path, draw):
    ax = draw()
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert not _overlap(legend, ax.get_window_extent())  # never on the data
    assert fig.bbox.contains(legend.x0, legend.y0)  # not cut off when saved
    assert fig.bbox.contains(legend.x1, legend.y1)
    _save(ax, tmp_path)


def test_new_figures_have_the_cli_resolution(tmp_path):
    from PIL import Image

    ax = plot.plot_envelope(grid_ensemble()["M"])
    assert ax.figure.dpi == plot.DPI == 120
    path = _save(ax, tmp_path)
    dpi = Image.open(path).info["dpi"]
    assert dpi == pytest.approx((120, 120), abs=0.1)


def test_plot_envelope_keeps_its_hue_and_uses_the_method():
    ds = grid_ensemble()
    ax = plot.plot_envelope(ds["M"], hue="T", method="lower")  # over=None keeps T
    assert len(_bands(ax)) == 4
    assert "over seed" in ax.get_title()
    band = ds["M"].ens.envelope(over="seed", method="lower").compute()
    lower = _bands(ax)[0].get_paths()[0].vertices[1 : 1 + ds.sizes["sweep"], 1]
    np.testing.assert_array_equal(lower, band["lower"].isel(T=0).values)
