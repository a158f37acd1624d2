"""Member dims and the arguments every analysis takes: ``over=``, variables, quantiles.

An ensemble's member dims are those of its ``status`` coordinate. The analysis modules
(:mod:`.reduce`, :mod:`.convergence`, :mod:`.sensitivity`, :mod:`.plot`, ...) resolve
``over=`` to a tuple of dims, pick the data variables a reduction applies to and validate
probabilities here, so they agree on what they accept and on their error messages.

One rule for ``over=None``, the default everywhere: reduce every member dim except those
the result is laid out over. Statistics keep none (:func:`resolve_over`); per-design-point
methods keep the design dims, so they reduce the replicate dim ``seed``
(:func:`resolve_replicates`); plots keep the dims they draw (``keep=``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AnalysisError
from ..layout import SEED_DIM, STATUS

__all__ = [
    "check_envelope_q",
    "check_probabilities",
    "is_numeric",
    "member_dims",
    "resolve_over",
    "resolve_replicates",
    "selected_vars",
]


def member_dims(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, ...]:
    """Return the member dims of an ensemble object: the dims of its ``status`` coordinate.

    Parameters
    ----------
    obj : DataArray or Dataset
        An ensemble (or part of one) that still carries the ``status`` coordinate.

    Returns
    -------
    tuple of str
        For example ``("sample", "seed")`` or ``("T", "L", "seed")``.

    Raises
    ------
    AnalysisError
        If ``obj`` has no ``status`` coordinate; then pass ``over=`` explicitly.

    Examples
    --------
    >>> member_dims(ds["M"])  # doctest: +SKIP
    ('sample', 'seed')
    """
    if STATUS not in obj.coords:
        msg = (
            f"cannot infer the member dims of this {type(obj).__name__}: it has no "
            f"{STATUS!r} coordinate (dims {tuple(obj.dims)!r}); pass over=... explicitly, "
            "for example over='seed' or over=('sample', 'seed')"
        )
        raise AnalysisError(msg)
    return tuple(obj.coords[STATUS].dims)


def resolve_over(
    obj: xr.DataArray | xr.Dataset, over: Any, keep: Iterable[Hashable] = ()
) -> tuple[Hashable, ...]:
    """Normalize ``over`` (None, a dim name or an iterable of names) to a tuple of dims.

    Parameters
    ----------
    obj : DataArray or Dataset
        The ensemble object reduced.
    over : None, hashable or iterable of hashable
        None means every member dim (:func:`member_dims`) except those in ``keep``.
    keep : iterable of hashable, optional
        Member dims that ``over=None`` leaves alone (the dims a plot draws, say).

    Returns
    -------
    tuple of hashable
        Distinct dims of ``obj``, at least one.

    Raises
    ------
    AnalysisError
        If ``over`` names no dim, a dim twice, or a dim ``obj`` does not have.

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("T", "seed"))
    >>> resolve_over(da, "seed")
    ('seed',)
    """
    if over is None:
        kept = set(keep)
        dims = tuple(d for d in member_dims(obj) if d not in kept)
        if not dims:
            msg = (
                f"over=None reduces nothing here: every member dim {member_dims(obj)!r} is "
                "kept; pass over=... with a dim to reduce, e.g. over='seed'"
            )
            raise AnalysisError(msg)
    elif isinstance(over, str) or not isinstance(over, Iterable):
        dims = (over,)
    else:
        dims = tuple(over)
    if not dims:
        msg = "over=() reduces nothing; name at least one dim, e.g. over='seed'"
        raise AnalysisError(msg)
    if len(set(dims)) != len(dims):
        msg = f"over={dims!r} names a dim twice; name each dim once"
        raise AnalysisError(msg)
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        msg = (
            f"over={over!r}: dim {missing[0]!r} is not a dim of this "
            f"{type(obj).__name__}; its dims are {tuple(obj.dims)!r}"
        )
        raise AnalysisError(msg)
    return dims


def resolve_replicates(obj: xr.DataArray | xr.Dataset, over: Any) -> tuple[Hashable, ...]:
    """``over`` of a per-design-point method: None means the replicate dim ``seed``.

    Summaries, groups, convergence and sensitivity report per design point, so their
    ``over=None`` keeps the design dims and reduces only :data:`~ensembles.layout.SEED_DIM`.

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((2, 3)), dims=("T", "seed"))
    >>> resolve_replicates(da, None)
    ('seed',)
    """
    if over is None:
        if SEED_DIM not in obj.dims:
            msg = (
                f"over=None means the replicate dim {SEED_DIM!r} here, which this "
                f"{type(obj).__name__} does not have (dims {tuple(obj.dims)!r}); pass "
                "over=... with the dims to reduce"
            )
            raise AnalysisError(msg)
        over = SEED_DIM
    return resolve_over(obj, over)


def is_numeric(var: xr.DataArray) -> bool:
    """Whether ``var`` holds booleans, integers or floats (what the statistics accept)."""
    return var.dtype.kind in "biuf"


def selected_vars(ds: xr.Dataset, over: tuple[Hashable, ...]) -> list[Hashable]:
    """Data variables of ``ds`` that a reduction over ``over`` applies to.

    Those that are numeric, have every dim of ``over`` and are not ``status``.

    Raises
    ------
    AnalysisError
        If no data variable qualifies.
    """
    names = [
        name
        for name, var in ds.data_vars.items()
        if is_numeric(var) and set(over) <= set(var.dims) and name != STATUS
    ]
    if not names:
        msg = (
            f"no numeric data variable of this Dataset has all of the dims {over!r} "
            f"(variables: {list(ds.data_vars)!r}); choose over= among their dims"
        )
        raise AnalysisError(msg)
    return names


def check_probabilities(q: Any, what: str = "q") -> np.ndarray:
    """``q`` as a float64 array of one or more probabilities in [0, 1].

    Parameters
    ----------
    q : float or sequence of float
        The probabilities.
    what : str
        The argument's name, for the error message.

    Raises
    ------
    AnalysisError
        If ``q`` is empty, more than one-dimensional or outside [0, 1].
    """
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0 or not np.all((arr >= 0) & (arr <= 1)):
        msg = f"{what}={q!r} is not valid: give one or more probabilities in [0, 1]"
        raise AnalysisError(msg)
    return arr


def check_envelope_q(q: Any) -> tuple[float, float]:
    """``q`` as a (lower, upper) pair of probabilities with lower <= upper.

    Raises
    ------
    AnalysisError
        If ``q`` is not such a pair.

    Examples
    --------
    >>> check_envelope_q((0.05, 0.95))
    (0.05, 0.95)
    """
    arr = check_probabilities(q)
    if arr.shape != (2,) or arr[0] > arr[1]:
        msg = (
            f"q={q!r} is not a (lower, upper) pair: give two probabilities with "
            "lower <= upper, e.g. q=(0.025, 0.975)"
        )
        raise AnalysisError(msg)
    return float(arr[0]), float(arr[1])
