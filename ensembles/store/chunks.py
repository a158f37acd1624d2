"""Chunk-wise writes to a store's member arrays: the chunks a mask or a growth touches.

Between runs the driver writes parts of the member arrays (an adaptive run's skipped
statuses and its new members' seeds, the pending edge of a grown store): only the chunks
concerned, concurrently, whole when it can and without reading them first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

__all__ = ["chunk_regions", "grown_regions", "set_codes", "write_chunks"]


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


async def set_codes(arr: Any, mask: np.ndarray, code: int) -> None:
    """Set the elements of ``mask`` in the zarr AsyncArray ``arr`` to ``code``.

    Chunks the mask covers whole are not read, and hold the same bytes: the first
    interior one is encoded, the others are written as copies (beyond an edge chunk's end
    the copies hold ``code``; ``EnsembleStore.grow`` resets that part when it extends the
    array). Chunks the mask covers in part are read and merged.
    """
    from zarr.core.buffer import default_buffer_prototype

    mask = np.asarray(mask, dtype=bool)
    regions = chunk_regions(mask, arr.chunks, arr.shape)
    whole = [c for c, r in regions.items() if mask[r].all()]
    interior = [c for c in whole if mask[regions[c]].shape == tuple(arr.chunks)]

    async def merge(corner: tuple[int, ...]) -> None:
        region = regions[corner]
        values = np.asarray(await arr.getitem(region))
        values[mask[region]] = code
        await arr.setitem(region, values)

    def full(corner: tuple[int, ...]) -> np.ndarray:
        return np.full(mask[regions[corner]].shape, code, dtype=arr.dtype)

    rest = list(regions)
    if interior:
        template = interior[0]
        await arr.setitem(regions[template], full(template))
        key = arr.store_path / arr.metadata.encode_chunk_key(template)
        data = await key.get(prototype=default_buffer_prototype())
        copies = [c for c in whole if c != template]
        if data is None:  # code is the fill value: zarr stores no such chunk
            writes = [arr.setitem(regions[c], full(c)) for c in copies]
        else:
            writes = [
                (arr.store_path / arr.metadata.encode_chunk_key(c)).set(data) for c in copies
            ]
        await asyncio.gather(*writes)
        rest = [c for c in regions if c not in whole]
    await asyncio.gather(*(merge(c) for c in rest))


async def write_chunks(arr: Any, values: np.ndarray, mask: np.ndarray) -> None:
    """Write the chunks of ``arr`` that hold elements of ``mask``, whole, from ``values``."""
    regions = chunk_regions(np.asarray(mask, dtype=bool), arr.chunks, arr.shape)
    await asyncio.gather(*(arr.setitem(r, values[r]) for r in regions.values()))
