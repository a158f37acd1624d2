"""Running a runner's blocks: into memory or into a store, with progress and a report.

:func:`run_blocks` is the one loop over finished blocks that both ``Ensemble.compute``
(results gathered in memory) and ``Ensemble.to_zarr`` (each task writes its own block)
use. It turns a member that killed its worker into a recorded failure, and returns a
:class:`RunReport` of what ran and what failed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MemberError, RunnerError
from ..layout import FAILED, PENDING, BlockResult, fill_value
from ..members.blocks import Members
from ..report import format_failures, member_label
from .progress import Progress
from .submit import is_killed_worker, run_tasks, split_into_members
from .worker import BlockRunner, run_item, run_item_and_store

if TYPE_CHECKING:
    from ..store.zarr_store import EnsembleStore

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
        >>> m = Members({"T": np.array([1.5, 2.0])}, ("T",), (2,), 2, 7)
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
    client: Any,
    runner: BlockRunner,
    *,
    todo: np.ndarray | None = None,
    store: EnsembleStore | None = None,
    progress: bool = True,
) -> RunReport:
    """Run the members of ``runner`` (those in ``todo``, default all) on ``client``.

    With a ``store``, each task writes its block itself and only status travels back;
    without one, the results are gathered into the report's arrays.
    """
    members = runner.members
    items = list(_items(members, todo))
    total = len(members) if todo is None else int(np.count_nonzero(todo))
    report = RunReport(total, members=members)
    if store is None:
        report.outputs = {
            name: np.full((*members.shape, *o.shape), fill_value(o.dtype), dtype=o.dtype)
            for name, o in runner.schema.outputs.items()
        }
        report.status = np.zeros(members.shape, dtype=np.int8)
        func, shared, prefix = run_item, runner, "ensemble-block"
    else:
        func, shared, prefix = run_item_and_store, (runner, store), "ensemble-store"
    bar = Progress(total, enabled=progress, client=client)
    if todo is not None and total < len(members):
        bar.message(f"resuming: {total} of {len(members)} members to run")
    for outcome in run_tasks(
        client,
        func,
        shared,
        items,
        key_prefix=f"{prefix}-{runner.token}",
        split=_member_split(members),
    ):
        result = _outcome_result(outcome, runner)
        region = members.block_slices(result.block_id)
        if store is None:
            _gather(report, result, region)
        elif outcome.error is not None:  # a member that killed its worker: record it here
            store.write_block(result, region)
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
    for name, values in result.outputs.items():
        outputs[name][region][ran] = values[ran]
    if status is not None:
        status[region][ran] = result.status[ran]


def _member_split(members: Members) -> Any:
    """How run_tasks splits a block whose task killed its worker: one member per part."""
    return split_into_members(
        lambda bid: tuple(s.stop - s.start for s in members.block_slices(bid))
    )


def _outcome_result(outcome: Any, runner: BlockRunner) -> BlockResult:
    """A task's BlockResult; a member that repeatedly killed its worker becomes a failure.

    Other task errors are raised. A lone member whose task ended in dask's KilledWorker
    is recorded as failed (``on_error="record"``) or raised as a :class:`MemberError`.
    """
    if outcome.error is None:
        return outcome.result
    block_id, todo = outcome.item
    alone = todo is not None and np.count_nonzero(todo) == 1
    if not is_killed_worker(outcome.error) or not alone:
        raise _task_error(outcome.error)
    index = runner.members.block_members(block_id)
    mask = np.asarray(todo, bool)
    member = int(index[mask][0])
    message = (
        f"the member repeatedly killed the dask worker running it ({outcome.error}); it may "
        "exhaust memory or crash the interpreter"
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
        [(member, "KilledWorker", message)],
    )


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
