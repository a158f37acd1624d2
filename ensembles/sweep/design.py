"""Parameter designs: which points of parameter space an ensemble runs.

A :class:`Design` is a frozen, validated description of a set of points, each a mapping of
parameter name to value. It knows its ``params``, its ``dims`` and ``shape`` (how the
points are laid out as an array), its values as flat columns (:meth:`Design.table`) and
as xarray-style coordinates (:meth:`Design.coords`), and its JSON/TOML dict form
(:meth:`Design.to_dict`, :func:`design_from_dict`).

==================  ==========================  =========================================
design              dims                        points
==================  ==========================  =========================================
``Grid``            one per parameter           Cartesian product of value lists
``Points``          ``("sample",)``             an explicit list
``Sample``          ``("sample",)``             independent random draws (prefix-stable)
``LatinHypercube``  ``("sample",)``             Latin hypercube sample (not prefix-stable)
``Sobol``           ``("sample",)``             scrambled Sobol' sequence (prefix-stable)
``a * b``           ``a.dims + b.dims`` [#]_    every point of ``a`` with every point of ``b``
``a + b``           ``("sample",)``             the points of ``a``, then those of ``b``
==================  ==========================  =========================================

.. [#] When both ``a`` and ``b`` have a ``sample`` dim the product is flattened into one
   ``sample`` dim (``a`` outer, ``b`` inner).

Reproducibility of random designs
---------------------------------
``Sample`` gives every parameter its own random stream, seeded by the design's ``seed`` and
a 32-bit hash of the parameter's *name*: ``SeedSequence(seed, spawn_key=(k,))``. Draws are
then taken in order, so ``Sample(n=100, ...)`` starts with the 50 rows of ``Sample(n=50,
...)`` (an ensemble can be extended), and adding or removing a parameter never changes the
values of the others. ``Sobol`` is a sequence too: a larger ``n`` with the same seed extends
a smaller one. ``LatinHypercube`` stratifies all ``n`` points jointly, so changing ``n`` or
the parameters changes every point. Quasi-Monte Carlo points come from
:mod:`scipy.stats.qmc`, whose algorithms may change between scipy versions; a store records
the values it ran, so results remain interpretable.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DesignError
from .distributions import (
    _value_array,
)

if TYPE_CHECKING:
    from .combine import Concat, Product

__all__ = ["Design"]

SAMPLE = "sample"
"""Name of the dimension of sampled and flattened designs."""

RESERVED = frozenset({"seed", "rng", SAMPLE})
"""Parameter names a design rejects (they name the ensemble's seed machinery and dims)."""

Coords = dict[str, tuple[tuple[str, ...], np.ndarray]]


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str):
        msg = f"{what} parameter names must be strings, got {name!r}"
        raise DesignError(msg) from None
    if not name:
        msg = f"{what} has a parameter with an empty name ''; give it a name"
        raise DesignError(msg) from None
    if name in RESERVED:
        msg = (
            f"{what} parameter name {name!r} is reserved (reserved names: "
            f"{sorted(RESERVED)!r}); rename the parameter"
        )
        raise DesignError(msg) from None
    return name


def _positive_int(value: Any, what: str, *, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        msg = f"{what} must be an integer >= {minimum}, got {value!r}"
        raise DesignError(msg) from None
    if value < minimum:
        msg = f"{what} must be an integer >= {minimum}, got {value!r}"
        raise DesignError(msg) from None
    return int(value)


def _kwargs_repr(items: list[tuple[str, str]], keywords: frozenset[str], extra: str) -> str:
    """``name=value`` for keyword-able names, the rest in ``extra={...}`` (``**{...}``)."""
    simple = [(n, v) for n, v in items if n.isidentifier() and n not in keywords]
    other = [(n, v) for n, v in items if not (n.isidentifier() and n not in keywords)]
    parts = [f"{n}={v}" for n, v in simple]
    if other:
        inner = ", ".join(f"{n!r}: {v}" for n, v in other)
        parts.append(f"{extra}{{{inner}}}")
    return ", ".join(parts)


def _values_repr(values: tuple[Any, ...]) -> str:
    if len(values) <= 6:
        return repr(list(values))
    head = ", ".join(repr(v) for v in values[:3])
    return f"[{head}, ..., {values[-1]!r}] ({len(values)} values)"


def _column(values: Any, what: str, *, unique: bool) -> tuple[str, tuple[Any, ...]]:
    """Validated values as ``(dtype kind, tuple of python scalars)``; kind keeps 1 != 1.0."""
    array = _value_array(values, what, unique=unique)
    return array.dtype.kind, tuple(array.tolist())


def _column_array(kind: str, values: tuple[Any, ...]) -> np.ndarray:
    dtype = {"b": bool, "i": np.int64, "f": np.float64}.get(kind, np.str_)
    return np.array(values, dtype=dtype)


def _read_only(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for array in table.values():
        array.flags.writeable = False
    return table


class Design(ABC):
    """Base class of parameter designs.

    Subclasses are frozen dataclasses, validated at construction, hashable and comparable.

    Attributes
    ----------
    params : tuple of str
        Parameter names, in order.
    dims : tuple of str
        Dimension names of the design's array layout.
    shape : tuple of int
        Sizes of ``dims``; ``len(design) == prod(shape)``.
    sizes : dict of str to int
        ``dict(zip(dims, shape))``.
    """

    @property
    @abstractmethod
    def params(self) -> tuple[str, ...]:
        """Parameter names, in order."""

    @property
    @abstractmethod
    def dims(self) -> tuple[str, ...]:
        """Dimension names."""

    @property
    @abstractmethod
    def shape(self) -> tuple[int, ...]:
        """Sizes of the dimensions."""

    @abstractmethod
    def _table(self) -> dict[str, np.ndarray]:
        """Compute the flat columns (C order over dims), fresh arrays."""

    @abstractmethod
    def coords(self) -> Coords:
        """Each parameter as ``name -> (dims, values)``, xarray-style.

        Grid parameters are dimension coordinates (``{"T": (("T",), values)}``); sampled or
        flattened parameters are coordinates along ``sample``.
        """

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON/TOML-compatible dict form; :func:`design_from_dict` inverts it."""

    @property
    def sizes(self) -> dict[str, int]:
        """Size of each dimension."""
        return dict(zip(self.dims, self.shape, strict=True))

    def __len__(self) -> int:
        return math.prod(self.shape)

    def table(self) -> dict[str, np.ndarray]:
        """Each parameter's value at every point, as read-only 1-D arrays in C order over dims.

        The arrays are computed once and cached; the dict is a new one at each call.
        """
        cached = self.__dict__.get("_cached_table")
        if cached is None:
            cached = _read_only(self._table())
            object.__setattr__(self, "_cached_table", cached)
        return dict(cached)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        table = self.table()
        names = self.params
        columns = [table[name].tolist() for name in names]
        for row in zip(*columns, strict=True):
            yield dict(zip(names, row, strict=True))

    def __mul__(self, other: object) -> Product:
        if not isinstance(other, Design):
            return NotImplemented
        from .combine import Product

        return Product(self, other)

    def __add__(self, other: object) -> Concat:
        if not isinstance(other, Design):
            return NotImplemented
        from .combine import Concat

        return Concat(self, other)

    def __getstate__(self) -> dict[str, Any]:  # do not pickle the cached table
        return {k: v for k, v in self.__dict__.items() if k != "_cached_table"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Design:
        """Build a design from its dict form; see :func:`design_from_dict`."""
        from .serialize import design_from_dict

        return design_from_dict(d)

    def _sample_coords(self) -> Coords:
        table = self.table()
        return {name: ((SAMPLE,), table[name]) for name in self.params}
