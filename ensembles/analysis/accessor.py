"""The ``.ens`` accessor on xarray Datasets and DataArrays: a thin front door.

Importing this module registers ``.ens``; every method delegates to a plain function of
:mod:`~ensembles.analysis.reduce`, :mod:`~ensembles.analysis.summary`,
:mod:`~ensembles.analysis.failures`, :mod:`~ensembles.analysis.convergence`,
:mod:`~ensembles.analysis.sensitivity` or :mod:`~ensembles.analysis.plot` with the object
as first argument, so ``ds["M"].ens.envelope(over="seed")`` is
``reduce.envelope(ds["M"], over="seed")``.

``over=`` names the member dims a method reduces. Every method defaults to
``over=None``, which means one thing everywhere: reduce every member dim except those the
result is laid out over.

* Statistics (``count``, ``mean``, ``std``, ``sem``, ``quantile``, ``envelope``,
  ``bootstrap_ci``) keep no member dim: the whole ensemble, e.g. ``("sample", "seed")``.
* Per-design-point methods (``summary``, ``groups``, ``convergence``,
  ``check_convergence``, ``sensitivity``, ``main_effects``) keep the design dims, so they
  reduce the replicate dim ``seed``.
* Plots keep the dims they draw: ``plot_envelope`` its ``hue``, ``plot_sensitivity`` its
  ``param`` and ``hue``, ``plot_heatmap`` its ``x`` and ``y``.

Quantile-based methods take ``method=``, NumPy's quantile method by name (``"linear"``
by default; see :data:`~ensembles.analysis.reduce.QUANTILE_METHODS`).

Examples
--------
>>> import ensembles.analysis.accessor  # doctest: +SKIP
>>> band = ds["M"].ens.envelope(over=("sample", "seed"), q=(0.025, 0.975))  # doctest: +SKIP
>>> ds.ens.summary(over="seed")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Hashable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import xarray as xr

if TYPE_CHECKING:
    from . import convergence, failures, reduce, sensitivity, summary

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["EnsembleAccessor", "EnsembleDataArrayAccessor", "EnsembleDatasetAccessor"]


class _OnFirstUse:
    """A module imported on first attribute access.

    Registering ``.ens`` must stay cheap: ``import ensembles`` runs this module, and so
    does every dask worker that unpickles an ensembles task. The analysis modules (and
    dask.array, scipy, pandas behind them) load when a method is first called.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module: ModuleType = importlib.import_module(f"{__package__}.{self._name}")
        return getattr(module, attr)


if not TYPE_CHECKING:
    convergence = _OnFirstUse("convergence")
    failures = _OnFirstUse("failures")
    reduce = _OnFirstUse("reduce")
    sensitivity = _OnFirstUse("sensitivity")
    summary = _OnFirstUse("summary")

Obj = TypeVar("Obj", xr.DataArray, xr.Dataset)


class EnsembleAccessor(Generic[Obj]):
    """Ensemble statistics, tables and plots of an xarray object (``obj.ens``)."""

    def __init__(self, obj: Obj) -> None:
        self._obj: Obj = obj

    # reductions (lazy) ---------------------------------------------------------------

    @property
    def member_dims(self) -> tuple[Hashable, ...]:
        """The member dims (the dims of ``status``); see :func:`.reduce.member_dims`."""
        return reduce.member_dims(self._obj)

    def count(self, over: Any = None) -> Obj:
        """Members used per position; see :func:`.reduce.count`."""
        return reduce.count(self._obj, over=over)

    def mean(self, over: Any = None) -> Obj:
        """Ensemble mean; see :func:`.reduce.mean`."""
        return reduce.mean(self._obj, over=over)

    def std(self, over: Any = None, ddof: int = 1) -> Obj:
        """Ensemble standard deviation; see :func:`.reduce.std`."""
        return reduce.std(self._obj, over=over, ddof=ddof)

    def sem(self, over: Any = None) -> Obj:
        """Standard error of the mean; see :func:`.reduce.sem`."""
        return reduce.sem(self._obj, over=over)

    def quantile(self, q: Any, over: Any = None, method: str = "linear") -> Obj:
        """Ensemble quantiles; see :func:`.reduce.quantile`."""
        return reduce.quantile(self._obj, q, over=over, method=method)

    def envelope(
        self,
        over: Any = None,
        q: Sequence[float] = (0.025, 0.975),
        median: bool = False,
        method: str = "linear",
    ) -> xr.Dataset:
        """Mean and quantile band; see :func:`.reduce.envelope`."""
        return reduce.envelope(self._obj, over=over, q=q, median=median, method=method)

    def bootstrap_ci(
        self,
        stat: Any = "mean",
        over: Any = None,
        n: int = 1000,
        level: float = 0.95,
        rng_seed: int = 0,
        method: str = "linear",
    ) -> xr.Dataset:
        """Bootstrap confidence interval; see :func:`.reduce.bootstrap_ci`."""
        return reduce.bootstrap_ci(
            self._obj, stat, over=over, n=n, level=level, rng_seed=rng_seed, method=method
        )

    def check_convergence(self, tol: float, over: Any = None, **kwargs: Any) -> xr.Dataset:
        """CI half-width below ``tol``? See :func:`.convergence.check_convergence`."""
        return convergence.check_convergence(self._obj, tol, over=over, **kwargs)

    # tables (computed) ---------------------------------------------------------------

    def summary(
        self,
        over: Any = None,
        q: Sequence[float] = (0.025, 0.5, 0.975),
        vars: Sequence[Hashable] | None = None,
        aggregate: Any = None,
        method: str = "linear",
    ) -> pd.DataFrame:
        """Per-design-point statistics table; see :func:`.summary.summary`."""
        return summary.summary(
            self._obj, over=over, q=q, vars=vars, aggregate=aggregate, method=method
        )

    def to_frame(self, vars: Sequence[Hashable] | None = None) -> pd.DataFrame:
        """Long table, one row per member and step; see :func:`.summary.to_frame`."""
        return summary.to_frame(self._obj, vars=vars)

    def groups(
        self, over: Any = None, vars: Sequence[Hashable] | None = None
    ) -> list[dict[str, Any]]:
        """Results grouped by parameters; see :func:`.summary.groups`."""
        return summary.groups(self._obj, over=over, vars=vars)

    def failures(self) -> pd.DataFrame:
        """One row per failed member: parameters, seed, error; see :func:`.failures.failures`."""
        return failures.failures(self._obj)

    # plots (computed) ----------------------------------------------------------------

    def plot_envelope(
        self,
        over: Any = None,
        q: Sequence[float] = (0.025, 0.975),
        hue: Hashable | None = None,
        ax: Axes | None = None,
        **kwargs: Any,
    ) -> Axes:
        """Mean line and quantile band; see :func:`.plot.plot_envelope`."""
        from . import plot

        return plot.plot_envelope(self._obj, over=over, q=q, hue=hue, ax=ax, **kwargs)

    def plot_members(
        self, x: Hashable | None = None, over: Any = None, ax: Axes | None = None, **kwargs: Any
    ) -> Axes:
        """Members used per design point, as bars; see :func:`.plot.plot_members`."""
        from . import plot

        return plot.plot_members(self._obj, x=x, over=over, ax=ax, **kwargs)

    def plot_sensitivity(
        self, param: Hashable, over: Any = None, ax: Axes | None = None, **kwargs: Any
    ) -> Axes:
        """Output vs a parameter, error bars; see :func:`.plot.plot_sensitivity`."""
        from . import plot

        return plot.plot_sensitivity(self._obj, param, over=over, ax=ax, **kwargs)

    def plot_heatmap(
        self, x: Hashable, y: Hashable, over: Any = None, ax: Axes | None = None, **kwargs: Any
    ) -> Axes:
        """Heatmap over two grid parameters; see :func:`.plot.plot_heatmap`."""
        from . import plot

        return plot.plot_heatmap(self._obj, x, y, over=over, ax=ax, **kwargs)


@xr.register_dataarray_accessor("ens")
class EnsembleDataArrayAccessor(EnsembleAccessor[xr.DataArray]):
    """``DataArray.ens``: statistics, convergence and sensitivity of one output."""

    def convergence(self, over: Any = None, **kwargs: Any) -> xr.Dataset:
        """Stats and CIs vs member count; see :func:`.convergence.convergence`."""
        return convergence.convergence(self._obj, over=over, **kwargs)

    def sensitivity(self, over: Any = None, method: str = "auto", **kwargs: Any) -> xr.Dataset:
        """Sensitivity indices per parameter; see :func:`.sensitivity.sensitivity`."""
        return sensitivity.sensitivity(self._obj, over=over, method=method, **kwargs)

    def main_effects(self, over: Any = None, aggregate: Any = None) -> xr.Dataset:
        """Mean response per grid value; see :func:`.sensitivity.main_effects`."""
        return sensitivity.main_effects(self._obj, over=over, aggregate=aggregate)


@xr.register_dataset_accessor("ens")
class EnsembleDatasetAccessor(EnsembleAccessor[xr.Dataset]):
    """``Dataset.ens``: statistics, tables and plots of every output of an ensemble."""
