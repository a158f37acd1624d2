"""One writer per store, with real processes racing: atomic lease, failing closed, fencing.

Racing processes (``tests/_racer.py``) import everything once, then run trial after
trial: each trial starts when the test creates a ``go`` file, so the racers start within
a millisecond of each other. Stores are real, locally and on S3 (moto's server on
127.0.0.1), and nothing of the lease or the filesystem is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import ensembles as ens
from ensembles.errors import StoreError
from ensembles.store.lease import LEASE_GROUP, TIMEOUT_ENV, Lease
from ensembles.store.zarr_store import EnsembleStore

from . import _racer, store_sims

ROOT = Path(__file__).resolve().parents[1]
LOST_RACE = re.compile(
    r"another process (is writing to|took the writer lease of)|a store already exists"
)


class Racers:
    """``n`` racing processes (see ``tests/_racer.py``), ready for trials."""

    def __init__(self, action, work, base, n, trials, options=None, env=None):
        self.work = Path(work)
        self.n = n
        cmd = [sys.executable, "-m", "tests._racer", action, str(work), str(base)]
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.procs = [
            subprocess.Popen(
                [*cmd, str(r), str(trials), json.dumps(options or {})],
                cwd=ROOT,
                env=full_env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for r in range(n)
        ]
        for proc in self.procs:
            ready, _, _ = select.select([proc.stdout], [], [], 600)
            assert ready, "a racer did not start"
            assert proc.stdout.readline().strip() == "ready", "a racer did not start"

    def start(self, i):
        (self.work / f"go-{i}").write_text("")

    def results(self, i, timeout=600):
        files = [self.work / f"result-{i}-{r}" for r in range(self.n)]
        deadline = time.monotonic() + timeout
        while not all(f.exists() for f in files):
            assert time.monotonic() < deadline, f"trial {i}: racers did not report"
            for f, proc in zip(files, self.procs, strict=True):
                assert proc.poll() is None or f.exists(), "a racer died"
            time.sleep(0.01)
        return [f.read_text() for f in files]

    def close(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()
            proc.stdout.close()


@pytest.fixture
def racers():
    started = []

    def start(*args, **kwargs):
        r = Racers(*args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def _members_run(log: Path) -> list[tuple[str, str]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [tuple(line.split()[1:]) for line in lines]


def _reference(tmp_path):
    return (
        _racer.logged_ensemble(str(tmp_path / "ref.log"))
        .to_dataset()
        .compute(scheduler="synchronous")
    )


def _digest_without_lease(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path)
        if rel.parts[0] == LEASE_GROUP:
            continue
        h.update(str(rel).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


# -- S3 on moto's server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "us-west-2"},
    }
    import s3fs

    s3fs.S3FileSystem(**options).mkdir("lease-test")
    yield options
    server.stop()


# -- the lease alone: exactly one holder ---------------------------------------------------


def test_exactly_one_of_four_racing_processes_takes_the_lease(tmp_path, racers):
    trials = 30
    group = racers("lease", tmp_path, tmp_path, n=4, trials=trials)
    for i in range(trials):
        group.start(i)
        results = group.results(i)
        assert results.count("won") == 1, results
        for r in results:
            assert r == "won" or LOST_RACE.search(r), r
        (tmp_path / f"done-{i}").write_text("")


def test_exactly_one_of_three_racing_processes_takes_the_lease_on_s3(tmp_path, racers, s3):
    trials = 20
    group = racers("lease", tmp_path, "s3://lease-test/lease", n=3, trials=trials, options=s3)
    for i in range(trials):
        group.start(i)
        results = group.results(i)
        assert results.count("won") == 1, results
        for r in results:
            assert r == "won" or LOST_RACE.search(r), r
        (tmp_path / f"done-{i}").write_text("")


# -- whole runs racing ---------------------------------------------------------------------


def _check_one_writer(results, log, ds, ref):
    """One run wrote, the other was refused; every member ran once; values are right."""
    assert results.count("ok") >= 1, results
    for r in results:
        assert r == "ok" or LOST_RACE.search(r), r
        assert "No such file" not in r
    ran = _members_run(log)
    assert sorted(ran) == sorted(set(ran)), "a member was run by two writers"
    assert len(ran) == 12
    np.testing.assert_array_equal(ds["y"].values, ref["y"].values)
    assert (ds["status"].values == 1).all()


def test_simultaneous_creates_admit_one_writer(tmp_path, racers):
    trials = 20
    ref = _reference(tmp_path)
    group = racers("create", tmp_path, tmp_path, n=2, trials=trials)
    for i in range(trials):
        group.start(i)
        results = group.results(i)
        assert results.count("ok") == 1, results  # "w-": the second can never also create
        ds = ens.open_ensemble(tmp_path / f"s-{i}.zarr")
        _check_one_writer(results, tmp_path / f"log-{i}", ds, ref)


def test_simultaneous_creates_admit_one_writer_on_s3(tmp_path, racers, s3):
    trials = 5  # 20 locally (above); over moto's S3 server each trial costs seconds
    ref = _reference(tmp_path)
    base = "s3://lease-test/creates"
    group = racers("create", tmp_path, base, n=2, trials=trials, options=s3)
    for i in range(trials):
        group.start(i)
        results = group.results(i)
        assert results.count("ok") == 1, results
        ds = ens.open_ensemble(f"{base}/s-{i}.zarr", storage_options=s3)
        _check_one_writer(results, tmp_path / f"log-{i}", ds, ref)


def test_simultaneous_resumes_admit_one_writer(tmp_path, racers):
    trials = 20
    ref = _reference(tmp_path)
    base = tmp_path / "base.zarr"
    _racer.logged_ensemble(str(tmp_path / "base.log")).to_zarr(base, progress=False)
    zarr.open_array(str(base / "status"), mode="r+")[...] = 0  # every member pending
    for i in range(trials):  # the same run (its log named per trial), nothing run yet
        e = _racer.logged_ensemble(str(tmp_path / f"log-{i}"))
        e.to_zarr(tmp_path / f"s-{i}.zarr", mode="w", progress=False)
        zarr.open_array(str(tmp_path / f"s-{i}.zarr" / "status"), mode="r+")[...] = 0
        (tmp_path / f"log-{i}").unlink()
    group = racers("resume", tmp_path, tmp_path, n=2, trials=trials)
    for i in range(trials):
        group.start(i)
        results = group.results(i)
        ds = ens.open_ensemble(tmp_path / f"s-{i}.zarr")
        _check_one_writer(results, tmp_path / f"log-{i}", ds, ref)


def test_two_cli_runs_into_the_same_store_one_wins(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[simulation]\nfunction = "tests.store_sims:logged"\n[design.grid]\n'
        "a = [1.0, 2.0, 3.0, 4.0]\n[fixed]\n"
        f"log = {json.dumps(str(tmp_path / 'cli.log'))}\ndelay = 0.05\n"
        "[run]\nseeds = 3\nroot_seed = 11\nbatch_size = 2\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(3):
        cmd = [sys.executable, "-m", "ensembles.cli", "run", str(spec), "-o", f"same-{i}.zarr"]
        procs = [
            subprocess.Popen(
                [*cmd, "-q", "--workers", "1"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=600) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 1], outs
        err = next(e for (_, e), p in zip(outs, procs, strict=True) if p.returncode == 1)
        assert LOST_RACE.search(err), err
        assert "No such file" not in err
        assert err.count("\n") == 1  # one line
        assert (ens.open_ensemble(tmp_path / f"same-{i}.zarr")["status"].values == 1).all()


# -- a writer paused past the lease timeout is fenced ----------------------------------------


def _stopped(pid: int) -> bool:
    """Every thread of the process is stopped."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "T":
                return False
    return True


def _take_over(store: EnsembleStore, deadline: float) -> Lease:
    while True:
        lease = Lease(store)
        try:
            lease.acquire()
            return lease
        except StoreError as exc:
            if "another process is writing" not in str(exc):
                raise
        assert time.monotonic() < deadline, "the paused writer's lease never expired"
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_writer_paused_past_the_timeout_stops_without_marking_members_ok(
    tmp_path, racers, monkeypatch
):
    trials = 20
    monkeypatch.setenv(TIMEOUT_ENV, "1")
    ref = _racer.pausing_ensemble(str(tmp_path / "never"), 99.0)
    ref = ref.to_dataset().compute(scheduler="synchronous")
    group = racers("pause", tmp_path, tmp_path, n=1, trials=trials, env={TIMEOUT_ENV: "1"})
    [writer] = group.procs
    for i in range(trials):
        path = tmp_path / f"s-{i}.zarr"
        group.start(i)
        deadline = time.monotonic() + 600
        while not ((tmp_path / f"flag-{i}").exists() and _stopped(writer.pid)):
            assert time.monotonic() < deadline
            assert writer.poll() is None
            time.sleep(0.01)
        lease = _take_over(EnsembleStore(str(path)), deadline)  # after the timeout
        before = _digest_without_lease(path)
        os.kill(writer.pid, signal.SIGCONT)
        [result] = group.results(i)
        assert result.startswith("error: LeaseLostError: this process lost the writer lease")
        assert _digest_without_lease(path) == before  # not one chunk, not one status
        lease.release()
        stop_at = _racer.A_VALUES[i % len(_racer.A_VALUES)]
        e = _racer.pausing_ensemble(str(tmp_path / f"flag-{i}"), stop_at)
        ds = e.to_zarr(path, mode="resume", progress=False)
        np.testing.assert_array_equal(ds["y"].values, ref["y"].values)
        assert (ds["status"].values == 1).all()


# -- failing closed, and what the refusal says -----------------------------------------------


def _record_key(path: Path) -> Path:
    generation = sorted(n for n in os.listdir(path / LEASE_GROUP) if n.startswith("g"))[-1]
    return path / LEASE_GROUP / generation / "zarr.json"


def test_an_unreadable_lease_is_not_free(tmp_path):
    path = tmp_path / "u.zarr"
    e = ens.Ensemble(store_sims.labelled, ens.Grid(model=["m"]))
    e.to_zarr(path, progress=False)
    digest = _digest_without_lease(path)
    for garbage in ("{not json", json.dumps({"attributes": {"lease": {"host": "h"}}})):
        _record_key(path).write_text(garbage)
        with pytest.raises(StoreError, match=r"lease of .* is unreadable .*force=True"):
            e.to_zarr(path, mode="resume", progress=False)
        with pytest.raises(StoreError, match="is unreadable"):
            e.to_zarr(path, mode="w", progress=False)
        assert _digest_without_lease(path) == digest
    e.to_zarr(path, mode="resume", progress=False, force=True)  # the stated way out


def test_a_lease_held_on_another_host_says_how_old_its_heartbeat_is(tmp_path):
    path = tmp_path / "h.zarr"
    e = ens.Ensemble(store_sims.labelled, ens.Grid(model=["m"]))
    e.to_zarr(path, progress=False)
    key = _record_key(path)
    doc = json.loads(key.read_text())
    other = "node-17.cluster" if socket.gethostname() != "node-17.cluster" else "node-18"
    doc["attributes"]["lease"].update(
        host=other, pid=4242, released=False, heartbeat=time.time() - 12
    )
    key.write_text(json.dumps(doc))  # as a writer on that host leaves it
    with pytest.raises(StoreError, match=rf"pid 4242 on host '{other}', last heartbeat 1\d s ago"):
        e.to_zarr(path, mode="resume", progress=False)


def test_a_lease_from_an_earlier_version_is_respected(tmp_path):
    path = tmp_path / "old.zarr"
    e = ens.Ensemble(store_sims.labelled, ens.Grid(model=["m"]))
    e.to_zarr(path, progress=False)
    shutil.rmtree(path / LEASE_GROUP)
    (path / LEASE_GROUP).mkdir()
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:  # the record an earlier version's live writer keeps in the group's attributes
        record = {"id": "x", "host": socket.gethostname(), "pid": writer.pid, "token": "t"}
        legacy = {"zarr_format": 3, "node_type": "group", "attributes": {"lease": record}}
        legacy["attributes"]["lease"]["heartbeat"] = time.time()
        (path / LEASE_GROUP / "zarr.json").write_text(json.dumps(legacy))
        with pytest.raises(StoreError, match="another process is writing"):
            e.to_zarr(path, mode="resume", progress=False)
    finally:
        writer.kill()
        writer.wait()
    legacy["attributes"]["lease"] = {}  # released, as that version released it
    (path / LEASE_GROUP / "zarr.json").write_text(json.dumps(legacy))
    e.to_zarr(path, mode="resume", progress=False)


def test_a_bad_lease_timeout_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(StoreError, match=r"ENSEMBLES_LEASE_TIMEOUT must be a positive .*'soon'"):
        Lease(EnsembleStore(str(tmp_path / "t.zarr")))
