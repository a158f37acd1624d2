"""Chunk-wise writes to a store's member arrays: the chunks a mask touches.

Between runs the driver writes parts of the member arrays (an adaptive run's skipped
statuses and its new members' seeds): only the chunks concerned, concurrently, whole
when it can and without reading them first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .keys import Keys

__all__ = ["chunk_regions", "chunk_writes", "code_writes", "copied_chunks"]

_COPY_BATCH = 64  # chunk copies per call: a few calls run at once, each copies many


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


def code_writes(
    arr: Any, mask: np.ndarray, code: int, keys: Keys | None = None
) -> list[Callable[[], None]]:
    """The writes that set the elements of ``mask`` in the zarr Array ``arr`` to ``code``.

    One call per chunk the mask touches: a chunk covered whole is written without being
    read, one covered in part is read and merged. With the store's ``keys``, the chunks
    covered whole inside the array (all alike: ``code`` everywhere) are encoded once, by
    zarr, and their bytes copied to the others' keys (:func:`copied_chunks`): zarr costs
    about a millisecond per chunk, a copy a few dozen microseconds. Run the calls at once
    with :func:`~ensembles.store.arrays.concurrently`.
    """
    mask = np.asarray(mask, dtype=bool)
    regions = chunk_regions(mask, arr.chunks, arr.shape)
    chunks = tuple(arr.chunks)

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

    alike = [
        (corner, region)
        for corner, region in regions.items()
        if all(r.stop - r.start == c for r, c in zip(region, chunks, strict=True))
        and mask[region].all()
    ]
    if keys is None or len(alike) < 2 or getattr(arr, "shards", None) is not None:
        return [write(r) for r in regions.values()]
    copied = {corner for corner, _ in alike}
    rest = [write(r) for corner, r in regions.items() if corner not in copied]
    return [*rest, *copied_chunks(arr, keys, alike, write)]


def copied_chunks(
    arr: Any,
    keys: Keys,
    chunks: list[tuple[tuple[int, ...], tuple[slice, ...]]],
    write: Callable[[tuple[slice, ...]], Callable[[], None]],
) -> list[Callable[[], None]]:
    """Calls that write the first of ``chunks`` (``(corner, region)``) through zarr
    (``write(region)``), then copy its stored bytes to the keys of the others, in batches.

    Every chunk must be inside the array and get the same values, so that their encoded
    bytes are the same (a chunk's encoding does not depend on where it is; sharded arrays,
    whose shards index their chunks, are not copied). When zarr does not store the chunk
    (all fill value), every chunk is written through zarr instead. A copy replaces its key
    whole, as zarr does, so a reader sees the old chunk or the new one.
    """
    import threading

    lock = threading.Lock()
    encoded: list[bytes | None] = []

    def key(corner: tuple[int, ...]) -> str:
        return f"{arr.path}/{arr.metadata.encode_chunk_key(corner)}"

    def template() -> bytes | None:
        with lock:  # the first batch here writes the chunk, the others wait for its bytes
            if not encoded:
                write(chunks[0][1])()
                encoded.append(keys.get(key(chunks[0][0])))
            return encoded[0]

    def batch(part: list[tuple[tuple[int, ...], tuple[slice, ...]]]) -> Callable[[], None]:
        def call() -> None:
            data = template()
            for corner, region in part:
                if data is None:
                    write(region)()
                else:
                    keys.replace(key(corner), data)

        return call

    others = chunks[1:]
    return [batch(others[i : i + _COPY_BATCH]) for i in range(0, len(others), _COPY_BATCH)]


def chunk_writes(arr: Any, values: np.ndarray, mask: np.ndarray) -> list[Callable[[], None]]:
    """The writes of the chunks of ``arr`` that hold elements of ``mask``, whole, from
    ``values`` (one call per chunk, for :func:`~ensembles.store.arrays.concurrently`)."""
    regions = chunk_regions(np.asarray(mask, dtype=bool), arr.chunks, arr.shape)

    def write(region: tuple[slice, ...]) -> Callable[[], None]:
        def call() -> None:
            arr[region] = values[region]

        return call

    return [write(r) for r in regions.values()]
