"""Stores written by an earlier version of ensembles open, resume and extend.

``tests/data/*_v1_store`` were written by ensembles before the writer lease had generations,
before the creation marker, and while text coordinates were stored as fixed-width strings
(commit dcd8b40): ``walk_v1_store`` by ``Ensemble(tests.sims.walk, Grid(drift=[0.0, 1.0,
2.0]), seeds=2, root_seed=7, batch_size=2)``, ``text_v1_store`` by
``Ensemble(tests.store_sims.labelled, Grid(model=["ab", "cde"]), seeds=2, root_seed=3,
batch_size=2)``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import ensembles as ens
from ensembles.cli import main
from ensembles.describe import describe
from ensembles.errors import StoreMismatchError

from . import sims, store_sims

DATA = Path(__file__).parent / "data"


def _copy(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / name, tmp_path / name))


def _walk(drift=(0.0, 1.0, 2.0), seeds=2):
    return ens.Ensemble(
        sims.walk, ens.Grid(drift=list(drift)), seeds=seeds, root_seed=7, batch_size=2
    )


def test_an_earlier_store_opens_resumes_and_extends(tmp_path, capsys):
    path = _copy("walk_v1_store", tmp_path)
    legacy = json.loads((path / "_ensembles_lease" / "zarr.json").read_text())
    assert legacy["attributes"] == {"lease": {}}  # the earlier lease, released
    ref = _walk().to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(ens.open_ensemble(path)["x"].values, ref["x"].values)
    assert describe(path)["members"] == {"ok": 6, "failed": 0, "pending": 0, "total": 6}
    zarr.open_array(str(path / "status"), mode="r+")[1, :] = 0  # as a crash leaves it
    assert main(["resume", str(path), "-q", "--trust"]) == 0
    assert "6 of 6 members ok" in capsys.readouterr().out
    np.testing.assert_array_equal(ens.open_ensemble(path)["x"].values, ref["x"].values)
    grown = _walk(drift=(0.0, 1.0, 2.0, 3.0), seeds=3)
    ds = grown.to_zarr(path, mode="resume", progress=False)
    ref = grown.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(ds["x"].values, ref["x"].values)
    generations = [p.name for p in (path / "_ensembles_lease").iterdir() if p.is_dir()]
    assert len(generations) == 2  # the new lease beside the earlier record, numbered on


# zarr warns about the fixed-width text type of such stores when it reads their metadata
@pytest.mark.filterwarnings("ignore::zarr.errors.UnstableSpecificationWarning")
def test_text_values_of_an_earlier_store_extend_or_say_why_not(tmp_path):
    path = _copy("text_v1_store", tmp_path)
    ds = ens.open_ensemble(path)
    assert ds["model"].values.tolist() == ["ab", "cde"]
    longer = ens.Ensemble(
        store_sims.labelled, ens.Grid(model=["ab", "cde", "fghij"]), seeds=2, root_seed=3
    )
    with pytest.raises(StoreMismatchError, match=r"fixed-width text .* 'fghij' does not fit"):
        longer.to_zarr(path, mode="resume", progress=False)
    fits = ens.Ensemble(
        store_sims.labelled, ens.Grid(model=["ab", "cde", "xy"]), seeds=2, root_seed=3
    )
    ds = fits.to_zarr(path, mode="resume", progress=False)
    assert ds["model"].values.tolist() == ["ab", "cde", "xy"]
    ref = fits.to_dataset().compute(scheduler="synchronous")
    np.testing.assert_array_equal(ds["y"].values, ref["y"].values)
