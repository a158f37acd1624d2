"""Where work runs: the caller's dask client, a cluster address, or the embedded default.

ensembles never schedules work itself: blocks are submitted to dask.distributed, a
bounded number at a time (so a million members never make a million live tasks), and
results are consumed as they complete. With no client given or active, an embedded
``LocalCluster`` on 127.0.0.1 is started once per process: worker processes for
simulations that hold the GIL, threads for those that release it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import RunnerError

__all__ = ["Progress", "default_client", "resolve_client", "run_tasks"]

_DEFAULT_CLIENTS: dict[tuple[bool, int], Any] = {}
_DEFAULT_LOCK = threading.Lock()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def default_client(processes: bool = True, n_workers: int | None = None) -> Any:
    """The embedded local cluster's client, started on first use and reused.

    Parameters
    ----------
    processes : bool
        One single-threaded worker process per core (for simulations that hold the
        GIL), or one in-process worker with a thread per core (for those that release it).
    n_workers : int, optional
        Workers (processes) or threads; default: every core.
    """
    from distributed import Client, LocalCluster

    n = int(n_workers or _cpu_count())
    key = (bool(processes), n)
    with _DEFAULT_LOCK:
        client = _DEFAULT_CLIENTS.get(key)
        if client is not None and client.status == "running":
            return client
        if processes:
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        else:
            cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=n,
                processes=False,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        client = Client(cluster, set_as_default=False)
        _DEFAULT_CLIENTS[key] = client
        return client


@atexit.register
def close_default_clients() -> None:
    """Stop the embedded clusters (also runs at interpreter exit)."""
    with _DEFAULT_LOCK:
        clients = list(_DEFAULT_CLIENTS.values())
        _DEFAULT_CLIENTS.clear()
    for client in clients:
        cluster = client.cluster
        with contextlib.suppress(Exception):
            client.close()
        with contextlib.suppress(Exception):
            cluster.close()


@contextlib.contextmanager
def resolve_client(
    scheduler: Any = None,
    *,
    scheduler_file: str | None = None,
    processes: bool = True,
    n_workers: int | None = None,
    security: Any = None,
) -> Iterator[Any]:
    """Yield the dask client a run uses, closing it afterwards only if we opened it.

    Parameters
    ----------
    scheduler : distributed.Client, str or None
        A client; an address such as ``"tcp://10.0.0.5:8786"``; a scheduler file path
        (``*.json``); or None for the active client, else the embedded default.
    scheduler_file : str, optional
        A scheduler file written by ``dask scheduler --scheduler-file``.
    processes, n_workers
        Shape of the embedded default (see :func:`default_client`).
    security : distributed.Security, optional
        TLS settings for ``tls://`` addresses.
    """
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if scheduler_file is None and isinstance(scheduler, str) and scheduler.endswith(".json"):
        scheduler_file, scheduler = scheduler, None
    if scheduler is not None or scheduler_file is not None:
        if scheduler is not None and not isinstance(scheduler, str):
            msg = (
                f"scheduler must be a distributed.Client, an address like 'tcp://host:8786' or "
                f"a scheduler file path, got {scheduler!r}"
            )
            raise RunnerError(msg)
        if scheduler_file is not None and not os.path.exists(scheduler_file):
            msg = f"scheduler file {scheduler_file!r} does not exist"
            raise RunnerError(msg)
        try:
            client = Client(
                scheduler,
                scheduler_file=scheduler_file,
                security=security,
                timeout="20s",
                set_as_default=False,
            )
        except (OSError, TimeoutError) as exc:
            where = scheduler or scheduler_file
            msg = (
                f"cannot connect to the dask scheduler at {where!r}: {exc}. Check the address "
                "and that `dask scheduler` is running and reachable (and TLS settings for tls://)"
            )
            raise RunnerError(msg) from None
        try:
            yield client
        finally:
            client.close()
        return
    try:
        from distributed import get_client

        client = get_client()
    except ValueError:
        client = None
    yield client if client is not None else default_client(processes, n_workers)


def worker_count(client: Any) -> int:
    """Total threads across the client's workers (at least 1)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed
        info = client.scheduler_info()
    return max(sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()), 1)


class Progress:
    """A progress line: members done / total, rate, ETA; for terminals and notebooks.

    Parameters
    ----------
    total : int
        Members to run.
    label : str
    enabled : bool
        False turns all output off (``--quiet``).
    stream : file, optional
        Default ``sys.stderr``.
    """

    def __init__(
        self,
        total: int,
        label: str = "members",
        enabled: bool = True,
        stream: TextIO | None = None,
    ) -> None:
        self.total = int(total)
        self.done = 0
        self.failed = 0
        self.label = label
        self.enabled = enabled and total > 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._last = 0.0
        self._interactive = bool(getattr(self.stream, "isatty", lambda: False)()) or (
            "ipykernel" in sys.modules
        )

    def update(self, n: int, failed: int = 0) -> None:
        self.done += n
        self.failed += failed
        now = time.perf_counter()
        interval = 0.2 if self._interactive else 5.0
        if self.enabled and self.done < self.total and now - self._last >= interval:
            self._last = now
            self._render(final=False)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_txt = _fmt_seconds(eta) if eta == eta else "?"
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.label}: {self.done}/{self.total} ({pct:5.1f}%{failed}) "
            f"{rate:,.1f}/s elapsed {_fmt_seconds(elapsed)} eta {eta_txt}"
        )

    def _render(self, final: bool) -> None:
        end = "\n" if final or not self._interactive else ""
        prefix = "\r" if self._interactive else ""
        self.stream.write(prefix + self.line() + end)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._render(final=True)

    def message(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


def _fmt_seconds(s: float) -> str:
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"


@dataclass
class TaskOutcome:
    """One finished task: its argument, its result or its exception."""

    item: Any
    result: Any = None
    error: BaseException | None = None


def run_tasks(
    client: Any,
    func: Callable[..., Any],
    shared: Any,
    items: Iterable[Any],
    *,
    key_prefix: str,
    max_in_flight: int | None = None,
) -> Iterator[TaskOutcome]:
    """Run ``func(shared, item)`` for every item on ``client``; yield outcomes as they finish.

    ``shared`` is scattered to the workers once. At most ``max_in_flight`` tasks are live at
    a time (default: 4 per worker thread, at least 8), so the scheduler's load stays
    bounded however many items there are. Task keys are ``{key_prefix}-{i}``.
    """
    from distributed import as_completed

    try:
        shared_future = client.scatter(shared, broadcast=True, hash=False)
    except Exception as exc:  # serialization problems surface here
        msg = (
            f"cannot send the simulation to the dask workers: {type(exc).__name__}: {exc}. "
            "Define the simulation in an importable module (or make it picklable with "
            "cloudpickle), and make sure the workers can import its dependencies"
        )
        raise RunnerError(msg) from exc
    limit = max_in_flight or max(8, 4 * worker_count(client))
    iterator = enumerate(items)
    pending: dict[Any, Any] = {}
    ac = as_completed(loop=client.loop)

    def submit_next() -> bool:
        try:
            i, item = next(iterator)
        except StopIteration:
            return False
        fut = client.submit(func, shared_future, item, key=f"{key_prefix}-{i}", pure=False)
        pending[fut.key] = item
        ac.add(fut)
        return True

    try:
        for _ in range(limit):
            if not submit_next():
                break
        for fut in ac:
            item = pending.pop(fut.key)
            if fut.status == "finished":
                outcome = TaskOutcome(item, result=fut.result())
            else:
                try:
                    exc = fut.exception()
                except Exception as err:  # cancelled futures
                    exc = err
                outcome = TaskOutcome(item, error=exc)
            fut.release()
            yield outcome
            submit_next()
    finally:
        for key in list(pending):
            with contextlib.suppress(Exception):
                client.cancel([key], force=True)
        with contextlib.suppress(Exception):
            client.cancel([shared_future])
