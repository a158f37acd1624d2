"""What runs on a worker: a block of members, and the task functions that call it.

:class:`BlockRunner` is shipped to workers once per run. ``run_block`` calls the simulation
for every member of a block, checks each result against the schema, and returns a
:class:`~ensembles.layout.BlockResult` of block-shaped arrays, so the cost of a task is
paid per block, not per member. The task functions at the end are what dask workers and
the local pool call; this module's imports stay light (numpy, the simulation contract),
so a worker loads only what running and storing members needs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MemberError, OutputMismatchError
from ..layout import FAILED, OK, PENDING, BlockResult, fill_value
from ..members.blocks import Members
from ..simulations.contract import Simulation
from ..simulations.schema import Schema, normalize_result
from .deadline import deadline
from .pool_worker import end_member, report_member

if TYPE_CHECKING:
    from ..store.zarr_store import EnsembleStore

__all__ = [
    "BlockRunner",
    "get_output",
    "get_status",
    "protected_copy",
    "run_block",
    "run_item",
    "run_item_and_store",
]


def protected_copy(obj: Any) -> Any:
    """What a member receives of the shared state: it cannot change it for the others.

    numpy arrays are passed as read-only views (no copy); anything else is deep-copied.
    """
    if isinstance(obj, np.ndarray):
        view = obj.view()
        view.flags.writeable = False
        return view
    return copy.deepcopy(obj)


@dataclass
class BlockRunner:
    """Everything a worker needs to run blocks of members.

    Parameters
    ----------
    simulation : Simulation
    members : Members
    fixed : dict
        Values passed unchanged to every member.
    schema : Schema
        Output schema every member must match.
    on_error : {"raise", "record"}
        Re-raise a member's exception (as :class:`MemberError` naming it), or record it
        as a failed member and go on.
    retries : int
        Extra attempts for a member that raises, before it counts as failed.
    precomputed : dict
        Results already computed on the client (the probe member), reused, not rerun.
    precomputed_errors : dict
        Exceptions of members that failed while probing, recorded without a rerun.
    setup : (str, object), optional
        Shared initial state and the keyword members receive it as: built once on the
        client and shipped with the runner (so once per worker); each member gets a
        protected copy (see :func:`protected_copy`).
    token : str
        Identifies the run (cache key of the shared state).
    member_timeout : float, optional
        Seconds a member may run (see :mod:`ensembles.execution.deadline`).
    """

    simulation: Simulation
    members: Members
    fixed: Mapping[str, Any]
    schema: Schema
    on_error: str = "raise"
    retries: int = 0
    precomputed: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    precomputed_errors: dict[int, BaseException] = field(default_factory=dict)
    setup: tuple[str, Any] | None = None
    token: str = ""
    member_timeout: float | None = None
    _dims: dict[str, tuple[str, ...]] = field(init=False, repr=False)
    _bare: str | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # how a raw result becomes the schema's arrays: the same for every member
        self._dims = {k: o.dims for k, o in self.schema.outputs.items()}
        self._bare = next(iter(self._dims)) if len(self._dims) == 1 else None

    def member_params(self, member: int) -> dict[str, Any]:
        """Parameters of one member: its design values, then fixed values."""
        return {**self.members.params(member), **self.fixed}

    def call(self, member: int, params: Mapping[str, Any], seed: int) -> Any:
        """Call the simulation for one member: its raw result, not yet checked.

        The one place a member is called. Members receive a protected copy of the shared
        setup state; a simulation with ``takes_member`` (a Command, which names its scratch
        directory after the member) also receives :meth:`Members.identity` as ``member=``.
        """
        if self.setup is not None:
            name, value = self.setup
            params = {**params, name: protected_copy(value)}
        sim = self.simulation
        if sim.takes_member:
            return sim.call(params, seed, member=self.members.identity(member))
        return sim.call(params, seed)

    def _caller(self) -> Any:
        """:meth:`call` as ``f(member, params, seed)``, short-cut where the simulation can.

        A simulation's :meth:`~Simulation.direct_call` (a plain function's: no copies of the
        parameters) does what :meth:`call` would when there is no shared setup state.
        """
        direct = self.simulation.direct_call() if self.setup is None else None
        if direct is None:
            return self.call
        return lambda member, params, seed: direct(params, seed)

    def _finish(self, member: int, raw: Any) -> dict[str, np.ndarray]:
        """Normalize and check one member's raw result against the schema."""
        if type(raw) is dict and raw.keys() == self.schema.outputs.keys():  # the common case
            return self.schema.check(
                {k: np.asarray(v) for k, v in raw.items()},
                lambda: self.members.describe(member),
            )
        arrays, _, coords = normalize_result(raw, self._dims, self._bare)
        for dim, values in coords.items():
            expected = self.schema.coords.get(dim)
            if expected is not None and not np.array_equal(values, expected):
                msg = (
                    f"{self.members.describe(member)} returned coordinate {dim!r} = "
                    f"{_short(values)}, but the ensemble's is {_short(expected)}: an output "
                    "dimension's coordinate must be the same for every member (return a "
                    "varying value as an output instead)"
                )
                raise OutputMismatchError(msg)
        return self.schema.check(arrays, lambda: self.members.describe(member))

    def _member_function(self) -> Any:
        """The function that runs one member and returns its checked outputs.

        Members computed while planning are reused (or their error re-raised). A result
        whose signature (types, shapes, dtypes) was already checked against the schema
        skips the check: two results with the same signature pass or fail it alike.
        """
        call = self._caller()
        seen: set[tuple[Any, ...]] = set()
        n_outputs = len(self.schema.outputs)

        def run(member: int, params: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
            if member in self.precomputed:
                return self.precomputed[member]
            if member in self.precomputed_errors:  # failed while probing: not run again
                raise self.precomputed_errors[member]
            result = call(member, params, seed)
            key = _signature(result, n_outputs)
            if key is None or key not in seen:
                result = self._finish(member, result)
                if key is not None:
                    seen.add(key)
            return result

        return run

    def run_block(self, block_id: tuple[int, ...], todo: np.ndarray | None = None) -> BlockResult:
        """Run the members of one block.

        Each member is reported to the local pool (which names the culprit if a member
        kills its worker, and stops one that overruns ``member_timeout``) and runs under
        its deadline.

        Parameters
        ----------
        block_id : tuple of int
        todo : boolean numpy.ndarray, optional
            Block-shaped mask of members to run; the others are left ``PENDING``
            (used by resume). Default: all.
        """
        block = _Block(self, block_id, todo)
        run = self._member_function()
        clock = time.perf_counter
        for pos, member, params, seed in block.todo(self.fixed):
            report_member(member)
            start = clock()
            outcome, attempts = self._attempts(run, member, params, seed)
            block.record(pos, member, outcome, attempts, clock() - start)
        end_member()
        return block.result()

    def _attempts(self, run: Any, member: int, params: dict[str, Any], seed: int) -> Any:
        """``(outputs or the exception, calls made)`` for one member, retrying failures."""
        timeout = self.member_timeout
        for attempt in range(1, self.retries + 2):
            try:
                if timeout is None:
                    return run(member, params, seed), attempt
                with deadline(timeout):
                    return run(member, params, seed), attempt
            except Exception as exc:
                if attempt <= self.retries and not isinstance(exc, OutputMismatchError):
                    continue
                if self.on_error == "raise":
                    raise self.member_error(member, exc) from exc
                return exc, attempt
        raise AssertionError("unreachable")  # pragma: no cover

    def member_error(self, member: int, exc: BaseException) -> MemberError:
        desc = self.members.describe(member)
        if isinstance(exc, OutputMismatchError):
            msg = str(exc)
        else:
            msg = f"{desc} raised {type(exc).__name__}: {_message(exc)}"
        return MemberError(msg, params=self.member_params(member), seed=self.members.seed(member))


class _Block:
    """The arrays one block's members fill in, one row per member of the block."""

    def __init__(self, runner: BlockRunner, block_id: tuple[int, ...], todo: Any) -> None:
        members = runner.members
        self.runner, self.block_id = runner, tuple(block_id)
        index = members.block_members(block_id)
        self.shape = index.shape
        self.flat = index.reshape(-1)
        n = self.flat.size
        # uninitialized: rows of members that do not end ok are filled once, at the end
        self.outputs = {
            name: np.empty(self.shape + out.shape, dtype=out.dtype)
            for name, out in runner.schema.outputs.items()
        }
        self.rows = {
            k: v.reshape((n, *v.shape[len(self.shape) :])) for k, v in self.outputs.items()
        }
        self.status = np.full(n, PENDING, dtype=np.int8)
        self.wall = np.full(n, np.nan, dtype=np.float32)
        self.attempts = np.zeros(n, dtype=np.uint8)
        self.errors: list[tuple[int, str, str]] = []
        self.mask = None if todo is None else np.asarray(todo, bool).reshape(-1)

    def todo(self, fixed: Mapping[str, Any]) -> Any:
        """``(position, member, parameters, seed)`` of every member to run, in order."""
        members = self.runner.members
        points = self.flat // members.n_seeds
        seeds = members.seeds.reshape(-1)[self.flat].tolist()
        names = list(members.table)
        columns = [np.asarray(members.table[k])[points].tolist() for k in names]
        for pos, member in enumerate(self.flat.tolist()):
            if self.mask is not None and not self.mask[pos]:
                continue
            params = dict(zip(names, [c[pos] for c in columns], strict=True))
            if fixed:
                params.update(fixed)
            yield pos, member, params, seeds[pos]

    def record(self, pos: int, member: int, outcome: Any, attempts: int, seconds: float) -> None:
        """Keep one member's outputs (or its error), attempts and time."""
        self.attempts[pos] = attempts
        self.wall[pos] = seconds
        if isinstance(outcome, BaseException):
            self.status[pos] = FAILED
            self.errors.append((member, type(outcome).__name__, _message(outcome)))
            return
        for name, value in outcome.items():
            self.rows[name][pos] = value
        self.status[pos] = OK

    def result(self) -> BlockResult:
        """The block's result; members not ok hold the fill value."""
        not_ok = self.status != OK
        if not_ok.any():
            for name, out in self.runner.schema.outputs.items():
                self.rows[name][not_ok] = fill_value(out.dtype)
        return BlockResult(
            self.block_id,
            self.outputs,
            self.status.reshape(self.shape),
            self.wall.reshape(self.shape),
            self.attempts.reshape(self.shape),
            self.errors,
        )


# result types a signature can stand for (a Python int only when it fits in int64)
_SCALARS = (float, int, bool, np.float64, np.float32, np.int64, np.int32, np.bool_)


def _signature(result: Any, n_outputs: int) -> tuple[Any, ...] | None:
    """What a result looks like (names, types, shapes, dtypes), or None if not simple.

    Two results with the same signature pass or fail the schema check alike, so a
    signature checked once needs no second check.
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


def _short(values: Any) -> str:
    text = np.array2string(np.asarray(values), threshold=6, separator=", ")
    return text if len(text) <= 80 else text[:77] + "..."


def _message(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    if len(text) > 2000:
        text = text[:1000] + " ... " + text[-900:]
    return text


# -- task functions: what workers are sent -----------------------------------------------


def run_block(runner: BlockRunner, block_id: tuple[int, ...]) -> BlockResult:
    """Run every member of one block (a task of the lazy graph)."""
    return runner.run_block(block_id)


def get_output(result: BlockResult, name: str) -> np.ndarray:
    """One output's block of values from a block result."""
    return result.outputs[name]


def get_status(result: BlockResult) -> np.ndarray:
    """The member status of a block result."""
    return result.status


def run_item(runner: BlockRunner, item: tuple[tuple[int, ...], Any]) -> BlockResult:
    """Run the members ``todo`` of one block; ``item`` is ``(block_id, todo)``."""
    block_id, todo = item
    return runner.run_block(block_id, todo)


def run_item_and_store(
    shared: tuple[BlockRunner, EnsembleStore], item: tuple[tuple[int, ...], Any]
) -> BlockResult:
    """Run one block's members and write them into the store, from the worker itself.

    Returns the result without its outputs: the data is in the store, only status,
    errors and timings travel back to the client.
    """
    runner, store = shared
    block_id, todo = item
    result = runner.run_block(block_id, todo)
    store.write_block(result, runner.members.block_slices(block_id))
    return result.without_outputs()
