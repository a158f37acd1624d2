"""Workers forked from a single-threaded driver: when the pool forks, what a forked worker
looks like (its own group, only its own descriptors, default signals, the workers' thread
limits), and that a run gives the same results bit for bit however its workers start."""

from __future__ import annotations

import json
import threading

import pytest

from ensembles.errors import RunnerError
from ensembles.execution.pool_fork import START_VARIABLE, start_method
from tests.test_pool import run_script


def test_start_method_reads_the_variable():
    assert start_method({START_VARIABLE: "spawn"}) == "spawn"
    assert start_method({START_VARIABLE: " Fork "}) == "fork"
    with pytest.raises(RunnerError, match=r"ENSEMBLES_WORKER_START='forkserver'.*'spawn'"):
        start_method({START_VARIABLE: "forkserver"})


def test_auto_does_not_fork_beside_another_thread():
    release = threading.Event()
    other = threading.Thread(target=release.wait, daemon=True)
    other.start()
    try:
        assert start_method({START_VARIABLE: "auto"}) == "spawn"
        assert start_method({}) == "spawn"
    finally:
        release.set()
        other.join()


PROBE = """
import gc, json, os, signal, sys, threading
import numpy as np
from ensembles.execution.pool import LocalPool

signal.signal(signal.SIGTERM, lambda *a: None)  # the driver's handler, not the worker's
signal.signal(signal.SIGHUP, signal.SIG_IGN)  # ignored signals stay ignored, as with exec

def probe():
    import threadpoolctl, time
    time.sleep(0.2)
    numba = sys.modules.get("numba.np.ufunc.parallel")
    return {
        "pid": os.getpid(),
        "forked": "ensembles.execution.pool" in sys.modules,
        "group": os.getpgid(0) == os.getpid(),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "stdin": os.path.realpath("/proc/self/fd/0"),
        "sigterm": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "sighup": signal.getsignal(signal.SIGHUP) == signal.SIG_IGN,
        "sigint": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
        "blas": [i["num_threads"] for i in threadpoolctl.threadpool_info()
                 if i["user_api"] == "blas"],
        "numba": None if numba is None else numba.NUM_THREADS,
        "omp": os.environ.get("OMP_NUM_THREADS"),
    }

BEFORE
pool = LocalPool(2)
seen = {}
while len(seen) < 2:  # pairs of probes: both workers busy at once
    for future in [pool.submit(probe) for _ in range(2)]:
        info = future.result(timeout=120)
        seen[info["pid"]] = info
pool.shutdown()
print(json.dumps(list(seen.values())))
"""


def run_ok(tmp_path, code, start):
    """Run ``code`` as a script whose workers start as ``start``; it must succeed."""
    result = run_script(tmp_path, code, start=start)
    assert result.returncode == 0, result.stderr
    return result


def probe_workers(tmp_path, start="auto", before=""):
    result = run_ok(tmp_path, PROBE.replace("BEFORE", before), start)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_forked_worker_is_as_clean_as_a_fresh_one(tmp_path):
    forked = probe_workers(tmp_path, "auto", "import numba")
    fresh = probe_workers(tmp_path, "spawn", "import numba")
    assert all(w["forked"] for w in forked)
    assert not any(w["forked"] for w in fresh)
    for worker in forked:
        assert worker["group"], worker  # killed with what it starts, as a fresh one
        assert worker["stdin"] == "/dev/null"
        assert worker["sigterm"]
        assert worker["sighup"]
        assert worker["sigint"]
        assert worker["omp"] == fresh[0]["omp"]
        assert worker["numba"] == int(worker["omp"]), "numba's threads limited as a fresh one's"
        assert worker["blas"] == [int(worker["omp"])], "BLAS threads limited as a fresh one's"
    # nothing of the driver's open files, pipes or other workers' pipes: the same count
    # of descriptors as a fresh worker (the standard streams, its pipes, its lifeline)
    assert {len(w["fds"]) for w in forked} == {len(w["fds"]) for w in fresh}


def test_a_driver_with_a_thread_starts_fresh_workers(tmp_path):
    before = "threading.Thread(target=threading.Event().wait, daemon=True).start()"
    assert not any(w["forked"] for w in probe_workers(tmp_path, "auto", before))


RUN = """
import hashlib, json, os, sys
import numpy as np
import ensembles as ens
from ensembles.layout import OK

def member(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    if seed == KILL:
        os._exit(9)  # this member kills its worker
    return {"dot": a @ a, "sum": a.sum(), "sd": a.std()}

e = ens.Ensemble(member, ens.Grid(n=[3, 1000, 300_000]), seeds=4, root_seed=7)
KILL = int(e.members().seed(1))  # the seed of one member
ds = e.compute(progress=False, on_error="record")
ok = ds["status"].values == OK
digest = hashlib.sha256(np.where(ok, ds["dot"].values, 0.0).tobytes()).hexdigest()
print(json.dumps({"digest": digest, "failed": int((~ok).sum()), "ok": int(ok.sum())}))
"""


def test_results_are_the_same_bit_for_bit_forked_or_fresh(tmp_path):
    """Same members, same numbers (BLAS-sized dot products included), and a member that
    kills its forked worker is isolated as with fresh workers."""
    out = {}
    for start in ("auto", "spawn"):
        result = run_ok(tmp_path, RUN, start)
        out[start] = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["auto"] == out["spawn"]
    assert out["auto"]["failed"] == 1
    assert out["auto"]["ok"] == 11


@pytest.mark.parametrize("start", ["auto", "spawn"])
def test_a_driver_without_stdin_has_working_workers(tmp_path, start):
    """With fd 0 closed the pool's pipes may get descriptor 0: the worker keeps them."""
    code = (
        "import os\n"
        "os.close(0)\n"
        "from ensembles.execution.pool import LocalPool\n"
        "with LocalPool(2) as pool:\n"
        "    print(sum(pool.submit(abs, -i).result(timeout=120) for i in range(8)))\n"
    )
    assert run_ok(tmp_path, code, start).stdout.split() == ["28"]


@pytest.mark.parametrize("start", ["auto", "spawn"])
def test_worker_output_goes_to_the_process_streams(tmp_path, start):
    """A driver that redirected ``sys.stdout`` (to a buffer, a notebook) does not take its
    workers' output with it: they write to descriptors 1 and 2 like fresh interpreters."""
    code = (
        "import contextlib, io, sys\n"
        "from ensembles.execution.pool import LocalPool\n"
        "def talk(i):\n"
        "    sys.stdout.write(f'out {i}\\n')  # one write: lines of two workers never mix\n"
        "    sys.stderr.write(f'err {i}\\n')\n"
        "    return i\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    with LocalPool(2) as pool:\n"
        "        futures = [pool.submit(talk, i) for i in range(4)]\n"
        "        done = sorted(f.result(timeout=120) for f in futures)\n"
        "print('done', done)\n"
    )
    result = run_ok(tmp_path, code, start)
    assert sorted(line for line in result.stdout.splitlines() if line.startswith("out")) == [
        f"out {i}" for i in range(4)
    ]
    assert sorted(line for line in result.stderr.splitlines() if line.startswith("err")) == [
        f"err {i}" for i in range(4)
    ]
