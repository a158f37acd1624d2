"""Running block tasks on the local pool: bounded submission, exact culprits, requeues.

Each pool worker runs one task at a time and names the member it is running, so a
member that kills its worker or overruns its timeout is known exactly: it is reported
alone (as a failure to record), the rest of its block is submitted again, and no other
task is affected.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from typing import Any

from ..errors import RunnerError
from .pool import LocalPool, MemberTimeout, WorkerDied
from .submit import TaskOutcome

__all__ = ["MemberSplit", "run_pool_tasks"]

#: ``split(item, member) -> (the member's own item, the rest of the item or None)``.
MemberSplit = Callable[[Any, int], tuple[Any, Any]]

_UNATTRIBUTED_RETRIES = 1  # a worker that died outside any member: run its task once more


def run_pool_tasks(
    pool: LocalPool,
    func: Callable[[Any, Any], Any],
    shared: Any,
    items: Iterable[Any],
    *,
    split: MemberSplit,
    member_timeout: float | None = None,
    max_in_flight: int | None = None,
    on_flight: Callable[[int], None] | None = None,
) -> Iterator[TaskOutcome]:
    """Run ``func(shared, item)`` for every item on ``pool``; yield outcomes as they finish.

    ``shared`` is sent to each worker once. At most ``max_in_flight`` tasks (default: two
    per worker) are submitted at a time, so a worker that finishes finds its next task
    waiting while the rest stay unsubmitted.

    A task whose worker died in a member, or whose member overran ``member_timeout``,
    yields an outcome for that member alone (``split(item, member)[0]``) carrying the
    :class:`WorkerDied` or :class:`MemberTimeout` error, and the rest of its item is
    submitted again. A worker that died outside any member gets its task run once more;
    if that dies too, the outcome carries the error.

    Parameters
    ----------
    pool : LocalPool
    func : callable
        ``func(shared, item)``.
    shared : object
        Sent to every worker once.
    items : iterable
        One task per item, consumed as slots free up.
    split : callable
        Cuts an item into the culprit member's item and the rest.
    member_timeout : float, optional
        Seconds a member may run before its worker is killed.
    max_in_flight : int, optional
        Tasks submitted at a time.
    on_flight : callable, optional
        Called with the number of tasks in flight whenever it changes.

    Yields
    ------
    TaskOutcome
    """
    source = iter(items)
    limit = max_in_flight or 2 * pool.n_workers
    ref = pool.share(shared)
    done: queue.Queue[Future] = queue.Queue()
    pending: dict[Future, tuple[Any, int]] = {}  # future -> (item, attempt)
    again: deque[tuple[Any, int]] = deque()  # items to run before new ones

    def submit(item: Any, attempt: int) -> None:
        fut = pool.submit(func, ref, item, member_timeout=member_timeout)
        pending[fut] = (item, attempt)
        fut.add_done_callback(done.put)

    def fill() -> None:
        while len(pending) < limit:
            if again:
                submit(*again.popleft())
                continue
            item = next(source, _END)
            if item is _END:
                return
            submit(item, 0)

    try:
        fill()
        while pending:
            if on_flight is not None:
                on_flight(len(pending))
            fut = done.get()
            item, attempt = pending.pop(fut)
            yield from _settle(fut, item, attempt, split, again)
            fill()
    finally:
        for fut in pending:
            fut.cancel()
        if pending:
            pool.cancel_all()
        pool.release(ref)


_END = object()


def _settle(
    fut: Future, item: Any, attempt: int, split: MemberSplit, again: deque[tuple[Any, int]]
) -> Iterator[TaskOutcome]:
    """The outcomes of one finished task, queueing what must run again."""
    try:
        yield TaskOutcome(item, result=fut.result())
        return
    except CancelledError:
        yield TaskOutcome(item, error=RunnerError(f"the task of {item!r} was cancelled"))
        return
    except (WorkerDied, MemberTimeout) as exc:
        error: WorkerDied | MemberTimeout = exc
    except Exception as exc:
        yield TaskOutcome(item, error=exc)
        return
    if error.member is None:  # died outside any member (loading, storing): once more
        if attempt < _UNATTRIBUTED_RETRIES:
            again.appendleft((item, attempt + 1))
        else:
            yield TaskOutcome(item, error=error)
        return
    culprit, rest = split(item, int(error.member))
    if rest is not None:
        again.appendleft((rest, 0))
    yield TaskOutcome(culprit, error=error)
