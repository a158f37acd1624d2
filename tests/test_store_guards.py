"""What a run may write over, what a read refuses: targets, failing closed, codecs, warnings.

Every store here is real (written by ensembles, xarray or by hand as files), and the CLI
runs as a real program where the issue reproduced it that way.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ensembles as ens
from ensembles.cli import main
from ensembles.describe import describe
from ensembles.errors import StoreError, StoreExistsError
from ensembles.store.zarr_store import EnsembleStore

from . import sims, store_sims

ROOT = Path(__file__).resolve().parents[1]

SMALL_TOML = """
[simulation]
function = "tests.sims:walk"
[design.grid]
drift = [0.0, 1.0]
[run]
seeds = 2
root_seed = 1
"""


def _digest(path: Path) -> str:
    """Every file under ``path`` (names and bytes), or the file itself."""
    h = hashlib.sha256()
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _walk(**kw):
    return ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0]), seeds=2, root_seed=1, **kw)


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ensembles.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


# -- item 1: never destroy what is at the path -------------------------------------------


def test_cli_run_refuses_a_folder_with_files_and_keeps_them(tmp_path):
    (tmp_path / "small.toml").write_text(SMALL_TOML)
    data = tmp_path / "mydata"
    (data / "sub").mkdir(parents=True)
    (data / "notes.txt").write_text("important\n")
    (data / "sub" / "more.txt").write_text("also important\n")
    before = _digest(data)
    for extra in ([], ["--overwrite"], ["--resume"]):
        done = _cli("run", "small.toml", "-o", "mydata", *extra, cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "a folder with 2 entries (notes.txt, sub) that is not a Zarr store" in done.stderr
        assert "never deletes" in done.stderr
        assert "Traceback" not in done.stderr
        assert (data / "notes.txt").read_text() == "important\n"
        assert _digest(data) == before


def _folder(path: Path) -> None:
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("important\n")


def _subfolder_only(path: Path) -> None:
    (path / "results").mkdir(parents=True)
    (path / "results" / "table.csv").write_text("a,b\n1,2\n")


def _zarr_v2(path: Path) -> None:
    xr.Dataset({"foreign": ("i", np.arange(3.0))}).to_zarr(path, zarr_format=2, consolidated=True)


def _zarr_v3(path: Path) -> None:
    xr.Dataset({"foreign": ("i", np.arange(3.0))}).to_zarr(path, zarr_format=3, consolidated=False)


def _file(path: Path) -> None:
    path.write_text("not a store\n")


TARGETS = {
    "folder": (_folder, r"a folder with 2 entries \(notes\.txt, sub\)"),
    "subfolder": (_subfolder_only, r"a folder with 1 entry \(results\)"),
    "zarr-v2": (_zarr_v2, r"a Zarr v2 store \(\.zgroup, \.zmetadata\), written by xarray"),
    "zarr-v3": (_zarr_v3, r"a Zarr v3 store that is not an ensemble"),
    "file": (_file, r"a file, not a folder"),
}


@pytest.mark.parametrize("mode", ["w-", "w", "resume"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_python_api_refuses_what_is_not_an_ensembles_store(tmp_path, target, mode):
    make, found = TARGETS[target]
    path = tmp_path / "out"
    make(path)
    before = _digest(path)
    if mode == "w" and target.startswith("zarr"):  # another Zarr store: replaced on request
        ds = _walk().to_zarr(path, mode="w", progress=False)
        assert (ds["status"].values == 1).all()
        assert "foreign" not in ds
        return
    with pytest.raises(StoreExistsError, match=found) as err:
        _walk().to_zarr(path, mode=mode, progress=False)
    if target in ("folder", "subfolder", "file"):
        assert "never deletes" in str(err.value)
    else:
        assert "mode='w'" in str(err.value)
    assert _digest(path) == before


@pytest.mark.parametrize("mode", ["w-", "w", "resume"])
def test_an_empty_folder_is_used(tmp_path, mode):
    path = tmp_path / "empty"
    path.mkdir()
    ds = _walk().to_zarr(path, mode=mode, progress=False)
    assert (ds["status"].values == 1).all()


def test_overwrite_replaces_an_ensembles_store_and_keeps_its_lease_lineage(tmp_path):
    path = tmp_path / "s.zarr"
    _walk().to_zarr(path, progress=False)
    other = ens.Ensemble(sims.walk, ens.Grid(drift=[5.0]), seeds=3, root_seed=2)
    ds = other.to_zarr(path, mode="w", progress=False)
    assert ds["drift"].values.tolist() == [5.0]
    generations = sorted(n for n in os.listdir(path / "_ensembles_lease") if n != "zarr.json")
    assert len(generations) == 2  # the first run's and the overwrite's, consecutive
    assert int(generations[1][1:]) == int(generations[0][1:]) + 1


def test_a_failed_run_leaves_no_folder_behind(tmp_path):
    path = tmp_path / "never.zarr"
    e = ens.Ensemble(sims.flaky, ens.Grid(a=[-1.0]), seeds=1, root_seed=0)
    with pytest.raises(ens.MemberError):
        e.to_zarr(path, on_error="raise", progress=False)
    assert not path.exists()


# -- fail closed ---------------------------------------------------------------------------


def test_a_path_that_cannot_be_read_is_an_error_not_a_guess(tmp_path):
    loop = tmp_path / "loop.zarr"
    os.symlink(loop, loop)  # stat fails with "too many levels of symbolic links"
    with pytest.raises(StoreError, match=r"cannot tell what is at .*loop\.zarr"):
        EnsembleStore(str(loop)).exists()
    with pytest.raises(StoreError, match="cannot tell what is at"):
        _walk().to_zarr(loop, mode="w", progress=False)
    with pytest.raises(StoreError, match="cannot tell what is at"):
        ens.open_ensemble(loop)
    assert os.path.islink(loop)


# -- item 8: codecs that unpickle, wherever metadata names them ---------------------------


class _Marker:
    """Unpickling this creates a file: proof that a chunk was decoded with pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("codecs") / "clean.zarr"
    _walk().to_zarr(path, progress=False)
    return path


def _poison_chunks(store: Path, marker: Path) -> None:
    payload = pickle.dumps(_Marker(str(marker)))
    for chunk in (store / "x" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(payload)


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _nested_in_sharding(store: Path) -> None:
    def change(doc):
        doc["codecs"] = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": doc["chunk_grid"]["configuration"]["chunk_shape"],
                    "codecs": [{"name": "numcodecs.pickle", "configuration": {}}],
                    "index_codecs": [{"name": "bytes"}, {"name": "crc32c"}],
                },
            }
        ]

    _edit(store / "x" / "zarr.json", change)


def _v2_beside_v3(store: Path) -> None:
    (store / "x" / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [2, 2, 5],
                "chunks": [2, 2, 5],
                "dtype": "|O",
                "compressor": None,
                "fill_value": None,
                "filters": [{"id": "pickle", "protocol": 5}],
                "order": "C",
            }
        )
    )


def _consolidated_only(store: Path) -> None:
    def change(doc):
        meta = doc["consolidated_metadata"]["metadata"]["x"]
        meta["codecs"] = [{"name": "bytes"}, {"name": "numcodecs.pickle", "configuration": {}}]

    _edit(store / "zarr.json", change)


def _v2_consolidated(store: Path) -> None:
    (store / ".zmetadata").write_text(
        json.dumps(
            {
                "zarr_consolidated_format": 1,
                "metadata": {"x/.zarray": {"compressor": {"id": "pickle"}, "filters": None}},
            }
        )
    )


POISONS = {
    "nested-in-sharding": (_nested_in_sharding, "x/zarr.json"),
    "v2-zarray-beside-v3": (_v2_beside_v3, "x/.zarray"),
    "consolidated-copy": (_consolidated_only, "zarr.json, consolidated copy of 'x'"),
    "v2-zmetadata": (_v2_consolidated, ".zmetadata, consolidated copy of 'x/.zarray'"),
}


@pytest.mark.parametrize("poison", list(POISONS))
def test_every_read_path_refuses_a_codec_that_unpickles(clean_store, tmp_path, poison):
    make, where = POISONS[poison]
    store = tmp_path / "p.zarr"
    shutil.copytree(clean_store, store)
    marker = tmp_path / "unpickled"
    _poison_chunks(store, marker)
    make(store)
    before = _digest(store)
    refused = r"uses codec '[^']*pickle' \(" + where.replace(".", r"\.").replace("(", r"\(")
    with pytest.raises(StoreError, match=refused):
        ens.open_ensemble(store)
    with pytest.raises(StoreError, match=refused):
        describe(store)
    with pytest.raises(StoreError, match=refused):
        _walk().to_zarr(store, mode="resume", progress=False)
    grown = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0, 1.0, 2.0]), seeds=2, root_seed=1)
    with pytest.raises(StoreError, match=refused):
        grown.to_zarr(store, mode="resume", progress=False)
    assert main(["info", str(store)]) == 1
    assert main(["resume", str(store), "--trust", "-q"]) == 1
    assert not marker.exists()
    assert _digest(store) == before


# -- item 12: text design values store without zarr's unstable-type warning --------------


def test_text_design_values_store_and_extend_without_warnings(tmp_path):
    # pytest turns warnings into errors here, so any UnstableSpecificationWarning fails
    path = tmp_path / "t.zarr"
    e = ens.Ensemble(store_sims.labelled, ens.Grid(model=["ab", "cde"]), seeds=2, root_seed=3)
    ds = e.to_zarr(path, progress=False)
    assert ds["model"].values.tolist() == ["ab", "cde"]
    grown = ens.Ensemble(
        store_sims.labelled,
        ens.Grid(model=["ab", "cde", "a much longer name"]),
        seeds=2,
        root_seed=3,
    )
    ds = grown.to_zarr(path, mode="resume", progress=False)
    assert ds["model"].values.tolist() == ["ab", "cde", "a much longer name"]
    ref = grown.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(ds["y"].values, ref["y"].values)


def test_cli_prints_no_unstable_specification_warning(tmp_path):
    (tmp_path / "t.toml").write_text(
        '[simulation]\nfunction = "tests.store_sims:labelled"\n'
        '[design.grid]\nmodel = ["ab", "cde"]\n[run]\nseeds = 2\nroot_seed = 1\n'
    )
    done = _cli("run", "t.toml", "-o", "t.zarr", "-q", "--workers", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    done = _cli("info", "t.zarr", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr


# -- item 7: zarr's public API only ---------------------------------------------------------


def test_concurrent_zarr_calls_overlap_and_report_the_first_error():
    import threading

    from ensembles.store.arrays import concurrently

    barrier = threading.Barrier(3, timeout=120)  # passes only if all three run at once
    done = []
    concurrently([lambda i=i: done.append((barrier.wait(), i)) for i in range(3)])
    assert sorted(i for _, i in done) == [0, 1, 2]

    def fail():
        raise OSError(28, "No space left on device")

    finished = threading.Event()

    def slow():
        assert not finished.wait(0.2)
        finished.set()

    with pytest.raises(OSError, match="No space left"):
        concurrently([fail, slow])
    assert finished.is_set()  # raised only once every call was done


def test_the_store_uses_no_private_zarr_modules():
    import ast

    for path in (ROOT / "ensembles" / "store").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith("zarr.core"), (path.name, name)
