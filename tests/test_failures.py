"""Failed members named by their parameters: the run report, the table, the grouping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ensembles as ens
from ensembles.analysis.failures import failure_report, failures
from ensembles.report import format_failures, format_value, member_label, split_error

from . import sims

#: a ~ Normal(0, 1): of 8 samples, those below 0 fail (sims.flaky raises for a < 0)
SAMPLED = ens.Points([{"a": 3.0}]) + ens.Sample(a=ens.Normal(0.0, 1.0), n=8, seed=11)


@pytest.fixture(scope="module")
def sampled_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("failures") / "sampled.zarr"
    ds = ens.Ensemble(sims.flaky, SAMPLED, seeds=2, root_seed=3).to_zarr(path, progress=False)
    assert int((ds["status"] == 2).sum()) > 0  # the design has negative samples
    return path


def test_failures_table_has_one_row_per_failed_member(sampled_store):
    ds = ens.open_ensemble(sampled_store)
    table = ds.ens.failures()
    assert list(table.columns) == [
        "sample",
        "a",
        "seed",
        "member_seed",
        "error",
        "message",
        "attempts",
    ]
    status = ds["status"].values
    sample, seed = np.nonzero(status == 2)
    assert len(table) == len(sample)
    np.testing.assert_array_equal(table["sample"], sample)
    np.testing.assert_array_equal(table["seed"], seed)
    a = ds["a"].values[sample]
    np.testing.assert_array_equal(table["a"], a)  # exact values, not rounded
    assert (table["a"] < 0).all()
    np.testing.assert_array_equal(table["member_seed"], ds["member_seed"].values[sample, seed])
    assert (table["error"] == "ValueError").all()
    assert table["message"].tolist() == [f"a must be non-negative, got {v}" for v in a]
    assert (table["attempts"] == 1).all()
    # the DataArray accessor gives the same table; the plain function too
    pd.testing.assert_frame_equal(ds["y"].ens.failures(), table)
    pd.testing.assert_frame_equal(failures(ds), table)


def test_the_run_report_names_members_by_parameters(tmp_path, capsys):
    e = ens.Ensemble(sims.flaky, SAMPLED, seeds=2, root_seed=3)
    ds = e.to_zarr(tmp_path / "s.zarr", progress=True)
    err = capsys.readouterr().err
    table = ds.ens.failures()
    n = len(table)
    assert f"{n} of 18 members failed (recorded in {tmp_path / 's.zarr'}), by error:" in err
    first = table.iloc[0]
    group = (
        f"  ValueError: a must be non-negative, got {first['a']} (2 members)\n"
        f"    a={format_value(first['a'])}, seed=0\n"
        f"    a={format_value(first['a'])}, seed=1\n"
    )
    assert group in err
    assert "members 2" not in err  # not flat indices
    # `ensembles info` prints the same groups from the store
    assert failure_report(ds) in err


def test_compute_report_and_table_without_messages(capsys):
    e = ens.Ensemble(sims.flaky_ab, ens.Grid(a=[-1.0, 2.0]) * ens.Grid(b=[1, 2]), seeds=1)
    ds = e.compute(on_error="record", progress=True)
    err = capsys.readouterr().err
    assert "2 of 4 members failed, by error:" in err
    assert "    a=-1.0, b=1, seed=0\n    a=-1.0, b=2, seed=0\n" in err
    table = ds.ens.failures()  # in memory: parameters and seeds, no messages
    assert table[["a", "b", "seed"]].values.tolist() == [[-1.0, 1, 0], [-1.0, 2, 0]]
    assert (table["message"] == "").all()


def test_no_failures_gives_an_empty_table(tmp_path):
    ds = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, 2.0]), seeds=2).to_zarr(
        tmp_path / "ok.zarr", progress=False
    )
    table = ds.ens.failures()
    assert table.empty
    assert list(table.columns)[:3] == ["a", "seed", "member_seed"]
    assert failure_report(ds) == ""


def test_grouping_is_by_type_and_first_line_largest_first():
    failed = [(f"x={i}, seed=0", "OSError", f"disk full\nat block {i}") for i in range(5)]
    failed.append(("x=9, seed=1", "ValueError", "bad x"))
    text = format_failures(failed, per_group=2)
    assert text.splitlines() == [
        "  OSError: disk full (5 members)",
        "    x=0, seed=0",
        "    x=1, seed=0",
        "    ... and 3 more",
        "  ValueError: bad x (1 member)",
        "    x=9, seed=1",
    ]
    many = [(f"m{i}", "E", f"error {i}") for i in range(8)]
    assert format_failures(many, groups=5).splitlines()[-1] == (
        "  ... and 3 more members with 3 other errors"
    )
    assert format_failures([]) == ""


def test_labels_and_error_texts():
    assert member_label({"T": np.float64(3.07391234), "model": "ising"}, 2) == (
        "T=3.0739, model='ising', seed=2"
    )
    assert format_value(np.int64(7)) == "7"
    assert format_value(float("nan")) == "nan"
    assert split_error("CommandError: exit 1\nstderr: boom") == (
        "CommandError",
        "exit 1\nstderr: boom",
    )
    assert split_error("") == ("", "")
