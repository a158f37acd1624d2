"""Per-member time limits inside a worker: stop a member that runs longer than allowed.

In a process's main thread (the local pool's workers) a POSIX interval timer raises
:class:`MemberTimeoutError` in the member, which also interrupts sleeps and blocking
calls. In other threads (dask workers run tasks in threads) a watchdog thread raises it
asynchronously in the member's thread: that stops Python code, but not a call stuck in
compiled code, which is reported as timed out when it returns. (The local pool also
kills a worker whose member overruns its limit by a grace period, which stops anything.)
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["MemberTimeoutError", "deadline", "hard_limit"]


class MemberTimeoutError(TimeoutError):
    """A member ran longer than the run's per-member ``timeout``."""

    def __init__(self, seconds: float = float("nan")) -> None:
        self.seconds = float(seconds)
        super().__init__(f"timed out after {self.seconds:g} s")

    def __reduce__(self):
        return (MemberTimeoutError, (self.seconds,))


def hard_limit(timeout: float | None) -> float | None:
    """When the local pool kills a worker whose member overran ``timeout`` seconds.

    The member's own deadline interrupts it at ``timeout``; the kill, a grace period
    later, stops members stuck in compiled code.

    Examples
    --------
    >>> hard_limit(1.0), hard_limit(60.0), hard_limit(None)
    (3.0, 75.0, None)
    """
    return None if timeout is None else timeout + max(2.0, 0.25 * timeout)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`MemberTimeoutError` in the body if it runs longer than ``seconds``.

    Examples
    --------
    >>> import time
    >>> try:
    ...     with deadline(0.05):
    ...         time.sleep(5)
    ... except MemberTimeoutError as exc:
    ...     print(exc)
    timed out after 0.05 s
    """
    if seconds is None:
        yield
    elif threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _interval_timer(seconds):
            yield
    else:
        with _WATCHDOG.armed(seconds):
            yield


@contextmanager
def _interval_timer(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise MemberTimeoutError(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Watchdog:
    """One daemon thread that raises MemberTimeoutError in threads past their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, float] = {}  # thread id -> deadline
        self._fired: set[int] = set()
        self._thread: threading.Thread | None = None

    @contextmanager
    def armed(self, seconds: float) -> Iterator[None]:
        tid = threading.get_ident()
        with self._cond:
            self._armed[tid] = time.monotonic() + seconds
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="ensembles-deadline", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        try:
            yield
        except MemberTimeoutError:  # raised by the watchdog (which cannot say how long)
            self._disarm(tid)
            raise MemberTimeoutError(seconds) from None
        except BaseException:
            self._disarm(tid)
            raise
        if self._disarm(tid):  # it ran past its deadline and finished before the raise
            raise MemberTimeoutError(seconds)

    def _disarm(self, tid: int) -> bool:
        """Forget ``tid``'s deadline; True if it had fired (a pending raise is withdrawn)."""
        with self._cond:
            self._armed.pop(tid, None)
            fired = tid in self._fired
            self._fired.discard(tid)
            if fired:
                _async_raise(tid, None)
        return fired

    def _watch(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                due = [t for t, end in self._armed.items() if end <= now]
                for tid in due:
                    del self._armed[tid]
                    self._fired.add(tid)
                    _async_raise(tid, MemberTimeoutError)
                ends = list(self._armed.values())
                self._cond.wait(timeout=min(ends) - now if ends else None)


def _async_raise(tid: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` in thread ``tid`` at its next bytecode (None withdraws it).

    CPython's documented C API (``PyThreadState_SetAsyncExc``); the only way to stop
    Python code running in another thread.
    """
    obj = ctypes.py_object(exc_type) if exc_type is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), obj)


_WATCHDOG = _Watchdog()
