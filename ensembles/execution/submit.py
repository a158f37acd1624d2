"""Running blocks on a dask.distributed cluster: the caller's client or a scheduler address.

ensembles never schedules work itself: blocks are submitted to dask.distributed, a
bounded number at a time (so a million members never make a million live tasks), and
results are consumed as they complete. (With no client, the local default is the process
pool of :mod:`ensembles.execution.pool`; this module is the cluster backend.)

Connecting to a dask cluster means trusting it: its scheduler and workers run the code
the client sends, and distributed's protocol can carry pickled objects back. Safe mode
(``resolve_client(..., safe=True)``) narrows what the client accepts (results travel as
plain msgpack data that ensembles decodes itself); it is defense in depth, not a sandbox.
See ``docs/clusters.md``.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import RunnerError
from .clients import (  # re-exported: the runner's public face
    SAFE_DESERIALIZERS,
    close_default_clients,
    default_client,
    refuses_pickle,
    resolve_client,
    worker_count,
)
from .progress import Progress, dashboard_link
from .wire import safe_task, unwrap_safe

__all__ = [
    "SAFE_DESERIALIZERS",
    "Progress",
    "TaskOutcome",
    "close_default_clients",
    "dashboard_link",
    "default_client",
    "is_killed_worker",
    "resolve_client",
    "run_tasks",
    "split_into_members",
    "worker_count",
]


@dataclass
class TaskOutcome:
    """One finished task: its argument, its result or its exception."""

    item: Any
    result: Any = None
    error: BaseException | None = None
    lost: bool = False


def is_killed_worker(exc: BaseException | None) -> bool:
    """True for dask's ``KilledWorker``: the task's workers kept dying while running it."""
    if exc is None:
        return False
    try:
        from distributed import KilledWorker
    except ImportError:  # pragma: no cover
        return type(exc).__name__ == "KilledWorker"
    return isinstance(exc, KilledWorker) or type(exc).__name__ == "KilledWorker"


def split_into_members(
    block_shape: Callable[[Any], tuple[int, ...]],
) -> Callable[[Any], list[Any] | None]:
    """A ``split`` hook for :func:`run_tasks` over ``(block_id, mask_or_None)`` items.

    The returned function splits a block item into one item per member it runs, each with
    a block-shaped boolean mask holding a single True, and returns None for an item that
    runs one member (or none), which cannot be split further.

    Parameters
    ----------
    block_shape : callable
        ``block_shape(block_id)`` is the shape of that block (edge blocks may be smaller).

    Examples
    --------
    >>> split = split_into_members(lambda block_id: (2, 2))
    >>> [mask.nonzero() for _, mask in split(((0, 0), None))][1]
    (array([0]), array([1]))
    >>> split(((0, 0), np.array([[False, True], [False, False]]))) is None
    True
    """

    def split(item: Any) -> list[Any] | None:
        block_id, todo = item
        shape = tuple(block_shape(block_id))
        mask = np.ones(shape, bool) if todo is None else np.asarray(todo, bool).reshape(shape)
        chosen = np.flatnonzero(mask)
        if chosen.size <= 1:
            return None
        parts = []
        for pos in chosen:
            one = np.zeros(mask.size, bool)
            one[pos] = True
            parts.append((block_id, one.reshape(shape)))
        return parts

    return split


def _load_shared(blob: bytes) -> Any:
    """Unpickle the run's shared object on a worker (a task, so dask can recompute it)."""
    import pickle

    return pickle.loads(blob)


def _missing_module(exc: BaseException) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return exc.name
    found = re.search(r"No module named '([^']+)'", str(exc))
    return found.group(1) if found else None


def _cannot_load(exc: BaseException) -> RunnerError:
    module = _missing_module(exc)
    what = f"module {module!r}" if module else "the simulation's module"
    top = (module or "mymodule").split(".")[0]
    msg = (
        f"the dask workers cannot load the simulation: {type(exc).__name__}: {exc}. Workers "
        f"import functions by module name, so {what} must be importable there. Fix it by "
        "installing the module on the workers (or putting its directory on their "
        f"PYTHONPATH), by uploading it with client.upload_file('{top}.py'), or by sending it "
        f"by value: `import cloudpickle, {top}; cloudpickle.register_pickle_by_value({top})` "
        "before the run"
    )
    return RunnerError(msg)


def _serialize_shared(shared: Any) -> bytes:
    import cloudpickle

    try:
        return cloudpickle.dumps(shared, protocol=5)
    except Exception as exc:
        msg = (
            f"cannot send the simulation to the dask workers: {type(exc).__name__}: {exc}. "
            "Make the simulation a module-level function or another picklable object, and "
            "keep unpicklable resources (open files, locks, connections) out of it: create "
            "them inside the simulation or with setup="
        )
        raise RunnerError(msg) from exc


def _translate(exc: BaseException) -> BaseException:
    """Turn environment errors of a task into RunnerErrors that say how to fix them."""
    if isinstance(exc, ImportError) or (
        type(exc).__name__ == "Exception" and _missing_module(exc) is not None
    ):
        return _cannot_load(exc)
    if isinstance(exc, RuntimeError) and "deserialization of the task graph" in str(exc):
        msg = (
            f"the dask scheduler cannot load ensembles' tasks ({exc}); install ensembles "
            "and the same versions of its dependencies where the scheduler and workers run"
        )
        return RunnerError(msg)
    return exc


def run_tasks(
    client: Any,
    func: Callable[[Any, Any], Any],
    shared: Any,
    items: Iterable[Any],
    *,
    key_prefix: str,
    max_in_flight: int | None = None,
    split: Callable[[Any], list[Any] | None] | None = None,
    killed_retries: int = 2,
    safe: bool | None = None,
    on_flight: Callable[[int], None] | None = None,
) -> Iterator[TaskOutcome]:
    """Run ``func(shared, item)`` for every item on ``client``; yield outcomes as they finish.

    ``shared`` is pickled once, here, and loaded on the workers by one task that the
    scheduler can recompute if every worker holding it dies. At most ``max_in_flight``
    tasks are live at a time (default: 4 per worker thread, at least 8, re-read as workers
    come and go), so the scheduler's load stays bounded however many items there are.

    Tasks must be idempotent (a task of a lost worker runs again); each item is yielded
    exactly once, with its result or its error. Task keys are ``{key_prefix}-{run}-{n}``.

    Parameters
    ----------
    client : distributed.Client
    func : callable
        ``func(shared, item)``, importable by the workers (and the scheduler).
    shared : object
        Sent to the workers once per run.
    items : iterable
        One task per item; consumed lazily, as slots free up.
    key_prefix : str
        Prefix of the task keys (shown on the dashboard).
    max_in_flight : int, optional
        Live tasks at most.
    split : callable, optional
        ``split(item) -> list of smaller items or None``. When a task ends in
        ``KilledWorker`` (its workers kept dying, see the dask config
        ``distributed.scheduler.allowed-failures``), its item is replaced by
        ``split(item)``, whose parts run one after another (never two parts of one item at
        once, since they usually write the same storage chunk); parts that fail again
        are split again. When ``split`` returns None or an empty list, the outcome is
        yielded with the ``KilledWorker`` error (see :func:`is_killed_worker`). The next
        part of an item is submitted only after the previous part's outcome was consumed.
    killed_retries : int
        Times an item that cannot be split further is resubmitted after ``KilledWorker``
        before its outcome carries that error. The retry runs alone on the cluster (the
        tasks in flight finish first, nothing else is submitted meanwhile), so a task that
        merely shared a dying worker with the culprit (a bystander) succeeds, and only
        the culprit fails; it kills ``allowed-failures + 1`` more workers per retry.
    safe : bool, optional
        Send results and errors back as plain msgpack data that is decoded here without
        pickle (``BlockResult`` of plain-dtype arrays, str, int, ...). Default: on when the
        client refuses pickle (``deserializers=SAFE_DESERIALIZERS``).

    Yields
    ------
    TaskOutcome
        ``item`` (the one submitted: a part, after a split), ``result`` or ``error``.

    Raises
    ------
    RunnerError
        ``shared`` cannot be pickled, or the workers cannot load it (a module missing on
        the workers; the message says how to ship it).

    Examples
    --------
    >>> for out in run_tasks(client, work, runner, items, key_prefix="demo"):  # doctest: +SKIP
    ...     print(out.item, out.error or out.result)
    """
    if max_in_flight is not None and max_in_flight < 1:
        msg = f"max_in_flight must be at least 1, got {max_in_flight!r}"
        raise RunnerError(msg)
    source = iter(items)
    try:
        first = next(source)
    except StopIteration:  # nothing to run: do not even wait for a worker
        return
    run = _DaskRun(
        client,
        func,
        shared,
        key_prefix=key_prefix,
        max_in_flight=max_in_flight,
        killed_retries=killed_retries,
        safe=refuses_pickle(client) if safe is None else safe,
    )
    try:
        yield from run.outcomes(itertools.chain([first], source), split, on_flight)
    finally:
        run.cancel()


class _DaskRun:
    """The state of one :func:`run_tasks` call: the shared state's future, the tasks in
    flight, the parts of split items waiting their turn, and the suspects to rerun alone.
    """

    def __init__(
        self,
        client: Any,
        func: Callable[[Any, Any], Any],
        shared: Any,
        *,
        key_prefix: str,
        max_in_flight: int | None,
        killed_retries: int,
        safe: bool,
    ) -> None:
        from distributed import as_completed

        self.client, self.func, self.safe = client, func, safe
        self.fixed_limit = max_in_flight
        self.killed_retries = killed_retries
        self.blob = _serialize_shared(shared)
        self.prefix = f"{key_prefix}-{secrets.token_hex(4)}"
        self.counter = itertools.count()
        self.shared = self._load_shared()
        self.limit = max_in_flight or _default_limit(client)
        self.checked = time.monotonic()
        self.pending: dict[Any, tuple[Any, int | None, int]] = {}  # key -> (item, family, attempt)
        self.parts: dict[int, deque[tuple[Any, int]]] = {}  # split items' parts, one at a time
        self.runnable: deque[int] = deque()  # families with no part in flight, parts waiting
        self.suspects: deque[tuple[Any, int | None, int]] = deque()  # run alone
        self.families = itertools.count()
        self.completed = as_completed(loop=client.loop)

    def _load_shared(self) -> Any:
        """Ship the shared state to one worker, wait until it loaded, copy it to all."""
        future = _submit_shared(self.client, self.blob, f"{self.prefix}-shared")
        error = future.exception()  # waits until a worker has loaded it
        if error is not None:
            with contextlib.suppress(Exception):
                self.client.cancel([future])
            raise _translate(error) from None
        # every worker holds a copy: otherwise dask's data locality keeps tasks on the one
        # worker that loaded it while the others idle
        with contextlib.suppress(Exception):
            self.client.replicate([future])
        return future

    def _current_shared(self) -> Any:
        """The shared state's future, shipped again if every copy was lost."""
        if self.shared.status in ("error", "cancelled", "lost"):
            self.shared = _submit_shared(
                self.client, self.blob, f"{self.prefix}-shared-{next(self.counter)}"
            )
        return self.shared

    def submit(self, item: Any, family: int | None, attempt: int) -> None:
        key = f"{self.prefix}-{next(self.counter)}"
        task = (safe_task, self.func) if self.safe else (self.func,)
        fut = self.client.submit(*task, self._current_shared(), item, key=key, pure=False)
        self.pending[fut.key] = (item, family, attempt)
        self.completed.add(fut)

    def fill(self, source: Iterator[Any]) -> None:
        """Submit parts waiting their turn, then new items, up to the limit."""
        if self.fixed_limit is None and time.monotonic() - self.checked > 5.0:
            self.limit = _default_limit(self.client)  # workers come and go
            self.checked = time.monotonic()
        if self.suspects:  # drain, then run each suspect alone so no bystander shares its fate
            if not self.pending:
                self.submit(*self.suspects.popleft())
            return
        while len(self.pending) < self.limit:
            if self.runnable:
                family = self.runnable.popleft()
                part, attempt = self.parts[family].popleft()
                self.submit(part, family, attempt)
                continue
            item = next(source, _END)
            if item is _END:
                return
            self.submit(item, None, 0)

    def requeue(self, family: int | None, parts: list[tuple[Any, int]]) -> None:
        """Queue the parts of a split item (after those of its family already waiting)."""
        if family is None:
            family = next(self.families)
            self.parts[family] = deque()
        self.parts[family].extendleft(reversed(parts))
        self.runnable.append(family)

    def outcomes(
        self,
        source: Iterator[Any],
        split: Callable[[Any], list[Any] | None] | None,
        on_flight: Callable[[int], None] | None,
    ) -> Iterator[TaskOutcome]:
        self.fill(source)
        for fut in self._finished():
            item, family, attempt = self.pending.pop(fut.key)
            outcome = _outcome(fut, item, self.safe)
            fut.release()
            if not self._settled(outcome, item, family, attempt, split):
                self.fill(source)
                continue
            if family is not None:  # its next part is submitted after the yield
                if self.parts[family]:
                    self.runnable.append(family)
                else:
                    del self.parts[family]
            yield outcome
            self.fill(source)
            if on_flight is not None:
                on_flight(len(self.pending))

    def _finished(self) -> Iterator[Any]:
        """The futures as they finish; raises when the client lost its scheduler for good.

        ``as_completed`` alone waits forever for futures of a client that closed itself
        after failing to reconnect, so the wait polls, backing off to 50 ms.
        """
        while not self.completed.is_empty():
            delay = 0.0005
            while not self.completed.has_ready():
                if self.client.status in ("closing", "closed"):
                    msg = "the dask client closed: it lost its scheduler and did not reconnect"
                    raise ConnectionError(msg)
                time.sleep(delay)
                delay = min(2 * delay, 0.05)
            yield next(self.completed)

    def _settled(
        self,
        outcome: TaskOutcome,
        item: Any,
        family: int | None,
        attempt: int,
        split: Callable[[Any], list[Any] | None] | None,
    ) -> bool:
        """False when the item runs again (lost, split, or a suspect to retry alone)."""
        if outcome.lost and attempt < _LOST_RETRIES:  # cancelled or lost by dask
            self.submit(item, family, attempt + 1)
            return False
        if not is_killed_worker(outcome.error):
            return True
        parts = split(item) if split is not None else None
        if parts:
            self.requeue(family, [(part, 0) for part in parts])
            return False
        if attempt < self.killed_retries:  # a second opinion: it may have been a bystander
            self.suspects.append((item, family, attempt + 1))
            return False
        return True

    def cancel(self) -> None:
        """Cancel the tasks still in flight and the shared state."""
        for key in list(self.pending):
            with contextlib.suppress(Exception):
                self.client.cancel([key], force=True)
        with contextlib.suppress(Exception):
            self.client.cancel([self.shared])


_END = object()


def _submit_shared(client: Any, blob: bytes, key: str) -> Any:
    return client.submit(_load_shared, blob, key=key, pure=False)


def _default_limit(client: Any) -> int:
    return max(8, 4 * worker_count(client))


_LOST_RETRIES = 3  # times a task cancelled or lost by the scheduler is submitted again


def _outcome(fut: Any, item: Any, safe: bool) -> TaskOutcome:
    if fut.status in ("cancelled", "lost"):  # neither a result nor an error: run it again
        reason = RunnerError(
            f"the dask scheduler cancelled the task of {item!r} {_LOST_RETRIES + 1} times "
            "(its worker or its input was lost); check the cluster's health and resume"
        )
        return TaskOutcome(item, error=reason, lost=True)
    if fut.status == "finished":
        try:
            result = fut.result()
        except Exception as lost:  # lost and failed while gathering
            return TaskOutcome(item, error=_translate(lost))
        if safe:
            value, error = unwrap_safe(result)
            return TaskOutcome(item, result=value, error=error)
        return TaskOutcome(item, result=result)
    failure: BaseException | None
    try:
        failure = fut.exception()
    except Exception as cancelled:  # cancelled futures
        failure = cancelled
    if failure is None:
        failure = RunnerError(f"the task of {item!r} ended with status {fut.status!r}")
    return TaskOutcome(item, error=_translate(failure))
