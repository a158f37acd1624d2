"""Are N members enough? Ensemble statistics and their bootstrap CIs against member count.

:func:`convergence` recomputes the mean and the envelope quantiles from the first
1, 2, ..., N members (along ``over``) with bootstrap confidence intervals, so the
shrinking interval shows whether adding seeds still changes the answer.
:func:`check_convergence` says, per design point, whether the interval half-width of a
statistic is already below a tolerance.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AnalysisError
from ..layout import STATUS
from . import reduce
from .arguments import check_envelope_q, member_dims, resolve_replicates, selected_vars
from .quantiles import check_quantile_method

__all__ = ["check_convergence", "convergence", "default_sizes"]

_MEMBER = "member"


def default_sizes(n: int, steps: int = 8, start: int = 5) -> list[int]:
    """Roughly geometric member counts from ``start`` to ``n`` (always ending at ``n``).

    Examples
    --------
    >>> default_sizes(100)
    [5, 8, 12, 18, 28, 42, 65, 100]
    """
    if n < 1:
        msg = f"n={n!r}: there must be at least one member"
        raise AnalysisError(msg)
    start = min(start, n)
    sizes = np.unique(np.round(np.geomspace(start, n, steps)).astype(int))
    return [int(s) for s in sizes]


def _stacked(da: xr.DataArray, dims: tuple[Hashable, ...]) -> xr.DataArray:
    """``da`` with the ``over`` dims flattened into one ``member`` dim (in C order)."""
    if len(dims) == 1:
        return da.rename({dims[0]: _MEMBER}) if dims[0] != _MEMBER else da
    index_coords = [d for d in dims if d in da.indexes]
    flat = da.drop_vars(index_coords).stack({_MEMBER: dims}, create_index=False)
    return flat.drop_vars([c for c in flat.coords if _MEMBER in flat[c].dims and c != STATUS])


def convergence(
    obj: xr.DataArray,
    over: Any = None,
    sizes: Sequence[int] | None = None,
    q: Sequence[float] = (0.025, 0.975),
    n: int = 200,
    level: float = 0.95,
    rng_seed: int = 0,
    method: str = "linear",
) -> xr.Dataset:
    """The mean and envelope quantiles, with bootstrap CIs, from the first k members.

    Parameters
    ----------
    obj : DataArray
        One ensemble output.
    over : str or tuple of str, optional
        Member dims the statistics run over (several are flattened in C order); the first
        ``k`` positions along them are used for each ``k`` in ``sizes``. Default: the
        replicate dim ``seed`` (per design point).
    sizes : sequence of int, optional
        Member counts to try; default :func:`default_sizes` up to all members.
    q : (float, float), default (0.025, 0.975)
        Envelope quantiles to follow besides the mean.
    n : int, default 200
        Bootstrap resamples per interval.
    level : float, default 0.95
        Confidence level of the intervals.
    rng_seed : int, default 0
        Seed of the resampling generator.
    method : str, default "linear"
        NumPy's quantile method of the envelope quantiles and of the intervals.

    Returns
    -------
    Dataset
        Lazy. Dims ``n_members`` (the ``sizes``), ``stat`` (``mean``, ``q0.025``,
        ``q0.975``) and the remaining dims; variables ``estimate``, ``ci_lower``,
        ``ci_upper``, ``half_width`` and ``count`` (ok members among the first k).

    Examples
    --------
    >>> conv = convergence(ds["M"].isel(sweep=-1), over="seed").compute()  # doctest: +SKIP
    >>> conv["half_width"].sel(stat="mean")  # shrinks like 1/sqrt(n)  # doctest: +SKIP
    """
    if not isinstance(obj, xr.DataArray):
        msg = "convergence() takes one output (a DataArray), e.g. convergence(ds['M'])"
        raise AnalysisError(msg)
    dims = resolve_replicates(obj, over)
    lo, hi = check_envelope_q(q)
    check_quantile_method(method)
    flat = _stacked(obj, dims)
    total = flat.sizes[_MEMBER]
    sizes = default_sizes(total) if sizes is None else [int(s) for s in sizes]
    bad = [s for s in sizes if not 1 <= s <= total]
    if bad or not sizes:
        msg = f"sizes={sizes!r}: member counts must lie between 1 and {total} (the members)"
        raise AnalysisError(msg)
    stats = {"mean": "mean", f"q{lo:g}": lo, f"q{hi:g}": hi}
    per_size = []
    for k in sizes:
        head = flat.isel({_MEMBER: slice(0, k)})
        cis = [
            reduce.bootstrap_ci(
                head, stat, _MEMBER, n=n, level=level, rng_seed=rng_seed, method=method
            )
            for stat in stats.values()
        ]
        per_size.append(xr.concat(cis, dim="stat", coords="minimal", compat="override"))
    out = xr.concat(per_size, dim="n_members", coords="minimal", compat="override")
    out = out.rename({"lower": "ci_lower", "upper": "ci_upper"})
    out["count"] = out["count"].isel(stat=0, drop=True)
    out["half_width"] = (out["ci_upper"] - out["ci_lower"]) / 2
    out = out.assign_coords(n_members=np.asarray(sizes), stat=list(stats))
    out.attrs = {
        "over": [str(d) for d in dims],
        "q": [lo, hi],
        "n": int(n),
        "level": level,
        "method": method,
    }
    if obj.name is not None:
        out.attrs["variable"] = str(obj.name)
    return out


def check_convergence(
    obj: xr.DataArray | xr.Dataset,
    tol: float,
    over: Any = None,
    stat: Any = "mean",
    n: int = 500,
    level: float = 0.95,
    relative: bool = False,
    rng_seed: int = 0,
    method: str = "linear",
) -> xr.Dataset:
    """Per design point: is the CI half-width of ``stat`` below ``tol``?

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    tol : float
        Largest acceptable half-width (absolute, or relative to ``|estimate|``).
    over : str or tuple of str, optional
        Member dims the statistic runs over; the other member dims are the design points.
        Default: the replicate dim ``seed``.
    stat : {"mean", "median", "std"}, float or callable, default "mean"
        The statistic (see :func:`~ensembles.analysis.reduce.bootstrap_ci`).
    n : int, default 500
        Bootstrap resamples.
    level : float, default 0.95
        Confidence level.
    relative : bool, default False
        Compare ``half_width / |estimate|`` with ``tol``.
    rng_seed : int, default 0
        Seed of the resampling generator.
    method : str, default "linear"
        NumPy's quantile method of the interval (and of a quantile ``stat``).

    Returns
    -------
    Dataset
        Lazy, over the design points: ``half_width`` (the largest over the output dims,
        e.g. the worst sweep), ``converged`` (bool; False where no member is ok) and
        ``count`` (the fewest members used). For a Dataset input the names are prefixed
        ``<var>_`` and ``converged`` says whether every variable converged.

    Examples
    --------
    >>> check = check_convergence(ds["M"], tol=0.01, over="seed").compute()  # doctest: +SKIP
    >>> check["converged"].to_series()  # doctest: +SKIP
    """
    if not np.isfinite(tol) or tol <= 0:
        msg = f"tol={tol!r} is not a tolerance: give a positive number"
        raise AnalysisError(msg)
    dims = resolve_replicates(obj, over)
    if isinstance(obj, xr.Dataset):
        parts = {}
        for var in selected_vars(obj, dims):
            res = check_convergence(
                obj[var], tol, dims, stat, n, level, relative, rng_seed, method
            )
            parts.update({f"{var}_{k}": v for k, v in res.data_vars.items()})
        out = xr.Dataset(parts)
        flags = [out[k] for k in out.data_vars if str(k).endswith("_converged")]
        out["converged"] = xr.concat(flags, dim="variable", join="outer").all("variable")
        out.attrs = {"tol": tol, "stat": str(stat), "relative": relative}
        return out
    ci = reduce.bootstrap_ci(obj, stat, dims, n=n, level=level, rng_seed=rng_seed, method=method)
    half = (ci["upper"] - ci["lower"]) / 2
    if relative:
        scale = abs(ci["estimate"])
        half = half / scale.where(scale > 0)
    mdims = member_dims(obj) if STATUS in obj.coords else dims
    outputs = [d for d in half.dims if d not in mdims]
    worst = half.max(outputs, skipna=False) if outputs else half
    fewest = ci["count"].min(outputs) if outputs else ci["count"]
    out = xr.Dataset(
        {
            "half_width": worst,
            "converged": (worst <= tol).fillna(False).astype(bool),
            "count": fewest,
        }
    )
    out.attrs = {"tol": tol, "stat": ci.attrs["stat"], "relative": relative, "level": level}
    return out
