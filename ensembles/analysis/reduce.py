"""Ensemble statistics over member dimensions: lazy, exact, plain functions on xarray objects.

Every function takes a :class:`xarray.DataArray` or :class:`xarray.Dataset` laid out as an
ensemble (member dims such as ``sample``/``T`` and ``seed``, then output dims such as
``sweep``), reduces over ``over`` (default: every member dim), uses only members whose
``status`` is 1 (ok) and whose values are not NaN, and reports how many members it used.

On dask-backed data nothing is computed when these functions are called; the work happens
in ``.compute()``. The kernels are plain NumPy (no numbagg), so the first call in a fresh
process pays no JIT compilation:

* ``count``, ``mean``, ``std`` and ``sem`` are tree reductions over the existing chunks
  (per-chunk count, mean and sum of squared deviations, merged with Chan's formula).
* ``quantile``, ``envelope`` and ``bootstrap_ci`` need every member of a position at once:
  the data are rechunked so the reduced dims are whole and the other dims are split into
  blocks of at most 128 MiB, then each block is sorted (NaN last) and the order statistics
  are interpolated exactly as :func:`numpy.quantile` does with ``method=`` (any of NumPy's
  13 methods, :data:`QUANTILE_METHODS`; ``"linear"`` by default).

Results of DataArray reductions carry a ``count`` coordinate (int64, members used per
remaining position). Dataset reductions apply per numeric data variable that has every
``over`` dim and name each variable's count coordinate ``<var>_count``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import dask.array
import numpy as np
import xarray as xr

from ..errors import AnalysisError
from ..layout import OK, STATUS
from .arguments import (  # member dims and argument checks shared by the analysis modules
    check_envelope_q,
    check_probabilities,
    is_numeric,
    member_dims,
    resolve_over,
    selected_vars,
)
from .bootstrap import bootstrap_kernel, bootstrap_stat
from .kernels import moments, sorted_kernel, whole_blocks  # the numpy/dask engine
from .quantiles import QUANTILE_METHODS, check_quantile_method

__all__ = [
    "AnalysisError",
    "QUANTILE_METHODS",
    "bootstrap_ci",
    "count",
    "envelope",
    "mean",
    "member_dims",
    "quantile",
    "sem",
    "std",
]

Obj = TypeVar("Obj", xr.DataArray, xr.Dataset)


# --------------------------------------------------------------------------------------
# masks
# --------------------------------------------------------------------------------------


def _numeric(da: xr.DataArray) -> xr.DataArray:
    """``da`` itself, after checking that its dtype is numeric."""
    if not is_numeric(da):
        msg = (
            f"cannot compute statistics of {da.name!r}: its dtype {da.dtype} is not "
            "numeric; select a numeric variable"
        )
        raise AnalysisError(msg)
    return da


def _masked(da: xr.DataArray) -> xr.DataArray:
    """``da`` as floats with NaN wherever the member's status is not ok (lazy)."""
    da = _numeric(da)
    if da.dtype.kind != "f":
        da = da.astype(np.float64)
    if STATUS in da.coords:
        da = da.where(da.coords[STATUS] == OK)
    return da


# --------------------------------------------------------------------------------------
# xarray wrapping
# --------------------------------------------------------------------------------------


def _prepared(
    da: xr.DataArray, over: tuple[Hashable, ...], mask: bool = True
) -> tuple[xr.DataArray, Any, int]:
    """``da`` (masked if asked) with the ``over`` dims first, its data, and ``len(over)``."""
    prepared = _masked(da) if mask else _numeric(da)
    rest = [d for d in prepared.dims if d not in over]
    ordered = prepared.transpose(*over, *rest)
    return ordered, ordered.data, len(over)


def _ok_mask(ordered: xr.DataArray) -> Any:
    """``status == ok`` in the axis order of ``ordered`` with size-1 axes it lacks, or None."""
    if STATUS not in ordered.coords:
        return None
    status = ordered.coords[STATUS]
    shape = tuple(ordered.sizes[d] if d in status.dims else 1 for d in ordered.dims)
    ok = status.transpose(*(d for d in ordered.dims if d in status.dims)).data == OK
    return ok.reshape(shape)


def _kept_coords(da: xr.DataArray, over: tuple[Hashable, ...]) -> dict[Hashable, Any]:
    return {
        name: coord.variable
        for name, coord in da.coords.items()
        if not set(coord.dims) & set(over)
    }


def _wrap(
    ordered: xr.DataArray,
    over: tuple[Hashable, ...],
    data: Any,
    *,
    name: Hashable = None,
    attrs: dict | None = None,
    leading: tuple[Hashable, Any] | None = None,
) -> xr.DataArray:
    """A DataArray over the kept dims of ``ordered`` (plus an optional leading dim)."""
    dims = [d for d in ordered.dims if d not in over]
    coords = _kept_coords(ordered, over)
    if leading is not None:
        dims.insert(0, leading[0])
        coords[leading[0]] = leading[1]
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs=attrs or {})


def _as_count(data: Any) -> Any:
    return data.astype(np.int64)


_COUNT_ATTRS = {"long_name": "number of members used", "units": "1"}


def _stat_attrs(da: xr.DataArray, over: tuple[Hashable, ...], method: str) -> dict:
    attrs = {k: v for k, v in da.attrs.items() if not str(k).startswith("flag_")}
    cells = " ".join(f"{d}:" for d in over)
    previous = attrs.get("cell_methods")
    attrs["cell_methods"] = f"{previous} {cells} {method}" if previous else f"{cells} {method}"
    return attrs


def _per_variable(
    ds: xr.Dataset, over: tuple[Hashable, ...], func: Callable[[xr.DataArray], xr.DataArray]
) -> xr.Dataset:
    """Apply a DataArray reduction to each variable; counts become ``<var>_count`` coords."""
    results = {}
    counts = {}
    for name in selected_vars(ds, over):
        res = func(ds[name])
        counts[f"{name}_count"] = res.coords["count"].variable
        results[name] = res.drop_vars("count")
    out = xr.Dataset(results, attrs=dict(ds.attrs))
    return out.assign_coords(counts)


# --------------------------------------------------------------------------------------
# public reductions
# --------------------------------------------------------------------------------------


def count(obj: Obj, over: Any = None) -> Obj:
    """Number of members used (status ok and value not NaN) at each remaining position.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to count over; default all member dims (the dims of ``status``).

    Returns
    -------
    DataArray or Dataset
        int64 counts over the remaining dims (per data variable for a Dataset).

    Examples
    --------
    >>> count(ds["M"], over="seed")  # doctest: +SKIP
    <xarray.DataArray 'M' (T: 3, sweep: 100)> ...
    """
    dims = resolve_over(obj, over)
    if isinstance(obj, xr.Dataset):
        return xr.Dataset(
            {name: count(obj[name], dims) for name in selected_vars(obj, dims)},
            attrs=dict(obj.attrs),
        )
    ordered, data, r = _prepared(obj, dims)
    valid = ~dask.array.isnan(data) if isinstance(data, dask.array.Array) else ~np.isnan(data)
    counted = valid.sum(axis=tuple(range(r))).astype(np.int64)
    return _wrap(ordered, dims, counted, name=obj.name, attrs=dict(_COUNT_ATTRS))


def _moment_stat(obj: Obj, over: Any, kind: str, ddof: int) -> Obj:
    dims = resolve_over(obj, over)
    if isinstance(obj, xr.Dataset):
        return _per_variable(obj, dims, lambda da: _moment_stat(da, dims, kind, ddof))
    if ddof < 0:
        msg = f"ddof={ddof!r} is negative; use ddof=1 (sample) or ddof=0 (population)"
        raise AnalysisError(msg)
    ordered, data, r = _prepared(obj, dims)
    mom = moments(data, r)
    n, mu, m2 = mom[0], mom[1], mom[2]
    lib = dask.array if isinstance(mom, dask.array.Array) else np
    if kind == "mean":
        values = lib.where(n > 0, mu, np.nan)
    else:
        enough = n > ddof
        var = lib.where(enough, m2 / lib.where(enough, n - ddof, 1.0), np.nan)
        values = lib.sqrt(var)
        if kind == "sem":
            values = values / lib.sqrt(lib.where(n > 0, n, np.nan))
    result = _wrap(ordered, dims, values, name=obj.name, attrs=_stat_attrs(obj, dims, kind))
    return result.assign_coords(count=_wrap(ordered, dims, _as_count(n), attrs=_COUNT_ATTRS))


def mean(obj: Obj, over: Any = None) -> Obj:
    """Ensemble mean over ``over``, excluding members that are not ok and NaN values.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data (dask-backed stays lazy).
    over : str or tuple of str, optional
        Dims to reduce; default all member dims (the dims of ``status``).

    Returns
    -------
    DataArray or Dataset
        The mean over the remaining dims, float64, with a ``count`` coordinate (for a
        Dataset, one ``<var>_count`` coordinate per variable). NaN where no member counts.

    Examples
    --------
    >>> m = mean(ds["M"], over="seed")  # doctest: +SKIP
    >>> m.count.values  # members used per position  # doctest: +SKIP
    """
    return _moment_stat(obj, over, "mean", 0)


def std(obj: Obj, over: Any = None, ddof: int = 1) -> Obj:
    """Ensemble standard deviation over ``over`` (sample std, ``ddof=1``, by default).

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to reduce; default all member dims.
    ddof : int, default 1
        Delta degrees of freedom: the divisor is ``count - ddof`` (NumPy's default is 0).
        NaN where ``count <= ddof``.

    Returns
    -------
    DataArray or Dataset
        float64, with the ``count`` coordinate(s) as in :func:`mean`.

    Examples
    --------
    >>> std(ds["M"], over=("sample", "seed"))  # doctest: +SKIP
    """
    return _moment_stat(obj, over, "standard_deviation", ddof)


def sem(obj: Obj, over: Any = None) -> Obj:
    """Standard error of the ensemble mean: ``std(ddof=1) / sqrt(count)``.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to reduce; default all member dims.

    Returns
    -------
    DataArray or Dataset
        float64, NaN where fewer than two members count, with ``count`` coordinate(s).

    Examples
    --------
    >>> sem(ds["M"], over="seed")  # doctest: +SKIP
    """
    return _moment_stat(obj, over, "sem", 1)


def quantile(obj: Obj, q: Any, over: Any = None, method: str = "linear") -> Obj:
    """Ensemble quantiles over ``over``, lazily, by any of NumPy's quantile methods.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    q : float or sequence of float
        Probabilities in [0, 1].
    over : str or tuple of str, optional
        Dims to reduce; default all member dims.
    method : str, default "linear"
        One of NumPy's names (:data:`QUANTILE_METHODS`): ``"inverted_cdf"``,
        ``"averaged_inverted_cdf"``, ``"closest_observation"``,
        ``"interpolated_inverted_cdf"``, ``"hazen"``, ``"weibull"``, ``"linear"``,
        ``"median_unbiased"``, ``"normal_unbiased"``, ``"lower"``, ``"higher"``,
        ``"midpoint"``, ``"nearest"``.

    Returns
    -------
    DataArray or Dataset
        With a leading ``quantile`` dim when ``q`` is a sequence, and ``count``
        coordinate(s). Equal, bit for bit, to :func:`numpy.nanquantile` with the same
        ``method`` of the used members.

    Examples
    --------
    >>> quantile(ds["M"], [0.05, 0.5, 0.95], over=("sample", "seed"))  # doctest: +SKIP
    >>> quantile(ds["M"], 0.9, over="seed", method="median_unbiased")  # doctest: +SKIP
    """
    dims = resolve_over(obj, over)
    probs = check_probabilities(q)
    check_quantile_method(method)
    if isinstance(obj, xr.Dataset):
        return _per_variable(obj, dims, lambda da: quantile(da, q, dims, method))
    ordered, data, r = _prepared(obj, dims, mask=False)
    rows = whole_blocks(
        data,
        _ok_mask(ordered),
        r,
        sorted_kernel,
        1 + probs.size,
        q=probs.ravel(),
        with_mean=False,
        method=method,
    )
    attrs = _stat_attrs(obj, dims, _quantile_name("quantile", method))
    if probs.ndim == 0:
        result = _wrap(ordered, dims, rows[1], name=obj.name, attrs=attrs)
        result = result.assign_coords(quantile=float(probs))
    else:
        result = _wrap(
            ordered, dims, rows[1:], name=obj.name, attrs=attrs, leading=("quantile", probs)
        )
    counted = _wrap(ordered, dims, _as_count(rows[0]), attrs=_COUNT_ATTRS)
    return result.assign_coords(count=counted)


def _quantile_name(name: str, method: str) -> str:
    """A CF cell method name, with the quantile method when it is not NumPy's default."""
    return name if method == "linear" else f"{name} (method: {method})"


def envelope(
    obj: xr.DataArray | xr.Dataset,
    over: Any = None,
    q: Sequence[float] = (0.025, 0.975),
    median: bool = False,
    method: str = "linear",
) -> xr.Dataset:
    """Mean and quantile band of an ensemble, in one lazy pass over the data.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to reduce; default all member dims (the dims of ``status``).
    q : (float, float), default (0.025, 0.975)
        Probabilities of the lower and upper edges of the band.
    median : bool, default False
        Also return the median (the 0.5 quantile by ``method``).
    method : str, default "linear"
        How quantiles are taken between members: one of NumPy's quantile methods
        (:data:`QUANTILE_METHODS`), with results equal to :func:`numpy.nanquantile`.

    Returns
    -------
    Dataset
        For a DataArray: variables ``mean``, ``lower``, ``upper`` (and ``median``) with the
        input's attrs, and ``count`` (int64, members used per position). For a Dataset:
        the same per data variable, named ``<var>_mean``, ``<var>_lower``,
        ``<var>_upper``, (``<var>_median``) and ``<var>_count``. Attrs record ``over``,
        ``q`` and ``method``.

    Examples
    --------
    >>> band = envelope(ds["M"], over=("sample", "seed"), q=(0.025, 0.975))  # doctest: +SKIP
    >>> band = band.compute()  # doctest: +SKIP
    >>> band["upper"] - band["lower"]  # doctest: +SKIP
    """
    dims = resolve_over(obj, over)
    lo, hi = check_envelope_q(q)
    attrs = {
        "over": [str(d) for d in dims],
        "q": [lo, hi],
        "method": check_quantile_method(method),
    }
    if isinstance(obj, xr.Dataset):
        parts = []
        for name in selected_vars(obj, dims):
            band = envelope(obj[name], dims, (lo, hi), median, method)
            parts.append(band.rename({k: f"{name}_{k}" for k in band.data_vars}))
        out = xr.merge(parts, compat="override", join="exact", combine_attrs="drop")
        out.attrs = {**obj.attrs, **attrs}
        return out
    probs = np.array([lo, hi, 0.5] if median else [lo, hi])
    ordered, data, r = _prepared(obj, dims, mask=False)
    rows = whole_blocks(
        data,
        _ok_mask(ordered),
        r,
        sorted_kernel,
        2 + probs.size,
        q=probs,
        with_mean=True,
        method=method,
    )
    methods = {
        "mean": "mean",
        "lower": _quantile_name(f"quantile({lo:g})", method),
        "upper": _quantile_name(f"quantile({hi:g})", method),
        "median": _quantile_name("median", method),
    }
    names = list(methods)[: 1 + probs.size]
    stats = {
        name: _wrap(ordered, dims, rows[1 + i], attrs=_stat_attrs(obj, dims, methods[name]))
        for i, name in enumerate(names)
    }
    stats["count"] = _wrap(ordered, dims, _as_count(rows[0]), attrs=dict(_COUNT_ATTRS))
    if obj.name is not None:
        attrs["variable"] = str(obj.name)
    return xr.Dataset(stats, attrs=attrs)


# --------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------


def bootstrap_ci(
    obj: xr.DataArray | xr.Dataset,
    stat: Any = "mean",
    over: Any = None,
    n: int = 1000,
    level: float = 0.95,
    rng_seed: int = 0,
    method: str = "linear",
) -> xr.Dataset:
    """Percentile-bootstrap confidence interval of an ensemble statistic, lazily.

    Members are resampled whole, with replacement, ``n`` times: each resample draws as
    many members as ran (status ok) at that design point, the same draws at every
    position of a time series, and skips a drawn member's missing (NaN) values there. The
    interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (by ``method``)
    of the resampled statistic, over the resamples where it is defined. Draws depend only
    on ``rng_seed`` and the number of ok members, so the result does not depend on
    chunking; positions where every ok member has a value resample exactly those values.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    stat : {"mean", "median", "std"}, float or callable, default "mean"
        The statistic: a name, a probability in [0, 1] (that quantile, by ``method``), or
        a function ``f(values, axis)`` reducing NumPy arrays along ``axis`` (where some
        drawn members lack a value it sees NaN there: use a NaN-aware function).
    over : str or tuple of str, optional
        Dims to resample; default all member dims.
    n : int, default 1000
        Number of bootstrap resamples.
    level : float, default 0.95
        Confidence level, in (0, 1).
    rng_seed : int, default 0
        Seed of the resampling generator.
    method : str, default "linear"
        NumPy's quantile method (:data:`QUANTILE_METHODS`) for the interval's ends and
        for a quantile ``stat``.

    Returns
    -------
    Dataset
        ``estimate`` (the statistic of the used members), ``lower``, ``upper`` and
        ``count``; for a Dataset input, ``<var>_estimate`` etc. per data variable.

    Examples
    --------
    >>> ci = bootstrap_ci(ds["M"], "mean", over="seed", n=500).compute()  # doctest: +SKIP
    >>> (ci.upper - ci.lower) / 2  # half-width  # doctest: +SKIP
    """
    dims = resolve_over(obj, over)
    name, _ = bootstrap_stat(stat, check_quantile_method(method))
    if not isinstance(n, (int, np.integer)) or n < 1:
        msg = f"n={n!r} is not a number of resamples; use a positive integer, e.g. n=1000"
        raise AnalysisError(msg)
    if not 0 < level < 1:
        msg = f"level={level!r} is not a confidence level; use a value in (0, 1), e.g. 0.95"
        raise AnalysisError(msg)
    attrs = {
        "over": [str(d) for d in dims],
        "stat": name,
        "n": int(n),
        "level": float(level),
        "method": method,
    }
    if isinstance(obj, xr.Dataset):
        parts = []
        for var in selected_vars(obj, dims):
            ci = bootstrap_ci(obj[var], stat, dims, n, level, rng_seed, method)
            parts.append(ci.rename({k: f"{var}_{k}" for k in ci.data_vars}))
        out = xr.merge(parts, compat="override", join="exact", combine_attrs="drop")
        out.attrs = {**obj.attrs, **attrs}
        return out
    ordered, data, r = _prepared(obj, dims, mask=False)
    rows = whole_blocks(
        data,
        _ok_mask(ordered),
        r,
        bootstrap_kernel,
        4,
        stat=stat,
        n_boot=int(n),
        level=float(level),
        rng_seed=int(rng_seed),
        method=method,
    )
    stat_attrs = {k: v for k, v in obj.attrs.items() if k in ("units", "long_name")}
    interval = {
        key: _wrap(ordered, dims, rows[i], attrs=dict(stat_attrs))
        for i, key in ((1, "estimate"), (2, "lower"), (3, "upper"))
    }
    interval["count"] = _wrap(ordered, dims, _as_count(rows[0]), attrs=dict(_COUNT_ATTRS))
    if obj.name is not None:
        attrs["variable"] = str(obj.name)
    return xr.Dataset(interval, attrs=attrs)
