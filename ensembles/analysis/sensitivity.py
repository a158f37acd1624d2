"""Which parameter matters? Main effects and Sobol-type sensitivity indices, as xarray.

Grids (every design dim a parameter with its values) get an exact variance
decomposition of the seed-averaged response over the full factorial: the first-order
index ``S1 = Var(E[Y | p]) / Var(Y)`` and the total index
``ST = E[Var(Y | other parameters)] / Var(Y)``, each point weighted equally.

Sampled designs (parameters as coordinates along ``sample``: Latin hypercube, Sobol
sequence, random samples) get first-order indices from SALib's RBD-FAST, which accepts any
sample of the parameter space. Total-order Sobol indices need a Saltelli design (pairs of
matrices with one column swapped), which plain LHS or Sobol-sequence designs are not; they
are therefore not estimated for samples. (SALib's delta analysis would also accept any
sample, but it resets the process-wide warning filters and NumPy's global random seed, so
it is not called here.) Time series get one index per step.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AnalysisError
from ..layout import BOOKKEEPING, STATUS
from . import reduce
from .arguments import member_dims, resolve_replicates
from .summary import aggregate_outputs, parameter_names

__all__ = ["METHODS", "main_effects", "sensitivity"]

METHODS = ("auto", "anova", "rbd_fast")
"""Values of ``method`` that :func:`sensitivity` accepts."""


def _design_point_mean(
    da: xr.DataArray, over: Any, aggregate: Any
) -> tuple[xr.DataArray, tuple[Hashable, ...]]:
    dims = resolve_replicates(da, over)
    mdims = member_dims(da) if STATUS in da.coords else dims
    da = aggregate_outputs(da, aggregate, mdims)
    design = tuple(d for d in mdims if d not in dims)
    if not design:
        msg = f"over={dims!r} leaves no design dim: sensitivity needs parameters to vary"
        raise AnalysisError(msg)
    return reduce.mean(da, dims).drop_vars("count"), design


def main_effects(obj: xr.DataArray, over: Any = None, aggregate: Any = None) -> xr.Dataset:
    """Main effect of each grid parameter: the mean response at each of its values.

    The response is first averaged over ``over`` (the seeds) at each design point, then
    over every other grid parameter, with each design point weighted equally.

    Parameters
    ----------
    obj : DataArray
        One output of a grid ensemble.
    over : str or tuple of str, optional
        Member dims averaged at each design point; default the replicate dim ``seed``.
    aggregate : str or callable, optional
        Reduce each member's time series first (see
        :func:`~ensembles.analysis.summary.aggregate_outputs`).

    Returns
    -------
    Dataset
        Lazy; one variable ``effect_<param>`` per grid parameter, over that parameter
        (and the output dims).

    Examples
    --------
    >>> effects = main_effects(ds["M"], aggregate="mean").compute()  # doctest: +SKIP
    >>> effects["effect_T"].plot()  # doctest: +SKIP
    """
    y, design = _design_point_mean(obj, over, aggregate)
    grid = [d for d in design if d in y.indexes and not _has_params_along(obj, d)]
    if not grid:
        msg = f"{obj.name!r} has no grid parameter among its design dims {design!r}"
        raise AnalysisError(msg)
    return xr.Dataset(
        {f"effect_{p}": y.mean([d for d in design if d != p], skipna=False) for p in grid},
        attrs={
            "variable": str(obj.name),
            "over": [str(d) for d in resolve_replicates(obj, over)],
        },
    )


def _safe_ratio(num: xr.DataArray, den: xr.DataArray) -> xr.DataArray:
    return num / den.where(den > 0)


def _anova(y: xr.DataArray, design: Sequence[Hashable]) -> xr.Dataset:
    total = y.var(list(design), skipna=False)
    first, total_order = [], []
    for p in design:
        others = [d for d in design if d != p]
        conditional = y.mean(others, skipna=False) if others else y
        first.append(_safe_ratio(conditional.var([p], skipna=False), total))
        within = y.var([p], skipna=False)
        total_order.append(
            _safe_ratio(within.mean(others, skipna=False) if others else within, total)
        )
    names = [str(p) for p in design]
    return xr.Dataset(
        {
            "S1": xr.concat(first, dim="param", coords="minimal", compat="override"),
            "ST": xr.concat(total_order, dim="param", coords="minimal", compat="override"),
        }
    ).assign_coords(param=names)


def _salib_columns(
    y: np.ndarray,
    x: np.ndarray,
    *,
    names: list[str],
    bounds: dict,
    resamples: int,
    seed: int,
) -> tuple[np.ndarray, ...]:
    """SALib on one response vector ``y`` (samples) with parameters ``x`` (samples, params)."""
    from SALib.analyze import rbd_fast

    out = (np.full(len(names), np.nan), np.full(len(names), np.nan))
    keep = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    if keep.sum() < max(10, 2 * len(names)) or np.ptp(y[keep]) == 0:
        return out
    x, y = x[keep], y[keep]
    limits = [
        [float(v) for v in bounds.get(name, (x[:, i].min(), x[:, i].max()))]
        for i, name in enumerate(names)
    ]
    problem = {"num_vars": len(names), "names": names, "bounds": limits}
    res = rbd_fast.analyze(problem, x, y, num_resamples=resamples, seed=seed)
    return np.asarray(res["S1"], float), np.asarray(res["S1_conf"], float)


def _sampled(
    y: xr.DataArray,
    dim: Hashable,
    params: list[Hashable],
    bounds: dict | None,
    resamples: int,
    seed: int,
) -> xr.Dataset:
    names = [str(p) for p in params]
    columns = [xr.DataArray(y[p].variable.astype(float)) for p in params]
    x = xr.concat(columns, dim="_param").transpose(dim, "_param")
    labels = ["S1", "S1_conf"]
    data = y.drop_vars([c for c in y.coords if dim in y[c].dims and c != dim])
    if data.chunks is not None:
        data, x = data.chunk({dim: -1}), x.chunk({dim: -1, "_param": -1})
    results = xr.apply_ufunc(
        _salib_columns,
        data,
        x,
        input_core_dims=[[dim], [dim, "_param"]],
        output_core_dims=[["param"]] * len(labels),
        vectorize=True,
        dask="parallelized",
        output_dtypes=[float] * len(labels),
        dask_gufunc_kwargs={"output_sizes": {"param": len(names)}},
        kwargs={
            "names": names,
            "bounds": dict(bounds or {}),
            "resamples": resamples,
            "seed": seed,
        },
    )
    out = xr.Dataset(dict(zip(labels, results, strict=True))).assign_coords(param=names)
    return out.transpose("param", *(d for d in out.dims if d != "param"))


def sensitivity(
    obj: xr.DataArray,
    over: Any = None,
    method: str = "auto",
    aggregate: Any = None,
    bounds: dict[str, tuple[float, float]] | None = None,
    num_resamples: int = 100,
    rng_seed: int = 0,
) -> xr.Dataset:
    """Sensitivity indices of an output to each design parameter.

    The response at each design point is the mean over ``over`` (the seeds), using ok
    members only; a design point with none is left out (samples) or makes the indices
    NaN (grids).

    Parameters
    ----------
    obj : DataArray
        One ensemble output; time series give indices per step.
    over : str or tuple of str, optional
        Member dims averaged at each design point; default the replicate dim ``seed``.
    method : {"auto", "anova", "rbd_fast"}, default "auto"
        ``"anova"``: exact first-order and total indices (``S1``, ``ST``) of a full
        grid. ``"rbd_fast"``: SALib RBD-FAST first-order indices (``S1``, ``S1_conf``) of
        a sampled design (any sample: LHS, Sobol sequence, random). ``"auto"`` chooses
        ``anova`` for grids and ``rbd_fast`` for samples.
    aggregate : str or callable, optional
        Reduce each member's time series first (see
        :func:`~ensembles.analysis.summary.aggregate_outputs`).
    bounds : dict, optional
        Parameter ranges for SALib, ``{"T": (1.0, 3.0)}``; default the sampled range.
    num_resamples : int, default 100
        Bootstrap resamples of SALib's confidence intervals (its run time grows with it).
    rng_seed : int, default 0
        Seed for SALib's resampling.

    Returns
    -------
    Dataset
        Lazy, over ``param`` (and any remaining dims); attrs record the method.

    Examples
    --------
    >>> s = sensitivity(ds["M"], aggregate="mean").compute()  # doctest: +SKIP
    >>> s["S1"].to_series()  # doctest: +SKIP
    """
    if method not in METHODS:
        msg = f"method={method!r} is not known; use one of {list(METHODS)!r}"
        raise AnalysisError(msg)
    y, design = _design_point_mean(obj, over, aggregate)
    sampled = [d for d in design if d not in obj.indexes or _has_params_along(obj, d)]
    if method == "auto":
        method = "rbd_fast" if sampled else "anova"
    if method == "anova":
        if sampled:
            msg = (
                f"method='anova' needs a full grid, but {sampled!r} holds sampled "
                "parameters; use method='rbd_fast'"
            )
            raise AnalysisError(msg)
        out = _anova(y, design)
    else:
        if len(sampled) != 1:
            msg = (
                f"method={method!r} needs one sampled design dim (such as 'sample') with "
                f"parameters along it; found {sampled!r}"
            )
            raise AnalysisError(msg)
        params = [p for p in parameter_names(obj) if p in y.coords and y[p].dims == (sampled[0],)]
        out = _sampled(y, sampled[0], params, bounds, int(num_resamples), int(rng_seed))
    out.attrs.update(
        {
            "method": method,
            "variable": str(obj.name),
            "over": [str(d) for d in resolve_replicates(obj, over)],
        }
    )
    return out


def _has_params_along(da: xr.DataArray, dim: Hashable) -> bool:
    return any(
        c.dims == (dim,) and name != dim and name not in BOOKKEEPING
        for name, c in da.coords.items()
    )
