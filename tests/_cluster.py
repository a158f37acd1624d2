"""Real dask clusters: ``dask scheduler`` and ``dask worker`` subprocesses on 127.0.0.1.

Every socket they open listens on 127.0.0.1 only (``--host``, and ``--dashboard-address``
for the HTTP servers, which run even with ``--no-dashboard``); a test checks it.

Shared by ``tests/test_distributed.py`` and ``benchmarks/bench_scale.py`` (which puts the
repository root on ``sys.path`` to import it as ``tests._cluster``). The processes run in
their own sessions, so stopping a cluster reaches the workers its nannies started; their
standard error goes to ``cluster.log`` in the cluster's directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "REPO",
    "START_TIMEOUT",
    "ClusterStartError",
    "RealCluster",
    "real_cluster",
    "start_cluster",
    "stop_cluster",
    "tls_args",
]

#: The repository root: the processes' working directory and first ``PYTHONPATH`` entry.
REPO = Path(__file__).resolve().parents[1]

#: Seconds to wait for the scheduler (and, in :func:`real_cluster`, the workers) to start.
START_TIMEOUT = 60.0


class ClusterStartError(RuntimeError):
    """The dask scheduler did not start; the message ends with the tail of its log."""


@dataclass
class RealCluster:
    """A scheduler and a ``dask worker`` (with nannies) running as subprocesses.

    Attributes
    ----------
    address : str
        The scheduler's address, e.g. ``"tcp://127.0.0.1:40123"``.
    scheduler_file : str
        The scheduler file it wrote.
    security : distributed.Security, optional
        What clients need to connect (TLS clusters).
    procs : list of subprocess.Popen
        The scheduler, then the worker process.
    log : file, optional
        The open ``cluster.log``, closed by :func:`stop_cluster`.
    """

    address: str
    scheduler_file: str
    security: Any = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    log: IO[bytes] | None = None

    def client(self, **kwargs: Any) -> Any:
        """A new ``distributed.Client`` of this cluster (not set as the default)."""
        from distributed import Client

        return Client(
            self.address, security=self.security, set_as_default=False, timeout=30, **kwargs
        )


def tls_args(certs: dict[str, str] | None) -> list[str]:
    """Command-line options giving the processes a CA, certificate and key (or none)."""
    if certs is None:
        return []
    return [
        "--tls-ca-file",
        certs["ca"],
        "--tls-cert",
        certs["cert"],
        "--tls-key",
        certs["key"],
    ]


def start_cluster(
    tmp: Path,
    *,
    n_workers: int = 2,
    certs: dict[str, str] | None = None,
    security: Any = None,
    dashboard: bool = True,
) -> RealCluster:
    """Start ``dask scheduler`` (port 0: the OS picks a free one) and ``dask worker``.

    Returns once the scheduler is up; the workers may still be connecting (see
    :func:`real_cluster`, or wait with ``client.wait_for_workers``).

    Parameters
    ----------
    tmp : Path
        Directory for the scheduler file, ``cluster.log`` and the workers' files.
    n_workers : int
        Worker processes, one thread each.
    certs : dict, optional
        ``{"ca", "cert", "key"}`` file paths: serve TLS instead of plain tcp.
    security : distributed.Security, optional
        Stored on the cluster for :meth:`RealCluster.client`.
    dashboard : bool
        Serve the scheduler's dashboard (``--no-dashboard`` otherwise); its HTTP server
        listens on a free port of 127.0.0.1 either way.

    Returns
    -------
    RealCluster
        Stop it with :func:`stop_cluster`.

    Raises
    ------
    ClusterStartError
        If the scheduler exits or writes no scheduler file within :data:`START_TIMEOUT`.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    scheduler_file = tmp / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)  # a stale one would name a dead scheduler
    pythonpath = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    log = open(tmp / "cluster.log", "ab")  # noqa: SIM115 - closed by stop_cluster
    common: dict[str, Any] = {
        "cwd": REPO,
        "env": {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)},
        "stdout": subprocess.DEVNULL,
        "stderr": log,
        "start_new_session": True,  # its own process group: teardown reaches the nannies' workers
    }
    cluster = RealCluster("", str(scheduler_file), security, [], log)
    try:
        cluster.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--protocol",
                    "tls" if certs else "tcp",
                    # its HTTP server runs even with --no-dashboard, on 0.0.0.0:8787 unless
                    # told otherwise (see docs/clusters.md, "A private cluster")
                    "--dashboard-address",
                    "127.0.0.1:0",
                    *([] if dashboard else ["--no-dashboard"]),
                    "--scheduler-file",
                    str(scheduler_file),
                    *tls_args(certs),
                ],
                **common,
            )
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            if cluster.procs[0].poll() is not None or time.monotonic() > deadline:
                tail = (tmp / "cluster.log").read_text(errors="replace")[-3000:]
                msg = f"dask scheduler did not start:\n{tail}"
                raise ClusterStartError(msg)
            time.sleep(0.05)
        cluster.address = json.loads(scheduler_file.read_text())["address"]
        cluster.procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    cluster.address,
                    "--host",
                    "127.0.0.1",
                    "--nworkers",
                    str(n_workers),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--dashboard-address",  # the workers' HTTP servers: 0.0.0.0 by default
                    "127.0.0.1:0",
                    "--death-timeout",
                    "60",
                    "--local-directory",
                    str(tmp / "workers"),
                    *tls_args(certs),
                ],
                **common,
            )
        )
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: RealCluster) -> None:
    """SIGTERM each process group the cluster started, then SIGKILL what is left."""
    procs = cluster.procs
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in reversed(procs):
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    if cluster.log is not None:
        cluster.log.close()


@contextlib.contextmanager
def real_cluster(
    tmp: Path,
    *,
    n_workers: int = 2,
    certs: dict[str, str] | None = None,
    security: Any = None,
    dashboard: bool = True,
) -> Iterator[RealCluster]:
    """A cluster from :func:`start_cluster`, with every worker connected; stopped on exit.

    Parameters are those of :func:`start_cluster`.
    """
    cluster = start_cluster(
        tmp, n_workers=n_workers, certs=certs, security=security, dashboard=dashboard
    )
    try:
        with cluster.client() as c:
            c.wait_for_workers(n_workers, timeout=START_TIMEOUT)
        yield cluster
    finally:
        stop_cluster(cluster)
