"""Distributions of sampled parameters, and what users write for one turned into one.

A :class:`Distribution` (the contract, in :mod:`ensembles.sweep.distribution`) is a small,
frozen, validated description of a one-dimensional distribution. Its only job is
:meth:`Distribution.ppf`, the inverse cumulative distribution function, which turns
uniforms (from a random generator or a quasi-Monte Carlo sequence) into values. Keeping
the uniforms separate from the mapping is what lets the designs in :mod:`ensembles.sweep`
be reproducible and prefix-stable. This module holds :class:`Normal`, :class:`Uniform`,
:class:`LogUniform` and :class:`Choice`, re-exports :class:`ScipyDistribution`, and turns
a ``(low, high)`` tuple, a frozen scipy distribution (:func:`as_distribution`) or a dict
(:func:`distribution_from_dict`) into a distribution, naming the parameter in any error.

Every distribution round-trips through JSON with :meth:`Distribution.to_dict` and
:func:`distribution_from_dict`::

    {"dist": "normal", "loc": 3.0, "scale": 0.05}
    {"dist": "uniform", "low": 0.0, "high": 1.0}
    {"dist": "loguniform", "low": 1e-3, "high": 1.0}
    {"dist": "choice", "values": [16, 32], "p": [0.25, 0.75]}
    {"dist": "scipy", "name": "gamma", "args": [2.0], "kwds": {"scale": 0.5}}

:func:`distribution_from_dict` also accepts two short forms for hand-written specs:
``[low, high]`` means ``Uniform(low, high)``, and ``{"dist": "<scipy name>", **kwds}``
(e.g. ``{"dist": "gamma", "a": 2.0, "scale": 0.5}``) freezes that ``scipy.stats``
distribution with keyword arguments. The names ``normal``, ``uniform``, ``loguniform``,
``choice`` and ``scipy`` always mean the distributions of this module.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import DesignError
from .distribution import Distribution
from .scipy_distribution import ScipyDistribution
from .values import U_HIGH, U_LOW, about, check_keys, finite_float, is_scalar, value_array

__all__ = [
    "Choice",
    "Distribution",
    "LogUniform",
    "Normal",
    "ScipyDistribution",
    "Uniform",
    "as_distribution",
    "distribution_from_dict",
]


# --------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normal(Distribution):
    """Normal (Gaussian) distribution.

    Parameters
    ----------
    loc : float
        Mean.
    scale : float
        Standard deviation, strictly positive.

    Examples
    --------
    >>> d = Normal(3.0, 0.05)
    >>> d
    Normal(loc=3.0, scale=0.05)
    >>> d.ppf([0.5]).tolist()
    [3.0]
    >>> d.to_dict()
    {'dist': 'normal', 'loc': 3.0, 'scale': 0.05}
    """

    dist: ClassVar[str] = "normal"
    loc: float
    scale: float

    def __post_init__(self) -> None:
        loc = finite_float(self.loc, "Normal loc")
        scale = finite_float(self.scale, "Normal scale")
        if scale <= 0.0:
            msg = f"Normal scale must be > 0, got {self.scale!r}; it is the standard deviation"
            raise DesignError(msg) from None
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "scale", scale)

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        from scipy import special

        return self.loc + self.scale * special.ndtri(np.clip(u, U_LOW, U_HIGH))

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, "loc": self.loc, "scale": self.scale}


@dataclass(frozen=True)
class Uniform(Distribution):
    """Continuous uniform distribution on ``[low, high)``.

    Parameters
    ----------
    low, high : float
        Bounds, with ``low < high``.

    Examples
    --------
    >>> d = Uniform(1.0, 3.0)
    >>> d.ppf([0.0, 0.25]).tolist()
    [1.0, 1.5]
    >>> d.to_dict()
    {'dist': 'uniform', 'low': 1.0, 'high': 3.0}
    """

    dist: ClassVar[str] = "uniform"
    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = _check_bounds(type(self).__name__, self.low, self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        return np.clip(self.low + (self.high - self.low) * u, self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Log-uniform (reciprocal) distribution on ``[low, high)``: ``log(x)`` is uniform.

    Parameters
    ----------
    low, high : float
        Bounds, with ``0 < low < high``.

    Examples
    --------
    >>> d = LogUniform(1e-3, 1e-1)
    >>> [round(v, 12) for v in d.ppf([0.0, 0.5]).tolist()]
    [0.001, 0.01]
    """

    dist: ClassVar[str] = "loguniform"
    low: float
    high: float

    def __post_init__(self) -> None:
        low, high = _check_bounds(type(self).__name__, self.low, self.high)
        if low <= 0.0:
            msg = (
                f"LogUniform low must be > 0, got {self.low!r}: the logarithm of a bound "
                "<= 0 is undefined; use Uniform for a range that includes 0"
            )
            raise DesignError(msg) from None
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        log_low, log_high = math.log(self.low), math.log(self.high)
        return np.clip(np.exp(log_low + (log_high - log_low) * u), self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.dist, "low": self.low, "high": self.high}


def _check_bounds(name: str, low: Any, high: Any) -> tuple[float, float]:
    low_f = finite_float(low, f"{name} low")
    high_f = finite_float(high, f"{name} high")
    if not low_f < high_f:
        fix = (
            "swap them"
            if low_f > high_f
            else "for a constant, pass it as a fixed parameter (fixed={name: value})"
        )
        msg = f"{name} bounds must satisfy low < high, got low={low!r}, high={high!r}; {fix}"
        raise DesignError(msg) from None
    if not math.isfinite(high_f - low_f):
        msg = (
            f"{name} bounds low={low!r}, high={high!r} are too far apart to sample (their "
            "difference overflows a float); narrow the range"
        )
        raise DesignError(msg) from None
    return low_f, high_f


@dataclass(frozen=True, repr=False)
class Choice(Distribution):
    """Discrete distribution over a list of distinct values.

    ``ppf`` maps ``u`` to the value whose cumulative-probability bin ``[c[i-1], c[i])``
    contains it, so with ``p=None`` each of ``k`` values owns ``[i/k, (i+1)/k)``.

    Parameters
    ----------
    values : sequence of number, bool or str
        The distinct values. All numbers (ints stay ints), all bools, or all strings.
    p : sequence of float, optional
        Probability of each value: same length as ``values``, non-negative, summing to 1.
        ``None`` (default) means equally likely.

    Examples
    --------
    >>> d = Choice([16, 32, 64], p=[0.5, 0.25, 0.25])
    >>> d
    Choice([16, 32, 64], p=[0.5, 0.25, 0.25])
    >>> d.ppf([0.1, 0.6, 0.9]).tolist()
    [16, 32, 64]
    """

    dist: ClassVar[str] = "choice"
    values: tuple[Any, ...]
    p: tuple[float, ...] | None = None
    # dtype kind of the values, so that Choice([1, 2]) != Choice([1.0, 2.0]) != Choice([True])
    _kind: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        array = value_array(self.values, "Choice values", unique=True)
        object.__setattr__(self, "values", tuple(array.tolist()))
        object.__setattr__(self, "_kind", array.dtype.kind)
        if self.p is None:
            return
        if is_scalar(self.p) or isinstance(self.p, Mapping):
            msg = f"Choice p must be a list of probabilities, got {self.p!r}"
            raise DesignError(msg) from None
        p = tuple(finite_float(x, "Choice p") for x in self.p)
        if len(p) != len(self.values):
            msg = (
                f"Choice p has {len(p)} probabilities {list(p)!r} for {len(self.values)} "
                f"values {list(self.values)!r}; give one probability per value"
            )
            raise DesignError(msg) from None
        if any(x < 0.0 for x in p):
            msg = f"Choice p must be non-negative, got {list(p)!r}"
            raise DesignError(msg) from None
        total = math.fsum(p)
        if abs(total - 1.0) > 1e-8:
            msg = (
                f"Choice p must sum to 1, got {list(p)!r} summing to {total!r}; divide each "
                "probability by their sum"
            )
            raise DesignError(msg) from None
        object.__setattr__(self, "p", p)

    def __repr__(self) -> str:
        if self.p is None:
            return f"Choice({list(self.values)!r})"
        return f"Choice({list(self.values)!r}, p={list(self.p)!r})"

    def _array(self) -> np.ndarray:
        return value_array(self.values, "Choice values", unique=False)

    def _ppf(self, u: np.ndarray) -> np.ndarray:
        k = len(self.values)
        if self.p is None:
            index = (u * k).astype(np.intp)
        else:
            cdf = np.cumsum(self.p)
            index = np.searchsorted(cdf / cdf[-1], u, side="right")
        return self._array()[np.minimum(index, k - 1)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dist": self.dist, "values": list(self.values)}
        if self.p is not None:
            out["p"] = list(self.p)
        return out


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def _is_frozen_scipy(obj: Any) -> bool:
    """True for a frozen ``scipy.stats`` distribution (without importing scipy.stats)."""
    stats = sys.modules.get("scipy.stats")  # no frozen distribution exists before its import
    return stats is not None and isinstance(
        getattr(obj, "dist", None), (stats.rv_continuous, stats.rv_discrete)
    )


def as_distribution(obj: Any, what: str | None = None) -> Distribution:
    """Return ``obj`` as a :class:`Distribution`.

    Accepts a :class:`Distribution`, a frozen ``scipy.stats`` distribution (wrapped in
    :class:`ScipyDistribution`) or a ``(low, high)`` tuple meaning ``Uniform(low, high)``.

    Parameters
    ----------
    obj : object
        The object to convert.
    what : str, optional
        The parameter ``obj`` is for (e.g. ``"Sample parameter 'T'"``); every error
        message starts with it.

    Examples
    --------
    >>> as_distribution((0.0, 2.0))
    Uniform(low=0.0, high=2.0)
    >>> try:
    ...     as_distribution((2.0, 0.0), "Sample parameter 'x'")
    ... except DesignError as exc:
    ...     print(exc)
    Sample parameter 'x': Uniform bounds must satisfy low < high, got low=2.0, high=0.0; swap them
    """
    if isinstance(obj, Distribution):
        return obj
    with about(what):
        if _is_frozen_scipy(obj):
            return ScipyDistribution(obj)
        if isinstance(obj, tuple) and len(obj) == 2:
            return Uniform(*obj)
    if isinstance(obj, list):
        hint = "Choice([...]) for a set of values, or a (low, high) tuple for Uniform"
    elif is_scalar(obj):
        hint = "a fixed parameter (fixed={name: value}) for a constant"
    else:
        hint = "a (low, high) tuple for Uniform"
    msg = (
        f"{what or 'the value'} must be a distribution (Normal, Uniform, LogUniform, Choice, "
        f"a frozen scipy.stats distribution), got {obj!r}; use {hint}"
    )
    raise DesignError(msg) from None


_KEYS: dict[str, tuple[type[Distribution], tuple[str, ...], tuple[str, ...]]] = {
    # dist tag: (class, required keys, optional keys)
    "normal": (Normal, ("loc", "scale"), ()),
    "uniform": (Uniform, ("low", "high"), ()),
    "loguniform": (LogUniform, ("low", "high"), ()),
    "choice": (Choice, ("values",), ("p",)),
}


def distribution_from_dict(d: Any, what: str | None = None) -> Distribution:
    """Build a :class:`Distribution` from its dict form (the inverse of ``to_dict``).

    Parameters
    ----------
    d : dict or list
        ``{"dist": "normal", "loc": .., "scale": ..}``, ``{"dist": "uniform", "low": ..,
        "high": ..}``, ``{"dist": "loguniform", "low": .., "high": ..}``, ``{"dist":
        "choice", "values": [..], "p": [..]}`` (``p`` optional), ``{"dist": "scipy",
        "name": .., "args": [..], "kwds": {..}}``; or the short forms ``[low, high]``
        (Uniform) and ``{"dist": "<scipy.stats name>", **kwds}``.
    what : str, optional
        The parameter ``d`` is for (e.g. ``"design 'sample' parameter 'T'"``); every
        error message starts with it.

    Examples
    --------
    >>> distribution_from_dict({"dist": "normal", "loc": 3.0, "scale": 0.05})
    Normal(loc=3.0, scale=0.05)
    >>> distribution_from_dict([0, 1])
    Uniform(low=0.0, high=1.0)
    >>> distribution_from_dict({"dist": "gamma", "a": 2.0})
    ScipyDistribution(gamma(a=2.0))
    """
    if isinstance(d, Distribution):
        return d
    with about(what):
        return _from_dict(d)


def _from_dict(d: Any) -> Distribution:
    if isinstance(d, (list, tuple)):
        if len(d) != 2:
            msg = (
                f"a distribution given as a list must be [low, high] (Uniform), got {d!r}; "
                "for a set of values write {'dist': 'choice', 'values': [...]}"
            )
            raise DesignError(msg) from None
        return Uniform(*d)
    if not isinstance(d, Mapping) or "dist" not in d:
        msg = (
            f"a distribution must be a dict with a 'dist' key such as "
            f"{{'dist': 'normal', 'loc': 0.0, 'scale': 1.0}}, or [low, high]; got {d!r}"
        )
        raise DesignError(msg) from None
    tag = d["dist"]
    rest = {k: v for k, v in d.items() if k != "dist"}
    if tag in _KEYS:
        cls, required, optional = _KEYS[tag]
        check_keys(rest, required, optional, f"distribution {tag!r}")
        return cls(**rest)
    if tag == "scipy":
        check_keys(rest, ("name",), ("args", "kwds"), "distribution 'scipy'")
        return ScipyDistribution.from_parts(rest["name"], rest.get("args", ()), rest.get("kwds"))
    if isinstance(tag, str) and tag.isidentifier():
        from scipy import stats

        if isinstance(getattr(stats, tag, None), (stats.rv_continuous, stats.rv_discrete)):
            return ScipyDistribution.from_parts(tag, (), rest)
    known = [*_KEYS, "scipy"]
    msg = f"unknown distribution {tag!r}; use one of {known!r} or a scipy.stats name"
    raise DesignError(msg) from None
