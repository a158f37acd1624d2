"""Tasks that tests/test_pool.py runs on pool workers (a module with standard imports only,
so that fresh workers load it fast)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ensembles.execution.pool_worker import report_member

LOADS = 0  # times a Counted object was unpickled in this process


class TaskFailure(Exception):
    """An exception type the driver must receive as itself."""


def run_members(
    n: int,
    *,
    exit_at: int | None = None,
    hang_at: int | None = None,
    busy_at: int | None = None,
    pid_file: str | None = None,
    pause: float = 0.0,
    loading: float = 0.0,
) -> int:
    """Run members 0..n-1 like a block loop: report each, then misbehave where asked
    (``loading``: seconds before the first member, as a task that loads a simulation)."""
    time.sleep(loading)
    for member in range(n):
        report_member(member)
        if member == exit_at:
            os._exit(3)
        if pid_file is not None and member in (hang_at, busy_at):
            Path(pid_file).write_text(str(os.getpid()))
        if member == hang_at:
            time.sleep(3600)
        if member == busy_at:
            while True:
                pass
        time.sleep(pause)
    return n


def sleep_then(value: object, seconds: float) -> object:
    time.sleep(seconds)
    return value


def raise_failure(value: object) -> None:
    raise TaskFailure(f"bad value {value!r}")


def return_lock() -> threading.Lock:
    return threading.Lock()


def crash() -> None:
    import ctypes

    ctypes.string_at(0)  # SIGSEGV


def environment(names: list[str]) -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in names}


def start_sleeper(pid_file: str, then_exit: bool = False) -> int:
    """Start a child process that sleeps, write its pid; optionally kill this worker."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    Path(pid_file).write_text(str(child.pid))
    if then_exit:
        os._exit(5)
    return child.pid


class Counted:
    """Counts its unpickling in the receiving process (``LOADS``)."""

    def __init__(self, size: int) -> None:
        self.data = bytes(size)

    def __reduce__(self):
        return (_load_counted, (len(self.data),))


def _load_counted(size: int) -> Counted:
    global LOADS
    LOADS += 1
    return Counted(size)


def shared_identity(obj: Counted, sleep: float = 0.0) -> tuple[int, int, int]:
    """(worker pid, id of the shared object, times one was unpickled in this worker)."""
    time.sleep(sleep)
    return os.getpid(), id(obj), LOADS


def die_in_package_code(member: int) -> None:
    """Report a member the way ensembles' block loop will (through the package), then die."""
    import importlib

    importlib.import_module("ensembles.execution.worker")  # the package, as a real task loads it
    from ensembles.execution import pool_worker

    pool_worker.report_member(member)
    os._exit(1)
