"""The values a :class:`~ensembles.adaptive.rules.Precision` target judges.

A target names an output; its ``steps`` pick positions or coordinate values of the
output dims and its ``reduce`` collapses them per member. :func:`judged` applies both to a
NumPy array laid out ``(*points, members, *output dims)``; :func:`check_targets` checks
targets against the outputs an ensemble declares, before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SpecError
from .rules import Precision, as_targets

__all__ = ["check_targets", "judged", "step_positions"]


def _short(values: np.ndarray) -> str:
    items = values.tolist()
    return repr(items) if len(items) <= 6 else f"{items[:3]!r}...{items[-2:]!r}"


def _label_positions(
    target: Precision, dim: str, labels: tuple, coords: Mapping[str, Any] | None
) -> np.ndarray:
    if coords is None or dim not in coords:
        msg = (
            f"{target.describe()}: steps select {dim!r} by coordinate value, but the "
            f"coordinate values of {dim!r} are unknown; pass coords={{{dim!r}: ...}}"
        )
        raise SpecError(msg)
    coord = np.asarray(coords[dim])
    found, missing = [], []
    for label in labels:
        hits = np.flatnonzero(coord == label)
        if hits.size:
            found.append(int(hits[0]))
        else:
            missing.append(label)
    if missing:
        msg = (
            f"{target.describe()}: steps {missing!r} are not values of {dim!r} "
            f"(it has {_short(coord)}); use existing values or positions, e.g. steps=[-1]"
        )
        raise SpecError(msg)
    return np.asarray(found, dtype=np.int64)


def _positions(target: Precision, dims: tuple[str, ...], size: int | None) -> np.ndarray:
    if len(dims) != 1:
        msg = (
            f"{target.describe()}: steps={list(target.steps)!r} are positions, which need an "
            f"output with one output dim ({target.var!r} has {list(dims)!r}); select by "
            "value instead, e.g. steps={'sweep': [1000]}"
        )
        raise SpecError(msg)
    steps = np.asarray(target.steps, dtype=np.int64)
    if size is not None and ((steps < -size) | (steps >= size)).any():
        msg = (
            f"{target.describe()}: steps={list(target.steps)!r} are outside the {size} "
            f"steps of {dims[0]!r}; use positions in [{-size}, {size - 1}]"
        )
        raise SpecError(msg)
    return steps % size if size else steps


def _indices(
    target: Precision,
    dims: tuple[str, ...],
    sizes: Sequence[int | None],
    coords: Mapping[str, Any] | None,
) -> list[np.ndarray | None]:
    """Per output dim: the selected positions, or None (every position)."""
    if target.steps is None:
        return [None] * len(dims)
    if not dims:
        msg = f"{target.describe()}: {target.var!r} has no output dims to select steps of"
        raise SpecError(msg)
    if not isinstance(target.steps[0], tuple):
        return [_positions(target, dims, sizes[0])]
    unknown = [dim for dim, _ in target.steps if dim not in dims]
    if unknown:
        msg = f"{target.describe()}: steps name {unknown!r}, not output dims of {list(dims)!r}"
        raise SpecError(msg)
    chosen = {dim: _label_positions(target, dim, labels, coords) for dim, labels in target.steps}
    return [chosen.get(dim) for dim in dims]


def step_positions(
    target: Precision,
    dims: Sequence[str],
    sizes: Sequence[int],
    coords: Mapping[str, Any] | None = None,
) -> list[np.ndarray | None]:
    """Per output dim, the positions a target's ``steps`` select (None: every position).

    Examples
    --------
    >>> from ensembles.adaptive import Precision
    >>> p = Precision("M", halfwidth=0.1, steps={"sweep": [20, 40]})
    >>> step_positions(p, ("sweep",), (4,), {"sweep": np.array([10, 20, 30, 40])})
    [array([1, 3])]
    >>> step_positions(Precision("M", halfwidth=0.1, steps=[-1]), ("sweep",), (4,))
    [array([3])]
    """
    return _indices(target, tuple(dims), list(sizes), coords)


def check_targets(
    until: Any,
    outputs: Mapping[str, Sequence[str]],
    coords: Mapping[str, Any] | None = None,
) -> None:
    """Refuse targets that do not fit the outputs, before anything runs.

    Parameters
    ----------
    until : Precision, dict or list of them
        The targets.
    outputs : mapping of str to sequence of str
        Each output variable's output dims (e.g. ``{"M": ("sweep",), "E": ("sweep",)}``).
    coords : mapping of str to array, optional
        Output coordinates, to check ``steps`` given by value (and positions' range).

    Raises
    ------
    SpecError
        Naming the target and what does not fit: an unknown variable, steps outside the
        output, values that are not coordinates, positions for a multi-dim output.

    Examples
    --------
    >>> from ensembles.adaptive import Precision
    >>> check_targets(Precision("M", halfwidth=0.01), {"M": ("sweep",)})
    >>> check_targets(Precision("m", halfwidth=0.01), {"M": ("sweep",), "E": ("sweep",)})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ensembles.errors.SpecError: mean of m +- 0.01 (95 % confidence): 'm' is not an output; ...
    """
    for target in as_targets(until):
        if target.var not in outputs:
            msg = (
                f"{target.describe()}: {target.var!r} is not an output; the outputs are "
                f"{sorted(outputs)!r}"
            )
            raise SpecError(msg)
        dims = tuple(outputs[target.var])
        sizes = [len(coords[d]) if coords and d in coords else None for d in dims]
        _indices(target, dims, sizes, coords)


def _reduced(arr: np.ndarray, how: str | None, axes: tuple[int, ...]) -> np.ndarray:
    if how is None or not axes:
        return arr
    if how == "last":
        return arr[(Ellipsis, *([-1] * len(axes)))]
    present = ~np.isnan(arr)
    count = present.sum(axis=axes)
    total = np.where(present, arr, 0.0).sum(axis=axes)
    out = np.full(count.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


def judged(
    values: Any,
    target: Precision,
    point_ndim: int,
    dims: Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The values a target judges, shaped ``(*points, members, positions)``.

    Parameters
    ----------
    values : array_like
        The target's variable, ``(*points, members, *output dims)``; NaN for missing.
    target : Precision
        The target (its ``steps`` and ``reduce`` apply).
    point_ndim : int
        How many leading axes are design points.
    dims : sequence of str, optional
        Names of the output dims (needed for ``steps`` given by value).
    coords : mapping of str to array, optional
        Their coordinate values (for ``steps`` given by value).

    Returns
    -------
    ndarray of float64
        The judged positions flattened into the last axis (1 for a reduced or scalar
        output).

    Examples
    --------
    >>> from ensembles.adaptive import Precision
    >>> x = np.arange(12.0).reshape(2, 2, 3)  # 2 points, 2 members, 3 steps
    >>> judged(x, Precision("M", halfwidth=1.0, steps=[-1]), 1)[..., 0].tolist()
    [[2.0, 5.0], [8.0, 11.0]]
    >>> judged(x, Precision("M", halfwidth=1.0, reduce="mean"), 1)[..., 0].tolist()
    [[1.0, 4.0], [7.0, 10.0]]
    """
    arr = np.asarray(values, dtype=np.float64)
    outputs = arr.ndim - point_ndim - 1
    if outputs < 0:
        msg = (
            f"values of {target.var!r} with shape {arr.shape} lack the member axis after "
            f"{point_ndim} point axes"
        )
        raise SpecError(msg)
    names = tuple(dims) if dims is not None else tuple(f"dim_{i}" for i in range(outputs))
    if len(names) != outputs:
        msg = f"dims={list(names)!r} do not name the {outputs} output axes of {target.var!r}"
        raise SpecError(msg)
    first = point_ndim + 1
    for axis, index in enumerate(_indices(target, names, arr.shape[first:], coords)):
        if index is not None:
            arr = np.take(arr, index, axis=first + axis)
    arr = _reduced(arr, target.reduce, tuple(range(first, arr.ndim)))
    return arr.reshape(*arr.shape[:first], int(np.prod(arr.shape[first:])))
