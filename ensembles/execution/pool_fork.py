"""Starting a local-pool worker by forking the driver: when that is safe, and how the
child becomes a clean worker.

A forked worker starts in about a millisecond with everything the driver imported
(numpy, the simulation's module, Mesa...) already loaded, and shares those pages with the
driver instead of holding copies. It is used only when forking cannot hurt: on Linux,
from a driver with no other Python thread (a lock held by another thread would stay held
in the child forever) and without numba's parallel threads running. Otherwise, and for
workers that replace a lost one (the pool's own thread runs by then), a worker is a
fresh interpreter. ``ENSEMBLES_WORKER_START=spawn`` always starts fresh interpreters.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import signal
import sys
import threading
import warnings
from typing import Any

from ..errors import RunnerError
from . import pool_worker

__all__ = ["START_VARIABLE", "ForkedWorker", "fork_worker", "start_method"]

#: The environment variable choosing how pool workers start: auto (the default), fork
#: or spawn.
START_VARIABLE = "ENSEMBLES_WORKER_START"
_CHOICES = ("auto", "fork", "spawn")


def start_method(environ: dict[str, str] | None = None) -> str:
    """How the next pool worker starts: ``"fork"`` or ``"spawn"`` (a fresh interpreter).

    ``auto`` (the default) forks when it is safe: on Linux, from a driver whose only
    Python thread is the calling one and whose numba (if loaded) has not started its
    parallel threads. ``fork`` forks wherever ``os.fork`` exists; ``spawn`` never forks.

    Parameters
    ----------
    environ : dict, optional
        Where to read ``ENSEMBLES_WORKER_START`` (default: ``os.environ``).

    Raises
    ------
    RunnerError
        The variable holds something else than auto, fork or spawn.

    Examples
    --------
    >>> start_method({"ENSEMBLES_WORKER_START": "spawn"})
    'spawn'
    """
    env = os.environ if environ is None else environ
    choice = env.get(START_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        msg = (
            f"{START_VARIABLE}={env[START_VARIABLE]!r} is not a way to start workers: use "
            "'auto' (the default: fork when safe), 'fork' or 'spawn' (fresh interpreters)"
        )
        raise RunnerError(msg)
    if choice == "spawn" or not hasattr(os, "fork"):
        return "spawn"
    if choice == "fork":
        return "fork"
    safe = sys.platform.startswith("linux") and threading.active_count() == 1
    return "fork" if safe and _numba_allows_fork() else "spawn"


def _numba_allows_fork() -> bool:
    """numba not loaded, or loaded with its parallel threads not started (and so settable)."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None:
        return True
    return not getattr(parallel, "_is_initialized", True) and hasattr(parallel, "NUM_THREADS")


class ForkedWorker:
    """The driver's handle on a forked worker: its pid, and waiting for its exit status."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self) -> int:
        """Wait for the worker to exit; its status as ``subprocess`` gives it."""
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:  # pragma: no cover - reaped elsewhere
                self.returncode = 0
            else:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def fork_worker(fds: tuple[int, ...], offset: int, env: dict[str, str]) -> ForkedWorker:
    """Fork a pool worker that serves over ``fds`` (task pipe, result pipe, slot file,
    lifeline) with its status slot at ``offset`` and the worker environment ``env``.

    The child leads a process group of its own, keeps only those descriptors and the
    standard streams (stdin from /dev/null), gets Python's default signal handlers and
    the workers' native thread limits, and never returns into the driver's code.
    """
    limits = _native_limits(env)
    for stream in (sys.stdout, sys.stderr):  # else buffered output is written twice
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns when it counts native threads (OpenBLAS's pool): those
        # libraries reset themselves at fork; Python threads were checked by the caller.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (covered by the pool's tests)
        _serve_as_worker(fds, offset, env, limits)
    with contextlib.suppress(OSError):  # also here: no window where killpg misses it
        os.setpgid(pid, pid)
    return ForkedWorker(pid)


def _serve_as_worker(  # pragma: no cover - runs in the child
    fds: tuple[int, ...], offset: int, env: dict[str, str], limits: dict[str, int]
) -> None:
    code = 1
    try:
        os.setpgid(0, 0)
        gc.freeze()  # the collector leaves the driver's objects (and their pages) alone
        _default_signals()
        _keep_only(fds)
        _fresh_streams()
        os.environ.update(env)
        _limit_threads(limits)
        pool_worker.main([*(str(fd) for fd in fds), str(offset)])
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
    finally:
        os._exit(code)


def _default_signals() -> None:  # pragma: no cover - runs in the child
    """Python's own handlers instead of the driver's (ignored signals stay ignored)."""
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            handler = signal.getsignal(sig)
            if callable(handler) and handler is not signal.default_int_handler:
                signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(ValueError, OSError, RuntimeError):
        if signal.getsignal(signal.SIGINT) == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _fresh_streams() -> None:  # pragma: no cover - runs in the child
    """stdin from /dev/null; ``sys.stdout``/``sys.stderr`` on descriptors 1 and 2, as in a
    fresh interpreter (the driver may have redirected its own to a buffer or a notebook)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the worker
    for name, fd in (("stdout", 1), ("stderr", 2)):
        with contextlib.suppress(OSError, ValueError):
            line = fd == 2 or os.isatty(fd)
            stream = open(fd, "w", buffering=-1, closefd=False, errors="backslashreplace")  # noqa: SIM115
            stream.reconfigure(line_buffering=line)
            setattr(sys, name, stream)
    if faulthandler.is_enabled():  # the driver's may write to a descriptor closed here
        faulthandler.enable(file=sys.stderr)


def _keep_only(fds: tuple[int, ...]) -> None:  # pragma: no cover - runs in the child
    """Close every descriptor but the standard streams and ``fds`` (as a fresh one would)."""
    low = 3
    for fd in sorted(set(fds)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)


def _native_limits(env: dict[str, str]) -> dict[str, int]:
    """Thread limits of native pools already loaded in the driver, from the worker env.

    A fresh worker reads them from its environment when the libraries load; a forked one
    has them loaded already, so they are set through threadpoolctl and numba instead:
    the same thread counts, and so the same results bit for bit.
    """

    def count(name: str) -> int:
        try:
            return max(1, int(env[name]))
        except (KeyError, ValueError):
            return 1

    limits = {}
    if "threadpoolctl" in sys.modules or _native_pools_loaded():
        limits = {
            "openblas": count("OPENBLAS_NUM_THREADS"),
            "mkl": count("MKL_NUM_THREADS"),
            "blis": count("BLIS_NUM_THREADS"),
            "openmp": count("OMP_NUM_THREADS"),
        }
    if "numba" in sys.modules:
        limits["numba"] = count("NUMBA_NUM_THREADS")
    return limits


def _native_pools_loaded() -> bool:
    """numpy (and with it a BLAS) loaded; threadpoolctl imported now, once, in the driver."""
    if "numpy" not in sys.modules:
        return False
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return False
    return True


def _limit_threads(limits: dict[str, Any]) -> None:  # pragma: no cover - runs in the child
    numba_threads = limits.pop("numba", None)
    if limits:
        import threadpoolctl

        controller = threadpoolctl.ThreadpoolController()
        for api, threads in limits.items():
            controller.select(internal_api=api).limit(limits=threads)
    if numba_threads is not None:
        parallel = sys.modules.get("numba.np.ufunc.parallel")
        config = sys.modules.get("numba.core.config")
        if parallel is not None:
            parallel.NUM_THREADS = numba_threads
        if config is not None:
            config.NUMBA_NUM_THREADS = numba_threads
