"""Members of an adaptive run as masks over the grown dim: to run next, and skipped.

The store holds the grown dim (``seed``, or ``sample``) at its largest extent; each point
uses a prefix of it. :func:`todo_mask` is the next round's members (what an engine runs),
:func:`skipped_mask` the members the rule decided not to run, which get the status
:data:`~ensembles.layout.SKIPPED` (3), so that they are told apart from pending and failed
ones. Statistics use only status 1 (ok), so skipped members never count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SpecError
from ..layout import SKIPPED

__all__ = ["SKIPPED", "skipped_mask", "todo_mask"]


def _counts(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu" or (arr < 0).any():
        msg = f"{name}={arr.tolist()!r} must be non-negative integer member counts"
        raise SpecError(msg)
    return arr.astype(np.int64)


def _extent(extent: Any, *needs: np.ndarray) -> int:
    longest = max((int(a.max()) for a in needs if a.size), default=0)
    if not isinstance(extent, (int, np.integer)) or extent < longest:
        msg = f"extent={extent!r} is shorter than the {longest} members a point uses"
        raise SpecError(msg)
    return int(extent)


def todo_mask(n: Any, add: Any, extent: int) -> np.ndarray:
    """Members to run next: index ``i`` of point ``p`` with ``n[p] <= i < n[p] + add[p]``.

    Parameters
    ----------
    n : array_like of int
        Members per point so far (any shape: the design points).
    add : array_like of int
        Members to add per point (:attr:`Decision.add`).
    extent : int
        Length of the grown dim in the store (at least ``max(n + add)``).

    Returns
    -------
    ndarray of bool
        Shaped ``n.shape + (extent,)``.

    Examples
    --------
    >>> todo_mask([2, 4], [2, 0], 5).astype(int).tolist()
    [[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]]
    """
    n, add = np.broadcast_arrays(_counts("n", n), _counts("add", add))
    size = _extent(extent, n + add)
    index = np.arange(size)
    return (index >= n[..., None]) & (index < (n + add)[..., None])


def skipped_mask(n: Any, extent: int) -> np.ndarray:
    """Members the rule did not run: index ``i`` of point ``p`` with ``i >= n[p]``.

    Examples
    --------
    >>> skipped_mask([2, 4], 5).astype(int).tolist()
    [[0, 0, 1, 1, 1], [0, 0, 0, 0, 1]]
    """
    n = _counts("n", n)
    size = _extent(extent, n)
    return np.arange(size) >= n[..., None]
