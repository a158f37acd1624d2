"""The embedded default, run for real: worker-killing members, timeouts, no main guard.

Every test runs real worker processes of the local pool; nothing is mocked.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import MemberError
from ensembles.execution.progress import Progress

from . import sims

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensemble(n, batch_size=None, **fixed):
    return ens.Ensemble(
        sims.misbehaves,
        ens.Grid(a=np.arange(float(n))),
        seeds=1,
        root_seed=0,
        batch_size=batch_size,
        fixed={"driver": os.getpid(), **fixed},
    )


def _status(ds):
    return ds["status"].values[:, 0]


def test_a_member_that_kills_its_worker_is_recorded_and_the_rest_completes(tmp_path):
    """One member of 600 calls os._exit; another is killed by SIGKILL (as by the OOM
    killer): exactly those two fail, with a message saying so, and nothing else."""
    e = _ensemble(600, kill=[137.0], sigkill=[412.0])
    ds = e.to_zarr(tmp_path / "k.zarr", progress=False)
    status = _status(ds)
    assert np.flatnonzero(status == 2).tolist() == [137, 412]
    assert (np.delete(status, [137, 412]) == 1).all()
    assert np.isnan(ds["y"].values[[137, 412], 0]).all()
    errors = ds["error"].values[:, 0]
    assert "killed the worker process" in errors[137]
    assert "exited with code 3" in errors[137]
    assert "signal 9" in errors[412]
    np.testing.assert_array_equal(ds["y"].values[:137, 0], np.arange(137.0))
    # resuming runs the failed members again (they fail again) and nothing else
    again = e.to_zarr(tmp_path / "k.zarr", mode="resume", progress=False)
    assert np.flatnonzero(_status(again) == 2).tolist() == [137, 412]


def test_no_bystander_is_recorded_when_several_members_of_a_block_kill_workers():
    e = _ensemble(40, batch_size=10, kill=[11.0, 12.0, 19.0], sigkill=[13.0])
    ds = e.compute(on_error="record", progress=False)
    assert np.flatnonzero(_status(ds) == 2).tolist() == [11, 12, 13, 19]
    np.testing.assert_array_equal(ds["y"].values[20:, 0], np.arange(20.0, 40.0))


def test_members_over_their_time_are_recorded_and_the_run_goes_on(tmp_path):
    """A sleeping member, a busy Python loop and a member that no signal reaches (as in
    compiled code): each is recorded as timed out; the others complete."""
    e = _ensemble(12, batch_size=4, sleep=[1.0], spin=[6.0], stuck=[9.0])
    start = time.monotonic()
    ds = e.to_zarr(tmp_path / "t.zarr", timeout=1.0, progress=False)
    elapsed = time.monotonic() - start
    assert np.flatnonzero(_status(ds) == 2).tolist() == [1, 6, 9]
    errors = ds["error"].values[:, 0]
    assert errors[1].startswith("MemberTimeoutError: timed out after 1 s")
    assert errors[6].startswith("MemberTimeoutError: timed out after 1 s")
    assert "its worker process was killed" in errors[9]
    assert elapsed < 300  # a hung member never hangs the run


def test_a_timed_out_member_stops_the_run_with_on_error_raise():
    e = _ensemble(6, batch_size=2, spin=[3.0])
    with pytest.raises(MemberError, match=r"a=3\.0.*timed out after 0\.5 s"):
        e.compute(timeout=0.5, progress=False)


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), True, "5"])
def test_a_bad_timeout_is_refused_before_anything_runs(bad):
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        _ensemble(3).compute(timeout=bad, progress=False)


def test_the_first_members_cannot_take_the_client_down_or_hang_it():
    """Planning runs the first members on a worker: the very first one killing its
    process, or hanging, is recorded like any other (the client survives)."""
    e = ens.Ensemble(
        sims.misbehaves,
        ens.Grid(a=np.arange(8.0)),
        seeds=1,
        root_seed=0,
        fixed={"driver": -1, "kill": [0.0], "sleep": [1.0]},  # -1: any process may die
    )
    ds = e.compute(on_error="record", timeout=1.0, progress=False)
    assert np.flatnonzero(_status(ds) == 2).tolist() == [0, 1]
    np.testing.assert_array_equal(ds["y"].values[2:, 0], np.arange(2.0, 8.0))


def test_a_script_without_a_main_guard_runs(tmp_path):
    """Scientists write scripts without ``if __name__ == "__main__":``: the workers never
    re-run the script, and functions defined in it reach them."""
    script = tmp_path / "sweep.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import ensembles as ens

            def sim(*, seed, T):
                rng = np.random.default_rng(seed)
                return {"M": rng.normal(T, 0.1, size=5)}

            e = ens.Ensemble(sim, ens.Grid(T=[1.0, 2.0, 3.0]), seeds=4, root_seed=1)
            ds = e.to_zarr("out.zarr", progress=False)
            print("ok", int((ds["status"] == 1).sum()))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": ROOT}
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "12"]


def test_progress_keeps_updating_while_members_run():
    stream = io.StringIO()
    bar = Progress(5, stream=stream, interval=0.05)
    bar.running(2)
    with bar.ticking():
        time.sleep(0.6)  # no member finishes meanwhile
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 3
    assert all("members: 0/5" in line and "2 blocks in flight" in line for line in lines)
    assert lines[0] != lines[-1] or "elapsed 0:00:00" in lines[-1]


def test_the_command_line_and_a_spec_take_a_timeout(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        textwrap.dedent(
            f"""
            [simulation]
            function = "tests.sims:misbehaves"
            [design.grid]
            a = [0.0, 1.0, 2.0, 3.0]
            [fixed]
            driver = {os.getpid()}
            spin = [2.0]
            [run]
            seeds = 1
            root_seed = 3
            batch_size = 2
            timeout = 1.0
            """
        )
    )
    from ensembles.cli import main

    assert main(["run", str(spec), "-o", str(tmp_path / "a.zarr"), "-q"]) in (0, 3)
    ds = ens.open_ensemble(tmp_path / "a.zarr")
    assert _status(ds).tolist() == [1, 1, 2, 1]
    assert "timed out after 1 s" in ds["error"].values[2, 0]
    spec.write_text(spec.read_text().replace("timeout = 1.0\n", ""))
    code = main(["run", str(spec), "-o", str(tmp_path / "b.zarr"), "-q", "--timeout", "0.5"])
    assert code in (0, 3)
    assert "timed out after 0.5 s" in ens.open_ensemble(tmp_path / "b.zarr")["error"].values[2, 0]
