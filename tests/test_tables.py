"""Summaries, long tables, groups and CSV/Parquet/JSON exports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ensembles.analysis import summary as tables
from ensembles.analysis.reduce import AnalysisError

from ._analysis_data import grid_ensemble, ising_ensemble, sample_ensemble


def _status():
    status = np.ones((4, 5), dtype=np.int8)
    status[0, 1] = 2
    status[2, 4] = 0
    return status


def test_summary_of_a_scalar_output_matches_numpy_per_design_point():
    ds = grid_ensemble(status=_status())
    df = tables.summary(ds, over="seed", q=(0.1, 0.5, 0.9), vars=["chi"])
    assert list(df.columns) == ["variable", "T", "n", "mean", "std", "q0.1", "q0.5", "q0.9"]
    values = ds["chi"].values  # NaN where not ok
    for i, row in df.iterrows():
        ok = values[i][~np.isnan(values[i])]
        assert row["variable"] == "chi"
        assert row["T"] == ds["T"].values[i]
        assert row["n"] == ok.size
        assert row["mean"] == pytest.approx(ok.mean(), rel=1e-12)
        assert row["std"] == pytest.approx(ok.std(ddof=1), rel=1e-12)
        assert row["q0.9"] == pytest.approx(np.quantile(ok, 0.9), rel=1e-12)
    assert list(df["n"]) == [4, 5, 4, 5]


def test_summary_of_a_time_aggregate():
    ds = grid_ensemble(status=_status())
    df = tables.summary(ds, vars=["M"], aggregate="mean", q=(0.5,))
    per_member = ds["M"].values.mean(axis=-1)
    ok = per_member[1][~np.isnan(per_member[1])]
    row = df[df["T"] == 2.0].iloc[0]
    assert row["mean"] == pytest.approx(ok.mean(), rel=1e-12)
    assert row["q0.5"] == pytest.approx(np.median(ok), rel=1e-12)
    last = tables.summary(ds, vars=["M"], aggregate="last", q=())
    assert last["mean"].iloc[1] == pytest.approx(ds["M"].values[1, :, -1].mean(), rel=1e-12)
    custom = tables.summary(ds, vars=["M"], aggregate=lambda da, dims: da.max(dims), q=())
    assert custom["mean"].iloc[1] == pytest.approx(ds["M"].values[1].max(axis=-1).mean())


def test_summary_of_a_time_series_has_one_row_per_step():
    ds = grid_ensemble()
    df = tables.summary(ds, vars=["M", "E"])
    assert len(df) == 2 * 4 * 12
    assert list(df.columns[:3]) == ["variable", "T", "sweep"]
    row = df[(df["variable"] == "E") & (df["T"] == 3.0) & (df["sweep"] == 30)].iloc[0]
    assert row["mean"] == pytest.approx(ds["E"].values[3, :, 3].mean(), rel=1e-12)


def test_summary_of_a_sampled_design_has_parameter_columns():
    ds = sample_ensemble(n=6)
    df = tables.summary(ds, vars=["y"])
    assert list(df.columns[:4]) == ["variable", "T", "h", "sample"]
    np.testing.assert_allclose(df["T"], ds["T"].values)
    everything = tables.summary(ds, over=("sample", "seed"), vars=["y"])
    assert len(everything) == 1
    assert everything["n"].iloc[0] == 18
    pd.testing.assert_frame_equal(tables.summary(ds, over=None, vars=["y"]), df)


def test_summary_computes_once_and_reports_live_counts(counting_scheduler):
    status = np.zeros((4, 5), dtype=np.int8)
    status[:3, :2] = 1  # a run in progress
    ds = grid_ensemble(status=status)
    df = tables.summary(ds, aggregate="mean", method="hazen")
    assert counting_scheduler.computes == 1
    assert list(df[df["variable"] == "chi"]["n"]) == [2, 2, 2, 0]
    assert np.isnan(df[df["variable"] == "chi"]["mean"].iloc[3])


def test_summary_of_the_ising_ensemble_against_numpy():
    pytest.importorskip("ensembles.models.ising")
    ds = ising_ensemble()
    df = tables.summary(ds, vars=["E"], aggregate="mean", q=(0.025, 0.975))
    e = ds["E"].values.mean(axis=-1)
    np.testing.assert_allclose(df["mean"], e.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(df["std"], e.std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(df["q0.975"], np.quantile(e, 0.975, axis=1), rtol=1e-12)
    assert df["mean"].iloc[0] < df["mean"].iloc[1]  # colder is lower in energy


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"aggregate": "mode"}, r"aggregate='mode' is not known"),
        ({"vars": ["nope"]}, r"'nope' is not a data variable"),
        ({"over": "nope"}, r"dim 'nope' is not a dim"),
        ({"q": (0.5, 2.0)}, r"probabilities in \[0, 1\]"),
        ({"method": "cubic"}, r"method='cubic' is not a quantile method; use one of NumPy's"),
    ],
    ids=["aggregate", "vars", "over", "q", "method"],
)
def test_summary_rejects_invalid_arguments(kwargs, match):
    with pytest.raises(AnalysisError, match=match):
        tables.summary(grid_ensemble(), **kwargs)


def test_to_frame_lists_every_member_and_step():
    ds = grid_ensemble(status=_status())
    df = tables.to_frame(ds, vars=["M", "E"])
    assert len(df) == 4 * 5 * 12
    assert list(df.columns[:7]) == ["T", "seed", "member_seed", "status", "sweep", "M", "E"]
    assert set(df["status"]) == {0, 1, 2}
    failed = df[(df["T"] == 1.5) & (df["seed"] == 1)]
    assert (failed["status"] == 2).all()
    assert failed["M"].isna().all()
    row = df[(df["T"] == 2.5) & (df["seed"] == 3) & (df["sweep"] == 50)].iloc[0]
    assert row["M"] == float(ds["M"].sel(T=2.5, seed=3, sweep=50))
    scalar = tables.to_frame(ds, vars="chi")
    assert len(scalar) == 20
    sampled = tables.to_frame(sample_ensemble(n=4), vars=["y"])
    assert list(sampled.columns[:6]) == ["T", "h", "sample", "seed", "member_seed", "status"]


def test_to_frame_refuses_mixed_layouts():
    with pytest.raises(AnalysisError, match=r"do not share their output dims.*vars="):
        tables.to_frame(grid_ensemble())


def test_groups_gather_ok_members_by_parameters():
    ds = grid_ensemble(status=_status())
    out = tables.groups(ds, vars=["chi", "M"])
    assert [g["params"] for g in out] == [{"T": t} for t in (1.5, 2.0, 2.5, 3.0)]
    assert [g["n"] for g in out] == [4, 5, 4, 5]
    first = out[0]["samples"][1]
    assert first["seed"] == 2  # seed 1 failed
    assert first["chi"] == ds["chi"].values[0, 2]
    assert first["M"] == list(ds["M"].values[0, 2])
    json.dumps(out)  # plain Python values
    sampled = tables.groups(sample_ensemble(n=3))
    assert set(sampled[0]["params"]) == {"T", "h"}


def _frames():
    ds = grid_ensemble(status=_status())
    return {
        "summary": tables.summary(ds, vars=["chi", "M"]),
        "long": tables.to_frame(ds, vars=["M", "E"]),
    }


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
@pytest.mark.parametrize("which", ["summary", "long"])
def test_exports_read_back_equal(tmp_path, suffix, which):
    df = _frames()[which]
    path = tables.write_table(df, tmp_path / f"table{suffix}")
    assert path.exists()
    back = tables.read_table(path)
    # CSV and JSON do not keep integer widths (int8 status reads back as int64)
    pd.testing.assert_frame_equal(back, df, check_dtype=suffix == ".parquet", check_exact=True)


def test_json_export_is_valid_json_with_null_for_nan(tmp_path):
    df = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", "y"]})
    path = tables.write_table(df, tmp_path / "t.json")
    assert json.loads(path.read_text()) == [{"a": 1.0, "b": "x"}, {"a": None, "b": "y"}]


def test_unknown_extension_names_the_supported_ones(tmp_path):
    with pytest.raises(AnalysisError, match=r"\.csv.*\.parquet.*\.json"):
        tables.write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.xlsx")


def test_parameter_names():
    assert tables.parameter_names(grid_ensemble()) == ["T"]
    assert tables.parameter_names(sample_ensemble()) == ["T", "h"]


# --------------------------------------------------------------------------------------
# defaults on datasets that mix scalar outputs and time series
# --------------------------------------------------------------------------------------


def test_summary_default_covers_the_scalar_outputs_and_says_what_it_left_out():
    ds = grid_ensemble(status=_status())  # M(sweep), E(sweep) and the scalar chi
    with pytest.warns(UserWarning, match=r"left out 'M' \(over \['sweep'\]\), 'E'") as caught:
        df = tables.summary(ds)
    text = str(caught[0].message)
    assert "vars=['M']" in text
    assert "aggregate='mean'" in text
    assert set(df["variable"]) == {"chi"}
    assert list(df.columns) == ["variable", "T", "n", "mean", "std", "q0.025", "q0.5", "q0.975"]
    assert df.attrs["left_out"] == ["M", "E"]
    assert df.attrs["note"] == text
    pd.testing.assert_frame_equal(df, tables.summary(ds, vars=["chi"]))


def test_summary_default_includes_every_output_once_series_are_aggregated(recwarn):
    ds = grid_ensemble()
    df = tables.summary(ds, aggregate="last")
    assert set(df["variable"]) == {"M", "E", "chi"}
    assert "left_out" not in df.attrs
    assert not recwarn.list
    explicit = tables.summary(ds, vars=["chi", "M"])  # listed variables: all of them
    assert set(explicit["variable"]) == {"chi", "M"}
    assert not recwarn.list


def test_summary_default_without_scalars_takes_the_most_common_layout():
    ds = grid_ensemble().drop_vars("chi")
    ds["spectrum"] = ds["M"].isel(sweep=slice(0, 3)).rename(sweep="k").drop_vars("k")
    with pytest.warns(UserWarning, match=r"covers the over \['sweep'\] outputs \['M', 'E'\]"):
        df = tables.summary(ds)
    assert set(df["variable"]) == {"M", "E"}
    assert df.attrs["left_out"] == ["spectrum"]


def test_summary_default_of_a_stored_ensemble(tmp_path):
    """The issue's case: a store with a scalar output and a time series."""
    import ensembles as ens

    from . import sims

    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 0.5]), seeds=3, root_seed=1)
    e.to_zarr(tmp_path / "walk.zarr", progress=False)
    ds = ens.open_ensemble(tmp_path / "walk.zarr")
    with pytest.warns(UserWarning, match=r"left out 'x'"):
        df = ds.ens.summary()
    assert df["variable"].tolist() == ["final", "final"]
    assert df["drift"].tolist() == [0.0, 0.5]
    assert df["n"].tolist() == [3, 3]
    series = ds.ens.summary(aggregate="mean")
    assert sorted(set(series["variable"])) == ["final", "x"]


@pytest.mark.parametrize("method", ["hazen", "inverted_cdf", "nearest"])
def test_summary_quantiles_use_the_method(method):
    ds = grid_ensemble(status=_status())
    df = tables.summary(ds, vars=["chi"], q=(0.1, 0.9), method=method)
    values = ds["chi"].values
    for i in range(4):
        ok = values[i][~np.isnan(values[i])]
        expected = np.quantile(ok, [0.1, 0.9], method=method)
        assert [df["q0.1"].iloc[i], df["q0.9"].iloc[i]] == expected.tolist()
