"""The runner: connecting, progress, bounded submission, splitting, safe transport."""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import socket
import threading
import time

import dask
import numpy as np
import pytest
import xarray as xr

import ensembles as ens
from ensembles.errors import MemberError, RunnerError
from ensembles.execution import progress, wire
from ensembles.execution import submit as runner
from ensembles.execution.submit import (
    SAFE_DESERIALIZERS,
    Progress,
    dashboard_link,
    default_client,
    is_killed_worker,
    resolve_client,
    run_tasks,
)
from ensembles.layout import BlockResult

from . import sims
from ._dashboard import plot_list_server


def assert_same_results(got: xr.Dataset, ref: xr.Dataset) -> None:
    """Equal outputs, status and member seeds (not timings or provenance)."""
    assert set(got.data_vars) == set(ref.data_vars)
    for name in [*ref.data_vars, "status", "member_seed"]:
        xr.testing.assert_equal(
            got[name].reset_coords(drop=True).load(), ref[name].reset_coords(drop=True)
        )


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- connecting --------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["tcp://127.0.0.1:{port}", "127.0.0.1:{port}"], ids=str)
def test_unreachable_address_fails_fast_with_a_clear_error(form):
    address = form.format(port=_closed_port())
    start = time.perf_counter()
    with (
        pytest.raises(
            RunnerError, match=r"cannot connect to the dask scheduler at .*127\.0\.0\.1"
        ),
        resolve_client(address, timeout=0.5),
    ):
        pass  # pragma: no cover
    assert time.perf_counter() - start < 5


def test_connect_timeout_follows_dask_config():
    """A port that accepts but never answers: the wait is the dask config's timeout.

    (A refused port does not wait for it: see test_unreachable_address_fails_fast...)
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with (
            dask.config.set({"distributed.comm.timeouts.connect": "300ms"}),
            pytest.raises(RunnerError, match=r"no dask handshake.*gives up after 0\.3 s"),
            resolve_client(address),
        ):
            pass  # pragma: no cover
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scheduler": 8786}, "scheduler must be a distributed.Client"),
        ({"scheduler": "not an address"}, "neither an address"),
        ({"scheduler_file": "/nonexistent/scheduler.json"}, "does not exist"),
        ({"scheduler": "/nonexistent/scheduler.json"}, "does not exist"),
        ({"scheduler": "tcp://h:1", "scheduler_file": "s.json"}, "not both"),
        ({"scheduler": "tls://127.0.0.1:1"}, r"TLS address but no TLS settings.*security="),
        ({"scheduler": "tcp://127.0.0.1:1", "timeout": "soon"}, "timeout must be"),
        ({"scheduler": "tcp://127.0.0.1:1", "timeout": 0}, "timeout must be"),
    ],
    ids=[
        "int",
        "word",
        "missing-file",
        "missing-file-pos",
        "both",
        "tls-no-cert",
        "bad-timeout",
        "zero",
    ],
)
def test_bad_schedulers_are_refused(kwargs, match):
    with pytest.raises(RunnerError, match=match), resolve_client(**kwargs):
        pass  # pragma: no cover


@pytest.mark.parametrize(
    ("content", "match"),
    [("not json", "cannot read scheduler file"), ('{"id": 1}', "has no 'address'")],
    ids=["garbage", "no-address"],
)
def test_invalid_scheduler_file(tmp_path, content, match):
    path = tmp_path / "scheduler.json"
    path.write_text(content)
    with pytest.raises(RunnerError, match=match), resolve_client(scheduler_file=path):
        pass  # pragma: no cover


def test_given_client_is_used_and_left_open(client):
    with resolve_client(client) as c:
        assert c is client
    assert client.status == "running"


def test_active_client_is_used(client):
    with client.as_current(), resolve_client() as c:
        assert c is client


@pytest.mark.parametrize("how", ["keyword", "path-string", "pathlib"])
def test_scheduler_file_connects_and_closes(client, tmp_path, how):
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"address": client.scheduler.address, "type": "Scheduler"}))
    args, kwargs = {
        "keyword": ((), {"scheduler_file": str(path)}),
        "path-string": ((str(path),), {}),
        "pathlib": ((path,), {}),
    }[how]
    with resolve_client(*args, **kwargs) as c:
        assert c is not client
        assert c.scheduler.address == client.scheduler.address
        assert c.submit(sum, [1, 2]).result() == 3
    assert c.status == "closed"


def test_cluster_object_is_accepted(client):
    with resolve_client(client.cluster) as c:
        assert c.scheduler.address == client.scheduler.address
    assert c.status == "closed"
    assert client.status == "running"


def test_embedded_default_listens_on_loopback_only():
    psutil = pytest.importorskip("psutil")
    c = default_client(processes=False, n_workers=2)
    assert c is default_client(processes=False, n_workers=2)  # started once, reused
    assert c.scheduler.address.startswith("tcp://127.0.0.1:")
    procs = default_client(processes=True, n_workers=1)
    for each in (c, procs):
        assert each.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(a.startswith("tcp://127.0.0.1:") for a in each.scheduler_info()["workers"])
    me = psutil.Process()
    listening = [
        conn.laddr.ip
        for proc in [me, *me.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening
    assert set(listening) <= {"127.0.0.1", "::1"}


def test_default_client_refuses_zero_workers():
    with pytest.raises(RunnerError, match="n_workers must be at least 1"):
        default_client(processes=False, n_workers=-1)


# -- progress ----------------------------------------------------------------------------


class _FakeClient:
    """Just enough of a Client for the dashboard link (``link``: a real HTTP server's)."""

    cluster = None

    def __init__(self, services, link="http://127.0.0.1:1/status"):
        self.services = services
        self.dashboard_link = link

    def scheduler_info(self, n_workers=0):
        return {"services": self.services, "workers": {}}


def test_progress_line_counts_rate_and_eta():
    out = io.StringIO()
    bar = Progress(10, stream=out)
    bar.update(4, failed=1)
    line = bar.line()
    assert line.startswith("members: 4/10 ( 40.0%, 1 failed) ")
    assert "/s elapsed 0:00:00 eta 0:00:0" in line
    bar.close()
    assert out.getvalue().endswith("\n")


def test_progress_for_slow_members_shows_seconds_per_member():
    bar = Progress(10, stream=io.StringIO())
    bar.start -= 20.0
    bar.update(2)
    assert "10.0 s/member" in bar.line()
    assert "eta 0:01:20" in bar.line()


def test_progress_prints_dashboard_link_once_unless_quiet():
    with plot_list_server() as link:
        client = _FakeClient({"dashboard": 8787}, link)
        out = io.StringIO()
        bar = Progress(3, stream=out, client=client)
        for _ in range(3):
            bar.update(1)
        bar.close()
        assert out.getvalue().count(f"dask dashboard: {link}") == 1
        quiet = io.StringIO()
        Progress(3, stream=quiet, enabled=False, client=client).close()
        assert quiet.getvalue() == ""


@pytest.mark.parametrize("body", [b"{}", None], ids=["no-bokeh", "no-dashboard"])
def test_no_dashboard_link_when_the_scheduler_serves_none(body):
    assert dashboard_link(_FakeClient({})) is None  # no HTTP server at all
    with plot_list_server(body) as link:  # an HTTP server, but no dashboard
        assert dashboard_link(_FakeClient({"dashboard": 8787}, link)) is None
        out = io.StringIO()
        Progress(3, stream=out, client=_FakeClient({"dashboard": 8787}, link)).close()
    assert "dashboard" not in out.getvalue()


def test_progress_updates_one_display_in_notebooks(monkeypatch):
    shown: list[dict] = []
    updates: list[dict] = []

    class Handle:
        def update(self, data, raw):
            updates.append(data)

    def display(data, raw, display_id=False):
        shown.append(data)
        return Handle() if display_id else None

    monkeypatch.setattr(progress, "_notebook_display", lambda: display)
    with plot_list_server() as link:
        bar = Progress(100, client=_FakeClient({"dashboard": 8787}, link))
    assert f'href="{link}"' in shown[0]["text/html"]
    for _ in range(3):
        bar._last = 0.0  # skip the redraw interval
        bar.update(10)
    bar.close()
    assert len(shown) == 2  # the link, then one progress display
    assert shown[1]["text/plain"].startswith("members: 10/100")
    assert updates[-1]["text/plain"].startswith("members: 30/100")


# -- run_tasks ---------------------------------------------------------------------------


class _CountingClient:
    """Wraps a Client and counts submissions, to check how many tasks are live."""

    def __init__(self, client):
        self._client = client
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return self._client.submit(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_run_tasks_bounds_live_tasks_and_yields_each_item_once(client):
    counting = _CountingClient(client)
    pulled = []

    def items():
        for i in range(0, 60, 3):
            pulled.append(i)
            yield (i, i + 3)

    seen = []
    for out in run_tasks(
        counting, sims.square_range, 1, items(), key_prefix="bounded", max_in_flight=3
    ):
        assert out.error is None
        seen.append(out.item)
        live = counting.submitted - 1 - (len(seen) - 1)  # minus the shared-object task
        assert live <= 3
        assert len(pulled) <= len(seen) + 3  # items are consumed lazily
        assert out.result == [i * i + 1 for i in range(*out.item)]
    assert sorted(seen) == [(i, i + 3) for i in range(0, 60, 3)]


def test_run_tasks_yields_errors_with_their_item(client):
    outcomes = list(run_tasks(client, sims.fail_on_three, None, range(6), key_prefix="errs"))
    errors = {o.item: o.error for o in outcomes if o.error is not None}
    assert list(errors) == [3]
    assert isinstance(errors[3], ValueError)
    assert sorted(o.result for o in outcomes if o.error is None) == [0, 1, 2, 4, 5]


def test_run_tasks_with_no_items_returns_at_once():
    # no client is needed, and no worker is waited for, when there is nothing to run
    assert list(run_tasks(None, sims.square_range, 0, [], key_prefix="none")) == []


def test_unpicklable_shared_object_is_explained():
    with pytest.raises(RunnerError, match=r"cannot send the simulation.*module-level function"):
        next(run_tasks(None, sims.square_range, threading.Lock(), [(0, 1)], key_prefix="x"))


def test_missing_module_error_says_how_to_fix():
    err = runner._translate(ModuleNotFoundError("No module named 'mysims'", name="mysims"))
    assert isinstance(err, RunnerError)
    text = str(err)
    assert "module 'mysims'" in text
    assert "PYTHONPATH" in text
    assert "client.upload_file('mysims.py')" in text
    assert "cloudpickle.register_pickle_by_value(mysims)" in text
    # distributed reports some deserialization failures as a bare Exception
    bare = runner._translate(Exception("ModuleNotFoundError(\"No module named 'pkg.sub'\")"))
    assert "register_pickle_by_value(pkg)" in str(bare)


def test_max_in_flight_must_be_positive(client):
    with pytest.raises(RunnerError, match="max_in_flight must be at least 1"):
        next(run_tasks(client, sims.square_range, 0, [(0, 1)], key_prefix="x", max_in_flight=0))


@pytest.fixture(scope="module")
def fragile():
    """A 2-process LocalCluster whose scheduler gives a task no second chance.

    With ``allowed-failures`` 0, a task running on a worker that dies ends in KilledWorker
    at once, and so do tasks that merely shared the worker with the culprit.

    On a busy machine a killed worker can take more than LocalCluster's default 15 s
    ``lost-worker-timeout`` to come back, after which the cluster closes its nanny for
    good and runs wait forever for workers; give restarts the time a busy machine needs.
    """
    from distributed import Client, LocalCluster

    settings = {
        "distributed.scheduler.allowed-failures": 0,
        "distributed.deploy.lost-worker-timeout": "600s",
    }
    with (
        dask.config.set(settings),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _split_range(item):
    lo, hi = item
    return [(i, i + 1) for i in range(lo, hi)] if hi - lo > 1 else None


@pytest.mark.distributed
def test_killed_worker_items_are_split_and_the_culprit_isolated(fragile, tmp_path):
    """A task that kills its worker ends in KilledWorker; its parts run one by one."""
    fragile.wait_for_workers(2, timeout=60)
    items = [(i, i + 5) for i in range(0, 30, 5)]
    outcomes = list(
        run_tasks(
            fragile, sims.killer_range, str(tmp_path), items, key_prefix="kw", split=_split_range
        )
    )
    failed = [o for o in outcomes if o.error is not None]
    assert [o.item for o in failed] == [(13, 14)]
    assert is_killed_worker(failed[0].error)
    done = sorted(i for o in outcomes if o.error is None for i in o.result)
    assert done == [i for i in range(30) if i != 13]  # nothing lost, nothing twice
    # the parts of the split block (10, 15) never ran at the same time
    spans = []
    for name in os.listdir(tmp_path):
        lo, hi = (int(v) for v in name.split("-")[:2])
        if 10 <= lo < 15 and hi == lo + 1:
            spans.append(tuple(map(float, (tmp_path / name).read_text().split())))
    spans.sort()
    assert len(spans) >= 4
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


@pytest.mark.distributed
def test_member_that_kills_its_worker_is_recorded_as_failed(fragile, tmp_path):
    fragile.wait_for_workers(2, timeout=60)
    e = ens.Ensemble(
        sims.kills_worker, ens.Grid(a=np.arange(20.0)), seeds=1, root_seed=0, batch_size=5
    )
    for ds in (
        e.to_zarr(tmp_path / "killer.zarr", scheduler=fragile, progress=False),
        e.compute(scheduler=fragile, progress=False, on_error="record"),
    ):
        status = ds["status"].values[:, 0]
        assert status[13] == 2
        assert (np.delete(status, 13) == 1).all()
        assert ds["y"].values[12, 0] == 12.0
        assert np.isnan(ds["y"].values[13, 0])
        if "error" in ds.coords:
            assert "KilledWorker" in str(ds["error"].values[13, 0])


def test_is_killed_worker():
    from distributed import KilledWorker

    assert is_killed_worker(KilledWorker("key", "tcp://127.0.0.1:1", 0))
    assert not is_killed_worker(ValueError("x"))
    assert not is_killed_worker(None)


# -- safe mode ---------------------------------------------------------------------------


def _block() -> BlockResult:
    return BlockResult(
        block_id=(1, 0),
        outputs={
            "x": np.arange(12.0).reshape(2, 2, 3),
            "n": np.array([[1, 2], [3, 4]], dtype=np.int64),
            "flag": np.array([[True, False], [False, True]]),
            "when": np.array(["2024-01-01", "2025-06-30"], dtype="M8[D]").reshape(2, 1),
            "label": np.array([["a", "bc"], ["d", "e"]]),
        },
        status=np.array([[1, 2], [1, 1]], dtype=np.int8),
        wall_time=np.array([[0.1, np.nan], [0.2, 0.3]], dtype=np.float32),
        attempts=np.ones((2, 2), dtype=np.uint8),
        errors=[(3, "ValueError", "bad value")],
    )


def test_safe_encoding_round_trips_block_results():
    block = _block()
    back = wire.decode(wire.encode(block))
    assert isinstance(back, BlockResult)
    assert back.block_id == (1, 0)
    assert back.errors == [(3, "ValueError", "bad value")]
    for name, values in block.outputs.items():
        np.testing.assert_array_equal(back.outputs[name], values)
        assert back.outputs[name].dtype == values.dtype
    np.testing.assert_array_equal(back.wall_time, block.wall_time)
    value = {
        "big": 2**100,
        "neg": -(2**70),
        "t": (1, "a"),
        "l": [b"x", None, 2.5],
        "np": np.int8(3),
    }
    assert wire.decode(wire.encode(value)) == {**value, "np": 3}


@pytest.mark.parametrize(
    "value",
    [np.array([object()]), {1, 2}, lambda: 0, np.zeros(2, dtype=[("a", "f8")])],
    ids=["object-array", "set", "function", "structured"],
)
def test_safe_encoding_refuses_other_types(value):
    with pytest.raises(TypeError, match="safe mode"):
        wire.encode(value)


@pytest.mark.parametrize(
    "node",
    [["a", "|O", [1], b"\x00" * 8], ["P", b"cos\nsystem\n"], object()],
    ids=["object-dtype", "unknown-tag", "foreign"],
)
def test_safe_decoding_refuses_anything_else(node):
    with pytest.raises(RunnerError):
        wire.decode(node)


def test_safe_errors_round_trip_without_pickle():
    err = MemberError("member 3 raised", params={"a": 1.5, "big": 2**80}, seed=7)
    _, back = wire.unwrap_safe(wire.encode_error(err))
    assert isinstance(back, MemberError)
    assert (str(back), back.params, back.seed) == ("member 3 raised", {"a": 1.5, "big": 2**80}, 7)
    _, back = wire.unwrap_safe(wire.encode_error(KeyError("k")))
    assert isinstance(back, KeyError)

    class Custom(Exception):
        pass

    _, back = wire.unwrap_safe(wire.encode_error(Custom("odd")))
    assert isinstance(back, RunnerError)
    assert "Custom: odd" in str(back)
    assert back.remote_type.endswith("Custom")


@pytest.fixture(scope="module")
def safe_client(client):
    from distributed import Client

    with Client(
        client.scheduler.address, deserializers=list(SAFE_DESERIALIZERS), set_as_default=False
    ) as c:
        yield c


def test_safe_client_refuses_pickled_results(safe_client):
    logging.getLogger("distributed.protocol.core").disabled = True
    try:
        with pytest.raises(TypeError, match=r"only able to deserialize data with \['msgpack'\]"):
            safe_client.submit(np.arange, 3).result()
    finally:
        logging.getLogger("distributed.protocol.core").disabled = False


def test_resolve_client_safe_mode(client, safe_client):
    with resolve_client(client.scheduler.address, safe=True, timeout=5) as c:
        assert list(c._deserializers) == list(SAFE_DESERIALIZERS)
    with resolve_client(safe_client, safe=True) as c:
        assert c is safe_client
    with (
        pytest.raises(RunnerError, match=r"safe=True but the client .* deserializes pickle"),
        resolve_client(client, safe=True),
    ):
        pass  # pragma: no cover


def test_ensemble_results_arrive_in_safe_mode(client, safe_client, tmp_path):
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0, 2.0]), seeds=4, root_seed=5)
    ref = e.compute(scheduler=client, progress=False, batch_size=5)
    got = e.compute(scheduler=safe_client, progress=False, batch_size=5)
    assert_same_results(got, ref)
    stored = e.to_zarr(tmp_path / "safe.zarr", scheduler=safe_client, progress=False)
    assert_same_results(stored, ref)
    # failures travel as data too: recorded, or raised with the member's parameters
    bad = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, -2.0]), seeds=2, root_seed=0)
    ds = bad.compute(scheduler=safe_client, progress=False, on_error="record")
    assert ds["status"].values.tolist() == [[1, 1], [2, 2]]
    with pytest.raises(MemberError, match=r"a=-2\.0.*must be non-negative") as info:
        bad.compute(scheduler=safe_client, progress=False)
    assert info.value.params["a"] == -2.0
