"""Connecting to where work runs: the caller's client, an address, a scheduler file, or
the embedded local default (a LocalCluster on 127.0.0.1, started once per process).

Connecting to a dask cluster means trusting it; safe mode narrows what the client
deserializes (see ``docs/clusters.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import RunnerError

__all__ = [
    "SAFE_DESERIALIZERS",
    "close_default_clients",
    "cpu_count",
    "default_client",
    "refuses_pickle",
    "resolve_client",
    "worker_count",
]

#: What a safe-mode client deserializes: msgpack only, never pickle.
SAFE_DESERIALIZERS: tuple[str, ...] = ("msgpack",)

_DEFAULT_CLIENTS: dict[tuple[bool, int, bool], Any] = {}
_DEFAULT_LOCK = threading.Lock()
_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.\-]+):\d{1,5}$")

logger = logging.getLogger("ensembles")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# -- connecting --------------------------------------------------------------------------


def default_client(
    processes: bool = True, n_workers: int | None = None, *, safe: bool = False
) -> Any:
    """The embedded local cluster's client, started on first use and reused.

    Everything it starts listens on 127.0.0.1 only (scheduler, workers, dashboard).

    Parameters
    ----------
    processes : bool
        One single-threaded worker process per core (for simulations that hold the
        GIL), or one in-process worker with a thread per core (for those that release it).
    n_workers : int, optional
        Workers (processes) or threads; default: every core.
    safe : bool
        Create the client with ``deserializers=SAFE_DESERIALIZERS`` (see
        :func:`resolve_client`).

    Examples
    --------
    >>> client = default_client(processes=False, n_workers=2)  # doctest: +SKIP
    >>> worker_count(client)  # doctest: +SKIP
    2
    """
    from distributed import Client, LocalCluster

    n = int(n_workers or cpu_count())
    if n < 1:
        msg = f"n_workers must be at least 1, got {n_workers!r}"
        raise RunnerError(msg)
    key = (bool(processes), n, bool(safe))
    with _DEFAULT_LOCK:
        client = _DEFAULT_CLIENTS.get(key)
        if client is not None and client.status == "running":
            return client
        common = {
            "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0",
            # ensembles reports every task error itself (MemberError, RunnerError, the run
            # report); the workers' own "Compute Failed" records would only repeat them
            "silence_logs": logging.CRITICAL,
        }
        if processes:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, **common)
        else:
            # in-process workers: tcp on 127.0.0.1 (inproc:// cannot take a host)
            cluster = LocalCluster(
                n_workers=1, threads_per_worker=n, processes=False, protocol="tcp://", **common
            )
        client = Client(cluster, set_as_default=False, **_client_kwargs(safe))
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


def _client_kwargs(safe: bool) -> dict[str, Any]:
    return {"deserializers": list(SAFE_DESERIALIZERS)} if safe else {}


def refuses_pickle(client: Any) -> bool:
    """True when ``client`` was created with deserializers that exclude pickle."""
    deserializers = getattr(client, "_deserializers", None)
    return deserializers is not None and "pickle" not in deserializers


def _seconds(timeout: float | str | None) -> float:
    import dask
    from dask.utils import parse_timedelta

    if timeout is None:
        timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        seconds = parse_timedelta(timeout, default="seconds")
    except (ValueError, KeyError, TypeError):
        seconds = None
    if seconds is None or seconds <= 0:
        msg = (
            f"timeout must be a positive number of seconds or a string like '5s', not {timeout!r}"
        )
        raise RunnerError(msg)
    return float(seconds)


def _address_from_file(path: str) -> str:
    try:
        with open(path) as f:
            info = json.load(f)
    except FileNotFoundError:
        msg = (
            f"scheduler file {path!r} does not exist; start the scheduler with "
            f"`dask scheduler --scheduler-file {path}` or check the path"
        )
        raise RunnerError(msg) from None
    except (OSError, ValueError) as exc:
        msg = f"cannot read scheduler file {path!r}: {exc}"
        raise RunnerError(msg) from None
    address = info.get("address") if isinstance(info, dict) else None
    if not isinstance(address, str):
        msg = (
            f"scheduler file {path!r} has no 'address'; it should be the JSON file written by "
            "`dask scheduler --scheduler-file PATH`"
        )
        raise RunnerError(msg)
    return address


def _normalize_address(scheduler: str) -> str | None:
    """``tcp://host:port`` for an address, None when ``scheduler`` is not one."""
    if scheduler.startswith(_SCHEMES):
        return scheduler
    if _HOST_PORT.match(scheduler):
        return "tcp://" + scheduler
    return None


def _connection_args(address: str, security: Any) -> dict[str, Any]:
    from distributed.security import Security

    sec = security if security is not None else Security()
    args = sec.get_connection_args("client")
    if address.startswith(("tls://", "wss://")) and args.get("ssl_context") is None:
        msg = (
            f"{address!r} is a TLS address but no TLS settings were given; pass "
            "security=distributed.security.Security(tls_ca_file=..., tls_client_cert=..., "
            "tls_client_key=..., require_encryption=True), or set the dask config "
            "distributed.comm.tls.{ca-file,client.cert,client.key}"
        )
        raise RunnerError(msg)
    return args


#: Seconds a refused connection is retried (a scheduler restarting on the same port)
#: before the run fails; a refusal is otherwise definitive, unlike a slow network.
REFUSED_GRACE = 2.0


def _refusal(address: str, timeout: float) -> OSError | None:
    """The error when nothing listens at a tcp:// or tls:// address (or its host has no
    address), else None.

    A plain TCP connect answers that at once, where dask's ``connect`` retries every
    error until its timeout (30 s by default). Anything else (a slow or filtered network)
    is left to dask.
    """
    import socket
    import time

    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return None
    host, port = parse_host_port(location)
    deadline = time.monotonic() + min(REFUSED_GRACE, timeout)
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
                return None
        except ConnectionRefusedError as exc:
            if time.monotonic() >= deadline:
                return exc
            time.sleep(0.2)
        except socket.gaierror as exc:
            return exc
        except OSError:  # timed out, unreachable: dask's connect decides, with its timeout
            return None


def _probe(address: str, connection_args: dict[str, Any], timeout: float) -> str:
    """Connect to ``address`` once and ask what it is; return its type (``"Scheduler"``).

    Runs in a private event loop thread and reads the answer as msgpack only (never
    pickle). Failing here, before a ``Client`` exists, avoids a half-built client whose
    finalizer stalls and logs at interpreter exit.
    """
    import asyncio

    from distributed.comm import connect

    async def attempt() -> str:
        comm = await connect(address, timeout=timeout, **connection_args)
        try:
            await comm.write({"op": "identity", "reply": True})
            answer = await comm.read(deserializers=("msgpack",))
        finally:
            comm.abort()
        kind = answer.get("type") if isinstance(answer, dict) else None
        return str(kind or "unknown server")

    outcome: list[Any] = []

    def target() -> None:
        try:  # the handshake and the answer have no timeout of their own
            outcome.append(asyncio.run(asyncio.wait_for(attempt(), 2 * timeout)))
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            text = f"connected, but no dask handshake within {2 * timeout:g} s"
            outcome.append(TimeoutError(f"{text} (is it a dask scheduler's port?)"))
        except BaseException as exc:  # re-raised in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=target, name="ensembles-connect", daemon=True)
    thread.start()
    thread.join(2 * timeout + 10.0)
    if not outcome:  # pragma: no cover - connect() and the read honour their timeouts
        msg = f"timed out after {timeout} s"
        raise TimeoutError(msg)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return str(outcome[0])


def _connect(address: str, security: Any, timeout: float, safe: bool, where: str) -> Any:
    from distributed import Client

    args = _connection_args(address, security)
    refused = _refusal(address, timeout)
    if refused is not None:
        import socket

        what = (
            "its host name is unknown"
            if isinstance(refused, socket.gaierror)
            else "nothing accepts connections there"
        )
        msg = (
            f"cannot connect to the dask scheduler at {where!r}: {what} ({refused}). Check "
            "the address and port, and that `dask scheduler` is running"
        )
        raise RunnerError(msg)
    try:
        kind = "Scheduler" if address.startswith("inproc://") else _probe(address, args, timeout)
    except (OSError, TimeoutError) as exc:
        hint = (
            "TLS certificates (security=) match the cluster's"
            if address.startswith(("tls://", "wss://"))
            else "the cluster does not require TLS (a tls:// cluster refuses tcp:// clients)"
        )
        msg = (
            f"cannot connect to the dask scheduler at {where!r}: {exc}. Check the address, "
            f"that `dask scheduler` is running and reachable from here, and that {hint}. "
            f"Connecting gives up after {timeout:g} s (timeout=, or the dask config "
            "distributed.comm.timeouts.connect)"
        )
        raise RunnerError(msg) from None
    if kind != "Scheduler":
        msg = (
            f"{where!r} is a dask {kind}, not a scheduler; pass the scheduler's address "
            "(the one `dask scheduler` prints, e.g. tcp://host:8786) or its scheduler file"
        )
        raise RunnerError(msg)
    try:
        return Client(
            address,
            security=security,
            timeout=timeout,
            set_as_default=False,
            **_client_kwargs(safe),
        )
    except (OSError, TimeoutError) as exc:  # pragma: no cover - reachable a moment ago
        msg = f"cannot connect to the dask scheduler at {where!r}: {exc}"
        raise RunnerError(msg) from None


def _close_lost(client: Any) -> None:
    """Close a client whose scheduler is gone, without the traceback distributed logs.

    Closing cancels the client's attempts to reconnect, which distributed logs as an
    error with a ``CommClosedError``/``CancelledError`` traceback; the caller raises a
    :class:`RunnerError` that says what happened instead.
    """
    client_logger = logging.getLogger("distributed.client")
    level = client_logger.level
    client_logger.setLevel(logging.CRITICAL + 1)
    try:
        with contextlib.suppress(Exception):
            client.close(timeout=10)
    finally:
        client_logger.setLevel(level)


def _check_safe(client: Any, safe: bool) -> None:
    if safe and not refuses_pickle(client):
        msg = (
            f"safe=True but the client {client!r} deserializes pickle; create it with "
            "distributed.Client(address, "
            "deserializers=list(ensembles.execution.clients.SAFE_DESERIALIZERS)) "
            "or pass the address instead of the client"
        )
        raise RunnerError(msg)


@contextlib.contextmanager
def resolve_client(
    scheduler: Any = None,
    *,
    scheduler_file: str | os.PathLike[str] | None = None,
    processes: bool = True,
    n_workers: int | None = None,
    security: Any = None,
    timeout: float | str | None = None,
    safe: bool = False,
) -> Iterator[Any]:
    """Yield the dask client a run uses, closing it afterwards only if we opened it.

    In order: ``scheduler`` (a client, a cluster object, an address or a scheduler file),
    ``scheduler_file``, the active client (``distributed.get_client()``), else the
    embedded default (:func:`default_client`).

    Parameters
    ----------
    scheduler : distributed.Client, Cluster, str, path-like or None
        A client (used as is); a cluster object such as ``LocalCluster`` or a
        dask-jobqueue cluster; an address such as ``"tcp://10.0.0.5:8786"``,
        ``"tls://host:8786"`` or ``"host:8786"``; or the path of a scheduler file.
    scheduler_file : str or path-like, optional
        A scheduler file written by ``dask scheduler --scheduler-file``.
    processes, n_workers
        Shape of the embedded default (see :func:`default_client`).
    security : distributed.Security, optional
        TLS settings for ``tls://`` addresses; default: the dask config
        (``distributed.comm.tls.*``).
    timeout : float or str, optional
        Seconds to wait for the scheduler before giving up with :class:`RunnerError`;
        default: the dask config ``distributed.comm.timeouts.connect``.
    safe : bool
        Only deserialize msgpack data from the cluster (``deserializers=["msgpack"]``):
        :func:`run_tasks` then ships results as plain data that ensembles decodes itself,
        never pickles. A client passed in (or active) must have been created that way.

    Raises
    ------
    RunnerError
        The scheduler is unreachable, refuses the connection (TLS), the scheduler file
        is missing or invalid, or ``scheduler`` is of the wrong kind.

    Examples
    --------
    >>> with resolve_client("tcp://127.0.0.1:8786", timeout=5) as client:  # doctest: +SKIP
    ...     print(worker_count(client))
    """
    from distributed import Client

    if isinstance(scheduler, Client):
        _check_safe(scheduler, safe)
        yield scheduler
        return
    if scheduler is not None and hasattr(scheduler, "scheduler_address"):  # a Cluster
        seconds = _seconds(timeout)
        client = Client(scheduler, set_as_default=False, timeout=seconds, **_client_kwargs(safe))
        try:
            yield client
        finally:
            client.close()
        return
    address, where = _address_of(scheduler, scheduler_file)
    if address is not None:
        with _connected(address, where, security, _seconds(timeout), safe) as client:
            yield client
        return
    from distributed import get_client

    try:
        active: Any = get_client()
    except ValueError:  # no client in this session
        active = None
    if active is not None:
        _check_safe(active, safe)
        yield active
        return
    yield default_client(processes, n_workers, safe=safe)


def _address_of(scheduler: Any, scheduler_file: Any) -> tuple[Any, Any]:
    """The scheduler address that ``scheduler``/``scheduler_file`` name, and how to name it
    in messages; (None, None) when they name none (use the active or default client)."""
    if scheduler is not None and scheduler_file is not None:
        msg = (
            f"pass either scheduler= or scheduler_file=, not both (got {scheduler!r} and "
            f"{scheduler_file!r})"
        )
        raise RunnerError(msg)
    address = None
    if isinstance(scheduler, os.PathLike):
        scheduler_file = os.fspath(scheduler)
    elif isinstance(scheduler, str):
        address = _normalize_address(scheduler)
        if address is None:
            if not (os.path.isfile(scheduler) or scheduler.endswith(".json")):
                msg = (
                    f"scheduler {scheduler!r} is neither an address like 'tcp://host:8786' "
                    "(or 'tls://host:8786', 'host:8786') nor an existing scheduler file"
                )
                raise RunnerError(msg)
            scheduler_file = scheduler
    elif scheduler is not None:
        msg = (
            f"scheduler must be a distributed.Client, a cluster object, an address like "
            f"'tcp://host:8786' or a scheduler file path, got {scheduler!r}"
        )
        raise RunnerError(msg)
    if scheduler_file is not None:
        scheduler_file = os.fspath(scheduler_file)
        return _address_from_file(scheduler_file), scheduler_file
    return address, address


@contextlib.contextmanager
def _connected(
    address: str, where: str, security: Any, seconds: float, safe: bool
) -> Iterator[Any]:
    """A client of the scheduler at ``address``, closed afterwards; losing the scheduler
    during the run becomes one clear :class:`RunnerError`."""
    client = _connect(address, security, seconds, safe, where)
    lost = False
    try:
        yield client
    except Exception as exc:
        if not _connection_lost(client, exc):
            raise
        lost = True
        msg = (  # what failed next (a closed comm, a cancelled future) is --debug's
            f"lost the connection to the dask scheduler at {where!r} during the run. A "
            "run into a store keeps every member that finished: resume it when the "
            "scheduler is back (`ensembles resume OUT.zarr`)"
        )
        raise RunnerError(msg) from exc
    finally:
        if lost:
            _close_lost(client)
        else:
            client.close()


def _connection_lost(client: Any, exc: BaseException) -> bool:
    """True when ``exc`` came from losing the scheduler (the client notices within seconds).

    A closed comm can surface in the run before the client's own status changes, so a
    comm error waits a moment for the client to tell.
    """
    import time

    from distributed.comm.core import CommClosedError

    if client.status != "running":
        return True
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    if not any(isinstance(e, (CommClosedError, ConnectionError)) for e in chain):
        return False
    deadline = time.monotonic() + 5.0
    while client.status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    return client.status != "running"


def worker_count(client: Any) -> int:
    """Total threads across the client's workers (at least 1)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed
        info = client.scheduler_info()
    return max(sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()), 1)
