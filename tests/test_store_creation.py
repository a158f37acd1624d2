"""Creating a store is recoverable: a full disk or a killed process mid-creation.

The full disk is real: a small tmpfs mounted for the test (skipped where mounting is not
permitted), filled at every point of the creation in turn by growing its size one page at a
time. The killed process is real too (SIGKILL while it lays out a store of many arrays).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import ensembles as ens
from ensembles.cli import main
from ensembles.errors import StoreError, StoreExistsError
from ensembles.store.zarr_store import EnsembleStore

from . import store_sims

ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096


def _run(path, log, workers=1, **kw):
    e = ens.Ensemble(
        store_sims.logged,
        ens.Grid(a=[1.0, 2.0]),
        seeds=2,
        root_seed=1,
        fixed={"log": str(log)},
        batch_size=2,
    )
    return e, e.to_zarr(path, progress=False, workers=workers, **kw)


def _mount(point: Path, size: int, remount: bool = False) -> subprocess.CompletedProcess:
    opts = f"remount,size={size}" if remount else f"size={size}"
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )


@pytest.fixture
def tmpfs(tmp_path):
    point = tmp_path / "disk"
    point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    probe = _mount(point, PAGE)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.strip()}")
    subprocess.run(["umount", str(point)], check=True)
    mounted = []

    def mount(size):
        if mounted:
            subprocess.run(["umount", str(point)], check=True)
            mounted.clear()
        assert _mount(point, size).returncode == 0
        mounted.append(point)
        return point

    yield mount
    if mounted:
        subprocess.run(["umount", str(point)], check=True)


def test_a_disk_that_fills_at_any_point_of_creation_leaves_a_store_resume_finishes(
    tmp_path, tmpfs
):
    log = tmp_path / "calls.log"
    ref = _run(tmp_path / "ref.zarr", log)[1].load()
    seen = set()
    for pages in range(1, 60, 2):
        disk = tmpfs(pages * PAGE)
        path = disk / "run.zarr"
        try:
            _run(path, log)
        except (StoreError, OSError) as exc:
            failure = str(exc)
        else:
            break  # enough room for the whole run: every smaller disk failed somewhere
        kind = EnsembleStore(str(path)).found().kind
        seen.add(kind)
        assert kind in ("nothing", "empty", "incomplete", "ensemble"), (pages, kind)
        if kind == "incomplete":
            assert "No space left on device" in failure
            assert "resume the store" in failure
            with pytest.raises(StoreExistsError, match="a half-created store is at"):
                _run(path, log)
            with pytest.raises(StoreError, match="half-created"):
                ens.open_ensemble(path)
        assert _mount(disk, 64 * 2**20, remount=True).returncode == 0  # space freed
        _, ds = _run(path, log, mode="resume")
        np.testing.assert_array_equal(ds["y"].values, ref["y"].values)
        assert (ds["status"].values == 1).all()
    else:
        pytest.fail("the run never fitted")
    assert "incomplete" in seen  # the disk filled between the first and the last array


def test_cli_after_a_full_disk_says_what_to_do_and_resume_finishes(tmp_path, tmpfs, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[simulation]\nfunction = "tests.store_sims:logged"\n[design.grid]\na = [1.0, 2.0]\n'
        f'[fixed]\nlog = "{tmp_path / "calls.log"}"\n[run]\nseeds = 2\nroot_seed = 1\n'
    )
    for pages in range(3, 30):  # the first disk that fills while arrays are created
        disk = tmpfs(pages * PAGE)
        out = str(disk / "run.zarr")
        assert main(["run", str(spec), "-o", out, "-q", "--workers", "1"]) == 1
        assert "No space left on device" in capsys.readouterr().err
        if EnsembleStore(out).found().kind == "incomplete":
            break
    else:
        pytest.fail("the disk never filled during creation")
    assert main(["run", str(spec), "-o", out, "-q", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "a half-created store is at" in err
    assert "--resume" in err
    assert _mount(disk, 64 * 2**20, remount=True).returncode == 0
    assert main(["resume", out, "-q", "--workers", "1"]) == 0  # no "error: 'status'"
    assert "4 of 4 members ok" in capsys.readouterr().out


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import ensembles as ens
    from tests import store_sims
    if __name__ == "__main__":
        e = ens.Ensemble(store_sims.many_outputs, ens.Grid(a=[1.0, 2.0]), seeds=2,
                         root_seed=3, fixed={{"n": 120}})
        e.to_zarr({path!r}, progress=False, workers=1)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.05])
def test_sigkill_during_creation_leaves_a_store_resume_finishes(tmp_path, delay):
    path = tmp_path / "k.zarr"
    script = tmp_path / "create.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), path=str(path)))
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.monotonic() + 600
    while not (path / "zarr.json").exists():  # the root is the first thing created
        assert proc.poll() is None, "the run ended before the store appeared"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kind = EnsembleStore(str(path)).found().kind
    assert kind in ("incomplete", "ensemble")
    if kind == "incomplete":
        with pytest.raises(StoreExistsError, match="half-created"):
            ens.Ensemble(store_sims.many_outputs, ens.Grid(a=[1.0, 2.0]), seeds=2).to_zarr(
                path, progress=False
            )
    e = ens.Ensemble(
        store_sims.many_outputs, ens.Grid(a=[1.0, 2.0]), seeds=2, root_seed=3, fixed={"n": 120}
    )
    ds = e.to_zarr(path, mode="resume", progress=False)
    ref = e.to_dataset().compute(scheduler="synchronous")
    for name in ("o000", "o119"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert (ds["status"].values == 1).all()


def test_a_store_half_created_by_an_earlier_version_is_recognised(tmp_path, capsys):
    # what earlier versions left when creation stopped: the spec, but not every array
    log = tmp_path / "calls.log"
    path = tmp_path / "old.zarr"
    _run(path, log)
    shutil.rmtree(path / "status")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[simulation]\nfunction = "tests.store_sims:logged"\n[design.grid]\na = [1.0, 2.0]\n'
        f'[fixed]\nlog = "{log}"\n[run]\nseeds = 2\nroot_seed = 1\nbatch_size = 2\n'
    )
    assert main(["run", str(spec), "-o", str(path), "-q", "--workers", "1"]) == 1
    assert "a half-created store is at" in capsys.readouterr().err
    assert main(["resume", str(path), "-q", "--workers", "1"]) == 0
    assert "4 of 4 members ok" in capsys.readouterr().out
