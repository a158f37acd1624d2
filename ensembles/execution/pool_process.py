"""One worker process of the local pool as the driver sees it: how it starts, the pipes and
status slot it is reached through, and how it is stopped and reaped.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
from collections import deque
from typing import Any

from ..errors import RunnerError
from . import pool_worker
from .pool_fork import fork_worker
from .pool_worker import NO_MEMBER, NO_PAYLOAD, PREFIX, SLOT_BYTES, encode_message

__all__ = [
    "THREAD_VARIABLES",
    "StatusSlots",
    "WorkerProcess",
    "above_std",
    "cpu_count",
    "pipe",
    "pool_size",
    "thread_limits",
]

#: Native thread pools limited in workers (unless the user set them), as loky does.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)

# Loads pool_worker from its file under its own name, without importing the ensembles
# package (whose __init__ imports xarray: ~0.6 s and ~140 MB more per worker).
_BOOTSTRAP = (
    "def _ensembles_pool_worker():\n"
    "    import importlib.util, sys\n"
    "    name = 'ensembles.execution.pool_worker'\n"
    "    spec = importlib.util.spec_from_file_location(name, sys.argv[1])\n"
    "    module = importlib.util.module_from_spec(spec)\n"
    "    sys.modules[name] = module\n"
    "    spec.loader.exec_module(module)\n"
    "    module.main(sys.argv[2:])\n"
    "_ensembles_pool_worker()\n"
)


# A worker leads a process group of its own, so it and whatever it starts are killed
# together, and terminal signals (Ctrl-C) reach only the driver. It stays in the driver's
# session: a session of its own would also put it in a scheduler autogroup of its own
# (Linux), where each worker competes with the user's other programs as if it were one
# more program. Python 3.10 has no process_group: there, a session of its own.
_OWN_GROUP: dict[str, Any] = (
    {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
)


def pool_size(n_workers: Any, name: str = "n_workers") -> int:
    """The number of workers ``n_workers`` asks for (None: one per core); refuses others.

    Examples
    --------
    >>> pool_size(3)
    3
    """
    if n_workers is None:
        return cpu_count()
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        msg = f"{name} must be a whole number of at least 1, got {n_workers!r}"
        raise RunnerError(msg)
    return n_workers


def cpu_count() -> int:
    """Cores this process may run on.

    Examples
    --------
    >>> cpu_count() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def thread_limits(n_workers: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The worker environment: native thread pools sized ``max(1, cores // n_workers)``.

    Variables the user already set are kept as they are.

    Examples
    --------
    >>> thread_limits(cpu_count(), {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"]
    '3'
    >>> thread_limits(cpu_count(), {})["MKL_NUM_THREADS"]
    '1'
    """
    env = dict(os.environ if environ is None else environ)
    threads = str(max(1, cpu_count() // max(1, n_workers)))
    for name in THREAD_VARIABLES:
        env.setdefault(name, threads)
    return env


class StatusSlots:
    """Shared memory holding one status slot per worker: member index and start time.

    The memory is an anonymous file (``memfd_create``; else a temporary file in /dev/shm
    or the temp dir, unlinked at once), so nothing is left behind, even when the driver
    is killed. Workers map it through the descriptor they inherit.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.fd = _anonymous_file(count * SLOT_BYTES)
        self._map = mmap.mmap(self.fd, count * SLOT_BYTES)
        self._ints = memoryview(self._map).cast("q")
        self._floats = memoryview(self._map).cast("d")
        for slot in range(count):
            self.reset(slot)

    def reset(self, slot: int) -> None:
        """Mark ``slot`` as running no member."""
        base = slot * (SLOT_BYTES // 8)
        self._floats[base + 1] = math.nan
        self._ints[base] = NO_MEMBER

    def read(self, slot: int) -> tuple[int | None, float]:
        """``(member or None, monotonic start time or NaN)``, read twice until they agree."""
        base = slot * (SLOT_BYTES // 8)
        ints, floats = self._ints, self._floats
        while True:
            member, started = ints[base], floats[base + 1]
            if ints[base] == member and _same(floats[base + 1], started):
                return (None if member < 0 else member), started

    def close(self) -> None:
        self._ints.release()
        self._floats.release()
        self._map.close()
        os.close(self.fd)


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN == NaN here


def _anonymous_file(size: int) -> int:
    fd = None
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            fd = os.memfd_create("ensembles-pool-slots", os.MFD_CLOEXEC)
    if fd is None:  # pragma: no cover - not Linux
        shm = "/dev/shm"
        directory = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
        fd, path = tempfile.mkstemp(prefix="ensembles-pool-", dir=directory)
        os.unlink(path)
    os.ftruncate(fd, size)
    return above_std(fd)


def above_std(fd: int) -> int:
    """``fd``, moved to a number above the standard streams' (0-2) if it is one of them.

    A driver started with stdin (or stdout) closed gets descriptor 0 for its next pipe,
    which a worker's stdin from /dev/null would replace.
    """
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved


def pipe() -> tuple[int, int]:
    """``os.pipe()`` with both ends above the standard streams (see :func:`above_std`)."""
    r, w = os.pipe()
    return above_std(r), above_std(w)


class _Inbox:
    """Reassembles messages from a non-blocking pipe, so reading never blocks the driver."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray(PREFIX.size)
        self._pos = 0
        self._stage = 0  # 0: prefix, 1: head, 2: payload
        self._head: tuple = ()
        self._size = 0

    def read(self, fd: int) -> tuple[list[tuple[tuple, bytearray | None]], bool]:
        """The messages completed by what can be read now, and whether the pipe closed."""
        done: list[tuple[tuple, bytearray | None]] = []
        while True:
            if self._pos < len(self._buf):
                try:
                    got = os.readv(fd, [memoryview(self._buf)[self._pos :]])
                except BlockingIOError:
                    return done, False
                except OSError:
                    return done, True
                if got == 0:
                    return done, True
                self._pos += got
                if self._pos < len(self._buf):
                    continue
            self._advance(done)

    def _advance(self, done: list[tuple[tuple, bytearray | None]]) -> None:
        if self._stage == 0:
            head_size, self._size = PREFIX.unpack(self._buf)
            self._buf, self._pos, self._stage = bytearray(head_size), 0, 1
        elif self._stage == 1:
            self._head = pickle.loads(self._buf)
            if self._size in (0, NO_PAYLOAD):
                done.append((self._head, None if self._size else bytearray()))
                self._reset()
            else:
                self._buf, self._pos, self._stage = bytearray(self._size), 0, 2
        else:
            done.append((self._head, self._buf))
            self._reset()


class WorkerProcess:
    """A worker interpreter, its two pipes, its status slot and its scheduling state.

    Forked from the driver (``fork=True``, see :mod:`.pool_fork`) or started with
    ``subprocess.Popen`` (an argv list, no shell), as the leader of a process group, so
    the worker and every process it starts are killed together.
    """

    def __init__(
        self, slot: int, slots: StatusSlots, lifeline: int, env: dict[str, str], fork: bool = False
    ):
        task_r, self.task_fd = pipe()
        self.result_fd, result_w = pipe()
        fds = (task_r, result_w, slots.fd, lifeline)
        argv = [sys.executable, "-c", _BOOTSTRAP, pool_worker.__file__]
        argv += [str(fd) for fd in fds] + [str(slot * SLOT_BYTES)]
        try:
            if fork:
                self.proc: Any = fork_worker(fds, slot * SLOT_BYTES, env)
            else:
                self.proc = subprocess.Popen(
                    argv, pass_fds=fds, stdin=subprocess.DEVNULL, env=env, **_OWN_GROUP
                )
        except BaseException:
            os.close(self.task_fd)
            os.close(self.result_fd)
            raise
        finally:
            os.close(task_r)
            os.close(result_w)
        self.pid = self.proc.pid
        self.slot = slot
        self.pidfd: int | None = None
        if hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                self.pidfd = os.pidfd_open(self.pid)
        os.set_blocking(self.task_fd, False)
        os.set_blocking(self.result_fd, False)
        self.inbox = _Inbox()
        self.outbox: deque[memoryview] = deque()
        # scheduling state, kept by the pool
        self.state = "starting"
        self.task: Any = None
        self.holds: set[str] = set()
        self.kill_reason: BaseException | None = None
        self.deadline = math.inf
        self.post(("hello", list(sys.path)))

    def post(self, head: tuple, payload: Any = None) -> None:
        """Queue a message for the worker and write what the pipe takes now."""
        self.outbox.extend(encode_message(head, payload))
        self.flush()

    def flush(self) -> bool:
        """Write queued bytes until the pipe is full; True while some remain."""
        out = self.outbox
        while out:
            try:
                written = os.writev(self.task_fd, _first(out, 64))
            except BlockingIOError:
                return True
            except OSError:  # the worker is gone; its exit is handled by the pool
                out.clear()
                return False
            while out and written >= len(out[0]):
                written -= len(out.popleft())
            if written:
                out[0] = out[0][written:]
        return False

    def receive(self) -> tuple[list[tuple[tuple, bytearray | None]], bool]:
        """Messages from the worker readable now, and whether its pipe closed."""
        return self.inbox.read(self.result_fd)

    def kill(self) -> None:
        """SIGKILL the worker's process group (the worker and what it started)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def has_exited(self) -> bool:
        """True once the worker exited (it is not reaped: its pid cannot be reused yet)."""
        if self.pidfd is not None:
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            return bool(poller.poll(0))
        try:
            return os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:  # pragma: no cover - already reaped
            return True

    def reap(self) -> int:
        """Kill what is left of the worker's group, wait for it, close its descriptors.

        Returns the exit status as ``subprocess`` reports it (negative: killed by signal).
        """
        self.kill()  # the exited worker is a zombie until waited for: its group id is safe
        code = self.proc.wait()
        self.close()
        return code

    def close(self) -> None:
        for fd in (self.task_fd, self.result_fd, self.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.outbox.clear()


def _first(items: deque[memoryview], n: int) -> list[memoryview]:
    """The first ``n`` items of a deque (writev takes a bounded number of buffers)."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in range(n)]
