"""NumPy's quantile methods on columns with their own member counts, bit for bit.

:func:`sorted_quantiles` takes columns sorted with NaN last and the number of values each
holds, and returns what :func:`numpy.nanquantile` (``method=...``) returns for each column:
the same virtual indexes, neighbours and interpolation, in the same floating-point order.
Plain NumPy; the analysis kernels call it on slabs of many columns at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import AnalysisError

__all__ = ["QUANTILE_METHODS", "check_quantile_method", "column_quantiles", "sorted_quantiles"]

QUANTILE_METHODS = (
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
    "hazen",
    "weibull",
    "linear",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "midpoint",
    "nearest",
)
"""The methods of :func:`numpy.quantile`, by NumPy's names; ``"linear"`` is the default."""

# (alpha, beta) of the Hyndman-Fan continuous methods, as numpy's _compute_virtual_index
_ALPHA_BETA: dict[str, tuple[float, float]] = {
    "interpolated_inverted_cdf": (0, 1),
    "hazen": (0.5, 0.5),
    "weibull": (0, 0),
    "median_unbiased": (1 / 3.0, 1 / 3.0),
    "normal_unbiased": (3 / 8.0, 3 / 8.0),
}
_DISCRETE = ("inverted_cdf", "closest_observation", "lower", "higher", "nearest")


def check_quantile_method(method: Any) -> str:
    """``method`` itself if it is one of :data:`QUANTILE_METHODS`.

    Raises
    ------
    AnalysisError
        Naming the unknown method and listing the valid ones.

    Examples
    --------
    >>> check_quantile_method("hazen")
    'hazen'
    """
    if not isinstance(method, str) or method not in QUANTILE_METHODS:
        msg = (
            f"method={method!r} is not a quantile method; use one of NumPy's: "
            f"{', '.join(QUANTILE_METHODS)} (default 'linear')"
        )
        raise AnalysisError(msg)
    return method


def _virtual_index(n: np.ndarray, q: np.ndarray, method: str) -> np.ndarray:
    """The floating-point index of each quantile, as NumPy computes it (same operations)."""
    if method == "linear":
        return (n - 1) * q
    if method == "averaged_inverted_cdf":
        return (n * q) - 1
    if method == "midpoint":
        return 0.5 * (np.floor((n - 1) * q) + np.ceil((n - 1) * q))
    alpha, beta = _ALPHA_BETA[method]
    return n * q + (alpha + q * (1 - alpha - beta)) - 1


def _discrete_index(n: np.ndarray, q: np.ndarray, method: str) -> np.ndarray:
    """The order statistic each discrete method takes (NumPy's index, before wrapping)."""
    if method == "lower":
        return np.floor((n - 1) * q).astype(np.intp)
    if method == "higher":
        return np.ceil((n - 1) * q).astype(np.intp)
    if method == "nearest":
        return np.around((n - 1) * q).astype(np.intp)
    index = (n * q) - 1 if method == "inverted_cdf" else (n * q) - 1 - 0.5
    previous = np.floor(index)
    gamma = index - previous
    take_previous = gamma == 0
    if method == "closest_observation":
        take_previous &= np.floor(index) % 2 == 1
    out = np.where(take_previous, previous, previous + 1).astype(np.intp)
    out[out < 0] = 0
    return out


def _fixed_gamma(gamma: np.ndarray, virtual: np.ndarray, method: str) -> np.ndarray:
    if method == "averaged_inverted_cdf":
        return np.where(gamma == 0, 0.5, 1.0)
    if method == "midpoint":
        return np.where(virtual % 1 == 0, 0.0, 0.5)
    return gamma


def _take(srt: np.ndarray, index: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``srt[index]`` per column, where -1 means the column's last value (``n - 1``)."""
    index = np.where(index < 0, index + n, index)
    return np.take_along_axis(srt, np.clip(index, 0, srt.shape[0] - 1), axis=0)


def sorted_quantiles(
    srt: np.ndarray, n: np.ndarray, q: np.ndarray, method: str = "linear"
) -> np.ndarray:
    """Quantiles ``q`` of columns whose first ``n`` values are sorted (NaN after them).

    Parameters
    ----------
    srt : ndarray, shape (members, K)
        Each column sorted ascending with its NaN last (as :func:`numpy.sort` leaves it),
        or partitioned so that every index this method reads is in place.
    n : ndarray of int, shape (K,)
        Number of values (not NaN) in each column.
    q : ndarray of float, shape (nq,)
        Probabilities in [0, 1].
    method : str
        One of :data:`QUANTILE_METHODS`.

    Returns
    -------
    ndarray, shape (nq, K)
        ``numpy.nanquantile(column, q, method=method)`` of each column, to the last bit;
        NaN where ``n`` is 0.

    Examples
    --------
    >>> col = np.array([[1.0], [2.0], [4.0], [np.nan]])
    >>> sorted_quantiles(col, np.array([3]), np.array([0.5, 0.9]), "hazen")
    array([[2.],
           [4.]])
    """
    n = np.asarray(n, dtype=np.int64)[None, :]
    q = np.asarray(q, dtype=np.float64)[:, None]
    if srt.shape[0] == 0:
        return np.full((q.shape[0], n.shape[1]), np.nan)
    if method in _DISCRETE:
        out = _take(srt, _discrete_index(n, q, method), n)
    else:
        virtual = _virtual_index(n, q, method)
        previous = np.floor(virtual)
        following = previous + 1
        above = virtual >= n - 1
        previous[above] = -1
        following[above] = -1
        below = virtual < 0
        previous[below] = 0
        following[below] = 0
        lo, hi = previous.astype(np.intp), following.astype(np.intp)
        gamma = _fixed_gamma(virtual - lo, virtual, method)
        a, b = _take(srt, lo, n), _take(srt, hi, n)
        with np.errstate(invalid="ignore"):  # inf - inf is NaN, as in NumPy
            diff = b - a
            out = a + diff * gamma
            upper = gamma >= 0.5
            out[upper] = (b - diff * (1 - gamma))[upper]
    out[:, n[0] == 0] = np.nan
    return out


def column_quantiles(a: np.ndarray, q: Any, method: str = "linear") -> np.ndarray:
    """``numpy.nanquantile(a, q, axis=0, method=method)`` of a 2-D array, without warnings.

    Sorts a column-major copy (NumPy's vectorized sort of contiguous columns beats a
    multi-point partition here).

    Examples
    --------
    >>> column_quantiles(np.array([[3.0, np.nan], [1.0, 5.0], [2.0, np.nan]]), [0.5])
    array([[2., 5.]])
    """
    q = np.atleast_1d(np.asarray(q, dtype=np.float64))
    srt = np.array(a, dtype=np.float64, order="F")
    srt.sort(axis=0)
    return sorted_quantiles(srt, (~np.isnan(a)).sum(axis=0), q, method)
