"""Reading program output files (CSV/TSV long form, JSON, NetCDF, Zarr) into Datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from ensembles.errors import EnsembleError
from ensembles.simulations.output_files import FORMATS, OutputFileError, infer_format, read_output

# -- formats -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("results.csv", "csv"),
        ("a/b/RESULTS.CSV", "csv"),
        ("t.tsv", "tsv"),
        ("r.json", "json"),
        ("r.nc", "netcdf"),
        ("r.nc4", "netcdf"),
        ("run.zarr", "zarr"),
        ("run.zarr/", "zarr"),
    ],
)
def test_infer_format_from_extension(name, expected):
    assert infer_format(name) == expected
    assert expected in FORMATS


def test_infer_format_override_and_errors():
    assert infer_format("out.dat", "TSV") == "tsv"
    assert infer_format("out.dat", "nc") == "netcdf"
    with pytest.raises(OutputFileError, match=r"extension '\.dat'.*format="):
        infer_format("out.dat")
    with pytest.raises(OutputFileError, match="unknown output format 'xlsx'"):
        infer_format("out.csv", "xlsx")


def test_error_class_is_an_ensemble_value_error():
    assert issubclass(OutputFileError, EnsembleError)
    assert issubclass(OutputFileError, ValueError)


# -- CSV -----------------------------------------------------------------------------------


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_long_form_with_one_index(tmp_path):
    path = _write(tmp_path, "r.csv", "sweep,M,E\n10,0.5,-1.5\n20,0.25,-1.25\n30,0.125,-1\n")
    ds = read_output(path, index="sweep")
    assert ds["M"].dims == ("sweep",)
    assert ds["sweep"].values.tolist() == [10, 20, 30]
    assert ds["sweep"].dtype == np.int64
    np.testing.assert_array_equal(ds["E"].values, [-1.5, -1.25, -1.0])
    assert ds["E"].dtype == np.float64


def test_csv_long_form_pivots_two_index_columns_in_order_of_appearance(tmp_path):
    rows = ["ParamValue,sweep,M,E"]
    # written out of order on purpose: rows may come in any order, coords keep first seen
    for t, s in [(2.0, 20), (2.0, 10), (1.5, 20), (1.5, 10)]:
        rows.append(f"{t},{s},{t * 100 + s},{-s}")
    ds = read_output(
        _write(tmp_path, "r.csv", "\n".join(rows) + "\n"), index=["ParamValue", "sweep"]
    )
    assert ds["M"].dims == ("ParamValue", "sweep")
    assert ds["ParamValue"].values.tolist() == [2.0, 1.5]
    assert ds["sweep"].values.tolist() == [20, 10]
    assert ds["M"].sel(ParamValue=1.5, sweep=10).item() == 160.0
    assert ds["M"].sel(ParamValue=2.0, sweep=20).item() == 220.0
    assert ds["E"].sel(ParamValue=1.5, sweep=20).item() == -20


def test_csv_without_index(tmp_path):
    one = read_output(_write(tmp_path, "one.csv", "mean,n\n0.5,7\n"))
    assert one["mean"].dims == ()
    assert one["mean"].item() == 0.5
    assert one["n"].item() == 7
    many = read_output(_write(tmp_path, "many.csv", "x\n1\n2\n3\n"))
    assert many["x"].dims == ("row",)
    assert many["row"].values.tolist() == [0, 1, 2]


def test_csv_missing_values_booleans_quotes_and_whitespace(tmp_path):
    text = 'step, ok, "value"\n1, True, NA\n2, False, 2.5\n3, true, \n4, FALSE, nan\n'
    ds = read_output(_write(tmp_path, "r.csv", text), index="step")
    assert ds["ok"].dtype == bool
    assert ds["ok"].values.tolist() == [True, False, True, False]
    np.testing.assert_array_equal(ds["value"].values, [np.nan, 2.5, np.nan, np.nan])


def test_csv_variables_select_and_ignore_text_columns(tmp_path):
    path = _write(tmp_path, "r.csv", "sweep,label,M\n1,hot,0.5\n2,cold,0.7\n")
    with pytest.raises(OutputFileError, match="column 'label' holds the non-numeric value 'hot'"):
        read_output(path, index="sweep")
    ds = read_output(path, index="sweep", variables=["M"])
    assert list(ds.data_vars) == ["M"]
    with pytest.raises(OutputFileError, match=r"no variable\(s\) \['Q'\]"):
        read_output(path, index="sweep", variables=["Q"])


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("r.csv", "sweep,temp,M,ok\n10,3,1,True\n20,3,0,False\n"),
        ("r.tsv", "sweep\ttemp\tM\tok\n10\t3\t1\ttrue\n20\t3\t0\tfalse\n"),
        ("r.json", '{"sweep": [10, 20], "temp": [3, 3], "M": [1, 0], "ok": [true, false]}'),
    ],
    ids=["csv", "tsv", "json"],
)
def test_numbers_read_from_text_are_float64_whatever_a_member_wrote(tmp_path, name, text):
    """A member writing `3` stores like one writing `2.95`: the type never depends on it."""
    ds = read_output(_write(tmp_path, name, text), index="sweep")
    assert ds["temp"].dtype == np.float64
    assert ds["M"].dtype == np.float64
    assert ds["temp"].values.tolist() == [3.0, 3.0]
    assert ds["ok"].dtype == bool  # booleans stay booleans
    assert ds["sweep"].dtype == np.int64  # an index keeps its type
    floats = read_output(_write(tmp_path, "f" + name, text.replace("3", "2.95")), index="sweep")
    assert floats["temp"].dtype == ds["temp"].dtype


def test_a_declared_dtype_wins(tmp_path):
    big = 2**62 + 1  # not a float64: declared int64 keeps it exact
    path = _write(tmp_path, "r.csv", f"sweep,n,x,seed\n1,3,1.5,{big}\n2,4.0,2,{big}\n")
    ds = read_output(path, index="sweep", dtypes={"n": "int64", "x": "float32", "seed": "int64"})
    assert (ds["n"].dtype, ds["x"].dtype, ds["seed"].dtype) == ("int64", "float32", "int64")
    assert ds["n"].values.tolist() == [3, 4]  # 4.0 is a whole number
    assert ds["seed"].values.tolist() == [big, big]
    assert read_output(path, index="sweep")["seed"].dtype == np.float64  # undeclared
    frac = _write(tmp_path, "frac.csv", "sweep,n\n1,3\n2,2.5\n")
    with pytest.raises(
        OutputFileError,
        match=r"column 'n' is declared int64 but holds float64 values such as 2\.5",
    ):
        read_output(frac, index="sweep", dtypes={"n": "int64"})
    flags = _write(tmp_path, "flags.csv", "sweep,ok\n1,0.5\n2,1\n")
    with pytest.raises(OutputFileError, match="column 'ok' is declared bool but holds float64"):
        read_output(flags, index="sweep", dtypes={"ok": bool})
    as_json = _write(tmp_path, "r.json", '{"n": 3, "x": [1, 2]}')
    ds = read_output(as_json, dtypes={"n": "int32"})
    assert (ds["n"].dtype, ds["x"].dtype) == ("int32", "float64")


def test_tsv(tmp_path):
    ds = read_output(_write(tmp_path, "r.tsv", "t\ty\n0\t1.5\n1\t2.5\n"), index="t")
    assert ds["y"].values.tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("text", "index", "match"),
    [
        ("", "sweep", "is empty"),
        ("\n\n", "sweep", "is empty"),
        ("sweep,M\n", "sweep", "no data rows"),
        ("sweep,M\n1,0.5\n2\n", "sweep", r"line 3 has 1 field\(s\) but the header has 2"),
        ("sweep,M\n1,0.5,9\n", "sweep", r"line 2 has 3 field\(s\)"),
        (
            "sweep,M\n1,0.5\n2,0.x\n",
            "sweep",
            "column 'M' holds the non-numeric value '0.x' on line 3",
        ),
        ("sweep,M\n1,0.5\n1,0.6\n", "sweep", r"index \{'sweep': 1\} on lines 2 and 3"),
        ("t,s,M\n1,1,0\n1,2,0\n2,1,0\n", ["t", "s"], r"the row for \{'t': 2, 's': 2\} is missing"),
        ("sweep,M\n1,0.5\n", "step", r"no index column\(s\) \['step'\]"),
        ("sweep,M\n1,0.5\n,0.6\n", "sweep", "index column 'sweep' is missing a value on line 3"),
        ("sweep,M,M\n1,2,3\n", "sweep", "repeated column name"),
        ("sweep,,M\n1,2,3\n", "sweep", "empty or repeated column name"),
    ],
    ids=[
        "empty",
        "blank-lines",
        "header-only",
        "short-row",
        "long-row",
        "non-numeric",
        "duplicate-index",
        "not-rectangular",
        "missing-index-column",
        "missing-index-value",
        "repeated-column",
        "empty-column-name",
    ],
)
def test_garbled_csv_is_an_error_naming_the_problem(tmp_path, text, index, match):
    path = _write(tmp_path, "r.csv", text)
    with pytest.raises(OutputFileError, match=match):
        read_output(path, index=index)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(OutputFileError, match="does not exist"):
        read_output(tmp_path / "nope.csv")
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(OutputFileError, match="not a readable text table"):
        read_output(path)


def test_bad_index_argument(tmp_path):
    path = _write(tmp_path, "r.csv", "a,b\n1,2\n")
    with pytest.raises(OutputFileError, match="names a column twice"):
        read_output(path, index=["a", "a"])
    with pytest.raises(OutputFileError, match="index must be a column name"):
        read_output(path, index=[1])


# -- JSON ----------------------------------------------------------------------------------


def test_json_scalars_and_lists(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps({"mean": 1.5, "n": 3, "trace": [1, 2, 3], "grid": [[1, 2], [3, 4]]})
    )
    ds = read_output(path)
    assert ds["mean"].item() == 1.5
    assert ds["trace"].dims == ("trace_dim_0",)
    assert ds["grid"].shape == (2, 2)


def test_json_index_keys_become_coordinates(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"step": [0, 5, 10], "x": [0.0, 0.5, None], "total": 2.0}))
    ds = read_output(path, index="step")
    assert ds["x"].dims == ("step",)
    assert ds["step"].values.tolist() == [0, 5, 10]
    assert np.isnan(ds["x"].values[2])
    assert ds["total"].dims == ()


def test_json_declared_dims_and_xarray_layout(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"pos": [[0, 1], [2, 3], [4, 5]]}))
    ds = read_output(path, dims={"pos": ("agent", "xy")})
    assert ds["pos"].dims == ("agent", "xy")
    original = xr.Dataset({"M": ("sweep", [0.5, 0.6])}, coords={"sweep": [10, 20]})
    path.write_text(json.dumps(original.to_dict()))
    xr.testing.assert_identical(read_output(path), original)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "holds a JSON list"),
        ('{"x": [[1, 2], [3]]}', "not a number or a rectangular list"),
        ('{"x": "text"}', "non-numeric values"),
        ('{"x": [1, 2]}', r"no index key\(s\) \['step'\]"),
    ],
    ids=["syntax", "not-object", "ragged", "text", "missing-index"],
)
def test_garbled_json(tmp_path, text, match):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(OutputFileError, match=match):
        read_output(path, index="step" if "index" in match else None)


# -- NetCDF and Zarr ------------------------------------------------------------------------


def _dataset():
    return xr.Dataset(
        {"M": (("sweep",), np.array([0.5, 0.25])), "E": (("sweep",), np.array([-1.0, -2.0]))},
        coords={"sweep": np.array([10, 20])},
    )


def test_netcdf3_roundtrip(tmp_path):
    pytest.importorskip("scipy")
    path = tmp_path / "out.nc"
    _dataset().to_netcdf(path, engine="scipy")
    ds = read_output(path)
    xr.testing.assert_equal(ds, _dataset())
    path.unlink()  # the file was closed after reading


def test_zarr_roundtrip_and_variables(tmp_path):
    path = tmp_path / "out.zarr"
    _dataset().to_zarr(path, consolidated=False)
    xr.testing.assert_equal(read_output(path), _dataset())
    assert list(read_output(path, variables=["E"]).data_vars) == ["E"]


def test_netcdf_and_zarr_refuse_index(tmp_path):
    with pytest.raises(OutputFileError, match=r"index=.*only applies to csv, tsv and json"):
        read_output(tmp_path / "out.nc", index="sweep")


def test_unreadable_netcdf(tmp_path):
    path = tmp_path / "out.nc"
    path.write_text("not netcdf at all")
    with pytest.raises(OutputFileError, match="cannot read netcdf output"):
        read_output(path)


# -- what a worker loads -------------------------------------------------------------------

NO_XARRAY = """
import json, sys
from pathlib import Path
from ensembles.simulations.output_files import read_member_output
folder = Path(sys.argv[1])
(folder / "r.csv").write_text("sweep,M\\n10,0.5\\n20,0.25\\n")
(folder / "r.tsv").write_text("x\\ty\\n1\\t2\\n")
(folder / "r.json").write_text(json.dumps({"t": [1, 2], "M": [0.5, 0.25]}))
got = {
    "csv": read_member_output(folder / "r.csv", index="sweep").coords["sweep"].tolist(),
    "tsv": read_member_output(folder / "r.tsv")["y"].tolist(),
    "json": read_member_output(folder / "r.json", index="t").dims["M"],
}
loaded = [m for m in ("xarray", "pandas", "dask") if m in sys.modules]
print(json.dumps({"got": got, "loaded": loaded}))
"""


def test_a_member_reads_text_outputs_without_loading_xarray_or_pandas(tmp_path):
    """A worker that runs Command members reads their CSV, TSV and JSON into arrays with
    numpy only: a fresh worker process never loads xarray or pandas for them."""
    import subprocess
    import sys

    script = tmp_path / "read.py"
    script.write_text(NO_XARRAY)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["got"] == {"csv": [10, 20], "tsv": 2.0, "json": ["t"]}
    assert result["loaded"] == []
