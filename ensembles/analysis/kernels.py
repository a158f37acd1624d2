"""The reduction engine: numpy kernels and dask graphs for ensemble statistics.

Plain numpy/dask arrays only; :mod:`ensembles.analysis.reduce` is the xarray layer on top. Moments
are tree reductions over the existing chunks (Chan's merge); order statistics regroup the
chunks so reduced dims are whole, sort column slabs and interpolate exactly as
:func:`numpy.quantile` does with the requested method
(:mod:`ensembles.analysis.quantiles`); the bootstrap kernel is in
:mod:`ensembles.analysis.bootstrap`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import dask.array
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.system import CPU_COUNT

from .quantiles import sorted_quantiles

__all__ = [
    "SLAB_BYTES",
    "as_columns",
    "assembled",
    "column_pieces",
    "masked_pieces",
    "moments",
    "sorted_kernel",
    "whole_blocks",
]

SLAB_BYTES = 4 * 2**20  # kernels work on column slabs of this size (cache friendly sorts)
_MAX_BLOCK_BYTES = 128 * 2**20  # upper bound of a block holding whole member dims
_MIN_BLOCK_BYTES = 8 * 2**20  # below this, splitting for parallelism costs more than it gives
_MERGE_BYTES = 64 * 2**20  # bound of one merge step of the moments tree reduction


# --------------------------------------------------------------------------------------
# NumPy kernels: blocks have the reduced axes first
# --------------------------------------------------------------------------------------


def as_columns(block: np.ndarray, r: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Reshape a block with ``r`` leading reduced axes to (members, columns) float64."""
    rest = tuple(block.shape[r:])
    members = math.prod(block.shape[:r])
    return np.asarray(block, dtype=np.float64).reshape(members, math.prod(rest)), rest


def _slab_width(members: int) -> int:
    return max(1, SLAB_BYTES // max(1, 8 * members))


def _masked_mean(a: np.ndarray, valid: np.ndarray, n: np.ndarray) -> np.ndarray:
    total = np.sum(a, axis=0, where=valid)
    out = np.full(total.shape, np.nan)
    np.divide(total, n, out=out, where=n > 0)
    return out


def column_pieces(
    blocks: list[np.ndarray],
    r: int,
    cols: tuple[slice, ...],
    ok: np.ndarray | None,
    ok_index: list[tuple[slice, ...]],
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """The pieces of a column block as float64 and, where some are not ok, their masks.

    Pieces are views of the input when it is float64 already; masks (``None`` where every
    member of the piece is ok) have the pieces' shape, so a caller can apply them to
    small slabs instead of copying whole pieces.
    """
    index = (slice(None),) * r + cols
    pieces, masks = [], []
    for block, where in zip(blocks, ok_index, strict=True):
        piece = np.asarray(block)[index].astype(np.float64, copy=False)
        keep = None if ok is None else ok[where]
        pieces.append(piece)
        masks.append(None if keep is None or keep.all() else np.broadcast_to(keep, piece.shape))
    return pieces, masks


def masked_pieces(*args: Any) -> list[np.ndarray]:
    """The pieces of a column block as float64, NaN where the member's status is not ok."""
    pieces, masks = column_pieces(*args)
    return [p if m is None else np.where(m, p, np.nan) for p, m in zip(pieces, masks, strict=True)]


def assembled(blocks: list[np.ndarray], r: int, numblocks: tuple[int, ...]) -> np.ndarray:
    """Concatenate pieces given in C order over the reduced block grid ``numblocks``."""
    if len(blocks) == 1:
        return blocks[0]
    grid = np.empty(numblocks, dtype=object)
    for i, b in enumerate(blocks):
        grid.flat[i] = b

    def join(sub: np.ndarray, axis: int) -> np.ndarray:
        if sub.ndim == 1:
            return np.concatenate(list(sub), axis=axis)
        return np.concatenate([join(s, axis + 1) for s in sub], axis=axis)

    return join(grid, 0)


def sorted_kernel(
    blocks: list[np.ndarray],
    ok: np.ndarray | None,
    *,
    r: int,
    numblocks: tuple[int, ...],
    cols: tuple[slice, ...],
    ok_index: list[tuple[slice, ...]],
    q: np.ndarray,
    with_mean: bool,
    method: str = "linear",
) -> np.ndarray:
    """Rows: count, [mean], quantiles ``q`` by ``method``; reduced over the ``r`` leading axes.

    ``blocks`` are the input chunks holding every member of the columns ``cols`` (slices of
    the kept axes within each chunk); ``ok[ok_index[i]]`` says which values of chunk ``i``
    belong to ok members (``ok`` is None when every member counts). Member order does not
    matter to these statistics, so each column slab is assembled straight from the pieces,
    in cache, without first concatenating the whole block.
    """
    pieces, masks = column_pieces(blocks, r, cols, ok, ok_index)
    rest = tuple(pieces[0].shape[r:])
    parts = [as_columns(p, r)[0] for p in pieces]
    keeps = None
    if any(m is not None for m in masks):
        keeps = [
            np.ones(p.shape, dtype=bool) if m is None else m.reshape(p.shape)
            for p, m in zip(parts, masks, strict=True)
        ]
    members = sum(p.shape[0] for p in parts)
    ncol = math.prod(rest)
    nrow = 1 + int(with_mean) + q.size
    out = np.empty((nrow, ncol))
    width = _slab_width(members)
    for start in range(0, ncol, width):
        part = slice(start, start + width)
        slab = np.concatenate([p[:, part] for p in parts]) if len(parts) > 1 else parts[0][:, part]
        if keeps is not None:
            slab = np.where(np.concatenate([k[:, part] for k in keeps]), slab, np.nan)
        valid = ~np.isnan(slab)
        n = valid.sum(axis=0)
        out[0, part] = n
        if with_mean:
            out[1, part] = _masked_mean(slab, valid, n)
        if q.size:
            out[1 + int(with_mean) :, part] = sorted_quantiles(_sorted(slab), n, q, method)
    return out.reshape((nrow, *rest))


def _sorted(slab: np.ndarray) -> np.ndarray:
    """Columns sorted ascending with NaN last (a column-major copy: contiguous sorts)."""
    srt = np.array(slab, order="F")
    srt.sort(axis=0)
    return srt


def _column_means(block: np.ndarray, r: int) -> np.ndarray:
    """Mean of each column over the ``r`` leading axes, 0 where there is no value."""
    a, rest = as_columns(block, r)
    valid = ~np.isnan(a)
    return np.nan_to_num(_masked_mean(a, valid, valid.sum(axis=0)), nan=0.0).reshape(rest)


def _moments_chunk(block: np.ndarray, shift: np.ndarray, r: int) -> np.ndarray:
    """Per-block (count, mean - shift, sum of squared deviations), reduced axes kept.

    ``shift`` (one value per column, close to the column's values) is subtracted first, so
    chunk means and their spread are merged with relative, not absolute, rounding errors.
    """
    a, rest = as_columns(block, r)
    a = a - np.reshape(shift, (1, -1))
    valid = ~np.isnan(a)
    n = valid.sum(axis=0)
    mu = np.nan_to_num(_masked_mean(a, valid, n), nan=0.0)
    dev = np.where(valid, a - mu, 0.0)
    m2 = np.einsum("ij,ij->j", dev, dev)
    return np.stack([n.astype(np.float64), mu, m2]).reshape((3,) + (1,) * r + rest)


def _moments_merge(block: np.ndarray, r: int) -> np.ndarray:
    """Merge stacked (count, mean, M2) partials along the ``r`` axes after the first."""
    rest = block.shape[1 + r :]
    parts = block.reshape(3, math.prod(block.shape[1 : 1 + r]), math.prod(rest))
    n, mu, m2 = parts
    total_n = n.sum(axis=0)
    mean_ = np.zeros(total_n.shape)
    np.divide((n * mu).sum(axis=0), total_n, out=mean_, where=total_n > 0)
    m2_total = m2.sum(axis=0) + (n * (mu - mean_) ** 2).sum(axis=0)
    return np.stack([total_n, mean_, m2_total]).reshape((3,) + (1,) * r + rest)


# --------------------------------------------------------------------------------------
# dask plumbing
# --------------------------------------------------------------------------------------


def _letters(n: int, prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(n))


def _split(chunks: tuple[int, ...], size: int) -> tuple[int, ...]:
    """Split each chunk into near-equal pieces of at most ``size`` (boundaries are kept)."""
    out: list[int] = []
    for c in chunks:
        pieces = -(-c // size)
        out.extend(c // pieces + (1 if i < c % pieces else 0) for i in range(pieces))
    return tuple(out)


def _whole_member_chunks(data: dask.array.Array, r: int) -> tuple[tuple[int, ...], ...]:
    """Chunks with the ``r`` reduced axes whole and the kept axes split, never merged.

    A block then holds every member of a set of columns. Kept axes are split (last axis
    first) until a block is at most 128 MiB, and further while the array is large enough
    that more blocks mean more parallelism (about two blocks per core, blocks >= 8 MiB).
    Existing boundaries are kept, so each block depends only on the input chunks of its
    columns, and memory stays bounded when the input is chunked along the kept axes.
    """
    column = data.dtype.itemsize * math.prod(data.shape[:r])
    total = column * math.prod(data.shape[r:])
    target = min(_MAX_BLOCK_BYTES, max(_MIN_BLOCK_BYTES, total // (2 * max(1, CPU_COUNT))))
    budget = max(1, target // max(column, 1))  # columns per block
    kept = list(data.chunks[r:])
    for axis in reversed(range(len(kept))):
        size = max(1, min(max(kept[axis], default=1), budget))
        kept[axis] = _split(kept[axis], size)
        budget = max(1, budget // size)
    return tuple((n,) for n in data.shape[:r]) + tuple(kept)


def _pieces(old: tuple[int, ...], new: tuple[int, ...]) -> list[tuple[int, slice]]:
    """For chunks ``new`` (a split of ``old``): each one's parent chunk and slice in it."""
    out = []
    parent, used = 0, 0
    for size in new:
        if used == old[parent]:
            parent, used = parent + 1, 0
        out.append((parent, slice(used, used + size)))
        used += size
    return out


def _offsets(chunks: tuple[int, ...]) -> list[int]:
    return [0, *itertools.accumulate(chunks)]


def whole_blocks(
    data: Any,
    ok: Any,
    r: int,
    kernel: Callable[..., np.ndarray],
    nrow: int,
    **kw: Any,
) -> Any:
    """Apply a kernel to every member of each column block: ``(nrow, *kept)`` rows.

    ``kernel(blocks, ok, r=, numblocks=, cols=, ok_index=, **kw)`` receives the input
    chunks covering its columns (all of them along the ``r`` reduced axes, in C order over
    ``numblocks``), the slices ``cols`` of its columns within them, and the ok-mask ``ok``
    (broadcastable to ``data``, or None) with the index of each chunk in it. The graph has
    one task per column block reading the input chunks directly (no rechunk tasks, no
    concatenated copy) and a single shared mask, so column blocks stay independent and
    dask can finish one before it reads the next: memory stays bounded when the input is
    chunked along the kept axes.
    """
    if not isinstance(data, dask.array.Array):
        whole = (slice(None),) * (np.ndim(data) - r)
        everything = [(slice(None),) * np.ndim(data)]
        return kernel(
            [np.asarray(data)],
            None if ok is None else np.asarray(ok),
            r=r,
            numblocks=(1,) * r,
            cols=whole,
            ok_index=everything,
            **kw,
        )
    kept = _whole_member_chunks(data, r)[r:]
    pieces = [_pieces(old, new) for old, new in zip(data.chunks[r:], kept, strict=True)]
    starts = [_offsets(c) for c in data.chunks]
    numblocks = data.numblocks[:r]
    dependencies = [data]
    ok_arg: Any = None
    if ok is not None:  # one shared key, not a copy of the mask in every task
        ok = dask.array.asarray(ok).rechunk(-1)
        dependencies.append(ok)
        ok_arg = (ok.name, *(0,) * ok.ndim)
    broadcast = [ok is None or ok.shape[axis] == 1 for axis in range(data.ndim)]
    name = f"ensemble-{kernel.__name__.strip('_')}-" + tokenize(data, ok, r, nrow, kernel, kw)
    layer: dict[tuple, Any] = {}
    for out_index in itertools.product(*(range(len(c)) for c in kept)):
        parents = [pieces[axis][i] for axis, i in enumerate(out_index)]
        keys, ok_index = [], []
        for red in itertools.product(*(range(n) for n in numblocks)):
            block = (*red, *(p for p, _ in parents))
            keys.append((data.name, *block))
            spans = [slice(starts[a][b], starts[a][b + 1]) for a, b in enumerate(block[:r])]
            spans += [
                slice(starts[r + a][p] + c.start, starts[r + a][p] + c.stop)
                for a, (p, c) in enumerate(parents)
            ]
            ok_index.append(tuple(slice(None) if broadcast[a] else s for a, s in enumerate(spans)))
        task = functools.partial(
            kernel,
            r=r,
            numblocks=numblocks,
            cols=tuple(c for _, c in parents),
            ok_index=ok_index,
            **kw,
        )
        layer[(name, 0, *out_index)] = (task, keys, ok_arg)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)  # type: ignore[arg-type]
    meta = np.empty((0,) * (1 + len(kept)), dtype=np.float64)
    return dask.array.Array(graph, name, chunks=((nrow,), *kept), meta=meta)


def moments(data: Any, r: int) -> Any:
    """Stacked (count, mean, M2) over the ``r`` leading axes, as a tree over the chunks.

    Values are shifted by the column means of the first chunk along the reduced axes (a
    small shared input), which keeps the merge accurate when the spread is small compared
    with the values.
    """
    if not isinstance(data, dask.array.Array):
        data = np.asarray(data)
        shift = _column_means(data, r)
        out = _moments_chunk(data, shift, r)
        out = out.reshape((3, *out.shape[1 + r :]))
        out[1] += shift
        return out
    rest = data.ndim - r
    red, keep = _letters(r, "r"), _letters(rest, "k")
    meta = np.empty((0,) * (1 + data.ndim), dtype=np.float64)
    first = data[tuple(slice(0, c[0]) for c in data.chunks[:r])]
    shift = dask.array.blockwise(
        _column_means,
        keep,
        first,
        red + keep,
        concatenate=True,
        dtype=np.float64,
        meta=np.empty((0,) * rest, dtype=np.float64),
        r=r,
    )
    parts = dask.array.blockwise(
        _moments_chunk,
        ("_s", *red, *keep),
        data,
        red + keep,
        shift,
        keep,
        new_axes={"_s": 3},
        adjust_chunks=dict.fromkeys(red, 1),
        dtype=np.float64,
        meta=meta,
        r=r,
    )
    rest_bytes = 8 * 3 * max(1, math.prod(max(c) for c in parts.chunks[1 + r :]))
    group = max(2, int((_MERGE_BYTES / rest_bytes) ** (1 / max(r, 1))))
    while any(n > 1 for n in parts.numblocks[1 : 1 + r]):
        parts = parts.rechunk({1 + i: group for i in range(r)})
        parts = dask.array.blockwise(
            _moments_merge,
            ("_s", *red, *keep),
            parts,
            ("_s", *red, *keep),
            adjust_chunks=dict.fromkeys(red, 1),
            dtype=np.float64,
            meta=meta,
            r=r,
        )
    parts = parts.reshape((3, *parts.shape[1 + r :]))
    return dask.array.stack([parts[0], parts[1] + shift, parts[2]])
