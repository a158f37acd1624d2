"""Explicit designs: Grid (a Cartesian product of values) and Points (a list of points)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DesignError
from ..layout import SAMPLE_DIM
from .design import Coords, Design
from .values import check_name, column, column_array, is_scalar, kwargs_repr, values_repr

__all__ = ["Grid", "Points"]


# --------------------------------------------------------------------------------------------
# Grid and Points
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, init=False, repr=False)
class Grid(Design):
    """Cartesian product of value lists, one dimension per parameter.

    Parameters
    ----------
    **params : list of number, bool or str
        Each parameter's distinct values (non-empty, finite; all numbers, all bools or all
        strings; ints stay ints). A scalar is rejected: use a one-element list, or pass a
        constant as a fixed parameter of the ensemble.

    Examples
    --------
    >>> g = Grid(T=[1.5, 2.0], L=[16, 32])
    >>> g
    Grid(T=[1.5, 2.0], L=[16, 32])
    >>> g.dims, g.shape, len(g)
    (('T', 'L'), (2, 2), 4)
    >>> list(g)[1]
    {'T': 1.5, 'L': 32}
    >>> g.to_dict()
    {'grid': {'T': [1.5, 2.0], 'L': [16, 32]}}
    """

    axes: tuple[tuple[str, str, tuple[Any, ...]], ...]  # (name, dtype kind, values)
    kind = "grid"

    def __init__(self, /, **params: Any) -> None:
        if not params:
            msg = "Grid needs at least one parameter, e.g. Grid(T=[1.5, 2.0])"
            raise DesignError(msg) from None
        axes = []
        for name, values in params.items():
            check_name(name, "Grid")
            if is_scalar(values):
                msg = (
                    f"Grid parameter {name!r} got the scalar {values!r}; give a list of values "
                    f"such as [{values!r}], or pass a constant as a fixed parameter "
                    f"(fixed={{{name!r}: {values!r}}})"
                )
                raise DesignError(msg) from None
            kind, axis = column(values, f"Grid parameter {name!r}", unique=True)
            axes.append((name, kind, axis))
        object.__setattr__(self, "axes", tuple(axes))

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.axes)

    @property
    def dims(self) -> tuple[str, ...]:
        return self.params

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(values) for _, _, values in self.axes)

    def values(self, name: str) -> np.ndarray:
        """The values of parameter ``name`` along its dimension."""
        return self.coords()[name][1]

    def _table(self) -> dict[str, np.ndarray]:
        arrays = [column_array(kind, values) for _, kind, values in self.axes]
        mesh = np.meshgrid(*arrays, indexing="ij")
        return {name: m.ravel().copy() for name, m in zip(self.params, mesh, strict=True)}

    def _rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        positions = np.unravel_index(index, self.shape)
        return {
            name: column_array(kind, values)[position]
            for (name, kind, values), position in zip(self.axes, positions, strict=True)
        }

    def coords(self) -> Coords:
        out = {}
        for name, kind, values in self.axes:
            array = column_array(kind, values)
            array.flags.writeable = False
            out[name] = ((name,), array)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: {name: list(values) for name, _, values in self.axes}}

    @classmethod
    def _from_body(cls, body: Any) -> Grid:
        if not isinstance(body, Mapping):
            msg = f"design 'grid' takes a dict of name to list of values, got {body!r}"
            raise DesignError(msg) from None
        for name in body:
            check_name(name, "Grid")
        return cls(**body)

    def __repr__(self) -> str:
        items = [(n, values_repr(v)) for n, _, v in self.axes]
        return f"Grid({kwargs_repr(items, frozenset(), '**')})"


@dataclass(frozen=True, init=False, repr=False)
class Points(Design):
    """An explicit list of points, along one ``sample`` dimension.

    Parameters
    ----------
    points : sequence of dict
        One dict per point, all with the same keys; values are finite numbers, bools or
        strings (per parameter: all numbers, all bools or all strings). Repeated points
        are allowed.

    Examples
    --------
    >>> p = Points([{"T": 3.0, "L": 16}, {"T": 2.5, "L": 32}])
    >>> p
    Points(2 points: T, L)
    >>> p.dims, p.shape
    (('sample',), (2,))
    >>> p.table()["L"].tolist()
    [16, 32]
    """

    columns: tuple[tuple[str, str, tuple[Any, ...]], ...]  # (name, dtype kind, values)
    kind = "points"

    def __init__(self, points: Any, /) -> None:
        if isinstance(points, Mapping):
            msg = f"Points takes a list of dicts, got one dict {dict(points)!r}; wrap it: [..]"
            raise DesignError(msg) from None
        if is_scalar(points):
            msg = f"Points takes a list of dicts such as [{{'T': 3.0}}], got {points!r}"
            raise DesignError(msg) from None
        points = list(points)
        if not points:
            msg = "Points is empty; give at least one point, e.g. Points([{'T': 3.0}])"
            raise DesignError(msg) from None
        for i, point in enumerate(points):
            if not isinstance(point, Mapping):
                msg = f"Points point {i} must be a dict of parameter values, got {point!r}"
                raise DesignError(msg) from None
        names = list(points[0])
        if not names:
            msg = "Points point 0 is {}; every point needs at least one parameter"
            raise DesignError(msg) from None
        for name in names:
            check_name(name, "Points")
        for i, point in enumerate(points[1:], start=1):
            if set(point) != set(names):
                missing = [n for n in names if n not in point]
                extra = [n for n in point if n not in names]
                diff = ", ".join(
                    f"{label} {names_!r}"
                    for label, names_ in (("missing", missing), ("extra", extra))
                    if names_
                )
                msg = (
                    f"Points point {i} {dict(point)!r} sets {list(point)!r} but point 0 "
                    f"sets {names!r} ({diff}); every point must set the same parameters"
                )
                raise DesignError(msg) from None
        columns = []
        for name in names:
            what = f"Points parameter {name!r}"
            given = [point[name] for point in points]
            for i, value in enumerate(given):
                if not is_scalar(value):
                    msg = f"{what} of point {i} must be a single value, got {value!r}"
                    raise DesignError(msg) from None
            kind, values = column(given, what, unique=False)
            columns.append((name, kind, values))
        object.__setattr__(self, "columns", tuple(columns))

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.columns)

    @property
    def dims(self) -> tuple[str, ...]:
        return (SAMPLE_DIM,)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.columns[0][2]),)

    def _table(self) -> dict[str, np.ndarray]:
        return {name: column_array(kind, values) for name, kind, values in self.columns}

    def _rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {name: column_array(kind, values)[index] for name, kind, values in self.columns}

    def coords(self) -> Coords:
        return self._sample_coords()

    def to_dict(self) -> dict[str, Any]:
        names = self.params
        rows = zip(*(values for _, _, values in self.columns), strict=True)
        return {self.kind: [dict(zip(names, row, strict=True)) for row in rows]}

    @classmethod
    def _from_body(cls, body: Any) -> Points:
        return cls(body)

    def __repr__(self) -> str:
        n = len(self)
        return f"Points({n} point{'s' if n != 1 else ''}: {', '.join(self.params)})"
