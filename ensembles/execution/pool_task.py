"""What a pool task is, how it travels to a worker, and how its outcome comes back: a
result, the task's own exception, or the pool's errors (:class:`WorkerDied`,
:class:`MemberTimeout`).
"""

from __future__ import annotations

import contextlib
import math
import pickle
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from ..errors import EnsembleError, RunnerError

__all__ = [
    "MemberTimeout",
    "PoolTask",
    "RemoteTraceback",
    "WorkerDied",
    "check_timeout",
    "decode_outcome",
    "pickle_for_workers",
    "settle",
    "start_failure",
]


@dataclass(eq=False)
class PoolTask:
    """A task submitted to a ``LocalPool``: the function, its arguments, its future."""

    id: int
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict[str, Any]
    member_timeout: float | None = None
    future: Future = field(default_factory=Future, repr=False)
    payload: bytes | None = field(default=None, repr=False)
    refs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The function's qualified name."""
        fn = getattr(self.fn, "func", self.fn)  # functools.partial
        module = getattr(fn, "__module__", None)
        qualname = getattr(fn, "__qualname__", None) or repr(fn)
        return f"{module}.{qualname}" if module else qualname


class WorkerDied(RunnerError):
    """A pool worker process died while running a task (exit, crash, out of memory).

    Attributes
    ----------
    task : PoolTask or None
        The task that was running (None once the error was pickled).
    task_name : str
    member : int or None
        The member the worker reported last (``report_member``), None if none.
    exitcode : int or None
        Its exit code, when it exited.
    signal : int or None
        The signal that killed it, when one did (9 is SIGKILL, often the OOM killer).
    pid : int or None
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        task: PoolTask | None = None,
        task_name: str | None = None,
        member: int | None = None,
        exitcode: int | None = None,
        signal: int | None = None,
        pid: int | None = None,
    ) -> None:
        self.task = task
        self.task_name = task_name or (task.name if task is not None else "?")
        self.member, self.exitcode, self.signal, self.pid = member, exitcode, signal, pid
        super().__init__(message or self._message())

    @classmethod
    def from_status(cls, task: PoolTask, member: int | None, status: int, pid: int) -> WorkerDied:
        """The error for a worker that ended with ``status`` as ``subprocess`` reports it
        (negative: killed by that signal)."""
        if status < 0:
            return cls(task=task, member=member, signal=-status, pid=pid)
        return cls(task=task, member=member, exitcode=status, pid=pid)

    def _message(self) -> str:
        where = f"task {self.task_name}"
        if self.member is not None:
            where = f"member {self.member!r} of {where}"
        if self.signal is not None:
            how = f"killed by signal {self.signal} ({_signal_name(self.signal)})"
        else:
            how = f"exited with code {self.exitcode!r}"
        return (
            f"a pool worker (pid {self.pid}) died while running {where}: it was {how}. "
            "Only this task failed and the worker was replaced. Run the member alone to "
            "reproduce it; if it ran out of memory, give it more (fewer workers)"
        )

    def __reduce__(self):
        kwargs = {"task_name": self.task_name, "member": self.member}
        kwargs |= {"exitcode": self.exitcode, "signal": self.signal, "pid": self.pid}
        return (_rebuild, (type(self), str(self), kwargs))


class MemberTimeout(RunnerError):
    """A member ran longer than its task's ``member_timeout``; its worker was killed.

    Attributes
    ----------
    member : int or None
        The member that overran (None: a task that reports no members overran as a whole).
    seconds : float
        The timeout.
    task : PoolTask or None
    task_name : str
    pid : int or None
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        member: int | None = None,
        seconds: float = math.nan,
        task: PoolTask | None = None,
        task_name: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.member, self.seconds, self.task, self.pid = member, seconds, task, pid
        self.task_name = task_name or (task.name if task is not None else "?")
        super().__init__(message or self._message())

    def _message(self) -> str:
        what = f"task {self.task_name}"
        if self.member is not None:
            what = f"member {self.member!r} of {what}"
        return (
            f"{what} ran longer than member_timeout={self.seconds!r} s and was stopped (its "
            f"worker, pid {self.pid}, was killed and replaced); raise member_timeout or make "
            "the member faster"
        )

    def __reduce__(self):
        kwargs = {"member": self.member, "seconds": self.seconds}
        kwargs |= {"task_name": self.task_name, "pid": self.pid}
        return (_rebuild, (type(self), str(self), kwargs))


def _rebuild(cls: type, message: str, kwargs: dict[str, Any]) -> BaseException:
    return cls(message, **kwargs)


class RemoteTraceback(EnsembleError, RuntimeError):
    """The traceback of an exception raised in a pool worker (set as its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return "unknown signal"
    notes = {
        "SIGKILL": "SIGKILL; the kernel's out-of-memory killer sends it when memory runs out",
        "SIGSEGV": "SIGSEGV: a crash in native code",
        "SIGABRT": "SIGABRT: native code aborted",
    }
    return notes.get(name, name)


def start_failure(status: int) -> RunnerError:
    """The error of tasks left when the pool's workers keep exiting as they start.

    Examples
    --------
    >>> "status 1" in str(start_failure(1))
    True
    """
    return RunnerError(
        f"the pool's worker processes exit as they start (status {status!r}): check that "
        f"{sys.executable!r} starts in this environment (PYTHONHOME, PYTHONPATH) and "
        "look above for the workers' error output"
    )


def check_timeout(seconds: float | None) -> float | None:
    """A valid ``member_timeout`` as a float (None stays None).

    Examples
    --------
    >>> check_timeout(2)
    2.0
    >>> check_timeout(0)
    Traceback (most recent call last):
    ...
    ensembles.errors.RunnerError: member_timeout must be a positive number of seconds, got 0
    """
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        msg = f"member_timeout must be a positive number of seconds, got {seconds!r}"
        raise RunnerError(msg)
    return value


def pickle_for_workers(obj: Any, what: str) -> bytes:
    """Pickle ``obj`` with cloudpickle (functions of ``__main__`` travel by value).

    Raises RunnerError naming ``what`` when it cannot be pickled.

    Examples
    --------
    >>> pickle.loads(pickle_for_workers(lambda: 7, "a lambda"))()
    7
    """
    import cloudpickle

    try:
        return cloudpickle.dumps(obj, protocol=5)
    except Exception as exc:
        msg = (
            f"cannot send {what} to the pool's workers: {type(exc).__name__}: {exc}. Use "
            "module-level functions and picklable arguments; create unpicklable resources "
            "(open files, locks, connections) inside the task"
        )
        raise RunnerError(msg) from exc


def decode_outcome(task: PoolTask, head: tuple, payload: Any) -> tuple[Any, BaseException | None]:
    """``(result, error)`` of a finished task from the worker's message.

    The task's own exception keeps its type; its worker-side traceback becomes its
    ``__cause__`` (a :class:`RemoteTraceback`), as in ``concurrent.futures``.
    """
    kind = head[0]
    try:
        if kind == "done":
            return pickle.loads(payload), None
        if kind == "error":
            error, text = pickle.loads(payload)
            error.__cause__ = RemoteTraceback(text)
            return None, error
    except Exception as exc:
        msg = f"the outcome of task {task.name} cannot be unpickled here: {exc!r}"
        return None, RunnerError(msg)
    _, _, what, detail = head  # "unpicklable"
    error = RunnerError(f"{what}; return (or raise) picklable objects from task {task.name}")
    error.__cause__ = RemoteTraceback(detail)
    return None, error


def settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Set a future's outcome unless it already has one (cancel_all may have won)."""
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
