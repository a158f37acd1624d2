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

import hashlib
import inspect
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import qmc

from .distributions import (
    Distribution,
    _check_keys,
    _is_scalar,
    _value_array,
    as_distribution,
    distribution_from_dict,
)
from .errors import DesignError

__all__ = [
    "Concat",
    "Design",
    "Grid",
    "LatinHypercube",
    "Points",
    "Product",
    "Sample",
    "Sobol",
    "design_from_dict",
]

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
        return {name: ((SAMPLE,), table[name]) for name in self.params}


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

    def __init__(self, /, **params: Any) -> None:
        if not params:
            msg = "Grid needs at least one parameter, e.g. Grid(T=[1.5, 2.0])"
            raise DesignError(msg) from None
        axes = []
        for name, values in params.items():
            _check_name(name, "Grid")
            if _is_scalar(values):
                msg = (
                    f"Grid parameter {name!r} got the scalar {values!r}; give a list of values "
                    f"such as [{values!r}], or pass a constant as a fixed parameter "
                    f"(fixed={{{name!r}: {values!r}}})"
                )
                raise DesignError(msg) from None
            kind, column = _column(values, f"Grid parameter {name!r}", unique=True)
            axes.append((name, kind, column))
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
        arrays = [_column_array(kind, values) for _, kind, values in self.axes]
        mesh = np.meshgrid(*arrays, indexing="ij")
        return {name: m.ravel().copy() for name, m in zip(self.params, mesh, strict=True)}

    def coords(self) -> Coords:
        out = {}
        for name, kind, values in self.axes:
            array = _column_array(kind, values)
            array.flags.writeable = False
            out[name] = ((name,), array)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"grid": {name: list(values) for name, _, values in self.axes}}

    def __repr__(self) -> str:
        items = [(n, _values_repr(v)) for n, _, v in self.axes]
        return f"Grid({_kwargs_repr(items, frozenset(), '**')})"


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

    def __init__(self, points: Any, /) -> None:
        if isinstance(points, Mapping):
            msg = f"Points takes a list of dicts, got one dict {dict(points)!r}; wrap it: [..]"
            raise DesignError(msg) from None
        if _is_scalar(points):
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
            _check_name(name, "Points")
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
            column = [point[name] for point in points]
            for i, value in enumerate(column):
                if not _is_scalar(value):
                    msg = f"{what} of point {i} must be a single value, got {value!r}"
                    raise DesignError(msg) from None
            kind, values = _column(column, what, unique=False)
            columns.append((name, kind, values))
        object.__setattr__(self, "columns", tuple(columns))

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.columns)

    @property
    def dims(self) -> tuple[str, ...]:
        return (SAMPLE,)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.columns[0][2]),)

    def _table(self) -> dict[str, np.ndarray]:
        return {name: _column_array(kind, values) for name, kind, values in self.columns}

    def coords(self) -> Coords:
        return self._sample_coords()

    def to_dict(self) -> dict[str, Any]:
        names = self.params
        rows = zip(*(values for _, _, values in self.columns), strict=True)
        return {"points": [dict(zip(names, row, strict=True)) for row in rows]}

    def __repr__(self) -> str:
        n = len(self)
        return f"Points({n} point{'s' if n != 1 else ''}: {', '.join(self.params)})"


# --------------------------------------------------------------------------------------------
# Sampled designs
# --------------------------------------------------------------------------------------------


def stream_key(name: str) -> int:
    """The stable 32-bit spawn key of parameter ``name``'s random stream in :class:`Sample`."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little")


@dataclass(frozen=True, init=False, repr=False)
class _Sampled(Design):
    """Shared parts of the designs that draw ``n`` points from distributions."""

    n: int
    seed: int
    dists: tuple[tuple[str, Distribution], ...]

    _kind = "sample"  # key of the dict form

    def _init(self, n: Any, seed: Any, params: Any, kwargs: dict[str, Any]) -> None:
        cls = type(self).__name__
        object.__setattr__(self, "n", _positive_int(n, f"{cls} n", minimum=1))
        object.__setattr__(self, "seed", _positive_int(seed, f"{cls} seed", minimum=0))
        if params is not None and not isinstance(params, Mapping):
            msg = f"{cls} params must be a dict of name to distribution, got {params!r}"
            raise DesignError(msg) from None
        params = dict(params or {})
        both = sorted(set(params) & set(kwargs))
        if both:
            msg = f"{cls} got {both!r} both in params= and as keywords; give each once"
            raise DesignError(msg) from None
        params.update(kwargs)
        if not params:
            msg = f"{cls} needs at least one parameter, e.g. {cls}(n=8, seed=0, T=Normal(0, 1))"
            raise DesignError(msg) from None
        dists = []
        for name, obj in params.items():
            _check_name(name, cls)
            dists.append((name, as_distribution(obj, f"{cls} parameter {name!r}")))
        object.__setattr__(self, "dists", tuple(dists))

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.dists)

    @property
    def dims(self) -> tuple[str, ...]:
        return (SAMPLE,)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)

    def coords(self) -> Coords:
        return self._sample_coords()

    def _options(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        body = {"n": self.n, "seed": self.seed, **self._options()}
        body["params"] = {name: dist.to_dict() for name, dist in self.dists}
        return {self._kind: body}

    def __repr__(self) -> str:
        options = self._options()
        items = [("n", repr(self.n)), ("seed", repr(self.seed))]
        items += [(k, repr(v)) for k, v in options.items()]
        keywords = frozenset({"n", "seed", "params", *options})
        dists = _kwargs_repr([(n, repr(d)) for n, d in self.dists], keywords, "params=")
        inner = ", ".join(f"{k}={v}" for k, v in items)
        return f"{type(self).__name__}({inner}, {dists})"


@dataclass(frozen=True, init=False, repr=False)
class Sample(_Sampled):
    """Independent random draws of ``n`` points, along one ``sample`` dimension.

    Each parameter has its own random stream, seeded by ``seed`` and a hash of the
    parameter's name, from which ``n`` uniforms are drawn in order and mapped through the
    distribution's ``ppf``. So a larger ``n`` extends a smaller one (the first rows are
    identical) and adding or removing a parameter leaves the other columns unchanged.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    seed : int
        Non-negative seed of the draws.
    params : dict, optional
        Parameters given as a dict (for names such as ``n`` that cannot be keywords).
    **kwargs : Distribution, frozen scipy.stats distribution or (low, high)
        Each parameter's distribution; a ``(low, high)`` tuple means ``Uniform(low, high)``.

    Examples
    --------
    >>> from ensembles.distributions import Choice, Normal
    >>> s = Sample(n=50, seed=123, T=Normal(3.0, 0.05), L=Choice([16, 32]))
    >>> s
    Sample(n=50, seed=123, T=Normal(loc=3.0, scale=0.05), L=Choice([16, 32]))
    >>> s.dims, s.shape
    (('sample',), (50,))
    >>> bigger = Sample(n=100, seed=123, T=Normal(3.0, 0.05), L=Choice([16, 32]))
    >>> bool((bigger.table()["T"][:50] == s.table()["T"]).all())
    True
    """

    def __init__(
        self, /, *, n: int, seed: int, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self._init(n, seed, params, kwargs)
        keys: dict[int, str] = {}
        for name in self.params:
            other = keys.setdefault(stream_key(name), name)
            if other != name:
                msg = (
                    f"Sample parameters {other!r} and {name!r} hash to the same random "
                    "stream; rename one of them"
                )
                raise DesignError(msg) from None

    def _table(self) -> dict[str, np.ndarray]:
        out = {}
        for name, dist in self.dists:
            seq = np.random.SeedSequence(self.seed, spawn_key=(stream_key(name),))
            out[name] = dist.ppf(np.random.default_rng(seq).random(self.n))
        return out


def _qmc_engine(cls: type, d: int, seed: int, **options: Any) -> Any:
    """A scipy.stats.qmc engine seeded by a Generator (same points for ``seed=``/``rng=``)."""
    generator = np.random.default_rng(seed)
    keyword = "rng" if "rng" in inspect.signature(cls).parameters else "seed"
    return cls(d, **options, **{keyword: generator})


@dataclass(frozen=True, init=False, repr=False)
class LatinHypercube(_Sampled):
    """Latin hypercube sample of ``n`` points (``scipy.stats.qmc.LatinHypercube``).

    Each parameter's range is cut into ``n`` equally likely strata with one point in each.
    The points are stratified jointly: changing ``n`` or the parameters changes every point
    (no prefix stability; use :class:`Sample` or :class:`Sobol` to extend a run later).

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    seed : int
        Non-negative seed.
    params : dict, optional
        Parameters given as a dict (for names such as ``n`` that cannot be keywords).
    **kwargs : Distribution, frozen scipy.stats distribution or (low, high)
        Each parameter's distribution; a ``(low, high)`` tuple means ``Uniform(low, high)``.

    Examples
    --------
    >>> d = LatinHypercube(n=4, seed=0, x=(0.0, 1.0))
    >>> sorted((d.table()["x"] * 4).astype(int).tolist())
    [0, 1, 2, 3]
    """

    _kind = "lhs"

    def __init__(
        self, /, *, n: int, seed: int, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        self._init(n, seed, params, kwargs)

    def _table(self) -> dict[str, np.ndarray]:
        u = _qmc_engine(qmc.LatinHypercube, len(self.dists), self.seed).random(self.n)
        return {name: dist.ppf(u[:, i]) for i, (name, dist) in enumerate(self.dists)}


@dataclass(frozen=True, init=False, repr=False)
class Sobol(_Sampled):
    """Sobol' low-discrepancy sequence of ``n`` points (``scipy.stats.qmc.Sobol``).

    A sequence: a larger ``n`` with the same seed extends a smaller one. Its balance
    properties hold for ``n`` a power of 2 (8, 16, 32, ...); other ``n`` are accepted
    without scipy's warning. With ``scramble=False`` the seed is unused and the first
    point is the origin, which unbounded distributions map to a finite extreme
    (``ppf(2**-53)``).

    Parameters
    ----------
    n : int
        Number of points, >= 1; preferably a power of 2.
    seed : int
        Non-negative seed of the scrambling.
    scramble : bool
        Scramble the sequence (default True; recommended).
    params : dict, optional
        Parameters given as a dict (for names such as ``n`` that cannot be keywords).
    **kwargs : Distribution, frozen scipy.stats distribution or (low, high)
        Each parameter's distribution; a ``(low, high)`` tuple means ``Uniform(low, high)``.

    Examples
    --------
    >>> from ensembles.distributions import Normal
    >>> s = Sobol(n=8, seed=0, x=(0.0, 1.0), y=Normal(0.0, 1.0))
    >>> s
    Sobol(n=8, seed=0, scramble=True, x=Uniform(low=0.0, high=1.0), y=Normal(loc=0.0, scale=1.0))
    >>> longer = Sobol(n=16, seed=0, x=(0.0, 1.0), y=Normal(0.0, 1.0))
    >>> bool((longer.table()["x"][:8] == s.table()["x"]).all())
    True
    """

    scramble: bool

    _kind = "sobol"

    def __init__(
        self,
        /,
        *,
        n: int,
        seed: int,
        scramble: bool = True,
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(scramble, (bool, np.bool_)):
            msg = f"Sobol scramble must be True or False, got {scramble!r}"
            raise DesignError(msg) from None
        object.__setattr__(self, "scramble", bool(scramble))
        self._init(n, seed, params, kwargs)

    def _options(self) -> dict[str, Any]:
        return {"scramble": self.scramble}

    def _table(self) -> dict[str, np.ndarray]:
        engine = _qmc_engine(qmc.Sobol, len(self.dists), self.seed, scramble=self.scramble)
        with warnings.catch_warnings():
            # documented: n need not be a power of 2 (the points are still a prefix)
            warnings.filterwarnings("ignore", message=".*balance properties", category=UserWarning)
            u = engine.random(self.n)
        return {name: dist.ppf(u[:, i]) for i, (name, dist) in enumerate(self.dists)}


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
    >>> from ensembles.distributions import Normal
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
    >>> from ensembles.distributions import Normal
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


# --------------------------------------------------------------------------------------------
# Dict form
# --------------------------------------------------------------------------------------------

_SAMPLED: dict[str, type[_Sampled]] = {"sample": Sample, "lhs": LatinHypercube, "sobol": Sobol}
_KINDS = ("grid", "points", "sample", "lhs", "sobol", "product", "concat")


def _distribution(spec: Any, kind: str, name: Any) -> Distribution:
    try:
        return distribution_from_dict(spec)
    except DesignError as exc:
        msg = f"design {kind!r} parameter {name!r}: {exc}"
        raise DesignError(msg) from None


def _design_list(body: Any, kind: str) -> list[Design]:
    if not isinstance(body, (list, tuple)):
        msg = f"design {kind!r} takes a list of designs, got {body!r}"
        raise DesignError(msg) from None
    return [design_from_dict(item) for item in body]


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
        :func:`ensembles.distributions.distribution_from_dict`). A :class:`Design` is
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
    if kind == "grid":
        if not isinstance(body, Mapping):
            msg = f"design 'grid' takes a dict of name to list of values, got {body!r}"
            raise DesignError(msg) from None
        for name in body:
            _check_name(name, "Grid")
        return Grid(**body)
    if kind == "points":
        return Points(body)
    if kind in _SAMPLED:
        if not isinstance(body, Mapping):
            msg = f"design {kind!r} takes a dict with 'n', 'seed' and 'params', got {body!r}"
            raise DesignError(msg) from None
        optional = ("scramble",) if kind == "sobol" else ()
        _check_keys(body, ("n", "seed", "params"), optional, f"design {kind!r}")
        params = body["params"]
        if not isinstance(params, Mapping):
            msg = f"design {kind!r} params must be a dict of name to distribution, got {params!r}"
            raise DesignError(msg) from None
        dists = {name: _distribution(spec, kind, name) for name, spec in params.items()}
        return _SAMPLED[kind](**{**body, "params": dists})
    if kind == "product":
        return Product(*_design_list(body, kind))
    if kind == "concat":
        return Concat(*_design_list(body, kind))
    msg = f"unknown design {kind!r}; use one of {list(_KINDS)!r}"
    raise DesignError(msg) from None
