"""Ensemble results as tables: per-design-point summaries, long tables, groups, exports.

:func:`summary` gives the tidy per-design-point statistics sweep tools report,
:func:`to_frame` one row per member and step, :func:`groups` the results grouped by
parameters, and :func:`write_table` / :func:`read_table` move a table to and from CSV,
Parquet or JSON, chosen by file extension.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import AnalysisError
from ..layout import BOOKKEEPING, OK, STATUS
from . import reduce
from .arguments import check_probabilities, member_dims, resolve_replicates, selected_vars
from .quantiles import check_quantile_method

__all__ = [
    "TABLE_FORMATS",
    "aggregate_outputs",
    "groups",
    "output_dims",
    "parameter_names",
    "read_table",
    "summary",
    "to_frame",
    "write_table",
]


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])

TABLE_FORMATS = {".csv": "CSV", ".parquet": "Parquet", ".json": "JSON (records)"}
"""File extensions :func:`write_table` and :func:`read_table` understand."""

_AGGREGATES: dict[str, Callable[[xr.DataArray, list[Hashable]], xr.DataArray]] = {
    "mean": lambda da, dims: da.mean(dims, skipna=False),
    "median": lambda da, dims: da.median(dims, skipna=False),
    "min": lambda da, dims: da.min(dims, skipna=False),
    "max": lambda da, dims: da.max(dims, skipna=False),
    "std": lambda da, dims: da.std(dims, skipna=False, ddof=1),
    "first": lambda da, dims: da.isel(dict.fromkeys(dims, 0)),
    "last": lambda da, dims: da.isel(dict.fromkeys(dims, -1)),
}


def _as_dataset(obj: xr.DataArray | xr.Dataset) -> xr.Dataset:
    if isinstance(obj, xr.Dataset):
        return obj
    return obj.to_dataset(name=obj.name if obj.name is not None else "value")


def _member_dims_or(ds: xr.Dataset, fallback: Sequence[Hashable]) -> tuple[Hashable, ...]:
    return member_dims(ds) if STATUS in ds.coords else tuple(fallback)


def output_dims(da: xr.DataArray, members: Sequence[Hashable]) -> list[Hashable]:
    """The dims of ``da`` that are not member dims (e.g. ``["sweep"]``)."""
    return [d for d in da.dims if d not in members]


def parameter_names(ds: xr.Dataset | xr.DataArray) -> list[Hashable]:
    """Names of the design parameters of an ensemble, in dim order.

    A grid parameter is a member dim with its values as coordinate (``T``); a sampled
    parameter is a coordinate along a member dim such as ``sample`` (``T(sample)``). The
    ``seed`` dim and bookkeeping coordinates are not parameters.

    Examples
    --------
    >>> parameter_names(ds)  # doctest: +SKIP
    ['T', 'L']
    """
    mdims = member_dims(ds) if STATUS in ds.coords else tuple(ds.dims)
    names: list[Hashable] = []
    for dim in mdims:
        if dim == "seed":
            continue
        along = [
            name
            for name, coord in ds.coords.items()
            if coord.dims == (dim,) and name != dim and name not in BOOKKEEPING
        ]
        if along:
            names.extend(along)
        elif dim in ds.coords:
            names.append(dim)
    return names


def aggregate_outputs(
    obj: xr.DataArray | xr.Dataset, aggregate: Any, members: Sequence[Hashable] | None = None
) -> Any:
    """Reduce each member's output dims (a time series to one number), lazily.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    aggregate : {"mean", "median", "min", "max", "std", "first", "last"} or callable
        How to aggregate the output dims of each member; a callable gets the DataArray and
        the list of output dims and returns the reduced DataArray. NaN in a member's series
        makes its aggregate NaN (so the member is then not counted).
    members : sequence of str, optional
        The member dims; default the dims of ``status``.

    Returns
    -------
    DataArray or Dataset
        Over the member dims only. Variables without output dims are returned unchanged.

    Examples
    --------
    >>> aggregate_outputs(ds["M"], "mean")  # the time-mean magnetization  # doctest: +SKIP
    """
    if isinstance(obj, xr.Dataset):
        return obj.map(lambda da: aggregate_outputs(da, aggregate, members), keep_attrs=True)
    mdims = member_dims(obj) if members is None else tuple(members)
    dims = output_dims(obj, mdims)
    if aggregate is None or not dims:
        return obj
    if callable(aggregate):
        return aggregate(obj, dims)
    if aggregate not in _AGGREGATES:
        msg = (
            f"aggregate={aggregate!r} is not known: use one of {sorted(_AGGREGATES)!r}, "
            "None, or a function f(dataarray, dims)"
        )
        raise AnalysisError(msg)
    out = _AGGREGATES[aggregate](obj, dims)
    out.attrs = dict(obj.attrs)
    return out


def _quantile_label(p: float) -> str:
    return f"q{p:g}"


def summary(
    ds: xr.Dataset | xr.DataArray,
    over: Any = None,
    q: Sequence[float] = (0.025, 0.5, 0.975),
    vars: Sequence[Hashable] | None = None,
    aggregate: Any = None,
    method: str = "linear",
) -> pd.DataFrame:
    """Per design point: n, mean, std and quantiles of each output, as a tidy table.

    Members that are not ok (status != 1) and NaN values are excluded; ``n`` says how many
    members each row used, so a summary of a run still in progress is honest about it.

    Parameters
    ----------
    ds : Dataset or DataArray
        Ensemble data (computed here: the result is an in-memory table).
    over : str or tuple of str, optional
        Dims the statistics run over; the other member dims are the design points.
        Default: the replicate dim ``seed`` (one row per design point). Name every member
        dim, e.g. ``over=("sample", "seed")``, for one row per variable.
    q : sequence of float, default (0.025, 0.5, 0.975)
        Quantiles to report, as columns ``q0.025``, ``q0.5``, ...
    vars : sequence of str, optional
        Data variables to summarize. Default: every numeric one that has the layout of the
        scalar outputs (no output dims) if there are any, else of the most common output
        dims; the others are left out, with a warning and the table's ``attrs["note"]``
        saying how to include them. Listed ``vars`` are all summarized, whatever their
        layout (a time series then has one row per step).
    aggregate : str or callable, optional
        Aggregate each member's time series first (see :func:`aggregate_outputs`), e.g.
        ``"mean"`` or ``"last"``; then every output is scalar and all are summarized.
        Without it, a time series gives one row per step with the output dim (``sweep``)
        as a column.
    method : str, default "linear"
        NumPy's quantile method for the quantile columns (see
        :data:`~ensembles.analysis.reduce.QUANTILE_METHODS`).

    Returns
    -------
    pandas.DataFrame
        Columns: ``variable``, the design dims and parameter coordinates, any output dims,
        then ``n``, ``mean``, ``std`` (``ddof=1``) and one column per quantile.
        ``attrs["left_out"]`` lists the variables the default left out (if any).

    Examples
    --------
    >>> summary(ds, over="seed", q=(0.025, 0.5, 0.975), aggregate="mean")  # doctest: +SKIP
          variable    T  n      mean       std   q0.025     q0.5   q0.975
    0            M  1.5  4  0.986...
    """
    ds = _as_dataset(ds)
    dims = resolve_replicates(ds, over)
    probs = [float(p) for p in check_probabilities(list(q)).ravel()] if len(q) else []
    check_quantile_method(method)
    mdims = _member_dims_or(ds, dims)
    if vars is None:
        names, left_out = _default_vars(ds, dims, mdims, aggregate)
    else:
        names, left_out = _summary_vars(ds, dims, vars), []
    stats = {}
    for name in names:
        da = aggregate_outputs(ds[name], aggregate, mdims)
        parts = {"n": reduce.count(da, dims), "mean": reduce.mean(da, dims).drop_vars("count")}
        parts["std"] = reduce.std(da, dims).drop_vars("count")
        if probs:
            quant = reduce.quantile(da, probs, dims, method).drop_vars("count")
            for i, p in enumerate(probs):
                parts[_quantile_label(p)] = quant.isel(quantile=i, drop=True)
        stats[name] = xr.Dataset(parts)
    (computed,) = dask.compute(stats)
    params = [p for p in parameter_names(ds) if p in ds.coords]
    frames = []
    for name in names:
        table = computed[name]
        frame = table.to_dataframe().reset_index() if table.dims else _scalar_frame(table)
        frame.insert(0, "variable", str(name))
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out = _order_columns(out, ["variable", *params], list(_stat_columns(probs)))
    if left_out:
        _note_left_out(out, ds, names, left_out, mdims)
    return out


def _default_vars(
    ds: xr.Dataset, dims: tuple[Hashable, ...], mdims: tuple[Hashable, ...], aggregate: Any
) -> tuple[list[Hashable], list[Hashable]]:
    """The variables a default summary covers (one output layout), and those left out."""
    names = selected_vars(ds, dims)
    if aggregate is not None:
        return names, []
    layouts: dict[tuple, list[Hashable]] = {}
    for name in names:
        layouts.setdefault(tuple(output_dims(ds[name], mdims)), []).append(name)
    chosen = () if () in layouts else max(layouts, key=lambda k: len(layouts[k]))
    return layouts[chosen], [n for n in names if n not in layouts[chosen]]


def _note_left_out(
    table: pd.DataFrame,
    ds: xr.Dataset,
    names: list[Hashable],
    left_out: list[Hashable],
    mdims: tuple[Hashable, ...],
) -> None:
    """Record (``attrs``) and warn which variables a default summary left out, and why."""
    kept = output_dims(ds[names[0]], mdims)
    layout = f"over {kept!r}" if kept else "scalar"
    described = ", ".join(f"{n!r} (over {output_dims(ds[n], mdims)!r})" for n in left_out)
    note = (
        f"summary covers the {layout} outputs {[str(n) for n in names]!r} and left out "
        f"{described}: a table holds one output layout at a time. Pass "
        f"vars={[str(left_out[0])]!r} for one row per step, or aggregate='mean' (or "
        "'last', ...) to reduce each member's series and summarize every output."
    )
    table.attrs["left_out"] = [str(n) for n in left_out]
    table.attrs["note"] = note
    warnings.warn(note, UserWarning, stacklevel=3)


def _stat_columns(probs: Sequence[float]) -> list[str]:
    return ["n", "mean", "std", *(_quantile_label(p) for p in probs)]


def _scalar_frame(table: xr.Dataset) -> pd.DataFrame:
    row = {k: v.item() for k, v in table.data_vars.items()}
    row.update({k: v.item() for k, v in table.coords.items() if v.ndim == 0})
    return pd.DataFrame([row])


def _order_columns(df: pd.DataFrame, first: list[Hashable], last: list[str]) -> pd.DataFrame:
    head = [c for c in first if c in df.columns]
    tail = [c for c in last if c in df.columns]
    middle = [c for c in df.columns if c not in head and c not in tail and c != "quantile"]
    return df[[*head, *middle, *tail]]


def _summary_vars(
    ds: xr.Dataset, dims: tuple[Hashable, ...], vars: Sequence[Hashable] | None
) -> list[Hashable]:
    if vars is None:
        return selected_vars(ds, dims)
    names: list[Hashable] = [vars] if isinstance(vars, str) else list(vars)
    unknown = [v for v in names if v not in ds.data_vars]
    if unknown:
        msg = (
            f"vars={vars!r}: {unknown[0]!r} is not a data variable; "
            f"choose among {list(ds.data_vars)!r}"
        )
        raise AnalysisError(msg)
    return names


def to_frame(
    ds: xr.Dataset | xr.DataArray, vars: Sequence[Hashable] | None = None
) -> pd.DataFrame:
    """The long table: one row per member (and step), with parameters, seed and status.

    Parameters
    ----------
    ds : Dataset or DataArray
        Ensemble data (computed here).
    vars : sequence of str, optional
        Data variables to include; default all. They must share their output dims (a
        scalar output and a time series do not fit one long table: call twice).

    Returns
    -------
    pandas.DataFrame
        Columns: the design dims and parameter coordinates, ``seed``, ``member_seed``,
        ``status`` (0 pending, 1 ok, 2 failed, 3 skipped), the output dims (``sweep``), the
        variables, then any other coordinates. Every member is listed; keep
        ``df[df.status == 1]`` for the members that ran.

    Examples
    --------
    >>> to_frame(ds, vars=["M", "E"]).head()  # doctest: +SKIP
    """
    ds = _as_dataset(ds)
    names = list(ds.data_vars) if vars is None else _summary_vars(ds, (), vars)
    mdims = _member_dims_or(ds, [])
    layouts: dict[tuple, list[Hashable]] = {}
    for name in names:
        layouts.setdefault(tuple(output_dims(ds[name], mdims)), []).append(name)
    if len(layouts) > 1:
        described = "; ".join(f"{v} over {list(k)}" for k, v in layouts.items())
        msg = (
            f"the variables do not share their output dims ({described}); "
            "pass vars=[...] with variables of one layout"
        )
        raise AnalysisError(msg)
    frame = ds[names].to_dataframe().reset_index()
    params = [p for p in parameter_names(ds) if p in frame.columns]
    first = [*params, *(d for d in mdims if d not in params), "member_seed", STATUS]
    first += [d for d in next(iter(layouts), ()) if d not in first]
    columns = [c for c in first if c in frame.columns]
    columns += [n for n in names if n not in columns]
    columns += [c for c in frame.columns if c not in columns]
    return frame[columns]


def _python(value: Any) -> Any:
    """A JSON-friendly Python value: numbers, lists, None for NaN."""
    if isinstance(value, np.ndarray):
        return [_python(v) for v in value.tolist()] if value.ndim else _python(value.item())
    if isinstance(value, list):
        return [_python(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def groups(
    ds: xr.Dataset | xr.DataArray,
    over: Any = None,
    vars: Sequence[Hashable] | None = None,
) -> list[dict[str, Any]]:
    """Results grouped by parameters: ``[{"params": {...}, "samples": [...]}, ...]``.

    Parameters
    ----------
    ds : Dataset or DataArray
        Ensemble data (computed here).
    over : str or tuple of str, optional
        Member dims gathered into each group's samples; the others define the groups.
        Default: the replicate dim ``seed``.
    vars : sequence of str, optional
        Outputs to include; default every data variable.

    Returns
    -------
    list of dict
        One dict per design point, in design order: ``params`` maps each parameter to its
        value, ``samples`` lists the ok members as ``{"seed": ..., "member_seed": ...,
        <output>: value or list}``; ``n`` is the number of samples. JSON-serializable.

    Examples
    --------
    >>> groups(ds)[0]  # doctest: +SKIP
    {'params': {'T': 1.5}, 'n': 4, 'samples': [{'seed': 0, 'member_seed': ..., 'M': [...]}]}
    """
    ds = _as_dataset(ds)
    dims = resolve_replicates(ds, over)
    names = list(ds.data_vars) if vars is None else _summary_vars(ds, dims, vars)
    mdims = _member_dims_or(ds, dims)
    design = [d for d in mdims if d not in dims]
    params = parameter_names(ds)
    (local,) = dask.compute(ds[names])
    out = []
    for position in np.ndindex(*(local.sizes[d] for d in design)):
        point = local.isel(dict(zip(design, position, strict=True)))
        entry: dict[str, Any] = {
            "params": {str(p): _python(point[p].values) for p in params if p in point.coords}
        }
        samples = []
        for inner in np.ndindex(*(point.sizes[d] for d in dims)):
            member = point.isel(dict(zip(dims, inner, strict=True)))
            if STATUS in member and int(member[STATUS]) != OK:
                continue
            sample = {str(d): _python(member[d].values) for d in dims if d in member.coords}
            if "member_seed" in member:
                sample["member_seed"] = _python(member["member_seed"].values)
            sample.update({str(n): _python(member[n].values) for n in names})
            samples.append(sample)
        entry["n"] = len(samples)
        entry["samples"] = samples
        out.append(entry)
    return out


def _format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        known = ", ".join(f"{k} ({v})" for k, v in TABLE_FORMATS.items())
        msg = f"cannot tell the table format of {os.fspath(path)!r}: use one of {known}"
        raise AnalysisError(msg)
    return suffix


def write_table(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write a table as CSV, Parquet or JSON, chosen by the file extension.

    Parameters
    ----------
    df : pandas.DataFrame
        For example the result of :func:`summary` or :func:`to_frame`.
    path : str or path-like
        Ends with ``.csv``, ``.parquet`` or ``.json`` (a list of records; NaN as null).
    **kwargs
        Passed to :meth:`pandas.DataFrame.to_csv` / :meth:`~pandas.DataFrame.to_parquet`.

    Returns
    -------
    pathlib.Path
        The path written. :func:`read_table` reads it back equal.

    Raises
    ------
    AnalysisError
        For any other extension, naming the supported ones.

    Examples
    --------
    >>> write_table(summary(ds), "summary.csv")  # doctest: +SKIP
    PosixPath('summary.csv')
    """
    suffix = _format(path)
    path = Path(path)
    if suffix == ".csv":
        df.to_csv(path, index=False, **kwargs)
    elif suffix == ".parquet":
        df.to_parquet(path, index=False, **kwargs)
    else:
        records = [
            {str(k): _python(v) for k, v in row.items()} for row in df.to_dict(orient="records")
        ]
        path.write_text(json.dumps(records, allow_nan=False, indent=1) + "\n", encoding="utf-8")
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_table` (format from the extension).

    Examples
    --------
    >>> read_table("summary.parquet")  # doctest: +SKIP
    """
    suffix = _format(path)
    if suffix == ".csv":
        exact = {} if _PANDAS_MAJOR >= 3 else {"float_precision": "round_trip"}
        return pd.read_csv(path, **exact)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    return pd.DataFrame.from_records(records)
