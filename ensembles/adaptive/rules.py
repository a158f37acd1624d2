"""The adaptive rule objects: :class:`Precision` targets and the :class:`Adaptive` growth.

Both are frozen, validated when built (the message names the offending value and the
fix) and round-trip through plain dicts (``to_dict``/``from_dict``) for JSON, TOML and
the store's attributes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.intervals import STATS, min_members
from ..errors import SpecError

__all__ = ["GROW", "REDUCTIONS", "Adaptive", "Precision", "as_targets"]

REDUCTIONS = ("mean", "last")
"""How ``Precision(reduce=...)`` collapses each member's output dims before the statistic."""
GROW = ("seed", "sample")
"""The member dims an adaptive run can grow."""

_REAL = (int, float, np.integer, np.floating)
_STEP_HINT = "steps=[-1] (positions) or steps={'sweep': [1000]} (coordinate values)"


def _is_real(value: Any) -> bool:
    return isinstance(value, _REAL) and not isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _positive(owner: str, name: str, value: Any, example: str) -> float | None:
    if value is None:
        return None
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) <= 0:
        what = "negative" if _is_real(value) and float(value) < 0 else "not a positive number"
        msg = f"{owner} {name}={value!r} is {what}: give a positive number, e.g. {name}={example}"
        raise SpecError(msg)
    return float(value)


def _scalar(value: Any) -> Any:
    """A plain Python scalar (int, float, str) for dict forms."""
    return value.item() if isinstance(value, np.generic) else value


def _steps(value: Any) -> tuple | None:
    """``steps`` as a tuple of ints (positions) or of ``(dim, labels)`` pairs (labels)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        pairs = []
        for dim, labels in value.items():
            seq = [labels] if isinstance(labels, (str, bytes)) or np.isscalar(labels) else labels
            labels = tuple(_scalar(v) for v in seq)
            if not isinstance(dim, str) or not labels:
                msg = f"Precision steps={value!r}: give each dim name a non-empty list of values"
                raise SpecError(msg)
            pairs.append((dim, labels))
        if not pairs:
            msg = f"Precision steps={value!r} is empty; omit steps to judge every step"
            raise SpecError(msg)
        return tuple(pairs)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        msg = f"Precision steps={value!r} is not a list of positions or a mapping: {_STEP_HINT}"
        raise SpecError(msg)
    if len(value) == 0 or not all(_is_int(v) for v in value):
        msg = f"Precision steps={value!r} must be a non-empty list of integers: {_STEP_HINT}"
        raise SpecError(msg)
    return tuple(int(v) for v in value)


@dataclass(frozen=True, init=False)
class Precision:
    """A precision target: the confidence interval of a statistic must be this narrow.

    Parameters
    ----------
    var : str
        The output variable, e.g. ``"M"``.
    stat : {"mean", "quantile", "std"}, default "mean"
        The statistic over the members of each design point.
    q : float, optional
        The quantile's probability, in (0, 1); required with ``stat="quantile"`` only.
    halfwidth : float, optional
        Largest acceptable half-width of the interval (output units). Give this or
        ``rel_halfwidth``.
    rel_halfwidth : float, optional
        Largest acceptable half-width relative to ``|estimate|`` (e.g. 0.01 for 1 %).
    level : float, default 0.95
        Confidence level of the interval, in (0, 1).
    steps : list of int or dict, optional
        Where a time series is judged: every step (default), the positions given (a list
        such as ``[-1]``, for outputs with one output dim) or the coordinate values given
        per output dim (``{"sweep": [500, 1000]}``). Every judged step must meet the target.
    reduce : {"mean", "last"}, optional
        Collapse each member's (selected) steps first: their mean (e.g. the time-averaged
        magnetization) or the last one; the target is then judged on that one value.

    Examples
    --------
    >>> p = Precision("M", stat="mean", halfwidth=0.01, reduce="mean")
    >>> p.to_dict()
    {'var': 'M', 'stat': 'mean', 'halfwidth': 0.01, 'level': 0.95, 'reduce': 'mean'}
    >>> Precision.from_dict(p.to_dict()) == p
    True
    >>> Precision("M", halfwidth=-0.01)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ensembles.errors.SpecError: Precision halfwidth=-0.01 is negative: give a positive number, ...
    """

    var: str
    stat: str
    q: float | None
    halfwidth: float | None
    rel_halfwidth: float | None
    level: float
    steps: tuple | None
    reduce: str | None

    def __init__(
        self,
        var: str,
        stat: str = "mean",
        q: float | None = None,
        halfwidth: float | None = None,
        rel_halfwidth: float | None = None,
        level: float = 0.95,
        steps: Any = None,
        reduce: str | None = None,
    ) -> None:
        if not isinstance(var, str) or not var:
            msg = f"Precision var={var!r} is not a variable name; give the output's name, e.g. 'M'"
            raise SpecError(msg)
        if stat not in STATS:
            hint = " (for the median use stat='quantile', q=0.5)" if stat == "median" else ""
            msg = f"Precision stat={stat!r} is not one of {STATS}{hint}"
            raise SpecError(msg)
        if stat == "quantile":
            if not _is_real(q) or not 0 < float(q) < 1:
                msg = f"Precision q={q!r}: stat='quantile' needs q in (0, 1), e.g. q=0.975"
                raise SpecError(msg)
            q = float(q)
        elif q is not None:
            msg = f"Precision q={q!r} is only for stat='quantile' (stat={stat!r}); remove q"
            raise SpecError(msg)
        halfwidth = _positive("Precision", "halfwidth", halfwidth, "0.01")
        rel_halfwidth = _positive("Precision", "rel_halfwidth", rel_halfwidth, "0.01")
        if (halfwidth is None) == (rel_halfwidth is None):
            given = "both" if halfwidth is not None else "neither"
            msg = (
                f"Precision for {var!r} got {given} of halfwidth= and rel_halfwidth=: give "
                "exactly one (absolute, in output units, or relative to |estimate|)"
            )
            raise SpecError(msg)
        if not _is_real(level) or not 0 < float(level) < 1:
            msg = f"Precision level={level!r} is not a confidence level; use (0, 1), e.g. 0.95"
            raise SpecError(msg)
        if reduce is not None and reduce not in REDUCTIONS:
            msg = f"Precision reduce={reduce!r} is not one of {REDUCTIONS} (or None: every step)"
            raise SpecError(msg)
        values = (var, stat, q, halfwidth, rel_halfwidth, float(level), _steps(steps), reduce)
        for name, value in zip(self.__dataclass_fields__, values, strict=True):
            object.__setattr__(self, name, value)

    @property
    def method(self) -> str:
        """``"stein"`` (two-stage: the mean with an absolute half-width), else ``"sequential"``."""
        return "stein" if self.stat == "mean" and self.halfwidth is not None else "sequential"

    @property
    def min_members(self) -> int:
        """The fewest members with a finite interval (146 for a 97.5 % quantile at 95 %)."""
        return min_members(self.stat, self.q, self.level)

    def describe(self) -> str:
        """A short human description, e.g. ``mean of M +- 0.01 (95 %)``.

        Examples
        --------
        >>> Precision("M", stat="quantile", q=0.975, rel_halfwidth=0.05).describe()
        'quantile 0.975 of M +- 5 % (95 % confidence)'
        """
        stat = f"quantile {self.q:g}" if self.stat == "quantile" else self.stat
        width = f"{self.halfwidth:g}" if self.halfwidth else f"{self.rel_halfwidth * 100:g} %"
        return f"{stat} of {self.var} +- {width} ({self.level * 100:g} % confidence)"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/TOML ready); ``None`` fields are left out."""
        out: dict[str, Any] = {"var": self.var, "stat": self.stat}
        for name in ("q", "halfwidth", "rel_halfwidth", "level", "reduce"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.steps is not None:
            if isinstance(self.steps[0], tuple):
                out["steps"] = {dim: list(labels) for dim, labels in self.steps}
            else:
                out["steps"] = list(self.steps)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Precision:
        """The inverse of :meth:`to_dict`; unknown keys are refused."""
        return cls(**_known_keys(cls, data, "var"))


@dataclass(frozen=True, init=False)
class Adaptive:
    """How an adaptive run grows: pilot size, cap, and the size of later rounds.

    Parameters
    ----------
    initial : int, default 16
        Pilot members per point (at least 5; raised to the minimum a quantile target needs
        for a finite interval). Stein's rule sizes the mean from the pilot's spread: a
        larger pilot costs more at easy points and less at hard ones (members about
        ``(t_{initial-1} / z)^2`` times the ideal: 1.46 at 8, 1.18 at 16, 1.08 at 32).
    max : int, default 1024
        Most members per point. A point that reaches it stops, converged or not.
    grow : {"seed", "sample"}, default "seed"
        The dim that grows: seeds per design point, or samples of an extensible sampled
        design (``Sample``, ``Sobol``) when the statistic is taken over ``sample``.
    safety : float, default 1.2
        Factor on the predicted need of sequential targets (quantile, std, relative mean),
        so that most points converge in the next round instead of just missing.
    growth : float, default 4.0
        Largest growth of a point per round for sequential targets (``>= safety``).
    pow2 : bool, default False
        Round each point's total up to a power of 2 (the balance of a Sobol' design).

    Examples
    --------
    >>> Adaptive(initial=16, max=1024).to_dict()
    {'initial': 16, 'max': 1024, 'grow': 'seed', 'safety': 1.2, 'growth': 4.0, 'pow2': False}
    >>> Adaptive(initial=64, max=32)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ensembles.errors.SpecError: Adaptive initial=64 is larger than max=32: ...
    """

    initial: int
    max: int
    grow: str
    safety: float
    growth: float
    pow2: bool

    def __init__(
        self,
        initial: int = 16,
        max: int = 1024,
        grow: str = "seed",
        safety: float = 1.2,
        growth: float = 4.0,
        pow2: bool = False,
    ) -> None:
        for name, value, low in (("initial", initial, 5), ("max", max, 5)):
            if not _is_int(value) or value < low:
                msg = f"Adaptive {name}={value!r} must be an integer >= {low}"
                raise SpecError(msg)
        if initial > max:
            msg = f"Adaptive initial={initial!r} is larger than max={max!r}: raise max or lower it"
            raise SpecError(msg)
        if grow not in GROW:
            msg = f"Adaptive grow={grow!r} is not one of {GROW}"
            raise SpecError(msg)
        if not _is_real(safety) or not 1 <= float(safety) < math.inf:
            msg = f"Adaptive safety={safety!r} must be a number >= 1, e.g. 1.2"
            raise SpecError(msg)
        if not _is_real(growth) or not float(safety) <= float(growth) < math.inf:
            msg = f"Adaptive growth={growth!r} must be a number >= safety={safety!r}, e.g. 4"
            raise SpecError(msg)
        if not isinstance(pow2, (bool, np.bool_)):
            msg = f"Adaptive pow2={pow2!r} must be True or False"
            raise SpecError(msg)
        values = (int(initial), int(max), grow, float(safety), float(growth), bool(pow2))
        for name, value in zip(self.__dataclass_fields__, values, strict=True):
            object.__setattr__(self, name, value)

    def pilot(self, targets: Any, block: int = 1) -> int:
        """Members per point in the first round, in units of the grown dim.

        ``initial``, raised so that every target's statistic has a finite interval
        (``block`` members per unit, e.g. seeds per sample when samples grow).

        Raises
        ------
        SpecError
            If a target can never be met: it needs more members than ``max`` allows.

        Examples
        --------
        >>> Adaptive(initial=16, max=1024).pilot(Precision("M", "quantile", 0.975, 0.01))
        146
        >>> Adaptive(initial=16, max=100).pilot(Precision("M", "quantile", 0.975, 0.01))
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ensembles.errors.SpecError: quantile 0.975 of M +- 0.01 (95 % ...) can never be met: ...
        """
        size = self.initial
        for target in as_targets(targets):
            need = -(-target.min_members // block)
            if need > self.max:
                msg = (
                    f"{target.describe()} can never be met: its interval needs at least "
                    f"{target.min_members} members per point and max={self.max} allows "
                    f"{self.max * block}; raise max (or lower the level)"
                )
                raise SpecError(msg)
            size = max(size, need)
        return size

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/TOML ready)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Adaptive:
        """The inverse of :meth:`to_dict`; unknown keys are refused."""
        return cls(**_known_keys(cls, data, None))


def _known_keys(cls: type, data: Any, required: str | None) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        msg = f"{cls.__name__} must be given as a table (dict), got {data!r}"
        raise SpecError(msg)
    allowed = list(cls.__dataclass_fields__)
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        msg = f"{cls.__name__} got unknown keys {unknown!r}; the keys are {allowed!r}"
        raise SpecError(msg)
    if required is not None and required not in data:
        msg = f"{cls.__name__} needs {required!r}, e.g. {{var = 'M', halfwidth = 0.01}}"
        raise SpecError(msg)
    return dict(data)


def as_targets(until: Any) -> tuple[Precision, ...]:
    """One or several targets (Precision objects or their dicts) as a tuple of Precision.

    Examples
    --------
    >>> as_targets({"var": "M", "halfwidth": 0.01})[0].describe()
    'mean of M +- 0.01 (95 % confidence)'
    >>> as_targets([Precision("M", halfwidth=0.01), {"var": "E", "rel_halfwidth": 0.01}])[1].var
    'E'
    """
    items = [until] if isinstance(until, (Precision, Mapping)) else until
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        msg = f"until={until!r} is not a target: give Precision(...) or a list of them"
        raise SpecError(msg)
    out = []
    for item in items:
        if isinstance(item, Mapping):
            item = Precision.from_dict(item)
        if not isinstance(item, Precision):
            msg = f"until contains {item!r}, which is not a Precision target (or its dict)"
            raise SpecError(msg)
        out.append(item)
    return tuple(out)
