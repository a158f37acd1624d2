"""The Design contract and its algebra: products (``a * b``) and concatenations (``a + b``).

A :class:`Design` is a frozen, validated description of a set of points, each a mapping of
parameter name to value. It knows its ``params``, its ``dims`` and ``shape`` (how the
points are laid out as an array), its values as flat columns (:meth:`Design.table`, or
:meth:`Design.rows` for a few points without the whole table) and as xarray-style
coordinates (:meth:`Design.coords`), and its JSON/TOML dict form (:meth:`Design.to_dict`;
each kind registers its key, and :func:`design_from_dict` dispatches on it).

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from ..errors import DesignError
from ..layout import SAMPLE_DIM
from .values import read_only

__all__ = ["Concat", "Design", "Product", "design_from_dict"]

Coords = dict[str, tuple[tuple[str, ...], np.ndarray]]

_KINDS: dict[str, type[Design]] = {}  # dict-form key -> design class, filled by subclasses


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
    kind : str
        The key of the design's dict form (``"grid"``, ``"sample"``, ...).
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):  # a concrete kind registers its dict form
            _KINDS[cls.kind] = cls

    @classmethod
    def _from_body(cls, body: Any) -> Design:
        """Build the design from the body of its dict form ``{kind: body}``."""
        raise NotImplementedError  # pragma: no cover - every registered kind overrides it

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
            cached = read_only(self._table())
            object.__setattr__(self, "_cached_table", cached)
        return dict(cached)

    def rows(self, points: Any) -> dict[str, np.ndarray]:
        """Each parameter's values at some points only, without building the whole table.

        Parameters
        ----------
        points : array_like of int
            Flat point indices (C order over ``dims``, as in :meth:`table`).

        Returns
        -------
        dict of str to numpy.ndarray
            One array per parameter, shaped like ``points``, equal to
            ``table()[name][points]``. Grids, points, products, concatenations and
            ``Sample`` compute only what they need (``Sample`` the draws up to the last
            point asked for); ``LatinHypercube`` and ``Sobol`` build their table.

        Examples
        --------
        >>> from ensembles import Grid
        >>> huge = Grid(a=range(10_000), b=range(10_000)) * Grid(c=[0.5, 1.5])
        >>> {name: values.tolist() for name, values in huge.rows([0, 199_999_999]).items()}
        {'a': [0, 9999], 'b': [0, 9999], 'c': [0.5, 1.5]}
        """
        index = np.asarray(points)
        if index.size and index.dtype.kind not in "iu":
            msg = f"points must be integer indices, got {points!r}"
            raise TypeError(msg)
        index = index.astype(np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            bad = int(index[(index < 0) | (index >= len(self))].ravel()[0])
            msg = f"point {bad} is out of range for a design of {len(self)} points"
            raise IndexError(msg)
        cached = self.__dict__.get("_cached_table")
        if cached is not None:
            return {name: np.asarray(cached[name][index]) for name in self.params}
        flat = self._rows(index.ravel())
        return {name: flat[name].reshape(index.shape) for name in self.params}

    def _rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Values at valid 1-D flat indices; by default taken from the whole table."""
        table = self.table()
        return {name: table[name][index] for name in self.params}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        table = self.table()
        names = self.params
        columns = [table[name].tolist() for name in names]
        for row in zip(*columns, strict=True):
            yield dict(zip(names, row, strict=True))

    def __mul__(self, other: object) -> Product:
        if not isinstance(other, Design):
            return NotImplemented
        return Product(self, other)

    def __add__(self, other: object) -> Concat:
        if not isinstance(other, Design):
            return NotImplemented
        return Concat(self, other)

    def __getstate__(self) -> dict[str, Any]:  # do not pickle the cached table
        return {k: v for k, v in self.__dict__.items() if k != "_cached_table"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Design:
        """Build a design from its dict form; see :func:`design_from_dict`."""
        return design_from_dict(d)

    def _sample_coords(self) -> Coords:
        table = self.table()
        return {name: ((SAMPLE_DIM,), table[name]) for name in self.params}


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
    kind = "product"

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
                    f"{shared!r}; each parameter must come from one factor: remove it from "
                    "the other"
                )
                raise DesignError(msg) from None
            seen.update(dict.fromkeys(factor.params, i))
        object.__setattr__(self, "factors", tuple(factors))

    def _layout(self) -> tuple[tuple[str, ...], tuple[int, ...], list[bool]]:
        """Dims, shape, and whether each product step (factor 1, 2, ...) flattens."""
        dims, shape = self.factors[0].dims, self.factors[0].shape
        flats = []
        for factor in self.factors[1:]:
            flat = SAMPLE_DIM in dims and SAMPLE_DIM in factor.dims
            if flat:
                dims, shape = (SAMPLE_DIM,), (math.prod(shape) * len(factor),)
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
        return _product_table(self.factors)

    def _rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        # a flat index is a mixed-radix number whose digits are the factors' point indices
        digits = np.unravel_index(index, [len(factor) for factor in self.factors])
        out: dict[str, np.ndarray] = {}
        for factor, digit in zip(self.factors, digits, strict=True):
            out.update(factor.rows(digit))
        return out

    def coords(self) -> Coords:
        coords = self.factors[0].coords()
        flats = self._layout()[2]
        for k, (factor, flat) in enumerate(zip(self.factors[1:], flats, strict=True), start=2):
            if flat:  # the product so far becomes one sample dim
                table = _product_table(self.factors[:k])
                coords = {name: ((SAMPLE_DIM,), values) for name, values in table.items()}
            else:
                coords = {**coords, **factor.coords()}
        for _, values in coords.values():
            values.flags.writeable = False
        return coords

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: [factor.to_dict() for factor in self.factors]}

    @classmethod
    def _from_body(cls, body: Any) -> Product:
        return cls(*_design_list(body, cls.kind))

    def __repr__(self) -> str:
        parts = [f"({f!r})" if isinstance(f, (Product, Concat)) else repr(f) for f in self.factors]
        return " * ".join(parts)


def _product_table(factors: tuple[Design, ...]) -> dict[str, np.ndarray]:
    """The table of the product of ``factors``: the first varies slowest."""
    table = factors[0].table()
    for factor in factors[1:]:
        table = _outer(table, factor.table())
    return table


def _outer(outer: dict[str, np.ndarray], inner: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns of the Cartesian product of two tables, ``outer`` varying slowest."""
    n_outer = len(next(iter(outer.values())))
    n_inner = len(next(iter(inner.values())))
    return {
        **{name: np.repeat(values, n_inner) for name, values in outer.items()},
        **{name: np.tile(values, n_outer) for name, values in inner.items()},
    }


_KIND_NAMES = {"b": "bools", "i": "numbers", "f": "numbers", "U": "strings"}


def _value_kinds(parts: Sequence[Design]) -> dict[str, list[str]]:
    """Each parameter's dtype kind in each part (read from the part's first point)."""
    firsts = [part.rows([0]) for part in parts]
    return {name: [first[name].dtype.kind for first in firsts] for name in parts[0].params}


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
    kind = "concat"

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
                    f"({only_first!r} only in part 0, {only_part!r} only in part {i}); give "
                    "every part the same parameters"
                )
                raise DesignError(msg) from None
        for name, kinds in _value_kinds(flat).items():
            labels = {_KIND_NAMES[k] for k in kinds}
            if len(labels) > 1:
                found = ", ".join(f"part {i}: {_KIND_NAMES[k]}" for i, k in enumerate(kinds))
                msg = (
                    f"Concat parameter {name!r} mixes kinds of values ({found}); use all "
                    "numbers, all bools or all strings"
                )
                raise DesignError(msg) from None
        object.__setattr__(self, "parts", tuple(flat))

    @cached_property
    def _floats(self) -> frozenset[str]:
        """Parameters whose values are floats in some part (ints of other parts become floats)."""
        return frozenset(name for name, kinds in _value_kinds(self.parts).items() if "f" in kinds)

    @property
    def params(self) -> tuple[str, ...]:
        return self.parts[0].params

    @property
    def dims(self) -> tuple[str, ...]:
        return (SAMPLE_DIM,)

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(len(part) for part in self.parts),)

    def _table(self) -> dict[str, np.ndarray]:
        tables = [part.table() for part in self.parts]
        return {name: np.concatenate([t[name] for t in tables]) for name in self.params}

    def _rows(self, index: np.ndarray) -> dict[str, np.ndarray]:
        starts = np.cumsum([0] + [len(part) for part in self.parts])
        part_of = np.searchsorted(starts, index, side="right") - 1
        order = np.argsort(part_of, kind="stable")  # index grouped by part
        present = np.unique(part_of) if index.size else [0]  # no points: part 0's dtypes
        pieces = [self.parts[p].rows(index[part_of == p] - starts[p]) for p in present]
        back = np.argsort(order)  # from grouped by part back to the order asked for
        out = {}
        for name in self.params:
            values = np.concatenate([piece[name] for piece in pieces])[back]
            out[name] = values.astype(np.float64) if name in self._floats else values
        return out

    def coords(self) -> Coords:
        return self._sample_coords()

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: [part.to_dict() for part in self.parts]}

    @classmethod
    def _from_body(cls, body: Any) -> Concat:
        return cls(*_design_list(body, cls.kind))

    def __repr__(self) -> str:
        return " + ".join(repr(part) for part in self.parts)


# --------------------------------------------------------------------------------------------
# Dict form
# --------------------------------------------------------------------------------------------


def design_from_dict(d: Mapping[str, Any] | Design) -> Design:
    """Build a design from its dict form (the inverse of :meth:`Design.to_dict`).

    Parameters
    ----------
    d : dict
        One of ``{"grid": {name: [values]}}``, ``{"points": [{name: value}, ...]}``,
        ``{"sample" | "lhs": {"n": .., "seed": .., "params": {name: dist}}}``,
        ``{"sobol": {"n": .., "seed": .., "scramble": true, "params": {...}}}``
        (``scramble`` optional, default true), ``{"product": [d1, d2, ...]}`` or
        ``{"concat": [d1, d2, ...]}``. A distribution is a dict such as ``{"dist":
        "normal", "loc": 3.0, "scale": 0.05}`` or ``[low, high]`` for a uniform (see
        :func:`ensembles.sweep.distributions.distribution_from_dict`). A :class:`Design` is
        returned unchanged.

    Examples
    --------
    >>> design_from_dict({"grid": {"T": [1.5, 2.0]}})
    Grid(T=[1.5, 2.0])
    >>> design_from_dict({"sample": {"n": 4, "seed": 1, "params": {"x": [0, 10]}}})
    Sample(n=4, seed=1, x=Uniform(low=0.0, high=10.0))
    """
    if isinstance(d, Design):
        return d
    if not isinstance(d, Mapping) or len(d) != 1:
        msg = (
            f"a design dict must have exactly one key, one of {list(_KINDS)!r} (e.g. "
            f"{{'grid': {{'T': [1.5, 2.0]}}}}), got {d!r}"
        )
        raise DesignError(msg) from None
    ((kind, body),) = d.items()
    if kind not in _KINDS:
        msg = f"unknown design {kind!r}; use one of {list(_KINDS)!r}"
        raise DesignError(msg) from None
    return _KINDS[kind]._from_body(body)


def _design_list(body: Any, kind: str) -> list[Design]:
    if not isinstance(body, (list, tuple)):
        msg = f"design {kind!r} takes a list of designs, got {body!r}"
        raise DesignError(msg) from None
    return [design_from_dict(item) for item in body]
