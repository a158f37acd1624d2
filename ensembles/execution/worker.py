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
from ..layout import BlockResult
from ..members.blocks import Members
from ..simulations.contract import Simulation
from ..simulations.schema import Schema, normalize_result
from .block_loop import BlockArrays, error_message, result_signature, run_plain
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
            key = result_signature(result, n_outputs)
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
        block = BlockArrays(self.members, self.schema.outputs, block_id, todo)
        plain = self._plain_call()
        try:
            if plain is not None:
                self._reuse_probed(block)
                run_plain(
                    block,
                    plain,
                    fixed=self.fixed,
                    finish=self._finish,
                    bare=self._bare,
                    on_failure=self._on_failure,
                    timeout=self.member_timeout,
                )
            else:
                self._run_each(block)
        finally:
            end_member()
        return block.result()

    def _plain_call(self) -> Any:
        """The simulation's direct call when blocks can take the plain loop, else None.

        The plain loop (:func:`~ensembles.execution.block_loop.run_plain`) runs each member
        once through the simulation's :meth:`~Simulation.direct_call`: not with retries,
        shared setup state or a member identity.
        """
        if self.retries or self.setup is not None or self.simulation.takes_member:
            return None
        return self.simulation.direct_call()

    def _reuse_probed(self, block: BlockArrays) -> None:
        """Record the block's members the planner already ran, and take them off its todo.

        A member that failed while probing is raised (``on_error="raise"``) or recorded
        as failed, without a rerun.
        """
        probed = [*self.precomputed, *self.precomputed_errors]
        if not probed:
            return
        for pos in block.take(probed):
            member = int(block.flat[pos])
            outcome = self.precomputed.get(member)
            if outcome is None:
                outcome = self.precomputed_errors[member]
                if self.on_error == "raise":
                    raise self.member_error(member, outcome) from outcome
            block.record(pos, member, outcome, 1, 0.0)

    def _on_failure(self, member: int, exc: Exception) -> BaseException | None:
        """What a failed member raises (``on_error="raise"``), or None to record it."""
        return self.member_error(member, exc) if self.on_error == "raise" else None

    def _run_each(self, block: BlockArrays) -> None:
        """The general per-member loop: retries, setup state, probed members."""
        run = self._member_function()
        clock = time.perf_counter
        positions, flat, params, seeds = block.todo(self.fixed)
        for pos, member, p, seed in zip(positions, flat, params, seeds, strict=True):
            report_member(member)
            start = clock()
            outcome, attempts = self._attempts(run, member, p, seed)
            block.record(pos, member, outcome, attempts, clock() - start)

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
            msg = f"{desc} raised {type(exc).__name__}: {error_message(exc)}"
        return MemberError(msg, params=self.member_params(member), seed=self.members.seed(member))


def _short(values: Any) -> str:
    text = np.array2string(np.asarray(values), threshold=6, separator=", ")
    return text if len(text) <= 80 else text[:77] + "..."


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
