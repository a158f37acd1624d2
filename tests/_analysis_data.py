"""Synthetic ensembles in the store layout, for the analysis tests (no engine needed).

Each builder returns a Dataset like ``open_ensemble`` gives: outputs over (member dims...,
output dims...), dask-backed, with ``status`` (0 pending, 1 ok, 2 failed) and
``member_seed`` coordinates over the member dims, and NaN wherever status is not ok.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

STATUS_ATTRS = {"flag_values": [0, 1, 2], "flag_meanings": "pending ok failed"}


class RaisingScheduler:
    """A dask scheduler that fails on any compute (proves a call is lazy)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.calls += 1
        msg = "a lazy call computed"
        raise AssertionError(msg)


def no_compute() -> Any:
    """Context manager under which any dask compute raises."""
    return dask.config.set(scheduler=RaisingScheduler())


def ensemble(
    members: Mapping[str, Sequence[Any]],
    seeds: int,
    outputs: Mapping[str, tuple[tuple[str, ...], np.ndarray]],
    *,
    output_coords: Mapping[str, Any] | None = None,
    sample_params: Mapping[str, Sequence[float]] | None = None,
    status: np.ndarray | None = None,
    chunks: Mapping[str, int] | None = None,
    attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> xr.Dataset:
    """Assemble an ensemble Dataset from full arrays of outputs.

    Parameters
    ----------
    members : mapping
        Design dims and their coordinate values (``{"T": [...]}``, or
        ``{"sample": range(n)}`` with ``sample_params`` giving the parameters along it).
    seeds : int
        Size of the ``seed`` dim.
    outputs : mapping
        ``name -> (output dims, values)``; values have shape (design..., seed, output...).
    status : array, optional
        int8 over (design..., seed); default all ok. Non-ok members become NaN.
    chunks : mapping, optional
        Dask chunks per dim; default one chunk per design point along the first design dim.
    """
    design = list(members)
    mdims = (*design, "seed")
    shape = (*(len(members[d]) for d in design), seeds)
    if status is None:
        status = np.ones(shape, dtype=np.int8)
    status = np.asarray(status, dtype=np.int8)
    ok = status == 1
    data_vars = {}
    for name, (odims, values) in outputs.items():
        values = np.array(values, dtype=float)
        values[~ok] = np.nan
        data_vars[name] = xr.Variable((*mdims, *odims), values, (attrs or {}).get(name, {}))
    coords: dict[str, Any] = {d: np.asarray(members[d]) for d in design}
    coords["seed"] = np.arange(seeds)
    coords.update(output_coords or {})
    for pname, pvalues in (sample_params or {}).items():
        coords[pname] = ("sample", np.asarray(pvalues, dtype=float))
    coords["member_seed"] = (mdims, np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape))
    coords["status"] = xr.Variable(mdims, status, STATUS_ATTRS)
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.chunk(dict(chunks) if chunks is not None else {design[0]: 1})
    return ds


def series(
    rng: np.random.Generator, shape: tuple[int, ...], steps: int, level: Any = 0.0
) -> np.ndarray:
    """Noisy series of ``steps`` values per member, centred on ``level``."""
    return np.asarray(level)[..., None] + rng.normal(size=(*shape, steps))


def grid_ensemble(
    T: Iterable[float] = (1.5, 2.0, 2.5, 3.0),
    seeds: int = 5,
    steps: int = 12,
    status: np.ndarray | None = None,
    chunks: Mapping[str, int] | None = None,
    rng_seed: int = 0,
) -> xr.Dataset:
    """A grid over ``T``: ``M(T, seed, sweep)``, ``E(T, seed, sweep)``, scalar ``chi``."""
    rng = np.random.default_rng(rng_seed)
    temps = np.asarray(list(T), dtype=float)
    shape = (temps.size, seeds)
    level = np.broadcast_to(1.0 / temps[:, None], shape)
    return ensemble(
        {"T": temps},
        seeds,
        {
            "M": (("sweep",), series(rng, shape, steps, level)),
            "E": (("sweep",), series(rng, shape, steps, -level)),
            "chi": ((), temps[:, None] * 2.0 + rng.normal(size=shape)),
        },
        output_coords={"sweep": ("sweep", np.arange(steps) * 10, {"long_name": "sweep"})},
        status=status,
        chunks=chunks,
        attrs={
            "M": {"long_name": "magnetization per spin", "units": "1"},
            "E": {"long_name": "energy per spin", "units": "J"},
            "chi": {"units": "1/J"},
        },
    )


def grid2_ensemble(
    T: Iterable[float] = (1.5, 2.0, 2.5),
    L: Iterable[int] = (8, 16),
    seeds: int = 4,
    steps: int = 6,
    rng_seed: int = 1,
) -> xr.Dataset:
    """A two-parameter grid: ``M(T, L, seed, sweep)`` and scalar ``y(T, L, seed)``."""
    rng = np.random.default_rng(rng_seed)
    temps = np.asarray(list(T), dtype=float)
    sizes = np.asarray(list(L), dtype=int)
    shape = (temps.size, sizes.size, seeds)
    level = np.broadcast_to((temps[:, None] + 0.1 * sizes[None, :])[..., None], shape)
    return ensemble(
        {"T": temps, "L": sizes},
        seeds,
        {
            "M": (("sweep",), series(rng, shape, steps, level)),
            "y": ((), level + 0.01 * rng.normal(size=shape)),
        },
        output_coords={"sweep": np.arange(steps)},
        chunks={"T": 1},
    )


def sample_ensemble(
    n: int = 30,
    seeds: int = 3,
    steps: int = 10,
    status: np.ndarray | None = None,
    rng_seed: int = 2,
    chunks: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """A sampled design: ``M(sample, seed, sweep)``, scalar ``y``; ``T(sample)``, ``h(sample)``."""
    rng = np.random.default_rng(rng_seed)
    temps = rng.uniform(1.0, 3.0, n)
    field = rng.uniform(0.0, 1.0, n)
    shape = (n, seeds)
    y = np.broadcast_to((3.0 * temps + 0.3 * field)[:, None], shape) + 0.01 * rng.normal(
        size=shape
    )
    return ensemble(
        {"sample": np.arange(n)},
        seeds,
        {
            "M": (("sweep",), series(rng, shape, steps, np.broadcast_to(temps[:, None], shape))),
            "y": ((), y),
        },
        output_coords={"sweep": np.arange(steps)},
        sample_params={"T": temps, "h": field},
        status=status,
        chunks=chunks if chunks is not None else {"sample": 7},
    )


def ok_values(da: xr.DataArray, over: Sequence[str]) -> np.ndarray:
    """Values of ``da`` with ``over`` dims flattened first, non-ok members as NaN (numpy)."""
    da = da.where(da["status"] == 1) if "status" in da.coords else da
    rest = [d for d in da.dims if d not in over]
    arr = da.transpose(*over, *rest).values.astype(float)
    return arr.reshape(-1, *arr.shape[len(over) :])


@functools.lru_cache(maxsize=1)
def ising_ensemble(temps: tuple[float, ...] = (1.5, 3.0), seeds: int = 3) -> xr.Dataset:
    """A small Ising grid ensemble, built by calling the model directly (no engine)."""
    from ensembles.models import ising

    kwargs = {"L": 8, "n_sweeps": 60, "burn_in": 20, "thin": 10}
    runs = [[ising.simulate(T=t, seed=s, **kwargs) for s in range(seeds)] for t in temps]
    outputs = {
        name: (("sweep",), np.array([[np.asarray(r[name], float) for r in row] for row in runs]))
        for name in ("M", "E")
    }
    steps = outputs["M"][1].shape[-1]
    return ensemble(
        {"T": list(temps)},
        seeds,
        outputs,
        output_coords={"sweep": np.arange(steps)},
        attrs={"M": {"long_name": "magnetization per spin"}, "E": {"units": "J"}},
    )
