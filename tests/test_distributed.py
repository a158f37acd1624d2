"""Real clusters: ``dask scheduler`` and ``dask worker`` subprocesses on 127.0.0.1.

Runs submitted by address through the Python API and the CLI, a worker SIGKILLed mid-run,
TLS end to end (and a plain-tcp client refused), safe mode, determinism across cluster
shapes, and simulations whose module the workers cannot import.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import ensembles as ens
from ensembles.errors import RunnerError
from ensembles.execution.progress import dashboard_link, serves_dashboard
from ensembles.execution.submit import SAFE_DESERIALIZERS, Progress, default_client, resolve_client

from . import sims
from ._cluster import REPO, START_TIMEOUT, RealCluster, real_cluster
from ._dashboard import PLOTS, plot_list_server

pytestmark = pytest.mark.distributed


# -- real clusters ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[RealCluster]:
    """A plain tcp cluster: one scheduler, two single-threaded worker processes."""
    with real_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def remote(cluster) -> Iterator:
    """A client of ``cluster`` with both workers up (a test may have killed one)."""
    with cluster.client() as c:
        c.wait_for_workers(2, timeout=START_TIMEOUT)
        yield c


@pytest.fixture(scope="module")
def tls_certs(tmp_path_factory) -> dict[str, str]:
    """A self-signed certificate and key (``Security.temporary()``) written to files."""
    pytest.importorskip("cryptography")
    from distributed.security import Security

    sec = Security.temporary()
    tmp = tmp_path_factory.mktemp("certs")
    files = {
        "ca": sec.tls_ca_file,
        "cert": sec.tls_scheduler_cert,
        "key": sec.tls_scheduler_key,
    }
    paths = {}
    for name, text in files.items():
        path = tmp / f"{name}.pem"
        path.write_text(text)
        path.chmod(0o600)
        paths[name] = str(path)
    return paths


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, tls_certs) -> Iterator[RealCluster]:
    from distributed.security import Security

    security = Security(
        tls_ca_file=tls_certs["ca"],
        tls_client_cert=tls_certs["cert"],
        tls_client_key=tls_certs["key"],
        require_encryption=True,
    )
    with real_cluster(
        tmp_path_factory.mktemp("tls"), n_workers=1, certs=tls_certs, security=security
    ) as c:
        yield c


# -- helpers ---------------------------------------------------------------------------


def walk_ensemble(simulation=sims.walk, **kwargs) -> ens.Ensemble:
    return ens.Ensemble(
        simulation, ens.Grid(drift=[0.0, 0.5, 1.0, 2.0]), seeds=5, root_seed=21, **kwargs
    )


@pytest.fixture(scope="module")
def reference() -> xr.Dataset:
    """The walk ensemble computed in this process, with no cluster at all."""
    return walk_ensemble().to_dataset().compute(scheduler="synchronous")


def assert_same_results(got: xr.Dataset, ref: xr.Dataset) -> None:
    """Equal outputs, status and member seeds (not timings or provenance)."""
    assert set(got.data_vars) == set(ref.data_vars)
    for name in [*ref.data_vars, "status", "member_seed"]:
        xr.testing.assert_equal(
            got[name].reset_coords(drop=True).load(), ref[name].reset_coords(drop=True)
        )


# -- submitting by address ---------------------------------------------------------------


def test_to_zarr_by_address_equals_local_run(cluster, remote, reference, tmp_path):
    ds = walk_ensemble().to_zarr(
        tmp_path / "remote.zarr", scheduler=cluster.address, progress=False
    )
    assert_same_results(ds, reference)
    reopened = ens.open_ensemble(tmp_path / "remote.zarr")
    assert_same_results(reopened, reference)
    # the store was written by the worker processes, not by this one
    pids = set(remote.run(os.getpid).values())
    assert os.getpid() not in pids


def test_compute_by_scheduler_file(cluster, remote, reference):
    ds = walk_ensemble().compute(scheduler=cluster.scheduler_file, progress=False)
    assert_same_results(ds, reference)


def _write_spec(path: Path) -> Path:
    path.write_text(
        "[simulation]\n"
        'function = "tests.sims:walk"\n'
        "[design.grid]\n"
        "drift = [0.0, 0.5, 1.0, 2.0]\n"
        "[run]\n"
        "seeds = 5\n"
        "root_seed = 21\n"
        "batch_size = 3\n"
    )
    return path


@pytest.mark.parametrize("how", ["address", "scheduler-file"])
def test_cli_run_by_address(cluster, remote, reference, tmp_path, how):
    spec = _write_spec(tmp_path / "spec.toml")
    out = tmp_path / "cli.zarr"
    where = (
        ["--scheduler", cluster.address]
        if how == "address"
        else ["--scheduler-file", cluster.scheduler_file]
    )
    result = subprocess.run(
        [sys.executable, "-m", "ensembles.cli", "run", str(spec), "-o", str(out), "-q", *where],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"\b20\b.*members", result.stdout), result.stdout
    assert_same_results(ens.open_ensemble(out), reference)


def _free_port() -> int:
    """A port of 127.0.0.1 on which nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_reports_an_unreachable_scheduler(tmp_path):
    """A refused port fails at once: dask's connect alone retries until its timeout.

    The connect timeout here is 600 s, so before refusals were recognised this test ran
    into its 120 s subprocess timeout; now the error comes after about 2 s of retries.
    """
    spec = _write_spec(tmp_path / "spec.toml")
    port = _free_port()
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "600s"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ensembles.cli",
            "run",
            str(spec),
            "-o",
            str(tmp_path / "never.zarr"),
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    err = result.stderr
    assert err.startswith(
        f"ensembles: error: cannot connect to the dask scheduler at 'tcp://127.0.0.1:{port}': "
        "nothing accepts connections there ([Errno 111] Connection refused)"
    )
    assert err.count("\n") == 1  # one line: no traceback, no log records after it
    assert not (tmp_path / "never.zarr").exists()


def test_refused_port_fails_within_seconds_whatever_the_timeout():
    port = _free_port()
    start = time.monotonic()
    with (
        pytest.raises(RunnerError, match="nothing accepts connections there"),
        resolve_client(f"tcp://127.0.0.1:{port}", timeout=600),
    ):
        pass  # pragma: no cover - never connected
    assert time.monotonic() - start < 60  # loose: the retries take about 2 s


def test_a_worker_address_is_not_a_scheduler(cluster, remote, tmp_path):
    """Pointing at a worker: one clear line, and no finalizer traceback at exit."""
    spec = _write_spec(tmp_path / "spec.toml")
    worker = next(iter(remote.scheduler_info()["workers"]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ensembles.cli",
            "run",
            str(spec),
            "-o",
            str(tmp_path / "w.zarr"),
            "-q",
            "--scheduler",
            worker,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"ensembles: error: {worker!r} is a dask Worker, not a scheduler; pass the "
        "scheduler's address (the one `dask scheduler` prints, e.g. tcp://host:8786) or its "
        "scheduler file\n"
    )


def test_scheduler_lost_mid_run_gives_one_clear_line(tmp_path):
    """The scheduler dies mid-run: a one-line error naming it, nothing after it.

    Before, the run ended with "'NoneType' object has no attribute 'block_id'", and the
    interpreter's exit could add CommClosedError tracebacks and finalizer timeouts.
    """
    spec = tmp_path / "slow.toml"
    spec.write_text(
        '[simulation]\nfunction = "tests.sims:slow_walk"\n[design.grid]\n'
        "drift = [0.0, 0.5, 1.0, 2.0]\n[fixed]\ndelay = 0.5\n"
        "[run]\nseeds = 10\nroot_seed = 1\nbatch_size = 1\n"
    )
    out = tmp_path / "lost.zarr"
    with real_cluster(tmp_path / "doomed") as doomed:
        env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "10s"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ensembles.cli",
                "run",
                str(spec),
                "-o",
                str(out),
                "-q",
                "--scheduler",
                doomed.address,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while _ok_count(out) < 1 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _ok_count(out) >= 1, "the run did not start"
            doomed.procs[0].kill()  # the scheduler, SIGKILL
            _, err = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:  # pragma: no cover - only when the test fails
                proc.kill()
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith(
        f"ensembles: error: lost the connection to the dask scheduler at {doomed.address!r}"
    )
    assert "ensembles resume" in lines[-1]
    assert "Traceback" not in err, err
    assert "CommClosedError" not in err
    ds = ens.open_ensemble(out)  # what finished is in the store
    assert int((ds["status"] == 1).sum()) >= 1


# -- what listens where, and the dashboard link -------------------------------------------


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket of ``pids``."""
    import psutil

    return sorted(
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    )


def _process_tree(pid: int) -> set[int]:
    import psutil

    root = psutil.Process(pid)
    return {pid, *(child.pid for child in root.children(recursive=True))}


def test_test_clusters_listen_on_127_0_0_1_only(cluster, remote):
    """Scheduler, nannies, workers and every HTTP server: 127.0.0.1, never 0.0.0.0."""
    pytest.importorskip("psutil")
    pids = set().union(*(_process_tree(p.pid) for p in cluster.procs))
    sockets = _listening(pids)
    assert len(sockets) >= 2 + 2 + 2 * 2  # scheduler + http, 2 nannies, 2 workers + http
    assert {ip for _, ip, _ in sockets} == {"127.0.0.1"}, sockets


def test_embedded_cluster_listens_on_127_0_0_1_only(tmp_path):
    pytest.importorskip("psutil")
    script = (
        "import json, os, psutil\n"
        "from ensembles.execution.clients import default_client, close_default_clients\n"
        "if __name__ == '__main__':\n"
        "    client = default_client(processes=True, n_workers=2)\n"
        "    client.wait_for_workers(2, timeout=120)\n"
        "    me = psutil.Process()\n"
        "    pids = {me.pid, *(p.pid for p in me.children(recursive=True))}\n"
        "    print(json.dumps([(c.pid, c.laddr.ip, c.laddr.port)\n"
        "                      for c in psutil.net_connections(kind='inet')\n"
        "                      if c.status == psutil.CONN_LISTEN and c.pid in pids]))\n"
        "    close_default_clients()\n"
    )
    path = tmp_path / "listen.py"
    path.write_text(script)
    result = subprocess.run(
        [sys.executable, str(path)],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    sockets = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(sockets) >= 2 + 2 * 2  # scheduler + http, 2 workers + http (+ nannies)
    assert {ip for _, ip, _ in sockets} == {"127.0.0.1"}, sockets


def test_no_dashboard_link_for_a_scheduler_without_a_dashboard(cluster, remote, tmp_path, capsys):
    """The HTTP server runs without a dashboard; its /status is no dashboard to link to."""
    has_bokeh = importlib.util.find_spec("bokeh") is not None
    assert "dashboard" in remote.scheduler_info()["services"]  # the HTTP server
    walk_ensemble().compute(scheduler=remote, progress=True)
    err = capsys.readouterr().err
    assert err.count("dask dashboard: http://127.0.0.1:") == (1 if has_bokeh else 0)
    walk_ensemble().compute(scheduler=remote, progress=False)
    assert "dask dashboard" not in capsys.readouterr().err  # quiet means quiet
    with (
        real_cluster(tmp_path / "plain", n_workers=1, dashboard=False) as plain,
        plain.client() as client,
    ):
        assert "dashboard" in client.scheduler_info()["services"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(client.dashboard_link, timeout=30)
        assert missing.value.code == 404  # what users were sent to
        missing.value.close()
        assert dashboard_link(client) is None
        Progress(3, client=client).close()
    assert "dask dashboard" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "served"),
    [(PLOTS, True), (b"{}", False), (None, False)],
    ids=["dashboard", "no-bokeh", "no-dashboard"],
)
def test_serves_dashboard_reads_the_plot_list(body, served):
    with plot_list_server(body) as link:
        assert serves_dashboard(link) is served


# -- determinism -------------------------------------------------------------------------


def test_same_results_on_any_cluster_shape(cluster, remote, client, reference):
    """1 or 2 workers, threads or processes, embedded or remote: identical members."""
    e = walk_ensemble()
    runs = {
        "remote-2-processes": e.compute(scheduler=cluster.address, progress=False),
        "local-cluster-2-processes": e.compute(scheduler=client, progress=False),
        "embedded-1-process": e.compute(workers=1, progress=False),
        "embedded-2-threads": e.compute(
            scheduler=default_client(processes=False, n_workers=2), progress=False
        ),
        "remote-batch-1": e.compute(scheduler=remote, progress=False, batch_size=1),
    }
    for name, ds in runs.items():
        try:
            assert_same_results(ds, reference)
        except AssertionError as exc:  # pragma: no cover - name the shape that differs
            raise AssertionError(f"{name}: {exc}") from None


# -- shipping simulations to workers -----------------------------------------------------


def _hidden_module(tmp_path: Path, monkeypatch) -> object:
    """A module importable here (tmp_path on sys.path) but not on the workers."""
    name = f"hidden_sim_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import numpy as np\n\n\n"
        "def sim(*, rng, drift, n=5):\n"
        '    return {"x": np.cumsum(drift + rng.standard_normal(n)), "final": float(drift)}\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    monkeypatch.setitem(sys.modules, name, module)
    return module


def test_unimportable_simulation_says_how_to_fix(
    cluster, remote, reference, tmp_path, monkeypatch
):
    import cloudpickle

    module = _hidden_module(tmp_path, monkeypatch)
    e = walk_ensemble(module.sim)
    with pytest.raises(RunnerError, match=rf"No module named '{module.__name__}'") as info:
        e.compute(scheduler=remote, progress=False)
    assert "register_pickle_by_value" in str(info.value)
    assert "upload_file" in str(info.value)
    # the fix it suggests: send the module by value
    cloudpickle.register_pickle_by_value(module)
    try:
        ds = e.compute(scheduler=remote, progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert_same_results(ds, reference)


def test_upload_file_ships_a_local_module(cluster, remote, reference, tmp_path, monkeypatch):
    module = _hidden_module(tmp_path, monkeypatch)
    remote.upload_file(module.__file__)
    ds = walk_ensemble(module.sim).compute(scheduler=remote, progress=False)
    assert_same_results(ds, reference)


# -- safe mode ---------------------------------------------------------------------------


def test_safe_mode_on_a_remote_cluster(cluster, remote, reference, tmp_path):
    with resolve_client(cluster.address, safe=True, timeout=10) as safe:
        assert list(safe._deserializers) == list(SAFE_DESERIALIZERS)
        logging.getLogger("distributed.protocol.core").disabled = True
        try:
            with pytest.raises(TypeError, match="only able to deserialize data with"):
                safe.submit(np.arange, 3).result()  # pickled results are refused
        finally:
            logging.getLogger("distributed.protocol.core").disabled = False
        assert_same_results(walk_ensemble().compute(scheduler=safe, progress=False), reference)
        stored = walk_ensemble().to_zarr(tmp_path / "safe.zarr", scheduler=safe, progress=False)
        assert_same_results(stored, reference)


# -- TLS ---------------------------------------------------------------------------------


def test_tls_run_end_to_end(tls_cluster, tls_certs, reference, tmp_path):
    assert tls_cluster.address.startswith("tls://127.0.0.1:")
    with resolve_client(tls_cluster.address, security=tls_cluster.security, timeout=10) as c:
        ds = walk_ensemble().compute(scheduler=c, progress=False)
    assert_same_results(ds, reference)
    # by address alone, with the certificates in the dask config (as the CLI would)
    config = {
        "distributed.comm.tls.ca-file": tls_certs["ca"],
        "distributed.comm.tls.client.cert": tls_certs["cert"],
        "distributed.comm.tls.client.key": tls_certs["key"],
        "distributed.comm.require-encryption": True,
    }
    with dask.config.set(config):
        stored = walk_ensemble().to_zarr(
            tmp_path / "tls.zarr", scheduler=tls_cluster.address, progress=False
        )
    assert_same_results(stored, reference)


def test_plain_tcp_client_is_refused_by_a_tls_cluster(tls_cluster):
    port = tls_cluster.address.rsplit(":", 1)[1]
    with (
        pytest.raises(RunnerError, match="cannot connect to the dask scheduler"),
        resolve_client(f"tcp://127.0.0.1:{port}", timeout=1),
    ):
        pass  # pragma: no cover
    with (
        pytest.raises(RunnerError, match="no TLS settings were given"),
        resolve_client(tls_cluster.address, timeout=1),
    ):
        pass  # pragma: no cover


def test_untrusted_client_certificate_is_refused(tls_cluster):
    from distributed.security import Security

    stranger = Security.temporary()  # a valid certificate, from a CA the cluster does not know
    with (
        pytest.raises(RunnerError, match="TLS certificates"),
        resolve_client(tls_cluster.address, security=stranger, timeout=1),
    ):
        pass  # pragma: no cover


# -- worker loss -------------------------------------------------------------------------


def _ok_count(path: Path) -> int:
    try:
        status = zarr.open_array(str(path / "status"), mode="r")[...]
    except Exception:  # not created yet, or a chunk being written
        return -1
    return int(np.count_nonzero(status == 1))


def test_worker_killed_mid_run_loses_and_duplicates_nothing(cluster, remote, tmp_path):
    design = ens.Grid(drift=np.linspace(0.0, 3.0, 12))
    kw = {"seeds": 5, "root_seed": 8, "batch_size": 2}
    slow = ens.Ensemble(sims.slow_walk, design, fixed={"delay": 0.03}, **kw)
    undisturbed = ens.Ensemble(sims.walk, design, **kw).to_zarr(
        tmp_path / "undisturbed.zarr", scheduler=remote, progress=False
    )
    victim = sorted(remote.run(os.getpid).values())[0]
    path = tmp_path / "killed.zarr"
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["ds"] = slow.to_zarr(path, scheduler=cluster.address, progress=False)
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while _ok_count(path) < 6 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    done_at_kill = _ok_count(path)
    os.kill(victim, signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    assert 0 < done_at_kill < len(slow), "the kill did not land mid-run"
    ds = outcome["ds"]
    assert (ds["status"].values == 1).all()
    counts = json.loads(ds.attrs["ensembles_counts"])
    assert (counts["ok"], counts.get("failed", 0)) == (len(slow), 0)  # each counted once
    # value for value, the store of an undisturbed run (slow_walk draws what walk draws)
    for name in ["x", "final", "status", "member_seed"]:
        np.testing.assert_array_equal(ds[name].values, undisturbed[name].values)
