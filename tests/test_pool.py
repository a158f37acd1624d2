"""The local process pool with real worker processes: results and errors, culprits of
dying workers, member timeouts, cancellation, shutdown, scripts without a main guard."""

from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import CancelledError, wait
from pathlib import Path

import psutil
import pytest

from ensembles.errors import RunnerError
from ensembles.execution.pool import (
    LocalPool,
    MemberTimeout,
    RemoteTraceback,
    WorkerDied,
    default_pool,
)
from ensembles.execution.pool_fork import START_VARIABLE
from ensembles.execution.pool_process import THREAD_VARIABLES, cpu_count
from tests import _pool_tasks as tasks

ROOT = Path(__file__).resolve().parents[1]
WAIT = 120  # seconds any result may take on a busy machine


@pytest.fixture(scope="module")
def pool():
    with LocalPool(2) as p:
        yield p


def wait_for_file(path: Path, timeout: float = WAIT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout} s")


def gone(pid: int, timeout: float = WAIT) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its parent counts as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def run_script(
    tmp_path: Path, code: str, name: str = "script.py", start: str = "auto"
) -> subprocess.CompletedProcess:
    script = tmp_path / name
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,  # a hang fails the test
        cwd=tmp_path,
        env=script_env(start),
        check=False,
    )


def script_env(start: str = "auto") -> dict[str, str]:
    """The environment of a script run by a test: this checkout's ensembles first, and
    workers started as ``start`` says (auto: forked from the single-threaded script)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, **{START_VARIABLE: start})


@pytest.fixture(params=["auto", "spawn"])
def start(request):
    """Both ways a worker starts: forked from the driver (auto), a fresh interpreter."""
    return request.param


# -- results and errors ---------------------------------------------------------------------


def test_results_arrive_for_arguments_and_keywords(pool):
    futures = [pool.submit(operator.mul, i, 3) for i in range(20)]
    assert [f.result(timeout=WAIT) for f in futures] == [3 * i for i in range(20)]
    assert pool.submit(sorted, [3, 1, 2], reverse=True).result(timeout=WAIT) == [3, 2, 1]


def test_exception_arrives_as_its_type_with_the_worker_traceback(pool):
    future = pool.submit(tasks.raise_failure, 42)
    with pytest.raises(tasks.TaskFailure, match="bad value 42") as info:
        future.result(timeout=WAIT)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_failure" in cause.text
    assert "_pool_tasks.py" in cause.text


def test_unpicklable_result_fails_only_its_task(pool):
    bad = pool.submit(tasks.return_lock)
    good = pool.submit(operator.add, 1, 1)
    with pytest.raises(RunnerError, match="cannot be pickled"):
        bad.result(timeout=WAIT)
    assert good.result(timeout=WAIT) == 2


@pytest.mark.skipif(sys.version_info < (3, 11), reason="process_group is new in 3.11")
def test_workers_lead_process_groups_in_the_drivers_session(pool):
    pid = pool.submit(os.getpid).result(timeout=WAIT)
    assert os.getpgid(pid) == pid  # killed as a group with what it starts
    assert os.getpgid(pid) != os.getpgid(0)  # out of the terminal's reach (Ctrl-C)
    assert os.getsid(pid) == os.getsid(0)  # scheduled as part of this program


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(RunnerError, match=r"n_workers.*0"):
        LocalPool(0)
    with LocalPool(1) as p:
        with pytest.raises(RunnerError, match=r"member_timeout.*-1"):
            p.submit(operator.add, 1, 2, member_timeout=-1)
        import threading

        with pytest.raises(RunnerError, match="cannot send task"):
            p.submit(operator.add, threading.Lock(), 1)
    with pytest.raises(RunnerError, match="shut down"):
        p.submit(operator.add, 1, 2)


# -- workers that die -----------------------------------------------------------------------


def test_worker_exit_fails_its_task_naming_the_member(pool):
    others = [pool.submit(tasks.run_members, 5, pause=0.05) for _ in range(4)]
    culprit = pool.submit(tasks.run_members, 10, exit_at=6)
    with pytest.raises(WorkerDied) as info:
        culprit.result(timeout=WAIT)
    err = info.value
    assert (err.member, err.exitcode, err.signal) == (6, 3, None)
    assert err.task.fn is tasks.run_members
    assert "member 6" in str(err)
    assert [f.result(timeout=WAIT) for f in others] == [5, 5, 5, 5]
    assert pool.submit(operator.add, 2, 2).result(timeout=WAIT) == 4  # still usable


def test_worker_killed_from_outside_names_the_member(pool, tmp_path):
    pid_file = tmp_path / "pid"
    victim = pool.submit(tasks.run_members, 10, hang_at=4, pid_file=str(pid_file))
    bystander = pool.submit(tasks.sleep_then, "ok", 0.5)
    pid = int(wait_for_file(pid_file))
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerDied) as info:
        victim.result(timeout=WAIT)
    assert (info.value.member, info.value.signal, info.value.pid) == (4, signal.SIGKILL, pid)
    assert "out-of-memory" in str(info.value)
    assert bystander.result(timeout=WAIT) == "ok"
    assert pid not in pool.worker_pids
    assert pool.submit(operator.neg, 1).result(timeout=WAIT) == -1


def test_member_reported_from_package_code_names_the_culprit(pool):
    # the worker loads pool_worker without the package; code of the package, imported
    # later by a task, must reach the same module (and so the same status slot)
    with pytest.raises(WorkerDied) as info:
        pool.submit(tasks.die_in_package_code, 17).result(timeout=WAIT)
    assert info.value.member == 17


def test_crash_in_native_code_fails_its_task(pool):
    with pytest.raises(WorkerDied) as info:
        pool.submit(tasks.crash).result(timeout=WAIT)
    assert info.value.signal == signal.SIGSEGV
    assert info.value.member is None  # the task reported no member


def test_processes_started_by_a_dead_worker_are_killed(pool, tmp_path):
    pid_file = tmp_path / "child"
    future = pool.submit(tasks.start_sleeper, str(pid_file), then_exit=True)
    with pytest.raises(WorkerDied):
        future.result(timeout=WAIT)
    assert gone(int(pid_file.read_text()))


# -- member timeouts ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["hang_at", "busy_at"])
def test_member_over_its_timeout_is_stopped_and_named(pool, tmp_path, how):
    pid_file = tmp_path / "pid"
    slow = pool.submit(tasks.run_members, 8, member_timeout=2, pid_file=str(pid_file), **{how: 5})
    fine = pool.submit(tasks.run_members, 3, pause=0.1, member_timeout=60)
    with pytest.raises(MemberTimeout) as info:
        slow.result(timeout=WAIT)
    assert (info.value.member, info.value.seconds) == (5, 2.0)
    assert "member_timeout=2.0" in str(info.value)
    assert gone(int(pid_file.read_text()))  # the stuck worker was killed
    assert fine.result(timeout=WAIT) == 3
    assert pool.submit(operator.add, 1, 1).result(timeout=WAIT) == 2


def test_a_member_that_hangs_after_a_slow_load_is_stopped(tmp_path):
    """The pool looks at a timed task before its first member starts (the task is still
    loading) and again later: the hanging member is stopped though no event comes."""
    pid_file = tmp_path / "pid"
    with LocalPool(1) as p:
        slow = p.submit(
            tasks.run_members, 3, hang_at=0, loading=1.0, pid_file=str(pid_file), member_timeout=1
        )
        with pytest.raises(MemberTimeout) as info:
            slow.result(timeout=WAIT)
    assert info.value.member == 0
    assert gone(int(pid_file.read_text()))


def test_member_timeout_applies_per_member_not_per_task(pool):
    # six members of 0.5 s: 3 s in all, each well under the 2.5 s limit
    future = pool.submit(tasks.run_members, 6, pause=0.5, member_timeout=2.5)
    assert future.result(timeout=WAIT) == 6


# -- cancelling and stopping ------------------------------------------------------------------


def test_cancel_all_kills_running_tasks_and_cancels_queued_ones(tmp_path):
    with LocalPool(2) as p:
        files = [tmp_path / f"pid{i}" for i in range(2)]
        running = [p.submit(tasks.run_members, 3, hang_at=1, pid_file=str(f)) for f in files]
        queued = [p.submit(operator.add, i, 1) for i in range(5)]
        pids = [int(wait_for_file(f)) for f in files]
        p.cancel_all()
        for future in running:
            with pytest.raises(CancelledError):
                future.result(timeout=WAIT)
        assert all(f.cancelled() for f in queued)
        assert all(gone(pid) for pid in pids)
        assert p.submit(operator.add, 1, 2).result(timeout=WAIT) == 3


def test_shutdown_leaves_no_process_behind(tmp_path):
    p = LocalPool(2)
    child_file = tmp_path / "child"
    assert p.submit(tasks.start_sleeper, str(child_file)).result(timeout=WAIT) > 0
    futures = [p.submit(tasks.sleep_then, i, 0.2) for i in range(4)]
    workers = p.worker_pids
    p.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == [0, 1, 2, 3]  # queued work ran first
    assert all(gone(pid, timeout=0.1) for pid in workers)  # already reaped by shutdown
    assert gone(int(child_file.read_text()), timeout=10)  # started by a task, killed too
    assert not set(workers) & {c.pid for c in psutil.Process().children(recursive=True)}


def test_shutdown_can_cancel_queued_tasks():
    p = LocalPool(1)
    first = p.submit(tasks.sleep_then, "first", 1.0)
    later = [p.submit(operator.add, i, 1) for i in range(5)]
    deadline = time.monotonic() + WAIT
    while not first.running() and not first.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    p.shutdown(wait=True, cancel_futures=True)
    assert first.result(timeout=0) == "first"
    assert all(f.cancelled() for f in later)


# -- shared objects, environment, what a worker imports --------------------------------------


def test_shared_object_reaches_each_worker_once(pool):
    ref = pool.share(tasks.Counted(1 << 20))
    futures = [pool.submit(tasks.shared_identity, ref, 0.05) for _ in range(12)]
    seen: dict[int, set[tuple[int, int]]] = {}
    for future in futures:
        pid, ident, loads = future.result(timeout=WAIT)
        seen.setdefault(pid, set()).add((ident, loads))
    # per worker: one object, unpickled once, whatever the number of tasks it ran
    assert all(len(values) == 1 for values in seen.values())
    assert all(loads == 1 for values in seen.values() for _, loads in values)
    pool.release(ref)
    with pytest.raises(RunnerError, match="released"):
        pool.submit(tasks.shared_identity, ref)


def test_native_thread_pools_are_limited_unless_set(monkeypatch):
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with LocalPool(2) as p:
        env = p.submit(tasks.environment, list(THREAD_VARIABLES)).result(timeout=WAIT)
    expected = str(max(1, cpu_count() // 2))
    assert env["MKL_NUM_THREADS"] == "7"
    assert env["OMP_NUM_THREADS"] == expected
    assert env["OPENBLAS_NUM_THREADS"] == expected
    assert env["NUMBA_NUM_THREADS"] == expected


def test_worker_imports_only_the_standard_library():
    baseline = subprocess.run(
        [sys.executable, "-c", "import sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    with LocalPool(1) as p:  # eval is a builtin: nothing but the pool's own code loads
        loaded = p.submit(eval, "sorted(__import__('sys').modules)").result(timeout=WAIT)
    extra = set(loaded) - set(baseline)
    assert "ensembles.execution.pool_worker" in extra
    foreign = {m for m in extra if m.split(".")[0] not in sys.stdlib_module_names}
    assert foreign == {"ensembles.execution.pool_worker"}


def test_importing_the_pool_loads_no_dask_xarray_or_zarr():
    code = (
        "import sys, ensembles; before = set(sys.modules)\n"
        "import ensembles.execution.pool\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed', 'zarr')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()
    added = out[0].split()
    assert "ensembles.execution.pool" in added
    assert not [m for m in added if m.split(".")[0] in ("dask", "distributed", "xarray", "zarr")]
    assert out[1:] == [""]  # not even through the package


def test_default_pool_is_reused():
    first = default_pool(1)
    assert default_pool(1) is first
    pids = first.submit(os.getpid).result(timeout=WAIT), default_pool(1).worker_pids
    assert pids[0] in pids[1]


# -- scripts: no main guard, __main__ functions, sibling modules, exit, fork -----------------


def test_script_without_main_guard_runs(tmp_path, start):
    result = run_script(
        tmp_path,
        """
        import operator
        from ensembles.execution.pool import default_pool

        pool = default_pool(2)
        print("sum", sum(f.result() for f in [pool.submit(operator.mul, i, 2) for i in range(10)]))
        """,
        start=start,
    )
    assert result.returncode == 0, result.stderr
    assert "sum 90" in result.stdout


def test_function_defined_in_main_runs_with_its_globals(tmp_path, start):
    result = run_script(
        tmp_path,
        """
        import sys
        from ensembles.execution.pool import default_pool

        OFFSET = 100

        def shifted(x):
            sys.stdout.write(f"in worker {x}\\n")  # one write: two workers' lines never mix
            return x + OFFSET

        futures = [default_pool(2).submit(shifted, i) for i in range(3)]
        print("results", [f.result() for f in futures])
        """,
        start=start,
    )
    assert result.returncode == 0, result.stderr
    assert "results [100, 101, 102]" in result.stdout
    assert "in worker 2" in result.stdout  # worker output reaches the driver's stdout


def test_function_from_a_sibling_module_runs(tmp_path, start):
    (tmp_path / "helper_mod.py").write_text("def triple(x):\n    return 3 * x\n")
    result = run_script(
        tmp_path,
        """
        import helper_mod
        from ensembles.execution.pool import default_pool

        futures = [default_pool(2).submit(helper_mod.triple, i) for i in range(3)]
        print("results", [f.result() for f in futures])
        """,
        start=start,
    )
    assert result.returncode == 0, result.stderr
    assert "results [0, 3, 6]" in result.stdout


def test_exit_with_work_running_stops_the_workers(tmp_path, start):
    result = run_script(
        tmp_path,
        """
        import time
        from ensembles.execution.pool import default_pool

        pool = default_pool(2)
        pool.submit(time.sleep, 3600)
        pool.submit(time.sleep, 3600)
        pool.submit(time.sleep, 3600)  # queued
        while len(pool.worker_pids) < 2:
            time.sleep(0.05)
        print("workers", *pool.worker_pids, flush=True)
        """,
        start=start,
    )
    assert result.returncode == 0, result.stderr
    pids = [int(p) for p in result.stdout.split("workers")[1].split()]
    assert all(gone(pid) for pid in pids)


def test_ctrl_c_in_the_driver_stops_everything(tmp_path, start):
    script = tmp_path / "interrupted.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from ensembles.execution.pool import default_pool

            pool = default_pool(2)
            futures = [pool.submit(time.sleep, 3600) for _ in range(4)]
            while len(pool.worker_pids) < 2 or not futures[1].running():
                time.sleep(0.05)
            print(*pool.worker_pids, flush=True)
            futures[0].result()
            """
        )
    )
    driver = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=script_env(start),
    )
    pids = [int(p) for p in driver.stdout.readline().split()]
    driver.send_signal(signal.SIGINT)
    _, stderr = driver.communicate(timeout=WAIT)
    assert "KeyboardInterrupt" in stderr
    assert len(pids) == 2
    assert all(gone(pid) for pid in pids)


def test_workers_die_with_a_killed_driver(tmp_path, start):
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from ensembles.execution.pool import LocalPool

            pool = LocalPool(2)
            futures = [pool.submit(time.sleep, 3600) for _ in range(2)]
            while len(pool.worker_pids) < 2:
                time.sleep(0.05)
            print(*pool.worker_pids, flush=True)
            time.sleep(3600)
            """
        )
    )
    driver = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=script_env(start)
    )
    try:
        pids = [int(p) for p in driver.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        driver.kill()
        driver.wait(timeout=WAIT)
        driver.stdout.close()
    assert all(gone(pid) for pid in pids)


def test_forked_child_gets_a_pool_of_its_own(tmp_path, start):
    result = run_script(
        tmp_path,
        """
        import json, os
        from ensembles.execution.pool import default_pool

        parent_worker = default_pool(1).submit(os.getpid).result()
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            child_worker = default_pool(1).submit(os.getpid).result()
            os.write(w, json.dumps(child_worker).encode())
            os._exit(0)
        os.close(w)
        child_worker = json.loads(os.read(r, 100))
        os.waitpid(child, 0)
        again = default_pool(1).submit(os.getpid).result()
        print(json.dumps([parent_worker, child_worker, again]))
        """,
        start=start,
    )
    assert result.returncode == 0, result.stderr
    parent_worker, child_worker, again = json.loads(result.stdout.strip().splitlines()[-1])
    assert child_worker != parent_worker
    assert again == parent_worker  # the parent's warm worker survived the child's exit


def test_futures_can_be_waited_on_together(pool):
    futures = [pool.submit(tasks.sleep_then, i, 0.01) for i in range(10)]
    done, not_done = wait(futures, timeout=WAIT)
    assert not not_done
    assert sorted(f.result() for f in done) == list(range(10))


def test_workers_that_cannot_start_fail_the_tasks_instead_of_looping(monkeypatch):
    monkeypatch.setenv(START_VARIABLE, "spawn")  # forked workers need no interpreter start
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")  # the worker interpreter cannot start
    with LocalPool(1) as p:
        future = p.submit(operator.add, 1, 2)
        with pytest.raises(RunnerError, match="exit as they start"):
            future.result(timeout=WAIT)
        monkeypatch.delenv("PYTHONHOME")
        assert p.submit(operator.add, 1, 2).result(timeout=WAIT) == 3  # a later submit retries


def test_pool_errors_keep_their_fields_when_pickled():
    import pickle

    died = WorkerDied(task_name="m.f", member=6, exitcode=None, signal=9, pid=123)
    late = MemberTimeout(member=5, seconds=2.0, task_name="m.f", pid=124)
    for error in (died, late):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert again.member == error.member
        assert isinstance(again, RunnerError)
    assert pickle.loads(pickle.dumps(died)).signal == 9
    assert pickle.loads(pickle.dumps(late)).seconds == 2.0
    assert "signal 9" in str(died)
    assert "member 5" in str(late)
