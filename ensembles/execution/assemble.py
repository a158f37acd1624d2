"""Stacking arrays into the ensemble's Dataset layout (see :mod:`ensembles.layout`).

The arrays may be numpy (a computed run), dask (the lazy graph) or zero-size broadcast
placeholders (the layout of a store before anything ran); no dask is imported here.
:func:`warm_up` has xarray build its first Dataset in the background while members run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import MEMBER_SEED, SAMPLE_DIM, SEED_DIM, STATUS, STATUS_ATTRS
from .worker import BlockRunner

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["assemble_dataset", "placeholders", "warm_up", "warmed"]

_WARMING: list[threading.Thread] = []  # the one warm-up thread of this process, once started


def warm_up() -> None:
    """Have xarray build a first, one-element Dataset now, in a background thread.

    xarray (and pandas) load on first use, and xarray loads the duck-array libraries it
    finds installed (dask, pint, ...) on the first Dataset it builds: half a second and
    more, which a run would otherwise spend after its last member (``compute()``) or
    before its first (``to_zarr()``'s layout). A run on the local pool calls this once
    the pool's workers are started (a thread in the driver keeps later workers from being
    forked), so the loading overlaps with the members; :func:`assemble_dataset` waits for
    it first, so the driver's own thread never imports beside it (two threads importing
    one package at once can meet halfway, and Python then hands one of them the module
    half built). Not with a dask cluster: its in-process workers may import the same
    modules. Later calls do nothing; errors are left to the run's own Dataset.

    Examples
    --------
    >>> warm_up()
    >>> _WARMING[0].join(timeout=60)
    """
    if _WARMING:
        return

    def build() -> None:
        with contextlib.suppress(Exception):  # the run's own Dataset raises it, where it matters
            import xarray as xr

            xr.Dataset({"v": (("d",), np.zeros(1))}, coords={"d": np.zeros(1)})

    thread = threading.Thread(target=build, name="ensembles-warm-up", daemon=True)
    _WARMING.append(thread)
    thread.start()


def warmed() -> None:
    """Wait until :func:`warm_up`'s thread (if any) is done: then xarray is loaded."""
    for thread in _WARMING:
        thread.join()


def placeholders(runner: BlockRunner) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Outputs and status as read-only broadcast arrays: their shapes, no memory.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.broadcast_to(np.empty((), "f8"), (1000, 1000))
    >>> a.shape, a.strides
    ((1000, 1000), (0, 0))
    """
    members = runner.members
    outputs = {
        name: np.broadcast_to(np.empty((), o.dtype), (*members.shape, *o.shape))
        for name, o in runner.schema.outputs.items()
    }
    return outputs, np.broadcast_to(np.zeros((), np.int8), members.shape)


def assemble_dataset(
    runner: BlockRunner,
    design_coords: Mapping[str, tuple[tuple[str, ...], np.ndarray]],
    outputs: Mapping[str, Any],
    status: Any,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Stack output arrays (numpy or dask) into the ensemble's Dataset layout.

    Dims are the design dims, then ``seed``, then each output's own dims. Design
    parameters are coordinates (dimension coordinates for grids, coordinates along
    ``sample`` for sampled designs); ``member_seed`` and ``status`` are coordinates over
    the member dims, so every output DataArray carries them.
    """
    members, schema = runner.members, runner.schema
    mdims = members.dims
    coords: dict[str, Any] = {}
    for name, (dims, values) in design_coords.items():
        coords[name] = (dims, np.asarray(values))
    if SAMPLE_DIM in members.design_dims and SAMPLE_DIM not in coords:
        size = members.design_shape[members.design_dims.index(SAMPLE_DIM)]
        coords[SAMPLE_DIM] = (SAMPLE_DIM, np.arange(size))
    coords[SEED_DIM] = (SEED_DIM, np.arange(members.n_seeds))
    for dim, values in schema.coords.items():
        coords[dim] = (dim, np.asarray(values))
    coords[MEMBER_SEED] = (
        mdims,
        members.seeds,
        {"long_name": "integer seed the member received (rerun: f(seed=member_seed, **params))"},
    )
    coords[STATUS] = (mdims, status, dict(STATUS_ATTRS))
    data_vars = {}
    for name, out in schema.outputs.items():
        data_vars[name] = ((*mdims, *out.dims), outputs[name], dict(out.attrs))
    warmed()  # never import xarray beside the warm-up thread
    import xarray as xr  # here: a run loads it while its members run (warm_up)

    return xr.Dataset(data_vars, coords=coords, attrs=dict(attrs or {}))
