"""The arrays of a new store (shapes, chunks, codecs, attributes) and running zarr calls at once.

:mod:`ensembles.store.zarr_store` lays a store out with :func:`array_specs` and writes
blocks through :func:`concurrently`.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import fill_value
from .codecs import compressors_for

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["array_specs", "concurrently", "output_chunks", "stable_strings"]


def output_chunks(
    block: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int
) -> tuple[int, ...]:
    """Chunk shape along an output's own dims: its first dim cut into about 4 slabs.

    A block's chunks then hold whole members for a slab of steps, so a reduction over
    members (a quantile) reads one slab of every member at a time: memory proportional to
    members x slab, not to the whole array. Chunks stay at least 1 MiB: zarr costs about
    a millisecond per chunk written, whatever its size.

    Examples
    --------
    >>> output_chunks((1000,), (1000,), 8)     # 10,000 x 1,000 float64: 2 MB chunks
    (250,)
    >>> output_chunks((1,), (900,), 8)         # one slow member per block: whole
    (900,)
    """
    if not out_shape:
        return ()
    members = max(int(np.prod(block)), 1)
    rest = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else 1
    first = out_shape[0]
    by_slabs = -(-first // 4)
    by_bytes = -(-(2**20) // (members * rest * itemsize))
    return (min(max(by_slabs, by_bytes, 1), max(first, 1)), *out_shape[1:])


# -- running zarr calls at once ------------------------------------------------------------

_POOL: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def concurrently(calls: Sequence[Callable[[], Any]]) -> None:
    """Run synchronous zarr calls at once, and wait for all; raise the first error.

    zarr runs every synchronous call on its own event loop, so these threads only wait
    while the loop overlaps their I/O (chunks of several arrays written together). zarr
    offers no public way to gather several arrays' writes from synchronous code; threads
    over its public API do the same without its internals.
    """
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    pid = os.getpid()
    with _POOL_LOCK:  # one pool per process (a forked child gets its own)
        pool = _POOL.get(pid)
        if pool is None:
            pool = _POOL[pid] = concurrent.futures.ThreadPoolExecutor(
                max_workers=16, thread_name_prefix="ensembles-zarr"
            )
    futures = [pool.submit(call) for call in calls]
    concurrent.futures.wait(futures)
    for future in futures:
        future.result()


def array_specs(
    template: xr.Dataset, block: tuple[int, ...], samples: Mapping[str, list[np.ndarray]]
) -> list[dict[str, Any]]:
    """``create_array`` arguments of the outputs and the bookkeeping arrays."""
    mdims = tuple(template["status"].dims)
    shape = tuple(template["status"].shape)
    member_coords = [  # non-index coordinates over the member dims, as xarray lists them
        str(k)
        for k, v in template.coords.items()
        if k not in template.dims and set(v.dims) <= set(mdims) and k != "status"
    ]
    coordinates = " ".join(sorted([*member_coords, "status", "wall_time"]))
    specs: list[dict[str, Any]] = []
    for name, var in template.data_vars.items():
        out_shape = var.shape[len(mdims) :]
        specs.append(
            {
                "name": str(name),
                "shape": var.shape,
                "chunks": (*block, *output_chunks(block, out_shape, var.dtype.itemsize)),
                "dtype": var.dtype,
                "fill_value": fill_value(var.dtype),
                "compressors": compressors_for(samples.get(str(name))),
                "dimension_names": [str(d) for d in var.dims],
                "attributes": {**var.attrs, "coordinates": coordinates},
            }
        )
    bookkeeping: list[tuple[str, Any, Any, dict[str, Any]]] = [
        ("status", "i1", 0, dict(template["status"].attrs)),
        ("wall_time", "f4", np.nan, {"long_name": "seconds spent per member", "units": "s"}),
        ("error", str, "", {"long_name": "error of a failed member (type: message)"}),
        ("attempts", "u1", 0, {"long_name": "calls made for the member"}),
    ]
    for name, dtype, fill, attrs in bookkeeping:
        specs.append(
            {
                "name": name,
                "shape": shape,
                "chunks": block,
                "dtype": dtype,
                "fill_value": fill,
                "dimension_names": [str(d) for d in mdims],
                "attributes": attrs,
            }
        )
    return specs


def stable_strings(values: Any) -> Any:
    """Fixed-width strings as variable-length ones: Zarr v3's stable ``string`` type.

    zarr stores numpy's fixed-width ``<U``/``S`` types with a data type that has no Zarr
    v3 specification yet (and warns about it); the ``string`` type has one.
    """
    values = np.asarray(values)
    return values.astype(object) if values.dtype.kind in "US" else values
