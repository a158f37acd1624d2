"""Running a runner's blocks: into memory or into a store, with progress and a report.

:func:`run_blocks` is the one loop over finished blocks that both ``Ensemble.compute``
(results gathered in memory) and ``Ensemble.to_zarr`` (each task writes its own block)
use. It turns a member that killed its worker into a recorded failure, and returns a
:class:`RunReport` of what ran and what failed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MemberError, RunnerError
from ..layout import FAILED, PENDING, BlockResult, fill_value
from ..members.blocks import Members
from ..report import format_failures, member_label
from .deadline import hard_limit
from .pool_task import MemberTimeout, WorkerDied
from .progress import Progress
from .submit import is_killed_worker
from .worker import BlockRunner, run_item, run_item_and_store

if TYPE_CHECKING:
    from ..store.zarr_store import EnsembleStore
    from .backends import Backend

__all__ = ["RunReport", "run_blocks"]


@dataclass
class RunReport:
    """What a run did.

    Attributes
    ----------
    total : int
        Members the run was asked to run.
    errors : list of (member, error type, message)
        One entry per failed member.
    outputs, status : numpy arrays, optional
        The results, when they were gathered in memory (``store=None``).
    members : Members, optional
        The run's members: failures are then named by their parameters.
    """

    total: int
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    outputs: dict[str, np.ndarray] | None = None
    status: np.ndarray | None = None
    members: Members | None = None

    def failure_text(self, where: str | None = None) -> str:
        """How many members failed and why: grouped by error, named by parameters.

        Examples
        --------
        >>> from ensembles import Grid
        >>> m = Members(Grid(T=[1.5, 2.0]), 2, 7)
        >>> report = RunReport(4, [(3, "ValueError", "bad T"), (2, "ValueError", "bad T")],
        ...                    members=m)
        >>> print(report.failure_text())
        2 of 4 members failed, by error:
          ValueError: bad T (2 members)
            T=2.0, seed=0
            T=2.0, seed=1
        """
        if not self.errors:
            return ""
        members = self.members

        def label(member: int) -> str:
            if members is None:
                return f"member {member}"
            return member_label(members.params(member), member % members.n_seeds)

        failed = sorted(self.errors, key=lambda e: e[0])
        text = format_failures((label(m), etype, message) for m, etype, message in failed)
        store = f" (recorded in {where})" if where else ""
        lines = [f"{len(self.errors)} of {self.total} members failed{store}, by error:", text]
        if where:
            lines.append(
                f"every failed member: `ensembles info {where} --failed` or ds.ens.failures()"
            )
        return "\n".join(lines)

    def print_failures(self, enabled: bool = True, where: str | None = None) -> None:
        """Tell on stderr how many members failed and why (see :meth:`failure_text`)."""
        if not self.errors or not enabled:
            return
        print(self.failure_text(where), file=sys.stderr, flush=True)


def run_blocks(
    backend: Backend,
    runner: BlockRunner,
    *,
    todo: np.ndarray | None = None,
    store: EnsembleStore | None = None,
    progress: bool = True,
    timeout: float | None = None,
    label: str = "members",
    note: str | None = None,
    written: Callable[[BlockResult, tuple[slice, ...]], None] = lambda result, region: None,
) -> RunReport:
    """Run the members of ``runner`` (those in ``todo``, default all) on ``backend``.

    With a ``store``, results go into it as blocks finish (written by the driver for the
    local pool, then handed to ``written(result, region)``; by each task on dask); without
    one, they are gathered into the report's arrays. A member that kills its worker, or
    runs longer than ``timeout`` seconds, is recorded as failed and the rest of its block
    runs again. The progress line starts with ``label``; ``note`` is a line shown above it
    when the run starts (default: how many members a resumed run still has to run).
    """
    members = runner.members
    total = len(members) if todo is None else int(np.count_nonzero(todo))
    report = RunReport(total, members=members)
    if store is None:
        report.outputs = {
            name: np.full((*members.shape, *o.shape), fill_value(o.dtype), dtype=o.dtype)
            for name, o in runner.schema.outputs.items()
        }
        report.status = np.zeros(members.shape, dtype=np.int8)
    tasks_write = store is not None and not backend.driver_writes
    func, shared = (run_item_and_store, (runner, store)) if tasks_write else (run_item, runner)
    bar = Progress(total, label=label, enabled=progress, client=backend.dashboard)
    if note is not None:
        bar.message(note)
    elif todo is not None and total < len(members):
        bar.message(f"resuming: {total} of {len(members)} members to run")
    outcomes = backend.run(
        func,
        shared,
        _items(members, todo),
        key_prefix=f"ensemble-{runner.token}",
        split=_BlockSplitter(members),
        member_timeout=hard_limit(timeout),
        on_flight=bar.running,
    )
    with bar.ticking():
        for outcome in outcomes:
            result = _outcome_result(outcome, runner, timeout)
            region = members.block_slices(result.block_id)
            if store is None:
                _gather(report, result, region)
            elif not tasks_write or outcome.error is not None:
                store.write_block(result, region)
                written(result, region)
            report.errors.extend(result.errors)
            bar.update(result.n_run, result.n_failed)
    bar.close()
    return report


def _items(members: Members, todo: np.ndarray | None) -> Iterator[tuple[Any, Any]]:
    """``(block_id, mask or None)`` for every block with members to run."""
    for bid in members.block_ids():
        if todo is None:
            yield bid, None
            continue
        mask = todo[members.block_slices(bid)]
        if mask.all():
            yield bid, None
        elif mask.any():
            yield bid, mask


def _gather(report: RunReport, result: BlockResult, region: tuple[slice, ...]) -> None:
    """Copy the members a task ran into the report's arrays."""
    outputs, status = report.outputs or {}, report.status
    ran = result.status != PENDING  # a split part holds only some of its block's members
    if ran.all():  # the whole block: copied as it is
        for name, values in result.outputs.items():
            outputs[name][region] = values
        if status is not None:
            status[region] = result.status
        return
    for name, values in result.outputs.items():
        outputs[name][region][ran] = values[ran]
    if status is not None:
        status[region][ran] = result.status[ran]


class _BlockSplitter:
    """Cuts an item ``(block_id, mask or None)`` by member (see :class:`Splitter`)."""

    def __init__(self, members: Members) -> None:
        self.members = members

    def _mask(self, item: Any) -> tuple[Any, np.ndarray, np.ndarray]:
        block_id, todo = item
        index = self.members.block_members(block_id)
        mask = np.ones(index.shape, bool) if todo is None else np.asarray(todo, bool).copy()
        return block_id, index, mask

    def apart(self, item: Any, member: int) -> tuple[Any, Any]:
        block_id, index, mask = self._mask(item)
        one = index == member
        mask &= ~one
        return (block_id, one), ((block_id, mask) if mask.any() else None)

    def each(self, item: Any) -> list[Any] | None:
        block_id, index, mask = self._mask(item)
        if np.count_nonzero(mask) <= 1:
            return None
        return [(block_id, index == m) for m in index[mask].tolist()]


def _outcome_result(outcome: Any, runner: BlockRunner, timeout: float | None) -> BlockResult:
    """A task's BlockResult; a member that killed its worker or overran becomes a failure.

    The local pool names such a member exactly (:class:`WorkerDied`,
    :class:`MemberTimeout`); on dask, a lone member whose task ended in ``KilledWorker``
    is the culprit. It is recorded as failed (``on_error="record"``) or raised as a
    :class:`MemberError`. Other task errors are raised.
    """
    if outcome.error is None:
        return outcome.result
    message = _culprit_message(outcome, timeout)
    if message is None:
        raise _task_error(outcome.error)
    block_id, todo = outcome.item
    index = runner.members.block_members(block_id)
    mask = np.asarray(todo, bool)
    member = int(index[mask][0])
    kind = {MemberTimeout: "MemberTimeoutError", WorkerDied: "WorkerDied"}.get(
        type(outcome.error), "KilledWorker"
    )
    if runner.on_error == "raise":
        raise runner.member_error(member, RunnerError(message))
    shape = index.shape
    outputs = {
        n: np.full(shape + o.shape, fill_value(o.dtype), dtype=o.dtype)
        for n, o in runner.schema.outputs.items()
    }
    return BlockResult(
        tuple(block_id),
        outputs,
        np.where(mask, FAILED, PENDING).astype(np.int8),
        np.full(shape, np.nan, np.float32),
        mask.astype(np.uint8),
        [(member, kind, message)],
    )


def _culprit_message(outcome: Any, timeout: float | None) -> str | None:
    """Why a lone member failed with its worker, or None when the error is not that."""
    error = outcome.error
    _, todo = outcome.item
    alone = todo is not None and np.count_nonzero(todo) == 1
    if not alone:
        return None
    if isinstance(error, MemberTimeout):
        return (
            f"timed out after {timeout:g} s; it did not stop when interrupted, so its worker "
            "process was killed"
        )
    if isinstance(error, WorkerDied):
        how = (
            f"killed by signal {error.signal}"
            if error.signal is not None
            else f"exited with code {error.exitcode}"
        )
        return (
            f"the member killed the worker process running it ({how}); it may exhaust "
            "memory, crash the interpreter or call os._exit"
        )
    if is_killed_worker(error):
        return (
            f"the member repeatedly killed the dask worker running it ({error}); it may "
            "exhaust memory or crash the interpreter"
        )
    return None


def _task_error(exc: BaseException) -> BaseException:
    if isinstance(exc, MemberError):
        return exc
    if is_killed_worker(exc):
        msg = (
            f"a task repeatedly killed its worker ({exc}); a member may be exhausting memory "
            "or crashing the interpreter. Rerun with on_error='record' to isolate it"
        )
        return RunnerError(msg)
    return exc
