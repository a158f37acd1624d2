"""Durable stores: layout, status as data, crash and resume, extend, guard rails, S3."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ensembles as ens
from ensembles.errors import LeaseLostError, StoreError, StoreExistsError, StoreMismatchError
from ensembles.store.lease import Lease
from ensembles.store.zarr_store import EnsembleStore

from . import sims

ROOT = Path(__file__).resolve().parents[1]


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _tree_digest(path: Path) -> str:
    """A digest of every file under a store (names and bytes)."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _run_and_kill(script: Path, log: Path, after_calls: int) -> None:
    """Run a script in its own process group; SIGKILL the group after some member calls."""
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_calls(log)) < after_calls and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _slow(log: Path, a=(1.0, 2.0, 3.0, 4.0, 5.0), seeds=8, delay=0.0):
    return ens.Ensemble(
        sims.slow,
        ens.Grid(a=list(a)),
        seeds=seeds,
        root_seed=5,
        fixed={"log": str(log), "delay": delay},
        batch_size=2,
    )


# -- layout ------------------------------------------------------------------------------


def test_store_layout_and_plain_xarray(tmp_path):
    e = ens.Ensemble(sims.declared, ens.Grid(a=[1.0, 2.0]), seeds=3, root_seed=2, fixed={"n": 5})
    ds = e.to_zarr(tmp_path / "run.zarr", progress=False)
    plain = xr.open_zarr(tmp_path / "run.zarr")  # no ensembles needed, no warnings
    assert plain["z"].dims == ("a", "seed", "step")
    np.testing.assert_array_equal(plain["z"].values, ds["z"].values)
    ref = e.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(ds["z"].values, ref["z"].values)
    np.testing.assert_array_equal(ds["member_seed"].values, ref["member_seed"].values)
    spec = json.loads(plain.attrs["ensembles"])
    assert spec["design"] == {"grid": {"a": [1.0, 2.0]}}
    assert spec["run"] == {"seeds": 3, "root_seed": 2}
    assert spec["fixed"] == {"n": 5}
    prov = json.loads(plain.attrs["ensembles_provenance"])
    assert {"numpy", "dask", "xarray", "zarr"} <= set(prov["versions"])
    assert prov["host"]
    assert prov["created"]
    assert plain.attrs["ensembles_finished"] >= prov["created"]
    assert plain["status"].attrs["flag_meanings"] == "pending ok failed skipped"
    # one chunk per block along member dims; small outputs stay whole along their dims
    assert plain["z"].encoding["chunks"][-1] == 5
    assert plain["z"].encoding["chunks"][:2] == tuple(
        json.loads(plain.attrs["ensembles"])["block"]
    )


def test_existing_store_is_refused_then_overwritten(tmp_path):
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=2, root_seed=1)
    e.to_zarr(tmp_path / "s.zarr", progress=False)
    with pytest.raises(StoreExistsError, match="mode='w'"):
        e.to_zarr(tmp_path / "s.zarr", progress=False)
    e2 = ens.Ensemble(sims.walk, ens.Grid(drift=[5.0]), seeds=2, root_seed=1)
    ds = e2.to_zarr(tmp_path / "s.zarr", mode="w", progress=False)
    assert ds["drift"].values.tolist() == [5.0]


def test_open_ensemble_errors(tmp_path):
    with pytest.raises(StoreError, match="no ensemble store"):
        ens.open_ensemble(tmp_path / "missing.zarr")
    xr.Dataset({"x": ("i", np.arange(3))}).to_zarr(
        tmp_path / "plain.zarr", zarr_format=3, consolidated=False
    )
    with pytest.raises(StoreError, match="not an ensemble"):
        ens.open_ensemble(tmp_path / "plain.zarr")


def test_pickle_codecs_are_refused(tmp_path):
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=1, root_seed=1)
    e.to_zarr(tmp_path / "p.zarr", progress=False)
    meta_path = tmp_path / "p.zarr" / "x" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"].append({"name": "numcodecs.pickle", "configuration": {}})
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"numcodecs\.pickle.*refuses"):
        ens.open_ensemble(tmp_path / "p.zarr")


# -- status as data ----------------------------------------------------------------------


def test_failures_are_recorded_as_data(tmp_path, capsys):
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, -2.0, 3.0]), seeds=2, root_seed=0)
    ds = e.to_zarr(tmp_path / "f.zarr", progress=True)
    assert ds["status"].values.tolist() == [[1, 1], [2, 2], [1, 1]]
    assert np.isnan(ds["y"].values[1]).all()
    assert ds["error"].values[1, 0] == "ValueError: a must be non-negative, got -2.0"
    assert ds["error"].values[0, 0] == ""
    assert (ds["attempts"].values == 1).all()
    assert np.isfinite(ds["wall_time"].values).all()
    assert "2 of 6 members failed" in capsys.readouterr().err
    from ensembles.describe import describe

    info = describe(tmp_path / "f.zarr")
    assert info["members"] == {"ok": 4, "failed": 2, "pending": 0, "total": 6}
    assert info["errors"] == {"ValueError: a must be non-negative, got -2.0": 2}


def test_retries_and_raise(tmp_path):
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, -2.0]), seeds=1, root_seed=0)
    ds = e.to_zarr(tmp_path / "r.zarr", retries=2, progress=False)
    assert ds["attempts"].values.tolist() == [[1], [3]]
    with pytest.raises(ens.MemberError, match=r"a=-2\.0"):
        e.to_zarr(tmp_path / "r2.zarr", on_error="raise", progress=False)


# -- crash and resume --------------------------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import ensembles as ens
    from tests import sims
    if __name__ == "__main__":
        e = ens.Ensemble(sims.slow, ens.Grid(a=[1.0, 2.0, 3.0, 4.0, 5.0]), seeds=8,
                         root_seed=5, fixed={{"log": {log!r}, "delay": 0.0}}, batch_size=2)
        e.to_zarr({path!r}, progress=False, workers=2)
    """
)


def test_sigkill_then_resume_runs_only_missing_members(tmp_path):
    log, path = tmp_path / "calls.txt", tmp_path / "crash.zarr"
    script = tmp_path / "run.py"
    script.write_text(CRASH_SCRIPT.format(root=str(ROOT), log=str(log), path=str(path)))
    # members sleep 0.05 s each; kill the driver (and its in-process workers) mid-run
    script.write_text(script.read_text().replace('"delay": 0.0', '"delay": 0.05'))
    _run_and_kill(script, log, after_calls=12)
    # the store is readable and consistent: ok members have their data
    ds = ens.open_ensemble(path)
    status = ds["status"].values
    n_ok = int((status == 1).sum())
    assert 0 < n_ok < 40
    assert np.isfinite(ds["y"].values[status == 1]).all()
    # resume: only the members that were not ok run again
    before = len(_calls(log))
    e = _slow(log, delay=0.05)
    final = e.to_zarr(path, mode="resume", progress=False)
    assert len(_calls(log)) - before == 40 - n_ok
    ref = e.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(final["y"].values, ref["y"].values)
    assert (final["status"].values == 1).all()


def test_resume_of_complete_store_runs_nothing(tmp_path):
    log = tmp_path / "calls.txt"
    e = _slow(log)
    e.to_zarr(tmp_path / "c.zarr", progress=False)
    n = len(_calls(log))
    e.to_zarr(tmp_path / "c.zarr", mode="resume", progress=False)
    assert len(_calls(log)) == n


def test_resume_failed_only(tmp_path):
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[1.0, -2.0]), seeds=2, root_seed=0)
    e.to_zarr(tmp_path / "f.zarr", progress=False)
    ds = e.to_zarr(tmp_path / "f.zarr", mode="resume", only="failed", retries=1, progress=False)
    assert ds["attempts"].values.tolist() == [[1, 1], [2, 2]]
    with pytest.raises(ValueError, match="needs mode='resume'"):
        e.to_zarr(tmp_path / "g.zarr", only="failed")


# -- extend ------------------------------------------------------------------------------


def test_extend_by_seeds_and_grid_values(tmp_path):
    log, path = tmp_path / "calls.txt", tmp_path / "x.zarr"
    small = _slow(log, a=(1.0, 2.0, 3.0), seeds=3)
    old = small.to_zarr(path, progress=False).load()
    n0 = len(_calls(log))
    big = _slow(log, a=(1.0, 2.0, 3.0, 4.0), seeds=5)
    new = big.to_zarr(path, mode="resume", progress=False)
    assert len(_calls(log)) - n0 == 4 * 5 - 3 * 3
    np.testing.assert_array_equal(new["y"].values[:3, :3], old["y"].values)
    np.testing.assert_array_equal(new["member_seed"].values[:3, :3], old["member_seed"].values)
    ref = big.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(new["y"].values, ref["y"].values)
    assert new["a"].values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert json.loads(new.attrs["ensembles"])["run"]["seeds"] == 5


def test_extend_by_samples(tmp_path):
    def make(n):
        design = ens.Points([{"drift": 0.0}]) + ens.Sample(drift=ens.Normal(0, 1), n=n, seed=3)
        return ens.Ensemble(sims.walk, design, seeds=2, root_seed=4)

    path = tmp_path / "s.zarr"
    old = make(5).to_zarr(path, progress=False).load()
    new = make(9).to_zarr(path, mode="resume", progress=False)
    assert new.sizes["sample"] == 10
    np.testing.assert_array_equal(new["x"].values[:6], old["x"].values)
    np.testing.assert_array_equal(new["drift"].values[:6], old["drift"].values)
    ref = make(9).to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(new["x"].values, ref["x"].values)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"fixed": {"n": 7}}, r"fixed value 'n': the store has 5, this run 7"),
        ({"root_seed": 3}, r"root_seed: the store has 2, this run 3"),
        ({"seeds": 1}, r"seeds: the store has 3 per point, this run 1"),
        ({"design": ens.Grid(a=[1.0, 9.0])}, r"design values of 'a' differ at position 1"),
        ({"design": ens.Sample(a=ens.Uniform(0, 1), n=2, seed=1)}, r"design dims"),
        ({"simulation": sims.seeded}, r"simulation: the store has"),
    ],
    ids=["fixed", "root-seed", "fewer-seeds", "changed-values", "other-design", "other-sim"],
)
def test_mismatched_resume_is_refused_and_store_unchanged(tmp_path, change, match):
    path = tmp_path / "m.zarr"
    base = {
        "design": ens.Grid(a=[1.0, 2.0]),
        "seeds": 3,
        "root_seed": 2,
        "fixed": {"n": 5},
        "simulation": sims.declared,
    }
    ens.Ensemble(base["simulation"], base["design"], seeds=3, root_seed=2, fixed={"n": 5}).to_zarr(
        path, progress=False
    )
    digest = _tree_digest(path)
    kw = {**base, **change}
    fixed = kw["fixed"] if kw["simulation"] is sims.declared else {}
    other = ens.Ensemble(
        kw["simulation"], kw["design"], seeds=kw["seeds"], root_seed=kw["root_seed"], fixed=fixed
    )
    with pytest.raises(StoreMismatchError, match=match):
        other.to_zarr(path, mode="resume", progress=False)
    assert _tree_digest(path) == digest


def test_seed_bits_store_what_members_received_and_resume_keeps_them(tmp_path):
    path = tmp_path / "small.zarr"
    e = ens.Ensemble(sims.small_seed, ens.Grid(a=[1.0, 2.0]), seeds=3, root_seed=2)
    ds = e.to_zarr(path, progress=False)
    assert (ds["status"] == 1).all()
    np.testing.assert_array_equal(ds["member_seed"].values, ds["got_seed"].values)
    assert int(ds["member_seed"].max()) < 2**31
    spec = EnsembleStore(path).spec()
    assert spec["simulation"] == {"function": "tests.sims:small_seed", "seed_bits": 31}
    # extending from the stored spec (what `ensembles resume` does) keeps the 31-bit seeds
    grown = ens.Ensemble.from_spec(spec, seeds=5).to_zarr(path, mode="resume", progress=False)
    assert (grown["status"] == 1).all()
    np.testing.assert_array_equal(grown["member_seed"].values, grown["got_seed"].values)
    np.testing.assert_array_equal(grown["member_seed"].values[:, :3], ds["member_seed"].values)
    # the same function with the default 63 bits is another run: refused, store unchanged
    digest = _tree_digest(path)
    wide = ens.Simulation(sims.small_seed.func, name="tests.sims:small_seed")
    with pytest.raises(StoreMismatchError, match="simulation: the store has"):
        ens.Ensemble(wide, ens.Grid(a=[1.0, 2.0]), seeds=5, root_seed=2).to_zarr(
            path, mode="resume", progress=False
        )
    assert _tree_digest(path) == digest


# -- one writer at a time ------------------------------------------------------------------


def test_a_live_writer_lease_refuses_a_second_writer(tmp_path):
    path = tmp_path / "l.zarr"
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0]), seeds=2, root_seed=1)
    e.to_zarr(path, progress=False)
    store = EnsembleStore(str(path))
    with Lease(store) as held:
        with pytest.raises(StoreError, match="another process is writing"):
            e.to_zarr(path, mode="resume", progress=False)
        e.to_zarr(path, mode="resume", progress=False, force=True)  # an explicit override
        with pytest.raises(LeaseLostError, match="lost the writer lease"):
            held.fence.check()  # the overridden holder is fenced
    e.to_zarr(path, mode="resume", progress=False)  # released


HOLD_LEASE = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from ensembles.store.lease import Lease
    from ensembles.store.zarr_store import EnsembleStore
    Lease(EnsembleStore({path!r})).acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_dead_writers_lease_is_broken(tmp_path):
    path = tmp_path / "d.zarr"
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=2, root_seed=1)
    e.to_zarr(path, progress=False)
    code = HOLD_LEASE.format(root=str(ROOT), path=str(path))
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreError, match=r"another process is writing.*last heartbeat"):
        e.to_zarr(path, mode="resume", progress=False)
    holder.kill()  # a crash while holding the lease
    holder.wait()
    holder.stdout.close()
    e.to_zarr(path, mode="resume", progress=False)  # same host, process gone: broken at once


# -- remote object stores ------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    import s3fs

    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-west-2"},
        key="testing",
        secret="testing",
    )
    fs.mkdir("ensembles-test")
    yield {"endpoint_url": endpoint, "options": options}
    server.stop()


def test_s3_run_kill_resume_open(s3, tmp_path):
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3["endpoint_url"], "region_name": "us-west-2"},
    }
    url = "s3://ensembles-test/run.zarr"
    log = tmp_path / "calls.txt"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        import ensembles as ens
        from tests import sims
        if __name__ == "__main__":
            e = ens.Ensemble(sims.slow, ens.Grid(a=[1.0, 2.0, 3.0, 4.0, 5.0]), seeds=8,
                             root_seed=5, fixed={{"log": {str(log)!r}, "delay": 0.05}},
                             batch_size=2)
            e.to_zarr({url!r}, storage_options={options!r}, progress=False, workers=2)
    """)
    )
    _run_and_kill(script, log, after_calls=12)
    ds = ens.open_ensemble(url, storage_options=options)
    n_ok = int((ds["status"].values == 1).sum())
    assert 0 < n_ok < 40
    before = len(_calls(log))
    e = _slow(log, delay=0.05)
    final = e.to_zarr(url, mode="resume", storage_options=options, progress=False)
    assert len(_calls(log)) - before == 40 - n_ok
    reopened = ens.open_ensemble(url, storage_options=options)
    ref = e.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(reopened["y"].values, ref["y"].values)
    np.testing.assert_array_equal(final["y"].values, ref["y"].values)


def _codec_names(store: Path, name: str) -> list[str]:
    meta = json.loads((store / name / "zarr.json").read_text())
    return [c["name"] for c in meta["codecs"]]


def test_outputs_that_do_not_compress_are_stored_raw(tmp_path):
    e = ens.Ensemble(sims.noise_and_steps, ens.Grid(a=[1.0, 2.0]), seeds=3, root_seed=1)
    path = tmp_path / "c.zarr"
    ds = e.to_zarr(path, progress=False)
    assert "blosc" not in _codec_names(path, "noise")  # noise: compression does not pay
    assert "blosc" in _codec_names(path, "steps")  # a staircase compresses
    assert _codec_names(path, "status") != ["bytes"]  # bookkeeping: zarr's default codec
    expected = e.compute(progress=False)
    for name in ("noise", "steps"):
        np.testing.assert_array_equal(ds[name].values, expected[name].values)


def test_compressors_for_small_or_missing_samples_compresses():
    from ensembles.store.zarr_store import compressors_for

    assert compressors_for(None)
    assert compressors_for([])
    assert compressors_for([np.random.default_rng(0).standard_normal(10)])  # too few bytes


def test_workers_import_only_what_running_members_needs():
    code = textwrap.dedent(
        """
        import sys
        import ensembles, ensembles.execution.worker, ensembles.execution.worker
        import ensembles.store.zarr_store
        heavy = ["dask.array", "scipy.stats", "numba", "matplotlib", "ensembles.analysis.reduce"]
        print(",".join(m for m in heavy if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
