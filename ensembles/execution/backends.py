"""Where a run's blocks execute: the local pool (the default) or a dask.distributed cluster.

:func:`resolve_backend` picks, in order: the ``scheduler`` given (a client, a cluster
object, an address or a scheduler file), the active dask client, else the embedded
default, a :class:`~ensembles.execution.pool.LocalPool` of worker processes on this
machine. Both backends run ``func(shared, item)`` per block and yield
:class:`~ensembles.execution.submit.TaskOutcome` objects as tasks finish; they differ in
who writes a store (the driver, fed by the pool's pipes; or each dask worker, next to
its data) and in how a member that kills its worker is found.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .submit import TaskOutcome

__all__ = [
    "Backend",
    "DaskBackend",
    "PoolBackend",
    "Splitter",
    "resolve_backend",
    "start_local_pool",
]


class Splitter(Protocol):
    """How a task's item ``(block_id, mask)`` is cut when its worker dies."""

    def apart(self, item: Any, member: int) -> tuple[Any, Any]:
        """The item of ``member`` alone, and the rest of ``item`` (None if empty)."""

    def each(self, item: Any) -> list[Any] | None:
        """One item per member of ``item`` (None when it holds one member or none)."""


class Backend(Protocol):
    """What the dispatcher needs from where tasks run."""

    #: True when the driver writes each block to the store (tasks return the data).
    driver_writes: bool

    @property
    def workers(self) -> int:
        """Tasks that run at once."""

    @property
    def dashboard(self) -> Any:
        """The dask client whose dashboard link progress shows, or None."""

    def prepare(self, simulation: Any) -> None:
        """Get the workers ready to run ``simulation`` (without waiting)."""

    def remote(self, member_timeout: float | None) -> Callable[..., Any] | None:
        """Where the planner probes the first members (None: on the client)."""

    def run(
        self,
        func: Callable[[Any, Any], Any],
        shared: Any,
        items: Iterable[Any],
        *,
        key_prefix: str,
        split: Splitter,
        member_timeout: float | None,
        on_flight: Callable[[int], None] | None = None,
    ) -> Iterator[TaskOutcome]:
        """Run ``func(shared, item)`` per item; yield outcomes as tasks finish."""


class PoolBackend:
    """The embedded default: a :class:`~ensembles.execution.pool.LocalPool`."""

    driver_writes = True
    dashboard = None

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._loading: list[Any] = []  # simulations to load on every worker, not sent yet

    @property
    def workers(self) -> int:
        return int(self.pool.n_workers)

    def prepare(self, simulation: Any) -> None:
        """Start every worker loading the simulation (its module, numba, ...).

        Sent with the planner's probe, just after it (so the probe waits for no other
        task), or with the run's first blocks when nothing is probed: each worker loads
        it while the probe runs on one of them, and no worker pays its imports when the
        first blocks arrive.
        """
        self._loading.append(simulation)

    def _send_loads(self) -> None:
        loading, self._loading = self._loading, []
        for simulation in loading:
            for _ in range(self.workers):
                self.pool.submit(_load, simulation)

    def remote(self, member_timeout: float | None) -> Callable[..., Any]:
        """``call(fn, *args)``: run ``fn`` on a worker and wait (the planner's probe)."""
        from .deadline import hard_limit

        limit = hard_limit(member_timeout)

        def call(fn: Callable[..., Any], *args: Any) -> Any:
            future = self.pool.submit(fn, *args, member_timeout=limit)
            self._send_loads()
            return future.result()

        return call

    def run(
        self,
        func: Callable[[Any, Any], Any],
        shared: Any,
        items: Iterable[Any],
        *,
        key_prefix: str,
        split: Splitter,
        member_timeout: float | None,
        on_flight: Callable[[int], None] | None = None,
    ) -> Iterator[TaskOutcome]:
        from .pool_tasks import run_pool_tasks

        self._send_loads()
        return run_pool_tasks(
            self.pool,
            func,
            shared,
            items,
            split=split.apart,
            member_timeout=member_timeout,
            on_flight=on_flight,
        )


class DaskBackend:
    """A dask.distributed client: the caller's, the active one, or one we connected."""

    driver_writes = False

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def workers(self) -> int:
        from .clients import worker_count

        return worker_count(self.client)

    @property
    def dashboard(self) -> Any:
        return self.client

    def prepare(self, simulation: Any) -> None:
        """Nothing: dask workers load the simulation with their first task."""

    def remote(self, member_timeout: float | None) -> None:
        """None: the planner probes members on the client (see ``docs/clusters.md``)."""
        return None

    def run(
        self,
        func: Callable[[Any, Any], Any],
        shared: Any,
        items: Iterable[Any],
        *,
        key_prefix: str,
        split: Splitter,
        member_timeout: float | None,
        on_flight: Callable[[int], None] | None = None,
    ) -> Iterator[TaskOutcome]:
        from .submit import run_tasks

        # a dask worker cannot be stopped from outside per member: timeouts are enforced
        # inside the task (see ensembles.execution.deadline); a member that kills its
        # worker is isolated by splitting its block (see run_tasks)
        return run_tasks(
            self.client,
            func,
            shared,
            items,
            key_prefix=key_prefix,
            split=split.each,
            on_flight=on_flight,
        )


def _load(simulation: Any) -> None:
    """A task whose only work is unpickling its argument (importing its module)."""


def _active_client() -> Any:
    """The active dask client, without importing distributed if nothing did."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_client

    try:
        return get_client()
    except ValueError:  # no client in this session
        return None


def start_local_pool(scheduler: Any = None, workers: int | None = None) -> bool:
    """Start the local pool now if a run with these arguments goes there; True if so.

    A run calls it before it starts threads of its own (the lease's heartbeat, zarr's
    I/O), so the pool's workers can be forked from a single-threaded driver
    (:mod:`.pool_fork`); the run then finds the pool started.

    Examples
    --------
    >>> start_local_pool(workers=1)  # doctest: +SKIP
    True
    """
    if scheduler is not None or _active_client() is not None:
        return False
    from .pool import default_pool
    from .pool_process import pool_size

    default_pool(pool_size(workers, "workers")).start()
    return True


@contextlib.contextmanager
def resolve_backend(
    scheduler: Any = None,
    *,
    workers: int | None = None,
    safe: bool = False,
) -> Iterator[Backend]:
    """Yield the backend a run uses, closing a client afterwards only if we opened it.

    Parameters
    ----------
    scheduler : distributed.Client, Cluster, str, path-like or None
        Where to run (see :func:`ensembles.execution.clients.resolve_client`); None: the
        active dask client, else the local pool.
    workers : int, optional
        Worker processes of the local pool (default: every core); ignored when the run
        goes to dask.
    safe : bool
        Safe mode for dask clients (see :func:`~ensembles.execution.clients.resolve_client`).

    Examples
    --------
    >>> with resolve_backend(workers=1) as backend:  # doctest: +SKIP
    ...     backend.workers
    1
    """
    if scheduler is None:
        active = _active_client()
        if active is None:
            from .pool import default_pool
            from .pool_process import pool_size

            pool = default_pool(pool_size(workers, "workers"))
            pool.start()  # workers boot while the run is planned
            yield PoolBackend(pool)
            return
        scheduler = active
    from .clients import resolve_client

    with resolve_client(scheduler, n_workers=workers, safe=safe) as client:
        yield DaskBackend(client)
