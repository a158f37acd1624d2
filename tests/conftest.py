"""Shared fixtures: a counting dask scheduler, a real distributed cluster, a state dir."""

from __future__ import annotations

import os

import dask
import pytest


@pytest.fixture(scope="session", autouse=True)
def _state_dir(tmp_path_factory):
    """The per-user state of ensembles (specs it wrote) in a folder of the test session.

    Set in the environment, so subprocesses started by tests use it too.
    """
    from ensembles.store.trust import STATE_ENV

    old = os.environ.get(STATE_ENV)
    os.environ[STATE_ENV] = str(tmp_path_factory.mktemp("ensembles-state"))
    yield os.environ[STATE_ENV]
    if old is None:
        os.environ.pop(STATE_ENV, None)
    else:
        os.environ[STATE_ENV] = old


class CountingScheduler:
    """A dask scheduler that counts how often it is asked to compute."""

    def __init__(self) -> None:
        self.computes = 0

    def __call__(self, dsk, keys, **kwargs):
        self.computes += 1
        return dask.get(dsk, keys, **kwargs)


@pytest.fixture
def counting_scheduler():
    sched = CountingScheduler()
    with dask.config.set(scheduler=sched):
        yield sched


@pytest.fixture(scope="session")
def client():
    """A real two-process LocalCluster on 127.0.0.1, shared by the session's tests."""
    from distributed import Client, LocalCluster

    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "600s"}),  # see fragile
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


@pytest.fixture(scope="session", autouse=True)
def _close_embedded_clusters():
    """Stop the embedded default clusters before pytest closes its output streams."""
    yield
    from ensembles.execution.submit import close_default_clients

    close_default_clients()
