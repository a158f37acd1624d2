"""The example notebooks, executed top to bottom with nbclient at small sizes."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import xarray as xr

import ensembles  # noqa: F401 - registers the .ens accessor (once wired in)

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.distributed

NOTEBOOKS = Path(__file__).resolve().parents[1] / "examples" / "notebooks"
CELL_TIMEOUT = 300


def _kernel_name() -> str:
    """The ``python3`` kernel, which jupyter_client starts with this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:  # pragma: no cover
        pytest.skip("no python3 Jupyter kernel; `python -m ipykernel install --user`")
    if spec.argv[0] not in ("python", "python3", sys.executable):  # pragma: no cover
        pytest.skip(f"the python3 kernel runs {spec.argv[0]!r}, not {sys.executable!r}")
    return "python3"


def _run(name: str, workdir: Path) -> nbformat.NotebookNode:
    path = workdir / name
    shutil.copy(NOTEBOOKS / name, path)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name=_kernel_name(),
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    nbformat.write(nb, path)  # executed copy, for a look after a failure
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, nbformat.NotebookNode]:
    """Both notebooks run in order in one directory (the second reads the first's store)."""
    workdir = tmp_path_factory.mktemp("notebooks")
    mp = pytest.MonkeyPatch()
    mp.setenv("ENSEMBLES_EXAMPLES_SMALL", "1")
    mp.setenv("ENSEMBLES_EXAMPLES_STORE", str(workdir / "ising.zarr"))
    mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    try:
        out = {"cluster": _run("01_cluster_ising.ipynb", workdir)}
        if hasattr(xr.DataArray, "ens"):  # registered by `import ensembles`
            out["envelope"] = _run("02_envelope.ipynb", workdir)
        yield out
    finally:
        mp.undo()


def test_cluster_notebook_runs_and_stores_the_ensemble(executed, tmp_path):
    text = _text(executed["cluster"])
    assert "0 failed, 0 pending" in text
    assert "reproduced from its stored seed" in text
    assert "members: 10/10 (100.0%)" in text  # the progress display, updated in place


def test_envelope_notebook_plots(executed):
    if "envelope" not in executed:  # pragma: no cover
        pytest.skip("the .ens accessor is not registered by `import ensembles` yet")
    nb = executed["envelope"]
    assert "'mean'" in _text(nb)
    assert _images(nb) >= 2
