"""Confidence intervals of ensemble statistics on NumPy arrays, with NaN marking missing members.

The mean (Student t), a quantile (distribution-free, from order statistics) and the
standard deviation (Bonett's interval), vectorized over every position (design points x
steps), each position with its own member count. Plain NumPy and :mod:`scipy.special`: no
resampling, so the same values always give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AnalysisError

__all__ = [
    "STATS",
    "Interval",
    "interval",
    "mean_interval",
    "min_members",
    "quantile_interval",
    "quantile_ranks",
    "std_interval",
    "stein_interval",
]

STATS = ("mean", "quantile", "std")
"""The statistics :func:`interval` knows."""

_BLOCK = 1 << 21  # values per block of positions: bounds the temporaries to a few 10 MB
_STD_MIN = 5  # Bonett's trimmed mean needs n > 4


@dataclass(frozen=True, eq=False)
class Interval:
    """A confidence interval per position, and what it was computed from.

    Attributes
    ----------
    stat : str
        ``"mean"``, ``"quantile"`` or ``"std"``.
    level : float
        Confidence level.
    q : float or None
        The probability of a quantile interval.
    method : str
        ``"t"``, ``"stein"``, ``"order statistics"`` or ``"bonett"``.
    estimate : ndarray
        The statistic of the members present (NaN where there is none; for ``"std"``,
        where fewer than two).
    lower, upper : ndarray
        The bounds; ``-inf``/``inf`` (0/``inf`` for ``"std"``) where too few members
        allow a bound.
    half_width : ndarray
        ``max(estimate - lower, upper - estimate)``: the radius of the smallest interval
        centred on the estimate that contains ``[lower, upper]``, so "the statistic is
        ``estimate +- half_width``" holds at ``level``. For the symmetric t-interval it is
        ``(upper - lower) / 2``; for the asymmetric quantile and std intervals it is the
        longer arm. ``inf`` where a bound is missing.
    n : ndarray of int64
        Members used (values that are not NaN).
    """

    stat: str
    level: float
    q: float | None
    method: str
    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    half_width: np.ndarray
    n: np.ndarray


# --------------------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------------------


def _check_level(level: Any) -> float:
    ok = isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(
        level, (bool, np.bool_)
    )
    if not ok or not 0 < float(level) < 1:
        msg = f"level={level!r} is not a confidence level; use a number in (0, 1), e.g. 0.95"
        raise AnalysisError(msg)
    return float(level)


def _check_q(q: Any) -> float:
    ok = isinstance(q, (int, float, np.integer, np.floating)) and not isinstance(
        q, (bool, np.bool_)
    )
    if not ok or not 0 < float(q) < 1:
        msg = f"q={q!r} is not a probability of a quantile; use a number in (0, 1), e.g. 0.975"
        raise AnalysisError(msg)
    return float(q)


def _members_last(values: Any, axis: int) -> np.ndarray:
    """``values`` as float64 with the member axis last."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        msg = f"values of dtype {arr.dtype} have no confidence interval; pass numbers"
        raise AnalysisError(msg)
    if arr.ndim == 0 or not -arr.ndim <= axis < arr.ndim:
        msg = (
            f"axis={axis!r} is not an axis of values with shape {arr.shape}; give the "
            "member axis (the one holding the seeds)"
        )
        raise AnalysisError(msg)
    return np.moveaxis(arr.astype(np.float64, copy=False), axis, -1)


def _blockwise(
    values: np.ndarray, kernel: Callable[[np.ndarray], tuple[np.ndarray, ...]]
) -> tuple[np.ndarray, ...]:
    """Apply ``kernel`` to blocks of rows of ``values`` (positions x members), reshaped back."""
    shape = values.shape[:-1]
    rows = values.reshape(int(np.prod(shape)), values.shape[-1])
    step = max(1, _BLOCK // max(1, rows.shape[1]))
    parts = [kernel(rows[i : i + step]) for i in range(0, max(rows.shape[0], 1), step)]
    return tuple(np.concatenate([p[k] for p in parts]).reshape(shape) for k in range(4))


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den > 0``, NaN elsewhere (no warning)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _t_quantile(df: np.ndarray, p: float, enough: np.ndarray) -> np.ndarray:
    """Student t's ``p`` quantile with ``df`` degrees of freedom where ``enough``, 1 elsewhere.

    scipy is imported only when some position has enough members (an adaptive run's
    pilot decision, with no members yet, does without it).
    """
    if not enough.any():
        return np.ones(df.shape)
    from scipy.special import stdtrit

    return stdtrit(np.where(enough, df, 1).astype(np.float64), p)


def _take(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``rows[i, index[i]]`` (index clipped into range; NaN for rows without members)."""
    if rows.shape[1] == 0:
        return np.full(rows.shape[0], np.nan)
    idx = np.clip(index, 0, rows.shape[1] - 1)[:, None]
    return np.take_along_axis(rows, idx, axis=1)[:, 0]


def _moments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Count, mean, sum of squared deviations and the mask of present values, per row."""
    ok = ~np.isnan(rows)
    n = ok.sum(axis=1)
    mean = _divide(np.where(ok, rows, 0.0).sum(axis=1), n)
    dev = np.where(ok, rows - mean[:, None], 0.0)
    return n, mean, (dev * dev).sum(axis=1), ok


def _half_width(estimate: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        half = np.maximum(estimate - lower, upper - estimate)
    return np.where(np.isfinite(lower) & np.isfinite(upper), half, np.inf)


def _result(
    stat: str, level: float, q: float | None, method: str, parts: tuple[np.ndarray, ...]
) -> Interval:
    estimate, lower, upper, n = parts[0], parts[1], parts[2], parts[3].astype(np.int64)
    half = _half_width(estimate, lower, upper)
    return Interval(stat, level, q, method, estimate, lower, upper, half, n)


# --------------------------------------------------------------------------------------
# the mean
# --------------------------------------------------------------------------------------


def mean_interval(values: Any, axis: int = 0, level: float = 0.95) -> Interval:
    """Student-t confidence interval of the mean along the member axis.

    ``mean +- t_{(1 + level) / 2, n - 1} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (``ddof=1``) of the members present. Exact for normal members, and
    asymptotically valid for any distribution with a finite variance.

    Parameters
    ----------
    values : array_like
        Numbers; NaN marks a missing member.
    axis : int, default 0
        The member axis.
    level : float, default 0.95
        Confidence level, in (0, 1).

    Returns
    -------
    Interval
        Over the other axes; infinite bounds where fewer than 2 members are present.

    Examples
    --------
    >>> ci = mean_interval([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    >>> ci.estimate.tolist(), ci.n.tolist()
    ([3.0, 4.0], [3, 2])
    >>> round(float(ci.half_width[0]), 4)  # t_{0.975, 2} * 2 / sqrt(3)
    4.9683
    """
    level = _check_level(level)

    def kernel(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        n, mean, ss, _ = _moments(rows)
        enough = n >= 2
        t = _t_quantile(n - 1, (1 + level) / 2, enough)
        half = t * np.sqrt(_divide(ss, (n - 1) * n))
        lower = np.where(enough, mean - half, -np.inf)
        upper = np.where(enough, mean + half, np.inf)
        return mean, lower, upper, n

    return _result("mean", level, None, "t", _blockwise(_members_last(values, axis), kernel))


def stein_interval(values: Any, pilot: int, axis: int = 0, level: float = 0.95) -> Interval:
    """Stein's two-stage interval of the mean: the spread comes from the pilot members only.

    ``mean +- t_{(1 + level) / 2, k - 1} * s0 / sqrt(n)``, where ``s0`` is the standard
    deviation of the ``k`` members present among the first ``pilot`` along the axis, and
    ``mean`` and ``n`` use every member present. When the number of members was chosen
    from the pilot alone (as an adaptive run does), the interval's coverage is exactly
    ``level`` for normal members whatever that choice (Stein, 1945): the mean of all
    members is independent of ``s0``, so ``sqrt(n) (mean - mu) / s0`` is Student t with
    ``k - 1`` degrees of freedom.

    Parameters
    ----------
    values : array_like
        Numbers; NaN marks a missing member.
    pilot : int
        How many leading entries along the axis form the pilot (>= 2).
    axis : int, default 0
        The member axis.
    level : float, default 0.95
        Confidence level, in (0, 1).

    Returns
    -------
    Interval
        Infinite bounds where fewer than 2 pilot members are present.

    Examples
    --------
    >>> x = np.array([1.0, 3.0, 2.0, 2.0, 2.0, 2.0])[:, None]
    >>> ci = stein_interval(x, pilot=2)  # s0 = sqrt(2) from the first two members
    >>> float(ci.estimate[0]), round(float(ci.half_width[0]), 4)  # 12.706 * sqrt(2 / 6)
    (2.0, 7.3359)
    """
    level = _check_level(level)
    if not isinstance(pilot, (int, np.integer)) or isinstance(pilot, bool) or pilot < 2:
        msg = f"pilot={pilot!r} is not a pilot size; give the number of pilot members, >= 2"
        raise AnalysisError(msg)

    def kernel(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        n, mean, _, _ = _moments(rows)
        k, _, ss0, _ = _moments(rows[:, :pilot])
        enough = k >= 2
        t = _t_quantile(k - 1, (1 + level) / 2, enough)
        half = t * np.sqrt(_divide(ss0, (k - 1) * n))
        lower = np.where(enough, mean - half, -np.inf)
        upper = np.where(enough, mean + half, np.inf)
        return mean, lower, upper, n

    return _result("mean", level, None, "stein", _blockwise(_members_last(values, axis), kernel))


# --------------------------------------------------------------------------------------
# quantiles
# --------------------------------------------------------------------------------------


def _lowest_rank(n: np.ndarray, p: float, tail: float) -> np.ndarray:
    """Largest ``l`` in ``[0, n]`` with ``P(Binomial(n, p) <= l - 1) <= tail`` (0: none)."""
    from scipy.special import bdtr

    lo = np.zeros_like(n)
    hi = n.copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi + 1) // 2
        fits = bdtr(np.maximum(mid - 1, 0), n, p) <= tail
        lo = np.where(active & fits, mid, lo)
        hi = np.where(active & ~fits, mid - 1, hi)


def quantile_ranks(n: Any, q: float, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks ``(l, u)`` of the order statistics bounding the ``q`` quantile.

    Equal-tailed: ``l`` is the largest rank with ``P(B < l) <= (1 - level) / 2`` and ``u``
    the smallest with ``P(B >= u) <= (1 - level) / 2``, where ``B ~ Binomial(n, q)``
    counts the members below the true quantile. So ``[x_(l), x_(u)]`` covers it with
    probability ``P(l <= B < u) >= level`` for every distribution (equality of the
    binomial sum for continuous ones). ``l = 0`` (``u = n + 1``) means that no order
    statistic is a valid lower (upper) bound: ``n`` is too small.

    Parameters
    ----------
    n : int or array_like of int
        Members present.
    q : float
        Probability of the quantile, in (0, 1).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    (ndarray, ndarray)
        int64 ranks, shaped like ``n``.

    Examples
    --------
    >>> l, u = quantile_ranks([10, 100], 0.5)
    >>> l.tolist(), u.tolist()
    ([2, 40], [9, 61])
    >>> [r.tolist() for r in quantile_ranks(100, 0.975)]  # no upper bound yet
    [94, 101]
    """
    q, level = _check_q(q), _check_level(level)
    n = np.asarray(n)
    if n.dtype.kind not in "iu" or (n < 0).any():
        msg = f"n={n.tolist()!r} is not a member count; give non-negative integers"
        raise AnalysisError(msg)
    unique, inverse = np.unique(n.astype(np.int64), return_inverse=True)
    tail = (1 - level) / 2
    lower = _lowest_rank(unique, q, tail)
    upper = unique + 1 - _lowest_rank(unique, 1 - q, tail)
    return lower[inverse].reshape(n.shape), upper[inverse].reshape(n.shape)


def quantile_interval(values: Any, q: float, axis: int = 0, level: float = 0.95) -> Interval:
    """Distribution-free confidence interval of the ``q`` quantile along the member axis.

    The bounds are the order statistics of :func:`quantile_ranks`, whose coverage is at
    least ``level`` for every distribution (continuous or not) and every member count.
    The estimate is NumPy's default (linear) sample quantile; the bounds are widened to
    include it in the rare cases where it falls outside.

    Parameters
    ----------
    values : array_like
        Numbers; NaN marks a missing member.
    q : float
        Probability, in (0, 1).
    axis : int, default 0
        The member axis.
    level : float, default 0.95
        Confidence level, in (0, 1).

    Returns
    -------
    Interval
        ``lower = -inf`` (``upper = inf``, ``half_width = inf``) where too few members
        bound the quantile from below (above): see :func:`min_members`.

    Examples
    --------
    >>> x = np.arange(1.0, 101.0)[:, None]  # 100 members at one position
    >>> ci = quantile_interval(x, 0.5)
    >>> ci.estimate.tolist(), ci.lower.tolist(), ci.upper.tolist(), ci.half_width.tolist()
    ([50.5], [40.0], [61.0], [10.5])
    >>> quantile_interval(x, 0.975).upper.tolist()  # 100 members cannot bound it above
    [inf]
    """
    q, level = _check_q(q), _check_level(level)

    def kernel(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        ordered = np.sort(rows, axis=1)  # NaN last
        n = (~np.isnan(rows)).sum(axis=1)
        virtual = (n - 1) * q
        below = np.floor(virtual).astype(np.int64)
        a, b = _take(ordered, below), _take(ordered, np.minimum(below + 1, n - 1))
        estimate = np.where(n > 0, a + (virtual - below) * (b - a), np.nan)
        lo_rank, up_rank = quantile_ranks(n, q, level)
        lower = np.where(lo_rank >= 1, _take(ordered, lo_rank - 1), -np.inf)
        upper = np.where(up_rank <= n, _take(ordered, up_rank - 1), np.inf)
        lower = np.where(n > 0, np.fmin(lower, estimate), -np.inf)
        upper = np.where(n > 0, np.fmax(upper, estimate), np.inf)
        return estimate, lower, upper, n

    return _result(
        "quantile", level, q, "order statistics", _blockwise(_members_last(values, axis), kernel)
    )


# --------------------------------------------------------------------------------------
# the standard deviation
# --------------------------------------------------------------------------------------


def _trimmed_mean(rows: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Mean of the sorted present values without ``floor(n / (2 sqrt(n - 4)))`` per end."""
    ordered = np.sort(rows, axis=1)
    sums = np.concatenate(
        [np.zeros((rows.shape[0], 1)), np.cumsum(np.nan_to_num(ordered), axis=1)], axis=1
    )
    big = n > 4
    cut = np.zeros_like(n)
    cut[big] = np.floor(n[big] / (2 * np.sqrt(n[big] - 4.0))).astype(np.int64)
    cut = np.clip(cut, 0, np.maximum((n - 1) // 2, 0))
    kept = _take(sums, n - cut) - _take(sums, cut)
    return _divide(kept, n - 2 * cut)


def std_interval(values: Any, axis: int = 0, level: float = 0.95) -> Interval:
    """Bonett's (2006) confidence interval of the standard deviation along the member axis.

    With ``s`` the sample standard deviation (``ddof=1``), ``z`` the normal
    ``(1 + level) / 2`` quantile, ``c = n / (n - z)``, the kurtosis estimate
    ``g = n sum (x - m)^4 / (sum (x - mean)^2)^2`` (``m``: the mean trimmed by
    ``1 / (2 sqrt(n - 4))`` at each end) and ``se = c sqrt((g - (n - 3) / n) / (n - 1))``,
    the interval of the variance is ``c s^2 exp(-+z se)``; its square roots bound the
    standard deviation. It needs no distributional shape, only a finite fourth moment
    (asymptotically exact; close to nominal from about 10 members for moderately
    non-normal members), unlike the chi-square interval, which is exact for normal
    members only and far off otherwise, or the percentile bootstrap, which is too
    narrow for small ensembles. The bounds are widened to include ``s`` if needed.

    Parameters
    ----------
    values : array_like
        Numbers; NaN marks a missing member.
    axis : int, default 0
        The member axis.
    level : float, default 0.95
        Confidence level, in (0, 1).

    Returns
    -------
    Interval
        ``lower = 0``, ``upper = inf`` where fewer than 5 members are present; a zero-width
        interval at 0 where all members are equal.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(scale=2.0, size=(400, 1))
    >>> ci = std_interval(x)
    >>> bool(ci.lower[0] < 2.0 < ci.upper[0]), int(ci.n[0])
    (True, 400)
    """
    level = _check_level(level)
    from scipy.special import ndtri

    z = float(ndtri((1 + level) / 2))

    def kernel(rows: np.ndarray) -> tuple[np.ndarray, ...]:
        n, _, ss, ok = _moments(rows)
        enough = (n >= _STD_MIN) & (n > z)
        m = _trimmed_mean(rows, n)
        fourth = (np.where(ok, rows - m[:, None], 0.0) ** 4).sum(axis=1)
        kurtosis = _divide(n * fourth, ss * ss)
        c = _divide(n.astype(np.float64), n - z)
        excess = np.maximum(kurtosis - _divide(n - 3.0, n), 0.0)
        se = np.where(ss > 0, c * np.sqrt(_divide(excess, n - 1.0)), 0.0)
        var = _divide(ss, n - 1.0)
        estimate = np.sqrt(var)
        with np.errstate(over="ignore"):
            lower = np.where(enough, np.fmin(np.sqrt(c * var * np.exp(-z * se)), estimate), 0.0)
            upper = np.where(enough, np.fmax(np.sqrt(c * var * np.exp(z * se)), estimate), np.inf)
        return estimate, lower, upper, n

    return _result("std", level, None, "bonett", _blockwise(_members_last(values, axis), kernel))


# --------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------


def _check_stat(stat: Any, q: Any) -> None:
    if stat not in STATS:
        msg = f"stat={stat!r} is not one of {STATS}; for the median use stat='quantile', q=0.5"
        raise AnalysisError(msg)
    if (stat == "quantile") != (q is not None):
        msg = f"q={q!r} with stat={stat!r}: give q, in (0, 1), with stat='quantile' only"
        raise AnalysisError(msg)
    if q is not None:
        _check_q(q)


def interval(
    values: Any, stat: str = "mean", q: float | None = None, axis: int = 0, level: float = 0.95
) -> Interval:
    """Confidence interval of ``stat`` along the member axis (see the functions it calls).

    Parameters
    ----------
    values : array_like
        Numbers; NaN marks a missing member.
    stat : {"mean", "quantile", "std"}
        :func:`mean_interval`, :func:`quantile_interval` (needs ``q``) or
        :func:`std_interval`.
    q : float, optional
        Probability of the quantile (only for ``stat="quantile"``).
    axis : int, default 0
        The member axis.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    Interval

    Examples
    --------
    >>> interval([[1.0], [2.0], [3.0]], "mean").estimate.tolist()
    [2.0]
    >>> interval([[1.0], [2.0], [3.0]], "median")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ensembles.errors.AnalysisError: stat='median' is not one of ('mean', 'quantile', 'std'); ...
    """
    _check_stat(stat, q)
    if stat == "quantile":
        return quantile_interval(values, q, axis, level)
    return (mean_interval if stat == "mean" else std_interval)(values, axis, level)


def min_members(stat: str, q: float | None = None, level: float = 0.95) -> int:
    """The fewest members for which ``stat`` has a finite interval at ``level``.

    Parameters
    ----------
    stat : {"mean", "quantile", "std"}
        The statistic.
    q : float, optional
        Probability of the quantile (only for ``stat="quantile"``).
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    int
        2 for the mean, 5 for the standard deviation (more at levels where ``n / (n - z)``
        needs it); for a quantile, the smallest ``n`` with both
        ``(1 - q)^n <= (1 - level) / 2`` and ``q^n <= (1 - level) / 2``.

    Examples
    --------
    >>> min_members("quantile", q=0.975), min_members("quantile", q=0.5), min_members("mean")
    (146, 6, 2)
    """
    _check_stat(stat, q)
    level = _check_level(level)
    if stat == "mean":
        return 2
    if stat == "std":
        from scipy.special import ndtri

        return max(_STD_MIN, int(np.floor(ndtri((1 + level) / 2))) + 1)
    tail = (1 - level) / 2
    p = max(q, 1 - q)
    guess = max(1, int(np.ceil(np.log(tail) / np.log(p))) - 2)
    counts = np.arange(guess, guess + 16, dtype=np.int64)
    lower, upper = quantile_ranks(counts, q, level)
    return int(counts[(lower >= 1) & (upper <= counts)][0])
