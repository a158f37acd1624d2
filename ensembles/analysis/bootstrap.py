"""Percentile-bootstrap kernels: whole members resampled, plain NumPy.

:func:`bootstrap_kernel` runs on a block of columns that holds every member (see
:func:`ensembles.reduce_engine.whole_blocks`). Members that ran (status ok) are resampled
whole: one set of draws per number of ok members, shared by every column with that many,
so a time series whose count of values changes along it (NaN tails) costs what a complete
one costs. A drawn member's missing values are skipped. Sums and reductions run on arrays
of the same shape whatever the chunking, so results do not depend on it to the last bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import AnalysisError
from .kernels import SLAB_BYTES, as_columns, assembled, column_pieces
from .quantiles import column_quantiles, sorted_quantiles

__all__ = [
    "bootstrap_kernel",
    "bootstrap_stat",
    "compact",
    "estimates",
    "replicates",
    "resample_weights",
    "slab_width",
]


def bootstrap_stat(stat: Any, method: str = "linear") -> tuple[str, Callable[..., Any]]:
    """Name and ``f(values, axis)`` of a bootstrap statistic (quantiles by ``method``).

    Examples
    --------
    >>> name, f = bootstrap_stat(0.9, "lower")
    >>> name, float(f(np.arange(11.0), axis=0))
    ('quantile(0.9)', 9.0)
    """
    if callable(stat):
        return getattr(stat, "__name__", "stat"), stat
    if isinstance(stat, str):
        named: dict[str, Callable[..., Any]] = {
            "mean": np.mean,
            "median": np.median,
            "std": lambda x, axis: np.std(x, axis=axis, ddof=1),
        }
        if stat in named:
            return stat, named[stat]
    elif isinstance(stat, (float, int, np.floating)) and 0 <= float(stat) <= 1:
        prob = float(stat)
        return f"quantile({prob:g})", lambda x, axis: np.quantile(
            x, prob, axis=axis, method=method
        )
    msg = (
        f"stat={stat!r} is not a known statistic: use 'mean', 'median', 'std', a "
        "probability in [0, 1] for a quantile, or a function f(values, axis)"
    )
    raise AnalysisError(msg)


def slab_width(used: int, n_boot: int) -> int:
    """Columns per slab: a slab of values or of resampled statistics fits in SLAB_BYTES."""
    return max(1, SLAB_BYTES // (8 * max(used, n_boot)))


def compact(values: np.ndarray, keep: np.ndarray, used: int) -> np.ndarray:
    """Move each column's kept rows to the top (member order kept), keep ``used`` rows."""
    order = np.argsort(~keep, axis=0, kind="stable")[:used]
    return np.take_along_axis(values, order, axis=0)


def resample_weights(draws: np.ndarray) -> np.ndarray:
    """How often each member is drawn in each resample: (n_boot, members) float64."""
    n_boot, used = draws.shape
    rows = np.repeat(np.arange(n_boot), used)
    weights = np.bincount(rows * used + draws.ravel(), minlength=n_boot * used)
    return weights.reshape(n_boot, used).astype(np.float64)


def _columnwise(func: Callable, values: np.ndarray, axis: int) -> np.ndarray:
    """``func(values, axis)`` summed column by column even for a single (last-axis) column.

    NumPy sums one contiguous column pairwise but several columns row by row; twinning a
    lone column keeps the order, so a column's result does not depend on its neighbours.
    """
    if values.shape[-1] != 1:
        return func(values, axis=axis)
    return func(np.concatenate([values, values], axis=-1), axis=axis)[..., :1]


def _weighted(weights: np.ndarray, x: np.ndarray, panel: int | None) -> np.ndarray:
    """``weights @ x`` on exactly ``panel`` columns (zero padded) whatever ``x`` holds.

    BLAS picks its kernel by the matrix shape, so a fixed shape keeps each column's sums
    the same bits whether its slab is full or not.
    """
    columns = x.shape[1]
    if panel is None or columns >= panel:
        return weights @ x
    padded = np.zeros((x.shape[0], panel), order="F" if not x.flags.c_contiguous else "C")
    padded[:, :columns] = x
    return (weights @ padded)[:, :columns]


def estimates(
    a: np.ndarray, valid: np.ndarray, n: np.ndarray, func: Callable, width: Callable[[int], int]
) -> np.ndarray:
    """The statistic of each column's values (NaN where a column has none).

    Columns with the same number of values go through ``func`` together, in slabs of
    ``width(count)`` columns: complete columns as they are, the others with their values
    compacted to the top in member order (a C-ordered copy, as :func:`compact` gives).
    """
    members, ncol = a.shape
    out = np.full(ncol, np.nan)
    ordered = a if valid.all() else compact(a, valid, members)
    for used in np.unique(n[n > 0]):
        columns = np.flatnonzero(n == used)
        step = width(int(used))
        for start in range(0, columns.size, step):
            sub = columns[start : start + step]
            if used == members:
                out[sub] = func(a[:, sub], axis=0)
            else:
                out[sub] = _columnwise(func, np.ascontiguousarray(ordered[:used, sub]), 0)
    return out


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges over which the same members have a value (a series changes rarely)."""
    changes = np.flatnonzero((valid[:, 1:] != valid[:, :-1]).any(axis=0)) + 1
    return list(itertools.pairwise([0, *changes.tolist(), valid.shape[1]]))


def _drawn(weights: np.ndarray, valid: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """How many drawn members have a value: (n_boot, runs), one (exact) product per run."""
    return weights @ valid[:, [start for start, _ in runs]].astype(np.float64)


def _weighted_std(
    weights: np.ndarray, x: np.ndarray, valid: np.ndarray, drawn: np.ndarray, panel: int | None
) -> np.ndarray:
    """Sample std (``ddof=1``) of each resample's drawn values, missing values skipped.

    Sums over the drawn members are matrix products of the draw counts, so columns with
    gaps cost what complete ones cost; values are shifted by their column's mean first,
    which keeps the one-pass sums accurate.
    """
    count = valid.sum(axis=0)
    rows = np.ascontiguousarray(x.T)  # one contiguous row per column: sums of fixed order
    shift = np.zeros(count.shape)
    np.divide(np.sum(rows, axis=1, where=valid.T), count, out=shift, where=count > 0)
    dev = np.where(valid, x - shift, 0.0)
    first, second = _weighted(weights, dev, panel), _weighted(weights, dev * dev, panel)
    square = np.zeros(drawn.shape)
    np.divide(first * first, drawn, out=square, where=drawn > 0)
    var = np.full(drawn.shape, np.nan)
    np.divide(np.maximum(second - square, 0.0), drawn - 1, out=var, where=drawn > 1)
    return np.sqrt(var)


def _order_stat(g: np.ndarray, stat: Any, method: str) -> np.ndarray:
    """Median (as :func:`numpy.median`) or quantile ``stat`` along axis 1, NaN skipped."""
    srt = np.sort(g, axis=1)
    k = (~np.isnan(g)).sum(axis=1)
    if isinstance(stat, str) and stat == "median":
        half = (k // 2)[:, None, :]
        hi = np.take_along_axis(srt, np.minimum(half, g.shape[1] - 1), axis=1)[:, 0]
        lo = np.take_along_axis(srt, np.maximum(half - 1, 0), axis=1)[:, 0]
        out = np.where(k % 2 == 1, hi, (lo + hi) / 2)
        out[k == 0] = np.nan
        return out
    columns = np.moveaxis(srt, 1, 0).reshape(g.shape[1], -1)
    probs = np.array([float(stat)])
    return sorted_quantiles(columns, k.ravel(), probs, method).reshape(k.shape)


def _gathered(
    x: np.ndarray, draws: np.ndarray, gaps: np.ndarray, stat: Any, func: Callable, method: str
) -> np.ndarray:
    """The statistic of each resample, computed on the drawn values (batches of resamples).

    Complete columns use ``func`` as it is; in columns with gaps the median and quantiles
    skip the missing values and a function of the caller's sees them as NaN.
    """
    n_boot = draws.shape[0]
    reps = np.empty((n_boot, x.shape[1]))
    batch = max(1, SLAB_BYTES // (8 * x.size or 1))
    whole, holed = x[:, ~gaps], x[:, gaps]
    for start in range(0, n_boot, batch):
        rows = slice(start, start + batch)
        if whole.shape[1]:
            reps[rows, ~gaps] = _columnwise(func, whole[draws[rows]], 1)
        if holed.shape[1]:
            picked = holed[draws[rows]]
            reps[rows, gaps] = (
                _columnwise(func, picked, 1)
                if callable(stat)
                else _order_stat(picked, stat, method)
            )
    return reps


def replicates(
    x: np.ndarray,
    draws: np.ndarray,
    stat: Any,
    func: Callable,
    method: str = "linear",
    panel: int | None = None,
) -> np.ndarray:
    """The statistic of each bootstrap resample: (n_boot, columns).

    ``x`` holds the resampled members' values (members, columns), NaN where a member has
    no value; resample ``i`` is the members ``draws[i]``, whose missing values it skips.
    Sums over members are matrix products on ``panel`` columns (see :func:`_weighted`).

    Examples
    --------
    >>> x = np.array([[1.0, 1.0], [3.0, np.nan]])
    >>> replicates(x, np.array([[0, 1], [1, 1]]), "mean", np.mean)
    array([[ 2.,  1.],
           [ 3., nan]])
    """
    n_boot, used = draws.shape
    valid = ~np.isnan(x)
    gaps = ~valid.all(axis=0)
    by_moments = isinstance(stat, str) and stat in ("mean", "std")
    if by_moments and stat == "mean" and not gaps.any():
        return _weighted(resample_weights(draws), x, panel) / used
    if not by_moments or not gaps.any():
        return _gathered(x, draws, gaps, stat, func, method)
    weights = resample_weights(draws)
    runs = _runs(valid)
    drawn = _drawn(weights, valid, runs)
    if stat == "mean":  # the sum over the drawn values / how many there are (used if all)
        reps = np.asfortranarray(_weighted(weights, np.where(valid, x, 0.0), panel))
        for i, (start, stop) in enumerate(runs):  # contiguous blocks of the F-ordered copy
            count = drawn[:, i : i + 1]
            reps[:, start:stop] /= np.where(count > 0, count, np.nan)
        return reps
    drawn = np.repeat(drawn, [stop - start for start, stop in runs], axis=1)[:, gaps]
    reps = np.empty((n_boot, x.shape[1]))
    whole = ~gaps
    if whole.any():
        reps[:, whole] = _gathered(x[:, whole], draws, gaps[whole], stat, func, method)
    reps[:, gaps] = _weighted_std(weights, x[:, gaps], valid[:, gaps], drawn, panel)
    return reps


def _values_and_ok(
    blocks: list[np.ndarray], ok: np.ndarray | None, r: int, numblocks: tuple[int, ...], **kw: Any
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """(members, columns) values, NaN where not ok; the ok mask (None: all ok); kept shape."""
    pieces, masks = column_pieces(blocks, r, kw["cols"], ok, kw["ok_index"])
    masked = [
        p if m is None else np.where(m, p, np.nan) for p, m in zip(pieces, masks, strict=True)
    ]
    a, rest = as_columns(assembled(masked, r, numblocks), r)
    if all(m is None for m in masks):
        return a, None, rest
    keep = [np.ones(p.shape, bool) if m is None else m for p, m in zip(pieces, masks, strict=True)]
    return a, assembled(keep, r, numblocks).reshape(a.shape), rest


def bootstrap_kernel(
    blocks: list[np.ndarray],
    ok: np.ndarray | None,
    *,
    r: int,
    numblocks: tuple[int, ...],
    stat: Any,
    n_boot: int,
    level: float,
    rng_seed: int,
    method: str = "linear",
    **where: Any,
) -> np.ndarray:
    """Rows: count, estimate, lower, upper (percentile bootstrap over the members).

    ``where`` holds ``cols`` and ``ok_index`` (see :func:`~ensembles.reduce_engine.whole_blocks`).
    Each column resamples its ok members with the draws of ``[rng_seed, number of ok
    members]``; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
    (by ``method``) of the resampled statistic, over the resamples where it is defined.
    """
    _, func = bootstrap_stat(stat, method)
    a, member_ok, rest = _values_and_ok(blocks, ok, r, numblocks, **where)
    members, ncol = a.shape
    valid = ~np.isnan(a)
    n = valid.sum(axis=0)
    universe = np.full(ncol, members) if member_ok is None else member_ok.sum(axis=0)
    out = np.full((4, ncol), np.nan)
    out[0] = n
    out[1] = estimates(a, valid, n, func, lambda used: slab_width(used, n_boot))
    tail = (1 - level) / 2
    shared = member_ok is not None and bool((member_ok == member_ok[:, :1]).all())
    ok_rows = a[member_ok[:, 0]] if shared else None  # type: ignore[index]
    for used in np.unique(universe[n > 0]):
        columns = np.flatnonzero((universe == used) & (n > 0))
        # the same resamples for every column with this many ok members, whatever the chunking
        draws = np.random.default_rng([rng_seed, int(used)]).integers(0, used, (n_boot, used))
        width = slab_width(int(used), n_boot)
        for start in range(0, columns.size, width):
            sub = columns[start : start + width]
            x = a[:, sub]
            if ok_rows is not None and used < members:
                x = np.ascontiguousarray(ok_rows[:, sub])
            elif used < members:
                x = compact(x, member_ok[:, sub], int(used))  # type: ignore[index]
            reps = replicates(x, draws, stat, func, method, panel=width)
            out[2:, sub] = column_quantiles(reps, [tail, 1 - tail], method)
    return out.reshape((4, *rest))
