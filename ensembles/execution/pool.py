"""A lean local process pool, the embedded default for running members on one machine.

Workers are fresh interpreters (the driver's main module is never re-run) that talk to the
driver over pipes, one task at a time. A status slot per worker names the member it runs,
so a worker that dies or overruns ``member_timeout`` fails its own task and nothing else.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import secrets
import selectors
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from ..errors import RunnerError
from .pool_fork import start_method
from .pool_process import StatusSlots, WorkerProcess, pipe, pool_size, thread_limits
from .pool_task import (
    MemberTimeout,
    PoolTask,
    RemoteTraceback,
    WorkerDied,
    check_timeout,
    decode_outcome,
    pickle_for_workers,
    settle,
    start_failure,
)
from .pool_worker import SharedRef

__all__ = [
    "LocalPool",
    "MemberTimeout",
    "PoolTask",
    "RemoteTraceback",
    "SharedRef",
    "WorkerDied",
    "close_default_pool",
    "default_pool",
]

_STOP_GRACE = 10.0  # seconds a worker told to stop may take before it is killed
_START_FAILURES = 3  # workers dying before they are ready, in a row, before giving up
_POLL = 0.5  # seconds between exit checks where pidfd_open is missing
_RECHECK = 0.1  # seconds between looks at a timed task that has no member started yet


class LocalPool:
    """A pool of worker processes on this machine, with a ``concurrent.futures`` face.

    Workers start on the first :meth:`submit` (or :meth:`start`) and stay until
    :meth:`shutdown`; each runs one task at a time, so a task that kills its worker (or
    overruns ``member_timeout``) fails alone with :class:`WorkerDied`
    (:class:`MemberTimeout`) and the worker is replaced. Functions and arguments travel
    with cloudpickle: functions of a script's ``__main__`` (even without a main guard)
    and of modules beside it work.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; default: one per core this process may use.

    Examples
    --------
    >>> import operator
    >>> with LocalPool(2) as pool:
    ...     futures = [pool.submit(operator.mul, i, 10) for i in range(4)]
    ...     [f.result() for f in futures]
    [0, 10, 20, 30]
    """

    def __init__(self, n_workers: int | None = None) -> None:
        self._n = pool_size(n_workers)
        self._pid = os.getpid()
        self._token = secrets.token_hex(4)
        self._ids = itertools.count()
        self._lock = threading.RLock()
        self._queue: deque[PoolTask] = deque()
        self._active: dict[int, PoolTask] = {}  # taken from the queue, not finished
        self._shared: dict[str, bytes] = {}
        self._control: deque[tuple[str, Any]] = deque()  # requests for the I/O thread
        self._workers: dict[int, WorkerProcess] = {}  # by slot
        self._closing = False
        self._spawn_blocked = False
        self._start_failures = 0
        self._thread: threading.Thread | None = None
        _POOLS.add(self)

    # -- public API ---------------------------------------------------------------------

    @property
    def n_workers(self) -> int:
        """The number of worker processes the pool keeps."""
        return self._n

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """Process ids of the current workers (for diagnostics)."""
        with self._lock:
            return tuple(w.pid for w in self._workers.values())

    def start(self) -> None:
        """Start the workers now, in the background, rather than on the first submit.

        Examples
        --------
        >>> pool = LocalPool(1)
        >>> pool.start()
        >>> pool.shutdown()
        """
        self._check_usable()
        with self._lock:
            if self._closing:
                raise RunnerError("this LocalPool was shut down; create a new one to start")
            self._ensure_thread()
        self._wake()

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, member_timeout: float | None = None, **kw: Any
    ) -> Future:
        """Run ``fn(*args, **kw)`` on a worker; arguments that are :class:`SharedRef` are
        replaced there by their shared object.

        Parameters
        ----------
        fn : callable
        *args, **kw
            Pickled now (with cloudpickle), so later changes do not reach the task.
        member_timeout : float, optional
            Seconds any one member may run (from one ``report_member`` call to the next,
            or the whole task if it reports none). An overrunning member's worker is
            killed and the future fails with :class:`MemberTimeout`.

        Returns
        -------
        concurrent.futures.Future

        Raises
        ------
        RunnerError
            The pool was shut down, the task cannot be pickled, or a shared object it
            names was released.

        Examples
        --------
        >>> with LocalPool(1) as pool:
        ...     pool.submit(divmod, 7, 2).result()
        (3, 1)
        """
        self._check_usable()
        task = PoolTask(next(self._ids), fn, args, kw, check_timeout(member_timeout))
        task.payload = pickle_for_workers((fn, args, kw), f"task {task.name}")
        task.refs = tuple(v.key for v in (*args, *kw.values()) if type(v) is SharedRef)
        with self._lock:
            if self._closing:
                raise RunnerError("this LocalPool was shut down; create a new one to submit")
            for key in task.refs:
                if key not in self._shared:
                    msg = f"shared object {key!r} was released; share it again to use it"
                    raise RunnerError(msg)
            self._queue.append(task)
            self._spawn_blocked = False
            self._ensure_thread()
        self._wake()
        return task.future

    def share(self, obj: Any) -> SharedRef:
        """Pickle ``obj`` once; each worker receives it once and keeps it until released.

        Pass the returned reference as a task argument: the worker substitutes the object.

        Examples
        --------
        >>> with LocalPool(1) as pool:
        ...     table = pool.share({"a": 1})
        ...     pool.submit(dict.get, table, "a").result()
        1
        """
        self._check_usable()
        blob = pickle_for_workers(obj, "the shared object")
        key = f"{self._token}-{next(self._ids)}"
        with self._lock:
            self._shared[key] = blob
        return SharedRef(key)

    def release(self, ref: SharedRef) -> None:
        """Forget a shared object, here and on the workers (tasks running keep theirs)."""
        with self._lock:
            self._shared.pop(ref.key, None)
            self._control.append(("release", ref.key))
        self._wake()

    def cancel_all(self) -> None:
        """Cancel every queued task and kill the workers running tasks, at once.

        Running tasks' futures fail with ``concurrent.futures.CancelledError``; their
        workers (and what they started) are killed and replaced. For Ctrl-C, or for a run
        that stops at its first error.
        """
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            running = list(self._active.values())
            self._control.extend(("kill", task) for task in running)
        for task in queued:
            task.future.cancel()
        for task in running:
            settle(task.future, error=CancelledError("cancelled by LocalPool.cancel_all()"))
        self._wake()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers once the queued tasks ran (or were cancelled).

        Parameters
        ----------
        wait : bool
            Return only when every worker has exited.
        cancel_futures : bool
            Cancel the tasks not started yet instead of running them.
        """
        if self._pid != os.getpid():
            return  # a forked child: the workers are its parent's
        with self._lock:
            self._closing = True
            queued = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
            thread = self._thread
        for task in queued:
            task.future.cancel()
        if thread is None:
            return
        self._wake()
        if wait and threading.current_thread() is not thread:
            thread.join()

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"LocalPool(n_workers={self._n})"

    # -- helpers for the API ------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._pid != os.getpid():
            msg = (
                f"this LocalPool belongs to process {self._pid}; a forked child cannot use "
                "its workers: create a new LocalPool (or call default_pool()) in the child"
            )
            raise RunnerError(msg)

    def _ensure_thread(self) -> None:  # with the lock held
        if self._thread is not None:
            return
        self._slots = StatusSlots(2 * self._n)  # a replacement may start beside a dying one
        self._lifeline_r, self._lifeline_w = pipe()
        self._wake_r, self._wake_w = pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        if start_method() == "fork":  # before the pool's thread: see pool_fork
            self._spawn_missing(fork=True)
        self._thread = threading.Thread(target=self._serve, name="ensembles-pool", daemon=True)
        self._thread.start()

    def _wake(self) -> None:
        with self._lock:  # never write to the number of a pipe closed already
            if self._thread is not None and self._wake_w >= 0:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self._wake_w, b"\0")

    # -- the I/O thread -----------------------------------------------------------------

    def _serve(self) -> None:
        """The pool's only thread: starts workers, sends tasks, reads results, watches."""
        try:
            while True:
                self._handle_control()
                if not self._dispatch():
                    break
                wakeup = self._check_timers()
                timeout = None if wakeup == math.inf else max(0.0, wakeup - time.monotonic())
                if any(w.pidfd is None for w in self._workers.values()):
                    timeout = _POLL if timeout is None else min(timeout, _POLL)
                for key, events in self._selector.select(timeout):
                    self._on_event(key, events)
                for worker in [w for w in self._workers.values() if w.pidfd is None]:
                    if worker.has_exited():
                        self._on_exit(worker)
        except BaseException as exc:  # a bug here must not leave futures waiting forever
            self._fail_everything(exc)
        finally:
            self._close_resources()

    def _on_event(self, key: selectors.SelectorKey, events: int) -> None:
        kind, worker = key.data
        if kind == "wake":
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
        elif worker.slot not in self._workers or self._workers[worker.slot] is not worker:
            return  # an event of a worker removed earlier in this round
        elif kind == "exit":
            self._on_exit(worker)
        elif kind == "result":
            messages, closed = worker.receive()
            for head, payload in messages:
                self._on_message(worker, head, payload)
            if closed:
                self._selector.unregister(worker.result_fd)
                if worker.pidfd is None:
                    self._on_exit(worker)
        elif not worker.flush():  # "write": the pipe took everything
            self._selector.unregister(worker.task_fd)

    def _on_message(self, worker: WorkerProcess, head: tuple, payload: Any) -> None:
        kind = head[0]
        if kind == "ready":
            self._start_failures = 0
            if worker.state == "starting":
                worker.state = "idle"
            return
        task = worker.task
        if task is None or task.id != head[1]:
            return
        worker.task = None
        if worker.state == "busy":
            worker.state = "idle"
        with self._lock:
            self._active.pop(task.id, None)
        settle(task.future, *decode_outcome(task, head, payload))

    def _on_exit(self, worker: WorkerProcess) -> None:
        """Collect a dead worker: deliver what it sent, fail its task, free its slot."""
        worker.kill()  # first: no process of its group can still write to its pipe
        if worker.result_fd in self._selector.get_map():
            messages, _ = worker.receive()
            for head, payload in messages:
                self._on_message(worker, head, payload)
        member, _ = self._slots.read(worker.slot)
        for fd in (worker.result_fd, worker.task_fd, worker.pidfd):
            if fd is not None and fd in self._selector.get_map():
                self._selector.unregister(fd)
        code = worker.reap()
        self._slots.reset(worker.slot)
        with self._lock:
            del self._workers[worker.slot]
        task = worker.task
        if task is not None:
            with self._lock:
                self._active.pop(task.id, None)
            error = worker.kill_reason or WorkerDied.from_status(task, member, code, worker.pid)
            settle(task.future, error=error)
        elif worker.state == "starting":
            self._start_failures += 1
            if self._start_failures >= _START_FAILURES:
                self._give_up_starting(code)

    def _give_up_starting(self, code: int) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
            self._spawn_blocked = True
        self._start_failures = 0
        for task in queued:
            settle(task.future, error=start_failure(code))

    def _handle_control(self) -> None:
        while True:
            with self._lock:
                if not self._control:
                    return
                kind, what = self._control.popleft()
            for worker in list(self._workers.values()):
                if kind == "kill" and worker.task is what and worker.state == "busy":
                    self._kill(worker, CancelledError("cancelled by LocalPool.cancel_all()"))
                elif kind == "release" and what in worker.holds:
                    worker.holds.discard(what)
                    self._post(worker, ("release", what))

    def _dispatch(self) -> bool:
        """Send queued tasks to idle workers and keep the pool's size; False when done."""
        idle = [w for w in self._workers.values() if w.state == "idle"]
        while idle:
            with self._lock:
                if not self._queue:
                    break
                task = self._queue.popleft()
                self._active[task.id] = task
            try:
                running = task.future.set_running_or_notify_cancel()
            except RuntimeError:  # settled meanwhile by cancel_all
                running = False
            if running:
                self._send(idle.pop(), task)
            else:
                with self._lock:
                    self._active.pop(task.id, None)
        with self._lock:
            closing, queued, blocked = self._closing, bool(self._queue), self._spawn_blocked
        if closing and not queued:
            for worker in self._workers.values():
                if worker.state in ("starting", "idle"):
                    self._post(worker, ("stop",))
                    worker.state, worker.deadline = "stopping", time.monotonic() + _STOP_GRACE
            return bool(self._workers)
        if not blocked:
            self._spawn_missing()
        return True

    def _spawn_missing(self, fork: bool = False) -> None:
        live = [w for w in self._workers.values() if w.state in ("starting", "idle", "busy")]
        free = [s for s in range(2 * self._n) if s not in self._workers]
        for slot in free[: max(0, self._n - len(live))]:
            env = thread_limits(self._n)
            worker = WorkerProcess(slot, self._slots, self._lifeline_r, env, fork)
            with self._lock:  # reentrant: _ensure_thread holds it
                self._workers[slot] = worker
            self._selector.register(worker.result_fd, selectors.EVENT_READ, ("result", worker))
            if worker.pidfd is not None:
                self._selector.register(worker.pidfd, selectors.EVENT_READ, ("exit", worker))
            self._watch_writes(worker)

    def _send(self, worker: WorkerProcess, task: PoolTask) -> None:
        for key in task.refs:
            if key in worker.holds:
                continue
            with self._lock:
                blob = self._shared.get(key)
            if blob is None:
                with self._lock:
                    self._active.pop(task.id, None)
                msg = f"shared object {key!r} was released before the task ran"
                settle(task.future, error=RunnerError(msg))
                return
            self._post(worker, ("share", key), blob)
            worker.holds.add(key)
        worker.task, worker.state = task, "busy"
        self._post(worker, ("task", task.id), task.payload)
        task.payload = None  # the outbox holds it until written

    def _post(self, worker: WorkerProcess, head: tuple, payload: Any = None) -> None:
        worker.post(head, payload)
        self._watch_writes(worker)

    def _watch_writes(self, worker: WorkerProcess) -> None:
        if worker.outbox and worker.task_fd not in self._selector.get_map():
            self._selector.register(worker.task_fd, selectors.EVENT_WRITE, ("write", worker))

    def _check_timers(self) -> float:
        """Kill workers over their member timeout or stop grace; the next deadline."""
        now = time.monotonic()
        wakeup = math.inf
        for worker in list(self._workers.values()):
            task = worker.task
            if worker.state == "busy" and task.member_timeout is not None:
                member, started = self._slots.read(worker.slot)
                if started != started:  # NaN: loading the task, or between members:
                    wakeup = min(wakeup, now + _RECHECK)  # look again (no event may come)
                    continue
                due = started + task.member_timeout
                if now < due:
                    wakeup = min(wakeup, due)
                    continue
                reason = MemberTimeout(
                    member=member, seconds=task.member_timeout, task=task, pid=worker.pid
                )
                self._kill(worker, reason)
            elif worker.state == "stopping":
                if now < worker.deadline:
                    wakeup = min(wakeup, worker.deadline)
                else:
                    self._kill(worker, None)
        return wakeup

    def _kill(self, worker: WorkerProcess, reason: BaseException | None) -> None:
        worker.kill_reason = reason
        worker.state = "dying"
        worker.kill()  # its exit arrives as an event and is handled in _on_exit

    def _fail_everything(self, exc: BaseException) -> None:
        with self._lock:
            self._closing = True
            tasks = [*self._queue, *self._active.values()]
            self._queue.clear()
            self._active.clear()
        error = RunnerError(f"the local pool stopped after an internal error: {exc!r}")
        for task in tasks:
            settle(task.future, error=error)
        for worker in list(self._workers.values()):
            worker.kill()
            with contextlib.suppress(Exception):
                worker.reap()
        self._workers.clear()

    def _close_resources(self) -> None:
        with self._lock:
            fds = (self._wake_r, self._wake_w, self._lifeline_r, self._lifeline_w)
            self._wake_w = -1
        self._selector.close()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._slots.close()

    def _abandon(self) -> None:
        """In a forked child: close the parent's pipes without touching its workers."""
        if self._thread is None:
            return
        fds = [self._lifeline_w, self._lifeline_r, self._wake_r, self._wake_w]
        self._wake_w = -1
        fds.append(self._selector.fileno())  # closing it in the child leaves the parent's
        for worker in self._workers.values():
            fds += [worker.task_fd, worker.result_fd, worker.pidfd]
        for fd in filter(None, fds):
            with contextlib.suppress(OSError):
                os.close(fd)


# -- the process-wide default pool ----------------------------------------------------------

_POOLS: weakref.WeakSet[LocalPool] = weakref.WeakSet()
_DEFAULT: LocalPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool(n_workers: int | None = None) -> LocalPool:
    """The process-wide pool, started on first use and reused (warm) by later runs.

    Asking for a different size replaces it. It is shut down at interpreter exit; a
    forked child gets a pool of its own.

    Examples
    --------
    >>> default_pool(1) is default_pool(1)
    True
    >>> close_default_pool()
    """
    global _DEFAULT
    n = pool_size(n_workers)
    with _DEFAULT_LOCK:
        pool = _DEFAULT
        if pool is not None and pool._pid != os.getpid():
            pool = None  # inherited by fork: its workers are the parent's
        if pool is not None and (pool._closing or pool.n_workers != n):
            pool.shutdown(wait=False)
            pool = None
        if pool is None:
            pool = _DEFAULT = LocalPool(n)
        return pool


def close_default_pool() -> None:
    """Shut the default pool down (waiting for its workers to exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        pool, _DEFAULT = _DEFAULT, None
    if pool is not None:
        pool.shutdown(wait=True)


@atexit.register
def _shutdown_pools() -> None:
    """At exit: cancel what is queued, kill what runs, stop the workers."""
    for pool in list(_POOLS):
        if pool._pid == os.getpid():
            pool.cancel_all()
            pool.shutdown(wait=False)
            if pool._thread is not None:
                pool._thread.join(timeout=_STOP_GRACE + 5)


def _after_fork_in_child() -> None:
    global _DEFAULT, _DEFAULT_LOCK
    _DEFAULT, _DEFAULT_LOCK = None, threading.Lock()
    for pool in list(_POOLS):
        pool._abandon()
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
