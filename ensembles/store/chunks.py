"""Chunk-wise writes to a store's member arrays: the chunks a mask or a growth touches.

Between runs the driver writes parts of the member arrays (an adaptive run's skipped
statuses and its new members' seeds, the pending edge of a grown store): only the chunks
concerned, concurrently, whole when it can and without reading them first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["chunk_regions", "chunk_writes", "code_writes", "grown_regions"]


def chunk_regions(
    mask: np.ndarray, chunks: tuple[int, ...], shape: tuple[int, ...]
) -> dict[tuple[int, ...], tuple[slice, ...]]:
    """The chunks holding members of ``mask``: chunk index -> its region of the array.

    Examples
    --------
    >>> mask = np.zeros((2, 5), bool); mask[1, 4] = True
    >>> chunk_regions(mask, (1, 2), (2, 5))
    {(1, 2): (slice(1, 2, None), slice(4, 5, None))}
    """
    size = np.asarray(chunks)
    corners = np.unique(np.argwhere(mask) // size, axis=0)
    stops = np.minimum((corners + 1) * size, shape)
    return {
        tuple(corner.tolist()): tuple(
            slice(int(a), int(b)) for a, b in zip(corner * size, stop, strict=True)
        )
        for corner, stop in zip(corners, stops, strict=True)
    }


def grown_regions(
    old: tuple[int, ...], new: tuple[int, ...], chunks: tuple[int, ...] | None = None
) -> list[tuple[slice, ...]]:
    """Regions of the member grid that growing ``old`` to ``new`` adds (up to the end of
    the old edge chunk along the grown dim when ``chunks`` is given).

    Examples
    --------
    >>> grown_regions((2, 3), (2, 10))
    [(slice(0, 2, None), slice(3, 10, None))]
    >>> grown_regions((2, 3), (2, 10), chunks=(1, 4))
    [(slice(0, 2, None), slice(3, 4, None))]
    """
    regions = []
    for i, (before, after) in enumerate(zip(old, new, strict=True)):
        stop = after if chunks is None else min(after, -(-before // chunks[i]) * chunks[i])
        if stop > before:
            regions.append(
                tuple(slice(before, stop) if j == i else slice(0, new[j]) for j in range(len(new)))
            )
    return regions


def code_writes(arr: Any, mask: np.ndarray, code: int) -> list[Callable[[], None]]:
    """The writes that set the elements of ``mask`` in the zarr Array ``arr`` to ``code``.

    One call per chunk the mask touches: a chunk covered whole is written without being
    read, one covered in part is read and merged. Run them at once with
    :func:`~ensembles.store.arrays.concurrently`.
    """
    mask = np.asarray(mask, dtype=bool)

    def write(region: tuple[slice, ...]) -> Callable[[], None]:
        def call() -> None:
            covered = mask[region]
            if covered.all():
                arr[region] = np.full(covered.shape, code, dtype=arr.dtype)
            else:
                values = np.asarray(arr[region])
                values[covered] = code
                arr[region] = values

        return call

    return [write(r) for r in chunk_regions(mask, arr.chunks, arr.shape).values()]


def chunk_writes(arr: Any, values: np.ndarray, mask: np.ndarray) -> list[Callable[[], None]]:
    """The writes of the chunks of ``arr`` that hold elements of ``mask``, whole, from
    ``values`` (one call per chunk, for :func:`~ensembles.store.arrays.concurrently`)."""
    regions = chunk_regions(np.asarray(mask, dtype=bool), arr.chunks, arr.shape)

    def write(region: tuple[slice, ...]) -> Callable[[], None]:
        def call() -> None:
            arr[region] = values[region]

        return call

    return [write(r) for r in regions.values()]
