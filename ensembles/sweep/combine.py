"""Combining designs: ``a * b`` (Product) and ``a + b`` (Concat)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DesignError
from .design import (
    SAMPLE,
    Coords,
    Design,
)

__all__ = ["Concat", "Product"]


# --------------------------------------------------------------------------------------------
# Combinations
# --------------------------------------------------------------------------------------------


def _check_designs(designs: tuple[Any, ...], what: str) -> None:
    if len(designs) < 2:
        msg = f"{what} combines at least two designs, got {len(designs)}: {designs!r}"
        raise DesignError(msg) from None
    for design in designs:
        if not isinstance(design, Design):
            msg = f"{what} combines designs such as Grid(...) or Sample(...), got {design!r}"
            raise DesignError(msg) from None


@dataclass(frozen=True, init=False, repr=False)
class Product(Design):
    """Cartesian product of designs: every point of the first with every point of the next.

    ``Product(a, b, c)`` is ``(a * b) * c``. For each pair, when the dims are disjoint
    the product has dims ``a.dims + b.dims``; when both have a ``sample`` dim it is
    flattened into one ``sample`` dim, in C order (``a`` outer, ``b`` inner). The designs
    must set different parameters.

    Parameters
    ----------
    *factors : Design
        At least two designs.

    Examples
    --------
    >>> from ensembles import Grid, Normal, Points, Sample
    >>> d = Sample(n=3, seed=1, T=Normal(3.0, 0.05)) * Grid(L=[16, 32])
    >>> d.dims, d.shape
    (('sample', 'L'), (3, 2))
    >>> sorted(d.coords())
    ['L', 'T']
    >>> (Sample(n=3, seed=1, T=(0, 1)) * Sample(n=2, seed=1, x=(0, 1))).shape
    (6,)
    """

    factors: tuple[Design, ...]

    def __init__(self, /, *factors: Design) -> None:
        _check_designs(factors, "Product")
        if isinstance(factors[0], Product):  # (a * b) * c == Product(a, b, c)
            factors = (*factors[0].factors, *factors[1:])
        seen: dict[str, int] = {}
        for i, factor in enumerate(factors):
            shared = [name for name in factor.params if name in seen]
            if shared:
                msg = (
                    f"Product factors {seen[shared[0]]} and {i} both set the parameters "
                    f"{shared!r}; each parameter must come from one factor"
                )
                raise DesignError(msg) from None
            seen.update(dict.fromkeys(factor.params, i))
        object.__setattr__(self, "factors", tuple(factors))

    def _layout(self) -> tuple[tuple[str, ...], tuple[int, ...], list[bool]]:
        """Dims, shape, and whether each product step (factor 1, 2, ...) flattens."""
        dims, shape = self.factors[0].dims, self.factors[0].shape
        flats = []
        for factor in self.factors[1:]:
            flat = SAMPLE in dims and SAMPLE in factor.dims
            if flat:
                dims, shape = (SAMPLE,), (math.prod(shape) * len(factor),)
            else:
                dims, shape = dims + factor.dims, shape + factor.shape
            flats.append(flat)
        return dims, shape, flats

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for factor in self.factors for name in factor.params)

    @property
    def dims(self) -> tuple[str, ...]:
        return self._layout()[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self._layout()[1]

    def _table(self) -> dict[str, np.ndarray]:
        table = self.factors[0].table()
        for factor in self.factors[1:]:
            table = _outer(table, factor.table())
        return table

    def coords(self) -> Coords:
        coords = self.factors[0].coords()
        table = self.factors[0].table()
        for factor, flat in zip(self.factors[1:], self._layout()[2], strict=True):
            table = _outer(table, factor.table())
            if flat:  # the product so far becomes one sample dim
                coords = {name: ((SAMPLE,), values) for name, values in table.items()}
            else:
                coords = {**coords, **factor.coords()}
        for _, values in coords.values():
            values.flags.writeable = False
        return coords

    def to_dict(self) -> dict[str, Any]:
        return {"product": [factor.to_dict() for factor in self.factors]}

    def __repr__(self) -> str:
        parts = [f"({f!r})" if isinstance(f, (Product, Concat)) else repr(f) for f in self.factors]
        return " * ".join(parts)


def _outer(outer: dict[str, np.ndarray], inner: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns of the Cartesian product of two tables, ``outer`` varying slowest."""
    n_outer = len(next(iter(outer.values())))
    n_inner = len(next(iter(inner.values())))
    return {
        **{name: np.repeat(values, n_inner) for name, values in outer.items()},
        **{name: np.tile(values, n_outer) for name, values in inner.items()},
    }


_KIND_NAMES = {"b": "bools", "i": "numbers", "f": "numbers", "U": "strings"}


@dataclass(frozen=True, init=False, repr=False)
class Concat(Design):
    """Concatenation of designs with the same parameters, along one ``sample`` dimension.

    Parameters
    ----------
    *parts : Design
        At least two designs setting the same parameters; nested ``Concat`` are flattened.
        Per parameter the values must all be numbers, all bools or all strings.

    Examples
    --------
    >>> from ensembles import Grid, Normal, Points, Sample
    >>> d = Points([{"T": 3.0}]) + Sample(T=Normal(3.0, 0.05), n=50, seed=123)
    >>> len(d), d.dims
    (51, ('sample',))
    """

    parts: tuple[Design, ...]

    def __init__(self, /, *parts: Design) -> None:
        _check_designs(parts, "Concat")
        flat: list[Design] = []
        for part in parts:
            flat.extend(part.parts if isinstance(part, Concat) else (part,))
        first = flat[0]
        for i, part in enumerate(flat[1:], start=1):
            if set(part.params) != set(first.params):
                only_first = [n for n in first.params if n not in part.params]
                only_part = [n for n in part.params if n not in first.params]
                msg = (
                    "Concat parts must set the same parameters: part 0 sets "
                    f"{list(first.params)!r} and part {i} sets {list(part.params)!r} "
                    f"({only_first!r} only in part 0, {only_part!r} only in part {i})"
                )
                raise DesignError(msg) from None
        for name in first.params:
            kinds = [part.table()[name].dtype.kind for part in flat]
            labels = {_KIND_NAMES[k] for k in kinds}
            if len(labels) > 1:
                found = ", ".join(f"part {i}: {_KIND_NAMES[k]}" for i, k in enumerate(kinds))
                msg = (
                    f"Concat parameter {name!r} mixes kinds of values ({found}); use all "
                    "numbers, all bools or all strings"
                )
                raise DesignError(msg) from None
        object.__setattr__(self, "parts", tuple(flat))

    @property
    def params(self) -> tuple[str, ...]:
        return self.parts[0].params

    @property
    def dims(self) -> tuple[str, ...]:
        return (SAMPLE,)

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(len(part) for part in self.parts),)

    def _table(self) -> dict[str, np.ndarray]:
        tables = [part.table() for part in self.parts]
        return {name: np.concatenate([t[name] for t in tables]) for name in self.params}

    def coords(self) -> Coords:
        return self._sample_coords()

    def to_dict(self) -> dict[str, Any]:
        return {"concat": [part.to_dict() for part in self.parts]}

    def __repr__(self) -> str:
        return " + ".join(repr(part) for part in self.parts)
