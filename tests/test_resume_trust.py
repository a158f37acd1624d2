"""Resuming runs what a store names: asked first unless ensembles wrote that spec for this user.

A "store from elsewhere" is made for real: created by another ``ensembles`` process whose
state directory (``ENSEMBLES_STATE_DIR``) is not this user's, on this very machine and as
this very user, so its provenance looks like ours. That must not matter.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zarr

import ensembles as ens
from ensembles.store.trust import STATE_ENV

ROOT = Path(__file__).resolve().parents[1]

APPEND = """\
import sys
with open(sys.argv[1], "a") as f:
    f.write("ran\\n")
print("y")
print(sys.argv[2])
"""


def _spec(tmp_path: Path) -> Path:
    script = tmp_path / "append.py"
    script.write_text(APPEND)
    argv = [sys.executable, str(script), str(tmp_path / "ran.txt"), "{a}"]
    spec = tmp_path / "theirs.toml"
    spec.write_text(
        f'[simulation]\ncommand = {json.dumps(argv)}\noutput = "-"\n'
        "[design.grid]\na = [1.0, 2.0]\n[run]\nseeds = 2\nroot_seed = 5\n"
    )
    return spec


def _cli(args, cwd, state=None, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if state is not None:
        env[STATE_ENV] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "ensembles.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


@pytest.fixture
def foreign_store(tmp_path):
    """A store made by someone else's ensembles, two of its four members still pending."""
    spec = _spec(tmp_path)
    done = _cli(
        ["run", str(spec), "-o", "theirs.zarr", "-q", "--workers", "1"],
        tmp_path,
        state=tmp_path / "elsewhere",
    )
    assert done.returncode == 0, done.stderr
    status = zarr.open_array(str(tmp_path / "theirs.zarr" / "status"), mode="r+")
    status[1, :] = 0
    (tmp_path / "ran.txt").unlink()
    return tmp_path / "theirs.zarr"


def _runs(tmp_path: Path) -> int:
    ran = tmp_path / "ran.txt"
    return len(ran.read_text().splitlines()) if ran.exists() else 0


def test_resume_of_a_store_from_elsewhere_shows_what_runs_and_needs_trust(tmp_path, foreign_store):
    prov = json.loads(ens.open_ensemble(foreign_store).attrs["ensembles_provenance"])
    assert prov["host"] == os.uname().nodename  # it claims to be ours: not consulted
    done = _cli(["resume", str(foreign_store), "-q"], tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert "resuming" in done.stderr
    assert "runs the program: [" in done.stderr
    assert "append.py" in done.stderr
    assert "needs --trust" in done.stderr
    assert _runs(tmp_path) == 0
    done = _cli(["resume", str(foreign_store), "-q", "--trust"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert _runs(tmp_path) == 2
    assert (ens.open_ensemble(foreign_store)["status"].values == 1).all()


def _answer_on_a_tty(tmp_path, store, answer):
    """Run ``ensembles resume`` on a pseudo-terminal; answer its question."""
    primary, secondary = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ensembles.cli", "resume", str(store), "-q"],
        cwd=tmp_path,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 600
    while b"[y/N]" not in seen:
        assert time.monotonic() < deadline, seen
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            seen += os.read(primary, 4096)
    os.write(primary, answer)
    while proc.poll() is None or select.select([primary], [], [], 0)[0]:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=600)
    os.close(primary)
    return proc.returncode, seen.decode(errors="replace")


def test_resume_on_a_terminal_asks_and_runs_only_on_yes(tmp_path, foreign_store):
    code, out = _answer_on_a_tty(tmp_path, foreign_store, b"n\n")
    assert code == 1
    assert "runs the program" in out
    assert "nothing was run" in out
    assert _runs(tmp_path) == 0
    code, out = _answer_on_a_tty(tmp_path, foreign_store, b"y\n")
    assert code == 0, out
    assert _runs(tmp_path) == 2


def test_the_users_own_spec_runs_without_asking(tmp_path, foreign_store):
    spec = tmp_path / "theirs.toml"  # the user holds the spec: what runs is theirs
    done = _cli(["run", str(spec), "-o", str(foreign_store), "--resume", "-q"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert _runs(tmp_path) == 2


def test_a_store_this_user_created_resumes_without_asking(tmp_path):
    spec = _spec(tmp_path)
    done = _cli(["run", str(spec), "-o", "mine.zarr", "-q", "--workers", "1"], tmp_path)
    assert done.returncode == 0, done.stderr
    zarr.open_array(str(tmp_path / "mine.zarr" / "status"), mode="r+")[0, :] = 0
    done = _cli(["resume", "mine.zarr", "-q"], tmp_path, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert _runs(tmp_path) == 4 + 2
