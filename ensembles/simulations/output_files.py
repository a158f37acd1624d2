"""Read the output file of an external program into arrays with dims and coordinates.

:class:`~.command.Command` runs a program that writes its results to a file; this
module turns that file into arrays with dimensions and coordinates
(:func:`read_member_output`: CSV, TSV and JSON without loading xarray, in the worker that
ran the member) or an :class:`xarray.Dataset` (:func:`read_output`). Supported formats:

``csv`` / ``tsv``
    A table in long form: zero or more *index* columns (``sweep``, or ``ParamValue`` and
    ``sweep``) whose values become coordinates, and one column per output. The rows must
    form the full product of the index values, each combination once.
``json``
    An object mapping output names to numbers or (nested) lists, or the
    :meth:`xarray.Dataset.to_dict` layout.
``netcdf``
    Any file :func:`xarray.open_dataset` reads (scipy reads NetCDF3; netCDF4 or h5netcdf
    read NetCDF4).
``zarr``
    A Zarr store (a directory), read with :func:`xarray.open_zarr`.

Numbers in text formats (CSV, TSV, JSON) are stored as float64, whether a member wrote
``3`` or ``2.95``, so every member's values fit the type the first one set; booleans stay
booleans, and an output's declared dtype always wins.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EnsembleError
from .schema import Recorded

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["FORMATS", "OutputFileError", "infer_format", "read_member_output", "read_output"]

#: The output formats :func:`read_output` understands.
FORMATS: tuple[str, ...] = ("csv", "tsv", "json", "netcdf", "zarr")

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".nc": "netcdf",
    ".nc3": "netcdf",
    ".nc4": "netcdf",
    ".netcdf": "netcdf",
    ".cdf": "netcdf",
    ".h5": "netcdf",
    ".zarr": "zarr",
}

#: Cell values read as a missing number (NaN) in CSV and TSV files.
_MISSING = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NAN", "null", "NULL", "None", "#N/A"})
_TRUE = frozenset({"True", "true", "TRUE"})
_FALSE = frozenset({"False", "false", "FALSE"})


class OutputFileError(EnsembleError, ValueError):
    """An output file is missing, empty, garbled or not in the expected layout."""


def infer_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """Return the output format of ``path``: ``format`` if given, else from its extension.

    Parameters
    ----------
    path : str or path-like
        The output file (or Zarr directory) name.
    format : str, optional
        One of :data:`FORMATS`; overrides the extension.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    OutputFileError
        When ``format`` is unknown, or it is None and the extension says nothing.

    Examples
    --------
    >>> infer_format("results.csv")
    'csv'
    >>> infer_format("out.dat", format="tsv")
    'tsv'
    """
    if format is not None:
        fmt = str(format).lower()
        aliases = {"nc": "netcdf", "netcdf3": "netcdf", "netcdf4": "netcdf"}
        fmt = aliases.get(fmt, fmt)
        if fmt not in FORMATS:
            msg = f"unknown output format {format!r}; use one of {list(FORMATS)!r}"
            raise OutputFileError(msg)
        return fmt
    ext = os.path.splitext(os.fspath(path).rstrip("/\\"))[1].lower()
    if ext not in _EXTENSIONS:
        msg = (
            f"cannot tell the format of output {os.fspath(path)!r} from its extension "
            f"{ext!r}; name it with one of {sorted(_EXTENSIONS)!r} or pass "
            f"format= (one of {list(FORMATS)!r})"
        )
        raise OutputFileError(msg)
    return _EXTENSIONS[ext]


def read_output(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    index: str | Sequence[str] | None = None,
    variables: Sequence[str] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    dtypes: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Read one member's output file into an in-memory :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str or path-like
        The file (a directory for Zarr).
    format : str, optional
        One of :data:`FORMATS`; by default taken from the extension.
    index : str or list of str, optional
        CSV/TSV: the columns that index the rows; each becomes a dimension with its values
        (in order of first appearance) as coordinate, and every other column an output over
        those dimensions. Without ``index`` a one-row table gives scalars and a longer one
        gives outputs over a ``row`` dimension. JSON: the keys holding coordinate values;
        arrays whose shape matches them get these dimensions.
    variables : list of str, optional
        Keep only these outputs (others, e.g. a text column, are ignored). By default every
        non-index column or variable is an output and must be numeric or boolean.
    dims : dict of str to tuple of str, optional
        JSON: dimension names of outputs that ``index`` does not describe.
    dtypes : dict of str to dtype, optional
        CSV/TSV/JSON: the declared type of some outputs. The others are float64 when they
        hold numbers (integers included: a member writing ``3`` and another ``2.95``
        store alike) and bool when they hold ``True``/``False``. Index columns keep their
        own type (``sweep`` stays integer).

    Returns
    -------
    xarray.Dataset
        Loaded into memory; the file is closed.

    Raises
    ------
    OutputFileError
        When the file is missing, empty, garbled, not numeric, or not a full rectangular
        long table; the message names the file, the line and the offending value.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.csv"
    >>> _ = path.write_text("sweep,M,E\\n10,0.9,-1.8\\n20,0.8,-1.7\\n")
    >>> ds = read_output(path, index="sweep")
    >>> ds["M"].dims, ds["sweep"].values.tolist()
    (('sweep',), [10, 20])
    >>> _ = path.write_text("n,x\\n3,1\\n")
    >>> ds = read_output(path, dtypes={"n": "int64"})
    >>> str(ds["n"].dtype), str(ds["x"].dtype)
    ('int64', 'float64')
    """
    fmt = infer_format(path, format)
    if fmt in ("netcdf", "zarr"):  # read by xarray itself, every coordinate and attribute
        return read_member_output(path, fmt, index=index, variables=variables)
    rec = read_member_output(path, fmt, index=index, variables=variables, dims=dims, dtypes=dtypes)
    return rec.to_dataset()


def read_member_output(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    index: str | Sequence[str] | None = None,
    variables: Sequence[str] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    dtypes: Mapping[str, Any] | None = None,
) -> Recorded | xr.Dataset:
    """:func:`read_output` as a member hands it to the engine: CSV, TSV and JSON as
    :class:`~.schema.Recorded` arrays (xarray is not loaded), NetCDF and Zarr as the
    Dataset xarray reads.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "results.csv"
    >>> _ = path.write_text("sweep,M\\n10,0.9\\n20,0.8\\n")
    >>> rec = read_member_output(path, index="sweep")
    >>> rec.dims["M"], rec["M"].tolist(), rec.coords["sweep"].tolist()
    (('sweep',), [0.9, 0.8], [10, 20])
    """
    fmt = infer_format(path, format)
    path = os.fspath(path)
    index_names = _index_names(index)
    if fmt in ("netcdf", "zarr") and index_names:
        msg = (
            f"index={index!r} only applies to csv, tsv and json outputs; a {fmt} file "
            "carries its own dimensions and coordinates, so drop index="
        )
        raise OutputFileError(msg)
    if not os.path.exists(path):
        msg = f"output {path!r} does not exist"
        raise OutputFileError(msg)
    if fmt in ("csv", "tsv"):
        rec = _read_table(path, "," if fmt == "csv" else "\t", index_names, variables)
    elif fmt == "json":
        rec = _read_json(path, index_names, variables, dims or {})
    else:
        return _select_dataset(_read_xarray(path, fmt), variables, path)
    return _text_types(_select(rec, variables, path), dtypes or {}, path)


# -- helpers -------------------------------------------------------------------------------
def _index_names(index: str | Sequence[str] | None) -> tuple[str, ...]:
    if index is None:
        return ()
    names = (index,) if isinstance(index, str) else tuple(index)
    if not all(isinstance(n, str) and n for n in names):
        msg = f"index must be a column name or a list of column names, got {index!r}"
        raise OutputFileError(msg)
    if len(set(names)) != len(names):
        msg = f"index {list(names)!r} names a column twice"
        raise OutputFileError(msg)
    return names


def _text_types(rec: Recorded, dtypes: Mapping[str, Any], path: str) -> Recorded:
    """Give the outputs read from text their storage types: declared, else float64 or bool."""
    typed = {}
    for name, values in rec.items():
        declared = dtypes.get(str(name))
        if declared is None:
            typed[name] = values.astype(np.float64) if values.dtype.kind in "iu" else values
            continue
        declared = np.dtype(declared)
        if np.can_cast(values.dtype, declared, "same_kind"):
            typed[name] = values.astype(declared)
            continue
        example = ""
        if declared.kind in "iu" and values.dtype.kind == "f":
            fractional = ~(np.isfinite(values) & (values % 1 == 0))
            if not fractional.any():  # whole numbers written as 3.0
                typed[name] = values.astype(declared)
                continue
            example = f" such as {values[fractional].flat[0].item()!r}"
        msg = (
            f"output {path!r} column {str(name)!r} is declared {declared} but holds "
            f"{values.dtype} values{example}; fix the program's output or the declared dtype"
        )
        raise OutputFileError(msg)
    return Recorded(typed, rec.dims, rec.coords)


def _missing(names: Sequence[str], variables: Sequence[str] | None, path: str) -> None:
    missing = [v for v in variables or () if v not in names]
    if missing:
        msg = f"output {path!r} has no variable(s) {missing!r}; it has {sorted(names)!r}"
        raise OutputFileError(msg)


def _select(rec: Recorded, variables: Sequence[str] | None, path: str) -> Recorded:
    if variables is None:
        return rec
    _missing(list(rec), variables, path)
    kept = {v: rec[v] for v in variables}
    used = {d for v in kept for d in rec.dims[v]}
    coords = {k: v for k, v in rec.coords.items() if k in used}
    return Recorded(kept, {v: rec.dims[v] for v in kept}, coords)


def _select_dataset(ds: xr.Dataset, variables: Sequence[str] | None, path: str) -> xr.Dataset:
    if variables is None:
        return ds
    _missing([str(v) for v in ds.data_vars], variables, path)
    return ds[list(variables)]


def _of_dataset(ds: xr.Dataset) -> Recorded:
    """A Dataset's variables with their dims, and its dimension coordinates."""
    arrays = {str(k): np.asarray(v.values) for k, v in ds.data_vars.items()}
    dims = {str(k): tuple(str(d) for d in v.dims) for k, v in ds.data_vars.items()}
    coords = {str(k): np.asarray(v.values) for k, v in ds.coords.items() if k in ds.dims}
    return Recorded(arrays, dims, coords)


def _read_table(
    path: str, delimiter: str, index: tuple[str, ...], variables: Sequence[str] | None
) -> Recorded:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter=delimiter, skipinitialspace=True))
    except (UnicodeDecodeError, csv.Error) as exc:
        msg = f"output {path!r} is not a readable text table: {exc}"
        raise OutputFileError(msg) from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        msg = f"output {path!r} is empty; expected a header line and data rows"
        raise OutputFileError(msg)
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        msg = f"output {path!r} has a header {header!r} but no data rows"
        raise OutputFileError(msg)
    if len(set(header)) != len(header) or "" in header:
        msg = f"output {path!r} has an empty or repeated column name in its header {header!r}"
        raise OutputFileError(msg)
    ncol = len(header)
    for lineno, row in enumerate(body, start=2):
        if len(row) != ncol:
            msg = (
                f"output {path!r} line {lineno} has {len(row)} field(s) but the header has "
                f"{ncol} ({delimiter.join(header)!r}): {delimiter.join(row)!r}; the file "
                "is garbled or was cut short"
            )
            raise OutputFileError(msg)
    missing = [c for c in index if c not in header]
    if missing:
        msg = f"output {path!r} has no index column(s) {missing!r}; its columns are {header!r}"
        raise OutputFileError(msg)
    wanted = set(variables) if variables is not None else None
    columns = list(zip(*body, strict=True))
    values: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if name in index or wanted is None or name in wanted:
            values[name] = _parse_column(columns[j], name, path, is_index=name in index)
    if not index:
        n = len(body)
        if n == 1:
            return Recorded({k: v[0] for k, v in values.items()}, dict.fromkeys(values, ()))
        return Recorded(values, dict.fromkeys(values, ("row",)), {"row": np.arange(n)})
    return _pivot(values, index, path)


def _parse_column(cells: Sequence[str], name: str, path: str, *, is_index: bool) -> np.ndarray:
    """Parse one column of text cells: int64, then float64, then bool, else an error."""
    text = np.array([c.strip() for c in cells], dtype=str)
    try:
        return text.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    if set(np.unique(text)) <= (_TRUE | _FALSE):
        return np.isin(text, list(_TRUE))
    missing = np.isin(text, list(_MISSING))
    if missing.any():
        if is_index:
            row = int(np.argmax(missing))
            msg = (
                f"output {path!r} index column {name!r} is missing a value on line {row + 2}; "
                "every row needs its index values"
            )
            raise OutputFileError(msg)
        text = np.where(missing, "nan", text)
    try:
        return text.astype(np.float64)
    except ValueError:
        pass
    for row, cell in enumerate(text):
        try:
            float(cell)
        except ValueError:
            msg = (
                f"output {path!r} column {name!r} holds the non-numeric value {str(cell)!r} "
                f"on line {row + 2}; outputs must be numbers or booleans (pass variables= "
                "to read only some columns)"
            )
            raise OutputFileError(msg) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _factorize(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and unique values of ``column``, the uniques in order of first appearance.

    Examples
    --------
    >>> codes, uniques = _factorize(np.array([20, 10, 20, 30]))
    >>> codes.tolist(), uniques.tolist()
    ([0, 1, 0, 2], [20, 10, 30])
    """
    values, first, inverse = np.unique(column, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[np.ravel(inverse)], values[order]


def _pivot(values: dict[str, np.ndarray], index: tuple[str, ...], path: str) -> Recorded:
    """Turn long-form columns into arrays over the index dimensions."""
    codes, uniques = [], []
    for name in index:
        c, u = _factorize(values[name])
        codes.append(c)
        uniques.append(u)
    shape = tuple(len(u) for u in uniques)
    flat = np.ravel_multi_index(tuple(codes), shape)
    nrows = len(flat)
    order = np.argsort(flat, kind="stable")
    dup = np.flatnonzero(np.diff(flat[order]) == 0)
    if dup.size:
        first, second = sorted((int(order[dup[0]]), int(order[dup[0] + 1])))
        key = {n: values[n][first].item() for n in index}
        msg = (
            f"output {path!r} has the index {key!r} on lines {first + 2} and {second + 2}; "
            f"each combination of index columns {list(index)!r} must appear once (add the "
            "column that tells these rows apart to index=)"
        )
        raise OutputFileError(msg)
    expected = math.prod(shape)
    if nrows != expected:
        present = np.zeros(expected, dtype=bool)
        present[flat] = True
        absent = np.unravel_index(int(np.argmin(present)), shape)
        key = {n: uniques[i][absent[i]].item() for i, n in enumerate(index)}
        msg = (
            f"output {path!r} has {nrows} rows, but its index columns {list(index)!r} take "
            f"{' x '.join(map(str, shape))} = {expected} combinations; the row for {key!r} "
            "is missing. A long table must hold every combination exactly once"
        )
        raise OutputFileError(msg)
    data = {}
    for name, column in values.items():
        if name in index:
            continue
        arr = np.empty(expected, dtype=column.dtype)
        arr[flat] = column
        data[name] = arr.reshape(shape)
    coords = {name: uniques[i] for i, name in enumerate(index)}
    return Recorded(data, dict.fromkeys(data, index), coords)


def _read_json(
    path: str,
    index: tuple[str, ...],
    variables: Sequence[str] | None,
    dims: Mapping[str, Sequence[str]],
) -> Recorded:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"output {path!r} is not valid JSON: {exc}"
        raise OutputFileError(msg) from None
    if not isinstance(obj, dict):
        msg = (
            f"output {path!r} holds a JSON {type(obj).__name__}; expected an object mapping "
            'output names to numbers or lists, e.g. {"M": [0.9, 0.8], "E": [-1.8, -1.7]}'
        )
        raise OutputFileError(msg)
    if "data_vars" in obj and ("coords" in obj or "dims" in obj):
        return _from_xarray_dict(obj, path)
    missing = [k for k in index if k not in obj]
    if missing:
        msg = f"output {path!r} has no index key(s) {missing!r}; its keys are {sorted(obj)!r}"
        raise OutputFileError(msg)
    coords = {k: _json_array(obj[k], k, path) for k in index}
    for k, v in coords.items():
        if v.ndim != 1:
            msg = f"output {path!r} index {k!r} must be a flat list, got shape {v.shape}"
            raise OutputFileError(msg)
    index_shape = tuple(len(coords[k]) for k in index)
    wanted = set(variables) if variables is not None else None
    data = {}
    for name, raw in obj.items():
        if name in coords or (wanted is not None and name not in wanted):
            continue
        value = _json_array(raw, name, path)
        if name in dims:
            var_dims = tuple(dims[name])
        elif index and value.shape == index_shape:
            var_dims = index
        else:
            var_dims = tuple(f"{name}_dim_{i}" for i in range(value.ndim))
        if len(var_dims) != value.ndim:
            msg = (
                f"output {path!r} variable {name!r} has shape {value.shape} but is declared "
                f"with dims {var_dims!r}"
            )
            raise OutputFileError(msg)
        data[name] = (var_dims, value)
    return _sized(data, coords, path)


def _sized(data: Mapping[str, Any], coords: Mapping[str, np.ndarray], path: str) -> Recorded:
    """``{name: (dims, values)}`` as Recorded, once every dim has one size throughout."""
    sizes: dict[str, int] = {k: len(v) for k, v in coords.items()}
    for name, (var_dims, value) in data.items():
        for dim, size in zip(var_dims, value.shape, strict=True):
            if sizes.setdefault(dim, size) != size:
                msg = (
                    f"output {path!r} has variables whose sizes disagree: {name!r} has "
                    f"{size} along {dim!r}, another variable or index {sizes[dim]}"
                )
                raise OutputFileError(msg)
    arrays = {k: v for k, (_, v) in data.items()}
    return Recorded(arrays, {k: d for k, (d, _) in data.items()}, coords)


def _from_xarray_dict(obj: Mapping[str, Any], path: str) -> Recorded:
    """A JSON object in :meth:`xarray.Dataset.to_dict`'s layout (read by xarray)."""
    import xarray as xr

    try:
        return _of_dataset(xr.Dataset.from_dict(obj))
    except (ValueError, TypeError, KeyError) as exc:
        msg = f"output {path!r} looks like xarray's to_dict() layout but cannot be read: {exc}"
        raise OutputFileError(msg) from None


def _json_array(raw: Any, name: str, path: str) -> np.ndarray:
    try:
        value = np.asarray(raw)
        if value.dtype == object:  # nulls (None) become NaN
            value = np.asarray(raw, dtype=np.float64)
    except (ValueError, TypeError):
        msg = (
            f"output {path!r} key {name!r} is not a number or a rectangular list of numbers: "
            f"{_short(raw)}"
        )
        raise OutputFileError(msg) from None
    if value.dtype.kind not in "biuf":
        msg = f"output {path!r} key {name!r} holds non-numeric values: {_short(raw)}"
        raise OutputFileError(msg)
    return value


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_xarray(path: str, fmt: str) -> xr.Dataset:
    import xarray as xr

    try:
        ds = xr.open_zarr(path, consolidated=False) if fmt == "zarr" else xr.open_dataset(path)
        with ds:
            return ds.load()
    except (ValueError, OSError, TypeError, KeyError) as exc:
        hint = (
            " (NetCDF4/HDF5 files need the netCDF4 or h5netcdf package; scipy reads NetCDF3)"
            if fmt == "netcdf"
            else ""
        )
        msg = f"cannot read {fmt} output {path!r}: {exc}{hint}"
        raise OutputFileError(msg) from None
