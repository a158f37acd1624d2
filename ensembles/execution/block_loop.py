"""A block's members, run one after another: the arrays they fill, and the per-member loop.

:class:`BlockArrays` holds one block's outputs and bookkeeping, preallocated and filled in
place member by member. :func:`run_plain` is the loop for the common case (a simulation
with a direct call, no retries, no shared setup state): it costs about a microsecond per
member beyond the simulation itself, so members of a few microseconds are not dominated
by the engine. Its per-member work is reporting the member to the pool
(one clock reading, two stores into shared memory), the call, and storing the result
into the block's arrays; a result's types are checked against the schema once per type,
and status, attempts and wall times are filled for the whole block at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..layout import FAILED, OK, PENDING, BlockResult, fill_value
from ..members.blocks import Members
from ..simulations.schema import Output
from .deadline import deadline
from .pool_worker import member_slot

__all__ = ["BlockArrays", "error_message", "result_signature", "run_plain"]

#: Result values whose type alone decides the schema check (a Python int does not: its
#: size decides whether it fits an integer output).
_TYPED_SCALARS = frozenset(
    {float, bool, np.float64, np.float32, np.int64, np.int32, np.bool_, np.float16}
)
# result types a signature can stand for (a Python int only when it fits in int64)
_SCALARS = (float, int, bool, np.float64, np.float32, np.int64, np.int32, np.bool_)
_MISSING = object()


class BlockArrays:
    """The arrays one block's members fill in, one row per member of the block.

    Parameters
    ----------
    members : Members
    outputs : mapping of str to Output
        The schema's outputs.
    block_id : tuple of int
    todo : boolean array, optional
        Block-shaped mask of the members to run; the others stay ``PENDING``.
    """

    def __init__(
        self, members: Members, outputs: Mapping[str, Output], block_id: Sequence[int], todo: Any
    ) -> None:
        self.members, self.schema_outputs = members, outputs
        self.block_id = tuple(block_id)
        index = members.block_members(self.block_id)
        self.shape = index.shape
        self.flat = index.reshape(-1)
        n = self.flat.size
        # uninitialized: rows of members that do not end ok are filled once, at the end
        self.outputs = {
            name: np.empty(self.shape + out.shape, dtype=out.dtype)
            for name, out in outputs.items()
        }
        self.rows = {
            k: v.reshape((n, *v.shape[len(self.shape) :])) for k, v in self.outputs.items()
        }
        self.status = np.full(n, PENDING, dtype=np.int8)
        self.wall = np.full(n, np.nan, dtype=np.float32)
        self.attempts = np.zeros(n, dtype=np.uint8)
        self.errors: list[tuple[int, str, str]] = []
        self.mask = None if todo is None else np.asarray(todo, bool).reshape(-1)

    def positions(self) -> np.ndarray:
        """Positions (rows) of the members to run, in order."""
        if self.mask is None:
            return np.arange(self.flat.size)
        return np.flatnonzero(self.mask)

    def take(self, members: Sequence[int]) -> list[int]:
        """Positions of those of ``members`` this block is to run; they are run no more.

        Examples
        --------
        >>> from ensembles import Grid
        >>> block = BlockArrays(Members(Grid(T=[1.0, 2.0]), 2, 7), {}, (0, 0), None)
        >>> block.take([1, 9]), block.positions().tolist()
        ([1], [0, 2, 3])
        """
        found = np.isin(self.flat, np.asarray(members, dtype=np.int64))
        if self.mask is not None:
            found &= self.mask
        if not found.any():
            return []
        self.mask = ~found if self.mask is None else self.mask & ~found
        return np.flatnonzero(found).tolist()

    def todo(self, fixed: Mapping[str, Any]) -> tuple[list[int], list[int], list[Any], list[int]]:
        """Positions, member indices, parameters (dicts) and seeds of the members to run.

        Worked out for the whole block at once; the values are Python scalars.
        """
        members = self.members
        positions = self.positions()
        flat = self.flat[positions]
        points = flat // members.n_seeds
        seeds = members.seeds.reshape(-1)[flat].tolist()
        names = list(members.table)
        columns = [np.asarray(members.table[k])[points].tolist() for k in names]
        if len(names) == 1 and not fixed:
            name = names[0]
            params = [{name: v} for v in columns[0]]
        else:
            rows = zip(*columns, strict=True) if columns else [()] * len(flat)
            params = [{**dict(zip(names, row, strict=True)), **fixed} for row in rows]
        return positions.tolist(), flat.tolist(), params, seeds

    def record(self, pos: int, member: int, outcome: Any, attempts: int, seconds: float) -> None:
        """Keep one member's outputs (or its error), attempts and time."""
        self.attempts[pos] = attempts
        self.wall[pos] = seconds
        if isinstance(outcome, BaseException):
            self.fail(pos, member, outcome)
            return
        for name, value in outcome.items():
            self.rows[name][pos] = value
        self.status[pos] = OK

    def fail(self, pos: int, member: int, exc: BaseException) -> None:
        """Record member ``member`` (row ``pos``) as failed with ``exc``."""
        self.status[pos] = FAILED
        self.errors.append((member, type(exc).__name__, error_message(exc)))

    def result(self) -> BlockResult:
        """The block's result; members not ok hold the fill value."""
        not_ok = self.status != OK
        if not_ok.any():
            for name, out in self.schema_outputs.items():
                self.rows[name][not_ok] = fill_value(out.dtype)
        return BlockResult(
            self.block_id,
            self.outputs,
            self.status.reshape(self.shape),
            self.wall.reshape(self.shape),
            self.attempts.reshape(self.shape),
            self.errors,
        )


class _Store:
    """Stores raw results into a block's rows; checks each new kind of result once.

    A result is checked by ``finish`` (normalize and check against the schema) unless its
    kind was checked before: a dict whose values' types were each accepted for their
    output (tested inline by :func:`run_plain`), a bare value of an accepted type, or a
    result with an already checked :func:`result_signature`.
    """

    def __init__(
        self,
        block: BlockArrays,
        finish: Callable[[int, Any], dict[str, np.ndarray]],
        bare: str | None,
    ) -> None:
        self.rows = block.rows
        self.finish = finish
        self.n = len(block.rows)
        self.bare = bare
        # (name, rows, value types accepted) per output, in schema order
        self.typed = [(name, rows, set()) for name, rows in block.rows.items()]
        self.bare_types: set[type] = set()
        self.seen: set[tuple[Any, ...]] = set()

    def other(self, pos: int, member: int, raw: Any) -> None:
        """Store a result that is not a dict with one entry per output."""
        if self.bare is not None and type(raw) in self.bare_types:
            self.rows[self.bare][pos] = raw
        else:
            self.checked(pos, member, raw)

    def checked(self, pos: int, member: int, raw: Any) -> None:
        """Store a result of a kind not accepted yet: checked unless its signature was."""
        key = result_signature(raw, self.n)
        result = raw if key is not None and key in self.seen else self.finish(member, raw)
        for name, value in result.items():
            self.rows[name][pos] = value
        if key is not None:
            self.seen.add(key)
        if type(raw) is dict and len(raw) == self.n and all(n in raw for n in self.rows):
            for name, _, accepted in self.typed:
                if type(raw[name]) in _TYPED_SCALARS:
                    accepted.add(type(raw[name]))
        elif self.bare is not None and type(raw) in _TYPED_SCALARS:
            self.bare_types.add(type(raw))


def run_plain(
    block: BlockArrays,
    call: Callable[[Mapping[str, Any], int], Any],
    *,
    fixed: Mapping[str, Any],
    finish: Callable[[int, Any], dict[str, np.ndarray]],
    bare: str | None,
    on_failure: Callable[[int, Exception], BaseException | None],
    timeout: float | None,
) -> None:
    """Run the block's members with ``call(params, seed)``, each once, filling ``block``.

    Each member is reported to the local pool before it runs (its index and start time in
    the worker's status slot), so a member that kills its worker or overruns is known;
    with ``timeout`` it runs under its :func:`~ensembles.execution.deadline.deadline`.
    ``finish(member, raw)`` checks a result of a kind not seen yet; ``on_failure(member,
    exc)`` returns the exception to raise for a failed member, or None to record it.
    """
    positions, flat, params, seeds = block.todo(fixed)
    store = _Store(block, finish, bare)
    typed, n_outputs = store.typed, store.n
    member_view, clock_view = member_slot() or ([0], [0.0, 0.0])
    clock = time.monotonic
    walls: list[float] = []
    failed: list[tuple[int, int, Exception]] = []
    now = clock()
    for pos, member, p, seed in zip(positions, flat, params, seeds, strict=True):
        clock_view[1] = now  # the time first: a reader that sees the index sees its time
        member_view[0] = member
        try:
            raw = call(p, seed) if timeout is None else _call_within(timeout, call, p, seed)
            if type(raw) is dict and len(raw) == n_outputs:  # inline: the common case
                for name, rows, accepted in typed:
                    value = raw.get(name, _MISSING)
                    if type(value) not in accepted:
                        store.checked(pos, member, raw)
                        break
                    rows[pos] = value
            else:
                store.other(pos, member, raw)
        except Exception as exc:
            error = on_failure(member, exc)
            if error is not None:
                raise error from exc
            failed.append((pos, member, exc))
        later = clock()
        walls.append(later - now)
        now = later
    block.wall[positions] = walls
    block.attempts[positions] = 1
    block.status[positions] = OK
    for pos, member, exc in failed:
        block.fail(pos, member, exc)


def _call_within(timeout: float, call: Callable[..., Any], *args: Any) -> Any:
    with deadline(timeout):
        return call(*args)


def result_signature(result: Any, n_outputs: int) -> tuple[Any, ...] | None:
    """What a result looks like (names, types, shapes, dtypes), or None if not simple.

    Two results with the same signature pass or fail the schema check alike, so a
    signature checked once needs no second check.

    Examples
    --------
    >>> result_signature({"y": 1.5}, 1)
    (('y', <class 'float'>),)
    >>> result_signature({"y": 2**70}, 1) is None
    True
    """
    if type(result) is not dict or len(result) != n_outputs:
        return None
    parts: list[Any] = []
    for name, value in result.items():
        kind = type(value)
        if kind is np.ndarray:
            parts.append((name, value.shape, value.dtype))
        elif kind in _SCALARS and (kind is not int or -(2**63) <= value < 2**63):
            parts.append((name, kind))
        else:
            return None
    return tuple(parts)


def error_message(exc: BaseException) -> str:
    """A failed member's message as recorded: the exception's text, at most ~2000 chars.

    Examples
    --------
    >>> error_message(ValueError("bad T"))
    'bad T'
    """
    text = str(exc) or repr(exc)
    if len(text) > 2000:
        text = text[:1000] + " ... " + text[-900:]
    return text
