"""Matplotlib figures of ensembles: envelopes, members per point, sensitivity, heatmaps.

Each function computes what it draws (these are the only eager calls of the analysis
API), draws on ``ax`` or on a new figure (:data:`DPI` dots per inch, as the CLI saves),
never calls ``plt.show()``, and returns the Axes. Labels come from variable names and
their ``long_name`` and ``units`` attrs; legends sit outside the axes, beside the data.
A plot refuses more than ``max_lines`` lines (10) and says which call reads better.
Works with any backend, including ``Agg`` for scripts and the CLI.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..errors import AnalysisError
from ..layout import FAILED, OK, SEED_DIM, SKIPPED, STATUS
from . import reduce
from .arguments import check_envelope_q, member_dims, resolve_over
from .summary import aggregate_outputs, output_dims, parameter_names

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "DPI",
    "MAX_LINES",
    "axis_label",
    "plot_envelope",
    "plot_heatmap",
    "plot_members",
    "plot_sensitivity",
]

DPI = 120
"""Resolution of new figures, so ``ax.figure.savefig(...)`` matches ``ensembles plot``."""
MAX_LINES = 10
"""Most lines (design points) a plot draws unless told otherwise; also the legend's limit."""
_DIMENSIONLESS = (None, "", "1")


def axis_label(da: xr.DataArray | xr.Variable, name: Hashable = None) -> str:
    """``long_name [units]`` of a variable (its name when it has no ``long_name``).

    Dimensionless quantities (units ``"1"``, or none) show no unit.

    Examples
    --------
    >>> axis_label(xr.DataArray([1.0], name="E", attrs={"units": "J"}))
    'E [J]'
    >>> axis_label(xr.DataArray([1.0], name="M", attrs={"units": "1"}))
    'M'
    """
    label = str(da.attrs.get("long_name", name if name is not None else getattr(da, "name", "")))
    units = da.attrs.get("units")
    return label if units in _DIMENSIONLESS else f"{label} [{units}]"


def _new_axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7, 4.5), dpi=DPI, layout="constrained")
    return ax


def _legend(ax: Axes, **kwargs: Any) -> None:
    """A legend beside the axes (right, top-aligned): never on top of the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def _check_lines(
    da: xr.DataArray, count: int, hue: Hashable, dim: Hashable, over: tuple, max_lines: int
) -> None:
    """Refuse a plot of more than ``max_lines`` lines, naming calls that read better."""
    if count <= max_lines:
        return
    order = list(member_dims(da)) if STATUS in da.coords else list(da.dims)
    wider = tuple(sorted((*over, dim), key=lambda d: order.index(d) if d in order else len(order)))
    msg = (
        f"{count} values of {hue!r} would draw {count} overlapping lines, too many to read "
        f"(max_lines={max_lines}). Reduce over {dim!r} too for one band: "
        f"over={wider!r} (command line: --over {' '.join(map(str, wider))}); or select a "
        f"few first, e.g. .isel({dim}=slice(0, 5)); or pass max_lines={count} to draw them all"
    )
    raise AnalysisError(msg)


def _variable(obj: xr.DataArray | xr.Dataset, var: Hashable | None) -> xr.DataArray:
    """The DataArray to plot: ``obj`` itself, or ``obj[var]`` for a Dataset."""
    if isinstance(obj, xr.DataArray):
        return obj
    if var is None:
        names = list(obj.data_vars)
        if len(names) != 1:
            msg = (
                f"this Dataset has several outputs {names!r}: pass var=..., e.g. var={names[0]!r}"
            )
            raise AnalysisError(msg)
        var = names[0]
    if var not in obj.data_vars:
        msg = f"var={var!r} is not an output of this Dataset; choose among {list(obj.data_vars)!r}"
        raise AnalysisError(msg)
    return obj[var]


def _hue_dim(data: xr.Dataset | xr.DataArray, hue: Hashable) -> Hashable:
    if hue in data.dims:
        return hue
    if hue in data.coords and data[hue].ndim == 1:
        return data[hue].dims[0]
    msg = (
        f"hue={hue!r} is neither a remaining dim nor a parameter along one "
        f"(dims {tuple(data.dims)!r}, coords {list(data.coords)!r})"
    )
    raise AnalysisError(msg)


def _coord_values(data: xr.Dataset | xr.DataArray, name: Hashable) -> np.ndarray:
    if name in data.coords:
        return np.asarray(data[name].values)
    return np.arange(data.sizes[name])


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)


def _percent(lo: float, hi: float) -> str:
    return f"{100 * lo:.4g}-{100 * hi:.4g} %"


def _count_text(count: xr.DataArray) -> str:
    values = np.asarray(count.values)
    if values.size == 0:
        return "n = 0"
    lo, hi = int(values.min()), int(values.max())
    return f"n = {lo}" if lo == hi else f"n = {lo}-{hi}"


def _colors(values: np.ndarray, cmap: str = "viridis") -> tuple[list[Any], Any]:
    """One colour per hue value: the default cycle when few, a colormap when many."""
    import matplotlib as mpl

    if values.size <= MAX_LINES:
        cycle = mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
        return [cycle[i % len(cycle)] for i in range(values.size)], None
    numeric = np.issubdtype(values.dtype, np.number)
    scale = values.astype(float) if numeric else np.arange(values.size, dtype=float)
    norm = mpl.colors.Normalize(float(np.nanmin(scale)), float(np.nanmax(scale)))
    colormap = mpl.colormaps[cmap]
    return [colormap(norm(v)) for v in scale], mpl.cm.ScalarMappable(norm=norm, cmap=colormap)


def plot_envelope(
    obj: xr.DataArray | xr.Dataset,
    over: Any = None,
    q: Sequence[float] = (0.025, 0.975),
    hue: Hashable | None = None,
    ax: Axes | None = None,
    *,
    var: Hashable | None = None,
    x: Hashable | None = None,
    median: bool = False,
    alpha: float = 0.25,
    method: str = "linear",
    max_lines: int = MAX_LINES,
) -> Axes:
    """Plot the ensemble mean as a line and the ``q`` quantile band as a shaded area.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data; for a Dataset, ``var`` names the output.
    over : str or tuple of str, optional
        Dims the envelope runs over; default every member dim except the ``hue`` dim (one
        band, or one band per ``hue`` value).
    q : (float, float), default (0.025, 0.975)
        Lower and upper quantiles of the band.
    hue : str, optional
        One line and band per value of this dim or parameter (``"T"``, also when ``T`` is
        a parameter along ``sample``). When ``over`` leaves exactly one member dim, it is
        the hue by default (coloured by its parameter when it has exactly one).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure of :data:`DPI` dots per inch.
    var : str, optional
        The output to plot when ``obj`` is a Dataset with several.
    x : str, optional
        The dim on the horizontal axis; default the output's only dim (e.g. ``sweep``).
    median : bool, default False
        Also draw the median, dashed.
    alpha : float, default 0.25
        Opacity of the bands.
    method : str, default "linear"
        NumPy's quantile method for the band (see :data:`.reduce.QUANTILE_METHODS`).
    max_lines : int, default 10
        Refuse to draw more bands than this (they overlap into an unreadable picture); the
        error names the call that reads better. Beyond 10, lines are coloured by a
        colormap with a colorbar instead of a legend.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_envelope(ds["M"], over=("sample", "seed"))  # doctest: +SKIP
    >>> ax.figure.savefig("envelope.png")  # doctest: +SKIP
    """
    da = _variable(obj, var)
    hue_dims = [_hue_dim(da, hue)] if hue is not None else []
    dims = resolve_over(da, over, keep=hue_dims)
    lo, hi = check_envelope_q(q)
    band = reduce.envelope(da, over=dims, q=(lo, hi), median=median, method=method).compute()
    x, hue, hue_dim = _envelope_layout(da, band, dims, x, hue)
    if hue_dim is not None:
        _check_lines(da, band.sizes[hue_dim], hue, hue_dim, dims, max_lines)
    ax = _new_axes(ax)
    xs = _coord_values(band, x)
    name = da.name if da.name is not None else "value"
    if hue_dim is None:
        _draw_band(ax, xs, band, "C0", "mean", alpha, f"{_percent(lo, hi)} band", median)
        _legend(ax)
    else:
        hue_values = _coord_values(band, hue)
        colors, mappable = _colors(hue_values)
        for i, value in enumerate(hue_values):
            label = f"{hue} = {_format_value(value)}" if mappable is None else None
            part = band.isel({hue_dim: i})
            _draw_band(ax, xs, part, colors[i], label, alpha, None, median)
        if mappable is None:
            _legend(ax, title=f"mean and {_percent(lo, hi)} band")
        else:
            ax.figure.colorbar(mappable, ax=ax, label=axis_label(band[hue], hue))
    ax.set_xlabel(axis_label(band[x], x) if x in band.coords else str(x))
    ax.set_ylabel(axis_label(da, name))
    over_text = ", ".join(str(d) for d in dims)
    ax.set_title(
        f"{name}: mean and {_percent(lo, hi)} band over {over_text} ({_count_text(band['count'])})"
    )
    return ax


def _envelope_layout(
    da: xr.DataArray,
    band: xr.Dataset,
    dims: tuple[Hashable, ...],
    x: Hashable | None,
    hue: Hashable | None,
) -> tuple[Hashable, Hashable | None, Hashable | None]:
    """The x dim, the hue (dim or parameter) and the hue's dim of an envelope plot."""
    remaining = list(band["mean"].dims)
    outputs = output_dims(da, member_dims(da)) if STATUS in da.coords else []
    if x is None:
        candidates = [d for d in remaining if d in outputs] or remaining
        if len(candidates) != 1:
            msg = f"cannot choose the x axis among {candidates!r}: pass x=..."
            raise AnalysisError(msg)
        x = candidates[0]
    if x not in remaining:
        msg = f"x={x!r} is not a dim left after reducing over {dims!r}; choose among {remaining!r}"
        raise AnalysisError(msg)
    others = [d for d in remaining if d != x]
    if hue is None and len(others) == 1:
        along = [
            p for p in parameter_names(da) if p in band.coords and band[p].dims == (others[0],)
        ]
        hue = along[0] if len(along) == 1 else others[0]
    hue_dim = _hue_dim(band, hue) if hue is not None else None
    if [d for d in others if d != hue_dim]:
        msg = (
            f"after reducing over {dims!r}, dims {others!r} remain besides x={x!r}: add them "
            "to over=, or pass hue= for one of them"
        )
        raise AnalysisError(msg)
    return x, hue, hue_dim


def _draw_band(
    ax: Axes,
    xs: np.ndarray,
    band: xr.Dataset,
    color: Any,
    label: str | None,
    alpha: float,
    band_label: str | None,
    median: bool,
) -> None:
    ax.fill_between(
        xs,
        band["lower"].values,
        band["upper"].values,
        color=color,
        alpha=alpha,
        linewidth=0,
        label=band_label,
    )
    ax.plot(xs, band["mean"].values, color=color, label=label)
    if median:
        ax.plot(
            xs,
            band["median"].values,
            color=color,
            linestyle="--",
            label="median" if band_label else None,
        )


def plot_members(
    obj: xr.DataArray | xr.Dataset,
    x: Hashable | None = None,
    over: Any = None,
    ax: Axes | None = None,
    *,
    log: bool = False,
) -> Axes:
    """Bars of the members each design point used (ok), with failed ones stacked on top.

    Drawn under an envelope, it shows where an adaptive run spent its members (they peak
    where the output varies most); for any ensemble it shows how many members each
    point's statistics rest on. Skipped (3) and pending (0) members are not drawn.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data with its ``status`` coordinate.
    x : str, optional
        A design dim or a parameter along one (``"T"``, also ``T(sample)``); default the
        only design dim.
    over : str or tuple of str, optional
        Member dims counted at each ``x``; default every member dim except ``x``'s.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    log : bool, default False
        Logarithmic member axis (counts from tens to thousands).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib.pyplot as plt  # doctest: +SKIP
    >>> fig, (top, bottom) = plt.subplots(2, 1, sharex=True)  # doctest: +SKIP
    >>> plot_envelope(ds["M"].mean("sweep"), over="seed", ax=top)  # doctest: +SKIP
    >>> plot_members(ds, x="T", ax=bottom)  # doctest: +SKIP
    """
    if STATUS not in obj.coords:
        msg = "plot_members needs the ensemble's status coordinate (open the store with it)"
        raise AnalysisError(msg)
    status = obj.coords[STATUS]
    if x is None:
        design = [d for d in status.dims if d != SEED_DIM]
        if len(design) != 1:
            msg = f"cannot choose x among the design dims {design!r}: pass x=..."
            raise AnalysisError(msg)
        along = [p for p in parameter_names(status) if status[p].dims == (design[0],)]
        x = along[0] if len(along) == 1 else design[0]
    x_dim = _hue_dim(status, x)
    dims = resolve_over(status, over, keep=(x_dim,))
    counts = xr.Dataset({"ok": (status == OK).sum(dims), "failed": (status == FAILED).sum(dims)})
    counts = counts.compute()
    extra = [d for d in counts.dims if d != x_dim]
    if extra:
        msg = f"dims {extra!r} remain besides x={x!r}: add them to over="
        raise AnalysisError(msg)
    xs = _coord_values(counts, x)
    numeric = np.issubdtype(xs.dtype, np.number) and xs.size > 0
    spacing = np.diff(np.unique(xs)) if numeric else np.array([])
    width = 0.8 * float(spacing.min()) if spacing.size else 0.8
    where = xs if numeric else np.arange(xs.size)
    ax = _new_axes(ax)
    ok, failed = counts["ok"].values, counts["failed"].values
    ax.bar(where, ok, width, color="C0", label="ok")
    if failed.any():
        ax.bar(where, failed, width, bottom=ok, color="C3", label="failed")
        _legend(ax)
    if not numeric:
        ax.set_xticks(where, [str(v) for v in xs])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(axis_label(counts[x], x) if x in counts.coords else str(x))
    ax.set_ylabel("members")
    skipped = int((status == SKIPPED).sum())
    note = f"; {skipped} not needed (adaptive)" if skipped else ""
    ax.set_title(f"members per {x}: {int(ok.sum())} ok{note}")
    return ax


def _scalar_output(da: xr.DataArray, aggregate: Any, over: tuple[Hashable, ...]) -> xr.DataArray:
    mdims = member_dims(da) if STATUS in da.coords else over
    dims = output_dims(da, mdims)
    if dims and aggregate is None:
        msg = (
            f"{da.name!r} has output dims {dims!r}: pass aggregate='mean' (or 'last', ...) to "
            f"reduce each member's series, or select a step first, e.g. .isel({dims[0]}=-1)"
        )
        raise AnalysisError(msg)
    return aggregate_outputs(da, aggregate, mdims)


_SPREADS = {"sem": reduce.sem, "std": reduce.std}


def plot_sensitivity(
    obj: xr.DataArray | xr.Dataset,
    param: Hashable,
    over: Any = None,
    ax: Axes | None = None,
    *,
    var: Hashable | None = None,
    hue: Hashable | None = None,
    aggregate: Any = None,
    errorbar: str = "sem",
    max_lines: int = MAX_LINES,
) -> Axes:
    """Plot an output against one parameter: the ensemble mean with error bars.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data with a scalar output per member (or use ``aggregate``).
    param : str
        A grid dim (``"T"``) or a parameter along ``sample`` (``T(sample)``).
    over : str or tuple of str, optional
        Dims averaged at each point; default every member dim except those of ``param``
        and ``hue``. For a grid this is the main effect of ``param`` (the mean over the
        other parameters and the seeds).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    var : str, optional
        The output, when ``obj`` is a Dataset with several.
    hue : str, optional
        Another grid dim: one line per value.
    aggregate : str or callable, optional
        Reduce each member's time series first (see :func:`.summary.aggregate_outputs`).
    errorbar : {"sem", "std"}, default "sem"
        Error bars: standard error of the mean, or standard deviation of the members.
    max_lines : int, default 10
        Refuse more ``hue`` lines than this, naming the call that reads better.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> plot_sensitivity(ds, "T", var="M", aggregate="mean")  # doctest: +SKIP
    """
    if errorbar not in _SPREADS:
        msg = f"errorbar={errorbar!r} is not known; use one of {sorted(_SPREADS)!r}"
        raise AnalysisError(msg)
    da = _variable(obj, var)
    if param not in da.coords:
        names = parameter_names(da)
        msg = f"param={param!r} is not a parameter of {da.name!r}; use one of {names!r}"
        raise AnalysisError(msg)
    param_dim = _hue_dim(da, param)
    hue_dim = _hue_dim(da, hue) if hue is not None else None
    dims = resolve_over(da, over, keep=(param_dim, hue_dim))
    da = _scalar_output(da, aggregate, dims)
    mean = reduce.mean(da, dims)
    spread = _SPREADS[errorbar](da, dims)
    mean, spread = (r.compute() for r in xr.align(mean, spread))
    if hue_dim is not None:
        _check_lines(da, mean.sizes[hue_dim], hue, hue_dim, dims, max_lines)
    ax = _new_axes(ax)
    fmt = "o-" if param == param_dim else "o"
    if hue_dim is None:
        extra = [d for d in mean.dims if d != param_dim]
        if extra:
            msg = f"dims {extra!r} remain: add them to over= or pass hue= for one of them"
            raise AnalysisError(msg)
        _error_line(ax, mean, spread, param, fmt, label=f"mean ± {errorbar}")
    else:
        hue_values = _coord_values(mean, hue)
        colors, _ = _colors(hue_values)
        for i, value in enumerate(hue_values):
            pick = {hue_dim: i}
            label = f"{hue} = {_format_value(value)}"
            _error_line(
                ax, mean.isel(pick), spread.isel(pick), param, fmt, label=label, color=colors[i]
            )
    _legend(ax)
    ax.set_xlabel(axis_label(da[param], param))
    ax.set_ylabel(axis_label(da, da.name))
    over_text = ", ".join(str(d) for d in dims)
    ax.set_title(
        f"{da.name} vs {param}: mean ± {errorbar} over {over_text} ({_count_text(mean['count'])})"
    )
    return ax


def _error_line(
    ax: Axes, mean: xr.DataArray, spread: xr.DataArray, param: Hashable, fmt: str, **style: Any
) -> None:
    """One line of means with error bars, in increasing order of ``param``."""
    xs = _coord_values(mean, param)
    order = np.argsort(xs, kind="stable")
    ax.errorbar(
        xs[order], mean.values[order], yerr=spread.values[order], fmt=fmt, capsize=3, **style
    )


def plot_heatmap(
    obj: xr.DataArray | xr.Dataset,
    x: Hashable,
    y: Hashable,
    over: Any = None,
    ax: Axes | None = None,
    *,
    var: Hashable | None = None,
    stat: Any = "mean",
    aggregate: Any = None,
    cmap: str = "viridis",
    method: str = "linear",
) -> Axes:
    """Heatmap of an ensemble statistic over two grid parameters.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data over a grid with (at least) the dims ``x`` and ``y``.
    x, y : str
        Grid dims for the horizontal and vertical axes.
    over : str or tuple of str, optional
        Dims the statistic runs over; default every member dim except ``x`` and ``y``.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    var : str, optional
        The output, when ``obj`` is a Dataset with several.
    stat : {"mean", "std", "sem", "count"} or float, default "mean"
        The statistic shown; a float in [0, 1] is that quantile.
    aggregate : str or callable, optional
        Reduce each member's time series first (see :func:`.summary.aggregate_outputs`).
    cmap : str, default "viridis"
        Matplotlib colormap.
    method : str, default "linear"
        NumPy's quantile method when ``stat`` is a quantile.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> plot_heatmap(ds, "T", "L", var="M", aggregate="mean")  # doctest: +SKIP
    """
    da = _variable(obj, var)
    for name in (x, y):
        if name not in da.dims:
            msg = f"{name!r} is not a grid dim of {da.name!r}; its dims are {tuple(da.dims)!r}"
            raise AnalysisError(msg)
    dims = resolve_over(da, over, keep=(x, y))
    da = _scalar_output(da, aggregate, dims)
    if stat in ("mean", "std", "sem", "count"):
        values = getattr(reduce, stat)(da, dims)
        label = f"{stat} of {axis_label(da, da.name)}"
    elif isinstance(stat, (float, int)) and 0 <= stat <= 1:
        values = reduce.quantile(da, float(stat), dims, method)
        label = f"{float(stat):g} quantile of {axis_label(da, da.name)}"
    else:
        msg = f"stat={stat!r} is not known: use 'mean', 'std', 'sem', 'count' or a quantile"
        raise AnalysisError(msg)
    values = values.compute().transpose(y, x)
    ax = _new_axes(ax)
    mesh = ax.pcolormesh(
        _coord_values(values, x),
        _coord_values(values, y),
        values.values,
        shading="nearest",
        cmap=cmap,
    )
    ax.figure.colorbar(mesh, ax=ax, label=label)
    ax.set_xlabel(axis_label(da[x], x) if x in da.coords else str(x))
    ax.set_ylabel(axis_label(da[y], y) if y in da.coords else str(y))
    ax.set_title(f"{da.name}: {stat} over {', '.join(str(d) for d in dims)}")
    return ax
