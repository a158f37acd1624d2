"""Any frozen one-dimensional ``scipy.stats`` distribution as a :class:`Distribution`.

scipy.stats (slow to import, and heavy) loads only when such a distribution is used;
:class:`ScipyDistribution` is re-exported from :mod:`ensembles.sweep.distributions` and
:mod:`ensembles`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import DesignError
from .distribution import Distribution
from .values import U_HIGH, U_LOW, finite_float, is_scalar

__all__ = ["ScipyDistribution"]


def _numeric_arg(value: Any, what: str) -> int | float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{what} must be a number, got {value!r}; only numeric arguments can be stored"
        raise DesignError(msg) from None
    if isinstance(value, numbers.Integral):
        return int(value)
    return finite_float(value, what)


@dataclass(frozen=True, init=False, repr=False)
class ScipyDistribution(Distribution):
    """A frozen one-dimensional ``scipy.stats`` distribution.

    The distribution is stored by name, positional ``args`` and keyword ``kwds`` (numbers
    only) so that it round-trips through JSON; :attr:`frozen` rebuilds the scipy object.
    Discrete distributions give int64 values. Equality compares name, args and kwds as
    given, so ``norm(1, 2)`` and ``norm(loc=1, scale=2)`` are different objects.

    Parameters
    ----------
    frozen : scipy.stats frozen distribution
        E.g. ``scipy.stats.gamma(2.0, scale=0.5)``; must be a named ``scipy.stats``
        distribution with valid, numeric parameters.

    Attributes
    ----------
    name : str
        The ``scipy.stats`` name (``"gamma"``).
    args : tuple of number
        Positional (shape) arguments.
    kwds : tuple of (str, number)
        Keyword arguments, sorted by name.

    Examples
    --------
    >>> from scipy import stats
    >>> d = ScipyDistribution(stats.gamma(2.0, scale=0.5))
    >>> d
    ScipyDistribution(gamma(2.0, scale=0.5))
    >>> d.to_dict()
    {'dist': 'scipy', 'name': 'gamma', 'args': [2.0], 'kwds': {'scale': 0.5}}
    """

    dist: ClassVar[str] = "scipy"
    name: str
    args: tuple[int | float, ...]
    kwds: tuple[tuple[str, int | float], ...]

    def __init__(self, frozen: Any) -> None:
        generator = getattr(frozen, "dist", None)
        from scipy import stats

        if not isinstance(generator, (stats.rv_continuous, stats.rv_discrete)):
            msg = (
                f"ScipyDistribution takes a frozen one-dimensional scipy.stats distribution "
                f"such as scipy.stats.norm(0, 1), got {frozen!r}"
            )
            raise DesignError(msg) from None
        name = generator.name
        if type(getattr(stats, name, None)) is not type(generator):
            msg = (
                f"ScipyDistribution needs a distribution of scipy.stats by name so it can be "
                f"stored, got {frozen!r} named {name!r}"
            )
            raise DesignError(msg) from None
        args = tuple(_numeric_arg(a, f"scipy.stats.{name} argument") for a in frozen.args)
        kwds = tuple(
            sorted(
                (str(k), _numeric_arg(v, f"scipy.stats.{name} {k}"))
                for k, v in frozen.kwds.items()
            )
        )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwds", kwds)
        try:
            median = float(self.frozen.ppf(0.5))
        except (TypeError, ValueError) as exc:
            msg = f"invalid arguments for scipy.stats.{name}: {exc}"
            raise DesignError(msg) from None
        if math.isnan(median):
            msg = (
                f"invalid arguments for scipy.stats.{name}: args={args!r}, kwds={dict(kwds)!r} "
                f"give no distribution (its median is NaN); see scipy.stats.{name} for the "
                "valid ranges of its parameters"
            )
            raise DesignError(msg) from None

    @classmethod
    def from_parts(
        cls, name: str, args: Iterable[Any] = (), kwds: Mapping[str, Any] | None = None
    ) -> ScipyDistribution:
        """Build from a ``scipy.stats`` name, positional args and keyword args."""
        from scipy import stats

        generator = getattr(stats, name, None) if isinstance(name, str) else None
        if not isinstance(generator, (stats.rv_continuous, stats.rv_discrete)):
            msg = (
                f"unknown scipy.stats distribution {name!r}; use a name such as 'norm', "
                "'gamma' or 'poisson'"
            )
            raise DesignError(msg) from None
        if is_scalar(args) or isinstance(args, Mapping):
            msg = f"scipy.stats.{name} args must be a list of numbers, got {args!r}"
            raise DesignError(msg) from None
        if not isinstance(kwds, (Mapping, type(None))):
            msg = f"scipy.stats.{name} kwds must be a mapping of name to number, got {kwds!r}"
            raise DesignError(msg) from None
        args = [_numeric_arg(a, f"scipy.stats.{name} argument") for a in args]
        kwds = {
            str(k): _numeric_arg(v, f"scipy.stats.{name} {k}") for k, v in (kwds or {}).items()
        }
        try:
            frozen = generator(*args, **kwds)
        except (TypeError, ValueError) as exc:
            msg = f"invalid arguments for scipy.stats.{name}: {exc}"
            raise DesignError(msg) from None
        return cls(frozen)

    @property
    def frozen(self) -> Any:
        """The frozen ``scipy.stats`` distribution."""
        from scipy import stats

        return getattr(stats, self.name)(*self.args, **dict(self.kwds))

    @property
    def discrete(self) -> bool:
        """True for a discrete (``rv_discrete``) distribution."""
        from scipy import stats

        return isinstance(getattr(stats, self.name), stats.rv_discrete)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwds]
        return f"ScipyDistribution({self.name}({', '.join(parts)}))"

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        values = np.asarray(self.frozen.ppf(np.clip(u, U_LOW, U_HIGH)), dtype=np.float64)
        if self.discrete and np.all(np.isfinite(values)):
            return values.astype(np.int64)
        return values

    def to_dict(self) -> dict[str, Any]:
        return {
            "dist": self.dist,
            "name": self.name,
            "args": list(self.args),
            "kwds": dict(self.kwds),
        }
