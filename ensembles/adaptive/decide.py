"""The adaptive decision: from the stored members to the next round's members per point.

:func:`decide` is pure and deterministic: it reads only the values of the members run so
far (never timing or worker count), so a resumed driver takes the same decisions. Each
target is judged per design point with its confidence interval; a point that misses a
target gets the members its current estimate says it needs, in one round:

* the mean with an absolute half-width is judged on the union of Stein's interval (spread
  from the pilot only: exact coverage for normal members under this width-based rule)
  and the t-interval of every member (which catches a pilot that underestimated the
  spread); Stein's part sizes the point exactly, in one round;
* quantiles, the standard deviation and relative targets are sequential: the interval of
  every member so far, grown by ``safety * (h / h*)^2`` (at most ``growth``) per round.

Decisions use only interval widths (location-invariant), never the estimates, except for
relative targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.intervals import Interval, interval, stein_interval
from ..errors import SpecError
from .rules import Adaptive, Precision, as_targets
from .select import judged

__all__ = ["Decision", "TargetResult", "decide"]


@dataclass(frozen=True, eq=False)
class TargetResult:
    """How one target stands at every design point.

    Attributes
    ----------
    target : Precision
        The target.
    interval : Interval
        Its interval at every point and judged position, shaped ``(*points, positions)``.
    achieved : ndarray
        The worst half-width over the judged positions (relative to ``|estimate|`` for a
        relative target), per point; ``inf`` where it cannot be computed yet.
    converged : ndarray of bool
        ``achieved <= limit`` (and the pilot is complete), per point.
    needed : ndarray of int64
        Members (of the grown dim) the point needs in total by the current estimate,
        unbounded by ``max``; ``-1`` where no estimate exists yet.
    """

    target: Precision
    interval: Interval
    achieved: np.ndarray
    converged: np.ndarray
    needed: np.ndarray

    @property
    def limit(self) -> float:
        """The target half-width (absolute or relative)."""
        return float(self.target.halfwidth or self.target.rel_halfwidth)


def _width(target: Precision, value: float) -> str:
    return f"{value:.4g}" if target.halfwidth is not None else f"{value * 100:.3g} %"


def _listed(values: np.ndarray) -> list:
    """JSON-ready nested lists; non-finite floats become None."""
    if values.dtype.kind == "f":
        return np.where(np.isfinite(values), values, None).tolist()
    return values.tolist()


@dataclass(frozen=True, eq=False)
class Decision:
    """The next round of an adaptive run, per design point.

    Attributes
    ----------
    n : ndarray of int64
        Members (of the grown dim) per point so far.
    add : ndarray of int64
        Members to add next round (0: converged, or at ``max``).
    converged : ndarray of bool
        Every target is met.
    at_max : ndarray of bool
        The point has ``max`` members and misses a target: it stops unmet.
    projected : ndarray of int64
        Members the point needs in total by the current estimates (unbounded by ``max``;
        ``-1`` where unknown): above ``max`` means the target cannot be met there.
    results : tuple of TargetResult
        Per target.

    Examples
    --------
    >>> from ensembles.adaptive import Adaptive, Precision, decide
    >>> x = np.random.default_rng(1).normal(scale=[[0.1], [9.0]], size=(2, 64))
    >>> d = decide(x, [64, 64], Precision("y", halfwidth=0.5), Adaptive(initial=8, max=64))
    >>> d.done, d.converged.tolist(), d.at_max.tolist(), d.summary()["converged"]
    (True, [True, False], [False, True], 1)
    >>> print(d.report())  # doctest: +ELLIPSIS
    point (1,): stopped at max=64 members: mean of y +- 0.5 (95 % confidence) reached only ...
    """

    n: np.ndarray
    add: np.ndarray
    converged: np.ndarray
    at_max: np.ndarray
    projected: np.ndarray
    results: tuple[TargetResult, ...]

    @property
    def done(self) -> bool:
        """No point gets more members: the adaptive run is finished."""
        return not bool(self.add.any())

    def summary(self) -> dict[str, Any]:
        """Counts for a progress line or ``info``: points converged, at max, members, widest.

        ``widest`` is, per target, the largest achieved half-width over the points next to
        the target's limit.
        """
        return {
            "points": int(self.n.size),
            "converged": int(self.converged.sum()),
            "at_max": int(self.at_max.sum()),
            "members": int(self.n.sum()),
            "add": int(self.add.sum()),
            "widest": [
                {
                    "target": r.target.describe(),
                    "achieved": float(r.achieved.max()) if r.achieved.size else 0.0,
                    "limit": r.limit,
                }
                for r in self.results
            ],
        }

    def report(self) -> str:
        """Plain-text account of the points that stopped at ``max`` without converging."""
        lines = []
        for index in np.argwhere(self.at_max):  # also for a single point (0-d arrays)
            point = tuple(int(i) for i in index)
            missed = [
                f"{r.target.describe()} reached only +- {_width(r.target, r.achieved[point])}"
                for r in self.results
                if not r.converged[point]
            ]
            need = int(self.projected[point])
            hint = f"; it needs about {need} members" if need > 0 else ""
            lines.append(
                f"point {point}: stopped at max={int(self.n[point])} members: "
                f"{'; '.join(missed)}{hint}"
            )
        return "\n".join(lines) if lines else "every point met its targets"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record of the decision (what the store keeps per round)."""
        return {
            "n": _listed(self.n),
            "add": _listed(self.add),
            "converged": _listed(self.converged),
            "at_max": _listed(self.at_max),
            "projected": _listed(self.projected),
            "targets": [
                {
                    "target": r.target.to_dict(),
                    "method": r.interval.method,
                    "achieved": _listed(r.achieved),
                    "converged": _listed(r.converged),
                }
                for r in self.results
            ],
        }


def _counts(n: Any) -> np.ndarray:
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu" or (arr < 0).any():
        msg = f"n={arr.tolist()!r} must be non-negative integer member counts per point"
        raise SpecError(msg)
    return arr.astype(np.int64)


def _variable(values: Any, target: Precision) -> Any:
    if not isinstance(values, Mapping):
        return values
    if target.var not in values:
        msg = f"{target.describe()}: no values of {target.var!r}; got {sorted(values)!r}"
        raise SpecError(msg)
    return values[target.var]


def _parts(data: np.ndarray, target: Precision, axis: int, pilot: int) -> list[Interval]:
    """The intervals a target is judged on: Stein's and the t-interval for the mean."""
    if target.method == "stein":
        return [
            stein_interval(data, pilot, axis=axis, level=target.level),
            interval(data, "mean", axis=axis, level=target.level),
        ]
    return [interval(data, target.stat, target.q, axis=axis, level=target.level)]


def _union(parts: list[Interval]) -> Interval:
    """The smallest interval containing all parts (which share their estimate)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return Interval(
        first.stat,
        first.level,
        first.q,
        "+".join(p.method for p in parts),
        first.estimate,
        np.minimum.reduce([p.lower for p in parts]),
        np.maximum.reduce([p.upper for p in parts]),
        np.maximum.reduce([p.half_width for p in parts]),
        first.n,
    )


def _size(ci: Interval, target: Precision) -> np.ndarray:
    """The half-width in the target's terms (relative to ``|estimate|`` if it is relative)."""
    if target.halfwidth is not None:
        size = ci.half_width
    else:
        scale = np.abs(ci.estimate)
        size = np.full(scale.shape, np.inf)
        np.divide(ci.half_width, scale, out=size, where=scale > 0)
    return np.where(np.isnan(size), np.inf, size)


def _need(
    ci: Interval, ratio: np.ndarray, exact: bool, target: Precision, rule: Adaptive
) -> tuple[np.ndarray, np.ndarray]:
    """Members (present) one interval needs per position: next round, and the projection.

    Stein's width is ``t s0 / sqrt(n)`` with ``s0`` fixed by the pilot, so its need is exact
    and takes no margin; the others are re-estimated each round, with ``safety`` and at
    most ``growth`` times the members per round. ``-1`` projects an unknown need.
    """
    used = ci.n.astype(np.float64)
    finite = np.isfinite(ratio)
    squared = np.where(finite, np.maximum(ratio, 0.0), 1.0) ** 2
    if exact:
        projected = np.where(squared > 1, np.floor(used * squared) + 1, used)
        nxt = projected
    else:
        projected = np.where(squared > 1, np.ceil(used * rule.safety * squared), used)
        nxt = np.where(
            squared > 1, np.ceil(used * np.clip(rule.safety * squared, 1.0, rule.growth)), used
        )
    unknown = np.maximum(target.min_members, np.ceil(used * rule.growth))
    return np.where(finite, nxt, unknown), np.where(finite, projected, -1.0)


def _judge(
    data: np.ndarray, attempted: np.ndarray, target: Precision, rule: Adaptive, pilot: int
) -> tuple[TargetResult, np.ndarray, np.ndarray]:
    """The target's result and, per point, the members (attempted) to reach: next, projected."""
    axis = attempted.ndim
    index = np.arange(data.shape[axis]).reshape((-1, 1))
    data = np.where(index < attempted[..., None, None], data, np.nan)
    parts = _parts(data, target, axis, pilot)
    limit = float(target.halfwidth or target.rel_halfwidth)
    ratios = [_size(ci, target) / limit for ci in parts]
    needs = [
        _need(ci, ratio, ci.method == "stein", target, rule)
        for ci, ratio in zip(parts, ratios, strict=True)
    ]
    # the first interval that misses drives the next round: Stein's exact size, then a
    # top-up when the t-interval of all members is still too wide
    nxt = parts[0].n.astype(np.float64)
    for ratio, need in reversed(list(zip(ratios, needs, strict=True))):
        nxt = np.where(ratio > 1, need[0], nxt)
    projected = np.where(
        np.logical_or.reduce([need[1] < 0 for need in needs]),
        -1.0,
        np.maximum.reduce([need[1] for need in needs]),
    )
    ci = _union(parts)
    size = _size(ci, target)
    present = np.maximum(ci.n, 1) / np.maximum(attempted[..., None], 1)  # share of ok members
    extra = np.where(ci.n > 0, (nxt - ci.n) / present, attempted[..., None] * (rule.growth - 1))
    nxt_total = (attempted[..., None] + np.ceil(np.maximum(extra, 1))).max(axis=-1)
    proj_total = np.where(
        projected >= 0, attempted[..., None] + np.ceil((projected - ci.n) / present), -1
    ).max(axis=-1)
    achieved = size.max(axis=-1)
    result = TargetResult(target, ci, achieved, achieved <= limit, proj_total.astype(np.int64))
    return result, nxt_total, proj_total


def _next_total(wanted: np.ndarray, n: np.ndarray, rule: Adaptive) -> np.ndarray:
    total = np.maximum(wanted, n + 1)
    if rule.pow2:
        total = 2 ** np.ceil(np.log2(total))
    return np.minimum(total, rule.max).astype(np.int64)


def decide(
    values: Any,
    n: Any,
    until: Any,
    rule: Adaptive | None = None,
    *,
    dims: Mapping[str, Sequence[str]] | None = None,
    coords: Mapping[str, Any] | None = None,
    block: int = 1,
    prejudged: bool = False,
) -> Decision:
    """Decide the next round of an adaptive run from the members stored so far.

    Parameters
    ----------
    values : ndarray or mapping of str to ndarray
        Each target variable laid out ``(*points, members, *output dims)``: design points
        first (any number of axes), then the grown dim, then the output's own dims. NaN
        marks members not run, failed or skipped; members at or beyond ``n`` are ignored.
        A single array is allowed when the targets name one variable.
    n : array_like of int
        Members (of the grown dim) run so far per point, shaped like the points: every
        member below it has finished (ok or failed). 0 before the pilot.
    until : Precision, dict or list of them
        The targets; every one must be met.
    rule : Adaptive, optional
        Pilot size, ``max``, safety and growth (default ``Adaptive()``).
    dims : mapping of str to sequence of str, optional
        Output dim names per variable (for ``steps`` given by coordinate value).
    coords : mapping of str to array, optional
        Output coordinates (for ``steps`` given by coordinate value).
    block : int, default 1
        Members per unit of ``n`` along the member axis, when the grown dim is flattened
        with another (``sample x seed`` when samples grow with several seeds each).
    prejudged : bool, default False
        ``values`` are already the judged values (``steps`` selected and ``reduce``
        applied, as :func:`~ensembles.adaptive.select.judged` gives them): a sequence of
        arrays ``(*points, members, positions)``, one per target, in order. An engine
        that reads a store prepares them chunk by chunk.

    Returns
    -------
    Decision
        ``add`` per point (0 when converged or at ``max``), with the intervals.

    Examples
    --------
    >>> from ensembles.adaptive import Adaptive, Precision
    >>> rule = Adaptive(initial=8, max=64)
    >>> target = Precision("M", stat="mean", halfwidth=0.5)
    >>> decide(np.zeros((3, 0)), [0, 0, 0], target, rule).add.tolist()  # the pilot
    [8, 8, 8]
    >>> x = np.random.default_rng(0).normal(scale=[[0.1], [1.0], [3.0]], size=(3, 64))
    >>> d = decide(x, [8, 8, 8], target, rule)
    >>> d.converged.tolist(), d.add.tolist(), d.at_max.tolist()
    ([True, False, False], [0, 23, 56], [False, False, False])
    """
    targets = as_targets(until)
    rule = Adaptive() if rule is None else rule
    if not isinstance(block, (int, np.integer)) or block < 1:
        msg = f"block={block!r} must be a positive number of members per unit"
        raise SpecError(msg)
    pilot = rule.pilot(targets, block)
    n = _counts(n)
    attempted = n * block
    if prejudged and (isinstance(values, Mapping) or len(values) != len(targets)):
        msg = f"prejudged values must be a sequence of {len(targets)} arrays, one per target"
        raise SpecError(msg)
    results, wanted, projected = [], [], []
    for i, target in enumerate(targets):
        if prejudged:
            raw = data = np.asarray(values[i], dtype=np.float64)
        else:
            raw = np.asarray(_variable(values, target))
            data = judged(raw, target, n.ndim, (dims or {}).get(target.var), coords)
        if data.shape[: n.ndim] != n.shape or data.shape[n.ndim] < attempted.max(initial=0):
            msg = (
                f"values of {target.var!r} have shape {raw.shape}: expected the points "
                f"{n.shape} then at least {attempted.max(initial=0)} members"
            )
            raise SpecError(msg)
        result, nxt, proj = _judge(data, attempted, target, rule, pilot * block)
        results.append(result)
        wanted.append(np.where(result.converged, 0, np.ceil(nxt / block)))
        projected.append(np.where(proj >= 0, np.ceil(proj / block), -1))
    started = n >= pilot
    converged = np.logical_and.reduce([r.converged for r in results]) & started
    total = np.where(started, _next_total(np.max(wanted, axis=0), n, rule), pilot)
    stop = converged | (n >= rule.max)
    add = np.where(stop, 0, np.maximum(total - n, 0)).astype(np.int64)
    proj = np.where(started, np.max(projected, axis=0), -1).astype(np.int64)
    return Decision(n, add, converged, ~converged & (n >= rule.max), proj, tuple(results))
