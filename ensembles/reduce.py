"""Ensemble statistics over member dimensions: lazy, exact, plain functions on xarray objects.

Every function takes a :class:`xarray.DataArray` or :class:`xarray.Dataset` laid out as an
ensemble (member dims such as ``sample``/``T`` and ``seed``, then output dims such as
``sweep``), reduces over ``over`` (default: every member dim), uses only members whose
``status`` is 1 (ok) and whose values are not NaN, and reports how many members it used.

On dask-backed data nothing is computed when these functions are called; the work happens
in ``.compute()``. The kernels are plain NumPy (no numbagg), so the first call in a fresh
process pays no JIT compilation:

* ``count``, ``mean``, ``std`` and ``sem`` are tree reductions over the existing chunks
  (per-chunk count, mean and sum of squared deviations, merged with Chan's formula).
* ``quantile``, ``envelope`` and ``bootstrap_ci`` need every member of a position at once:
  the data are rechunked so the reduced dims are whole and the other dims are split into
  blocks of at most 128 MiB, then each block is sorted (NaN last) and the order statistics
  are interpolated exactly as :func:`numpy.quantile`'s default ``"linear"`` method does.

Results of DataArray reductions carry a ``count`` coordinate (int64, members used per
remaining position). Dataset reductions apply per numeric data variable that has every
``over`` dim and name each variable's count coordinate ``<var>_count``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

import dask.array
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph
from dask.system import CPU_COUNT

from .errors import AnalysisError

__all__ = [
    "AnalysisError",
    "bootstrap_ci",
    "count",
    "envelope",
    "mean",
    "member_dims",
    "quantile",
    "sem",
    "std",
]

STATUS = "status"
"""Name of the per-member status coordinate (0 pending, 1 ok, 2 failed)."""
OK = 1
"""Status value of a member that ran successfully."""

_MAX_BLOCK_BYTES = 128 * 2**20  # upper bound of a block holding whole member dims
_MIN_BLOCK_BYTES = 8 * 2**20  # below this, splitting for parallelism costs more than it gives
_SLAB_BYTES = 4 * 2**20  # kernels work on column slabs of this size (cache friendly sorts)
_MERGE_BYTES = 64 * 2**20  # bound of one merge step of the moments tree reduction

Obj = TypeVar("Obj", xr.DataArray, xr.Dataset)


# --------------------------------------------------------------------------------------
# dims, masks and validation
# --------------------------------------------------------------------------------------


def member_dims(obj: xr.DataArray | xr.Dataset) -> tuple[Hashable, ...]:
    """Return the member dims of an ensemble object: the dims of its ``status`` coordinate.

    Parameters
    ----------
    obj : DataArray or Dataset
        An ensemble (or part of one) that still carries the ``status`` coordinate.

    Returns
    -------
    tuple of str
        For example ``("sample", "seed")`` or ``("T", "L", "seed")``.

    Raises
    ------
    AnalysisError
        If ``obj`` has no ``status`` coordinate; then pass ``over=`` explicitly.

    Examples
    --------
    >>> member_dims(ds["M"])  # doctest: +SKIP
    ('sample', 'seed')
    """
    if STATUS not in obj.coords:
        msg = (
            f"cannot infer the member dims of this {type(obj).__name__}: it has no "
            f"{STATUS!r} coordinate (dims {tuple(obj.dims)!r}); pass over=... explicitly, "
            "for example over='seed' or over=('sample', 'seed')"
        )
        raise AnalysisError(msg)
    return tuple(obj.coords[STATUS].dims)


def _resolve_over(obj: xr.DataArray | xr.Dataset, over: Any) -> tuple[Hashable, ...]:
    """Normalize ``over`` (None, a dim name or an iterable of names) to a tuple of dims."""
    if over is None:
        dims = member_dims(obj)
    elif isinstance(over, str) or not isinstance(over, Iterable):
        dims = (over,)
    else:
        dims = tuple(over)
    if not dims:
        msg = "over=() reduces nothing; name at least one dim, e.g. over='seed'"
        raise AnalysisError(msg)
    if len(set(dims)) != len(dims):
        msg = f"over={dims!r} names a dim twice; name each dim once"
        raise AnalysisError(msg)
    missing = [d for d in dims if d not in obj.dims]
    if missing:
        msg = (
            f"over={over!r}: dim {missing[0]!r} is not a dim of this "
            f"{type(obj).__name__}; its dims are {tuple(obj.dims)!r}"
        )
        raise AnalysisError(msg)
    return dims


def _is_numeric(var: xr.DataArray) -> bool:
    return var.dtype.kind in "biuf"


def _selected_vars(ds: xr.Dataset, over: tuple[Hashable, ...]) -> list[Hashable]:
    """Data variables of ``ds`` that a reduction over ``over`` applies to."""
    names = [
        name
        for name, var in ds.data_vars.items()
        if _is_numeric(var) and set(over) <= set(var.dims) and name != STATUS
    ]
    if not names:
        msg = (
            f"no numeric data variable of this Dataset has all of the dims {over!r} "
            f"(variables: {list(ds.data_vars)!r}); choose over= among their dims"
        )
        raise AnalysisError(msg)
    return names


def _numeric(da: xr.DataArray) -> xr.DataArray:
    """``da`` itself, after checking that its dtype is numeric."""
    if not _is_numeric(da):
        msg = (
            f"cannot compute statistics of {da.name!r}: its dtype {da.dtype} is not "
            "numeric; select a numeric variable"
        )
        raise AnalysisError(msg)
    return da


def _masked(da: xr.DataArray) -> xr.DataArray:
    """``da`` as floats with NaN wherever the member's status is not ok (lazy)."""
    da = _numeric(da)
    if da.dtype.kind != "f":
        da = da.astype(np.float64)
    if STATUS in da.coords:
        da = da.where(da.coords[STATUS] == OK)
    return da


def _check_probabilities(q: Any, what: str = "q") -> np.ndarray:
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0 or not np.all((arr >= 0) & (arr <= 1)):
        msg = f"{what}={q!r} is not valid: give one or more probabilities in [0, 1]"
        raise AnalysisError(msg)
    return arr


def _check_envelope_q(q: Any) -> tuple[float, float]:
    arr = _check_probabilities(q)
    if arr.shape != (2,) or arr[0] > arr[1]:
        msg = (
            f"q={q!r} is not a (lower, upper) pair: give two probabilities with "
            "lower <= upper, e.g. q=(0.025, 0.975)"
        )
        raise AnalysisError(msg)
    return float(arr[0]), float(arr[1])


# --------------------------------------------------------------------------------------
# NumPy kernels: blocks have the reduced axes first
# --------------------------------------------------------------------------------------


def _as_columns(block: np.ndarray, r: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Reshape a block with ``r`` leading reduced axes to (members, columns) float64."""
    rest = tuple(block.shape[r:])
    members = math.prod(block.shape[:r])
    return np.asarray(block, dtype=np.float64).reshape(members, math.prod(rest)), rest


def _slab_width(members: int) -> int:
    return max(1, _SLAB_BYTES // max(1, 8 * members))


def _masked_mean(a: np.ndarray, valid: np.ndarray, n: np.ndarray) -> np.ndarray:
    total = np.sum(a, axis=0, where=valid)
    out = np.full(total.shape, np.nan)
    np.divide(total, n, out=out, where=n > 0)
    return out


def _sorted_quantiles(srt: np.ndarray, n: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantiles of columns sorted with NaN last, ``n`` valid each.

    Follows :func:`numpy.quantile` (method ``"linear"``): virtual index ``(n - 1) * q``,
    neighbours ``floor`` and ``floor + 1`` (clipped to the last valid value) and NumPy's
    two-sided linear interpolation, so results agree with NumPy to the last bit.
    """
    virtual = (n - 1)[None, :] * q[:, None]  # (nq, K)
    below = np.floor(virtual)
    gamma = virtual - below
    last = np.maximum(n - 1, 0)[None, :]
    lo = np.clip(below, 0, last).astype(np.intp)
    hi = np.clip(below + 1, 0, last).astype(np.intp)
    lo_val = np.take_along_axis(srt, lo, axis=0)
    hi_val = np.take_along_axis(srt, hi, axis=0)
    diff = hi_val - lo_val
    out = lo_val + diff * gamma
    upper_half = gamma >= 0.5
    out[upper_half] = (hi_val - diff * (1 - gamma))[upper_half]
    out[:, n == 0] = np.nan
    return out


def _column_pieces(
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


def _masked_pieces(*args: Any) -> list[np.ndarray]:
    """The pieces of a column block as float64, NaN where the member's status is not ok."""
    pieces, masks = _column_pieces(*args)
    return [p if m is None else np.where(m, p, np.nan) for p, m in zip(pieces, masks, strict=True)]


def _assembled(blocks: list[np.ndarray], r: int, numblocks: tuple[int, ...]) -> np.ndarray:
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


def _sorted_kernel(
    blocks: list[np.ndarray],
    ok: np.ndarray | None,
    *,
    r: int,
    numblocks: tuple[int, ...],
    cols: tuple[slice, ...],
    ok_index: list[tuple[slice, ...]],
    q: np.ndarray,
    with_mean: bool,
) -> np.ndarray:
    """Rows: count, [mean], quantiles ``q``; reduced over the ``r`` leading axes.

    ``blocks`` are the input chunks holding every member of the columns ``cols`` (slices of
    the kept axes within each chunk); ``ok[ok_index[i]]`` says which values of chunk ``i``
    belong to ok members (``ok`` is None when every member counts). Member order does not
    matter to these statistics, so each column slab is assembled straight from the pieces,
    in cache, without first concatenating the whole block.
    """
    pieces, masks = _column_pieces(blocks, r, cols, ok, ok_index)
    rest = tuple(pieces[0].shape[r:])
    parts = [_as_columns(p, r)[0] for p in pieces]
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
            out[1 + int(with_mean) :, part] = _sorted_quantiles(np.sort(slab, axis=0), n, q)
    return out.reshape((nrow, *rest))


def _column_means(block: np.ndarray, r: int) -> np.ndarray:
    """Mean of each column over the ``r`` leading axes, 0 where there is no value."""
    a, rest = _as_columns(block, r)
    valid = ~np.isnan(a)
    return np.nan_to_num(_masked_mean(a, valid, valid.sum(axis=0)), nan=0.0).reshape(rest)


def _moments_chunk(block: np.ndarray, shift: np.ndarray, r: int) -> np.ndarray:
    """Per-block (count, mean - shift, sum of squared deviations), reduced axes kept.

    ``shift`` (one value per column, close to the column's values) is subtracted first, so
    chunk means and their spread are merged with relative, not absolute, rounding errors.
    """
    a, rest = _as_columns(block, r)
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


def _whole_blocks(
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


def _moments(data: Any, r: int) -> Any:
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


# --------------------------------------------------------------------------------------
# xarray wrapping
# --------------------------------------------------------------------------------------


def _prepared(
    da: xr.DataArray, over: tuple[Hashable, ...], mask: bool = True
) -> tuple[xr.DataArray, Any, int]:
    """``da`` (masked if asked) with the ``over`` dims first, its data, and ``len(over)``."""
    prepared = _masked(da) if mask else _numeric(da)
    rest = [d for d in prepared.dims if d not in over]
    ordered = prepared.transpose(*over, *rest)
    return ordered, ordered.data, len(over)


def _ok_mask(ordered: xr.DataArray) -> Any:
    """``status == ok`` in the axis order of ``ordered`` with size-1 axes it lacks, or None."""
    if STATUS not in ordered.coords:
        return None
    status = ordered.coords[STATUS]
    shape = tuple(ordered.sizes[d] if d in status.dims else 1 for d in ordered.dims)
    ok = status.transpose(*(d for d in ordered.dims if d in status.dims)).data == OK
    return ok.reshape(shape)


def _kept_coords(da: xr.DataArray, over: tuple[Hashable, ...]) -> dict[Hashable, Any]:
    return {
        name: coord.variable
        for name, coord in da.coords.items()
        if not set(coord.dims) & set(over)
    }


def _wrap(
    ordered: xr.DataArray,
    over: tuple[Hashable, ...],
    data: Any,
    *,
    name: Hashable = None,
    attrs: dict | None = None,
    leading: tuple[Hashable, Any] | None = None,
) -> xr.DataArray:
    """A DataArray over the kept dims of ``ordered`` (plus an optional leading dim)."""
    dims = [d for d in ordered.dims if d not in over]
    coords = _kept_coords(ordered, over)
    if leading is not None:
        dims.insert(0, leading[0])
        coords[leading[0]] = leading[1]
    return xr.DataArray(data, dims=dims, coords=coords, name=name, attrs=attrs or {})


def _as_count(data: Any) -> Any:
    return data.astype(np.int64)


_COUNT_ATTRS = {"long_name": "number of members used", "units": "1"}


def _stat_attrs(da: xr.DataArray, over: tuple[Hashable, ...], method: str) -> dict:
    attrs = {k: v for k, v in da.attrs.items() if not str(k).startswith("flag_")}
    cells = " ".join(f"{d}:" for d in over)
    previous = attrs.get("cell_methods")
    attrs["cell_methods"] = f"{previous} {cells} {method}" if previous else f"{cells} {method}"
    return attrs


def _per_variable(
    ds: xr.Dataset, over: tuple[Hashable, ...], func: Callable[[xr.DataArray], xr.DataArray]
) -> xr.Dataset:
    """Apply a DataArray reduction to each variable; counts become ``<var>_count`` coords."""
    results = {}
    counts = {}
    for name in _selected_vars(ds, over):
        res = func(ds[name])
        counts[f"{name}_count"] = res.coords["count"].variable
        results[name] = res.drop_vars("count")
    out = xr.Dataset(results, attrs=dict(ds.attrs))
    return out.assign_coords(counts)


# --------------------------------------------------------------------------------------
# public reductions
# --------------------------------------------------------------------------------------


def count(obj: Obj, over: Any = None) -> Obj:
    """Number of members used (status ok and value not NaN) at each remaining position.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to count over; default all member dims (the dims of ``status``).

    Returns
    -------
    DataArray or Dataset
        int64 counts over the remaining dims (per data variable for a Dataset).

    Examples
    --------
    >>> count(ds["M"], over="seed")  # doctest: +SKIP
    <xarray.DataArray 'M' (T: 3, sweep: 100)> ...
    """
    dims = _resolve_over(obj, over)
    if isinstance(obj, xr.Dataset):
        return xr.Dataset(
            {name: count(obj[name], dims) for name in _selected_vars(obj, dims)},
            attrs=dict(obj.attrs),
        )
    ordered, data, r = _prepared(obj, dims)
    valid = ~dask.array.isnan(data) if isinstance(data, dask.array.Array) else ~np.isnan(data)
    counted = valid.sum(axis=tuple(range(r))).astype(np.int64)
    return _wrap(ordered, dims, counted, name=obj.name, attrs=dict(_COUNT_ATTRS))


def _moment_stat(obj: Obj, over: Any, kind: str, ddof: int) -> Obj:
    dims = _resolve_over(obj, over)
    if isinstance(obj, xr.Dataset):
        return _per_variable(obj, dims, lambda da: _moment_stat(da, dims, kind, ddof))
    if ddof < 0:
        msg = f"ddof={ddof!r} is negative; use ddof=1 (sample) or ddof=0 (population)"
        raise AnalysisError(msg)
    ordered, data, r = _prepared(obj, dims)
    mom = _moments(data, r)
    n, mu, m2 = mom[0], mom[1], mom[2]
    lib = dask.array if isinstance(mom, dask.array.Array) else np
    if kind == "mean":
        values = lib.where(n > 0, mu, np.nan)
    else:
        enough = n > ddof
        var = lib.where(enough, m2 / lib.where(enough, n - ddof, 1.0), np.nan)
        values = lib.sqrt(var)
        if kind == "sem":
            values = values / lib.sqrt(lib.where(n > 0, n, np.nan))
    result = _wrap(ordered, dims, values, name=obj.name, attrs=_stat_attrs(obj, dims, kind))
    return result.assign_coords(count=_wrap(ordered, dims, _as_count(n), attrs=_COUNT_ATTRS))


def mean(obj: Obj, over: Any = None) -> Obj:
    """Ensemble mean over ``over``, excluding members that are not ok and NaN values.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data (dask-backed stays lazy).
    over : str or tuple of str, optional
        Dims to reduce; default all member dims (the dims of ``status``).

    Returns
    -------
    DataArray or Dataset
        The mean over the remaining dims, float64, with a ``count`` coordinate (for a
        Dataset, one ``<var>_count`` coordinate per variable). NaN where no member counts.

    Examples
    --------
    >>> m = mean(ds["M"], over="seed")  # doctest: +SKIP
    >>> m.count.values  # members used per position  # doctest: +SKIP
    """
    return _moment_stat(obj, over, "mean", 0)


def std(obj: Obj, over: Any = None, ddof: int = 1) -> Obj:
    """Ensemble standard deviation over ``over`` (sample std, ``ddof=1``, by default).

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to reduce; default all member dims.
    ddof : int, default 1
        Delta degrees of freedom: the divisor is ``count - ddof`` (NumPy's default is 0).
        NaN where ``count <= ddof``.

    Returns
    -------
    DataArray or Dataset
        float64, with the ``count`` coordinate(s) as in :func:`mean`.

    Examples
    --------
    >>> std(ds["M"], over=("sample", "seed"))  # doctest: +SKIP
    """
    return _moment_stat(obj, over, "standard_deviation", ddof)


def sem(obj: Obj, over: Any = None) -> Obj:
    """Standard error of the ensemble mean: ``std(ddof=1) / sqrt(count)``.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to reduce; default all member dims.

    Returns
    -------
    DataArray or Dataset
        float64, NaN where fewer than two members count, with ``count`` coordinate(s).

    Examples
    --------
    >>> sem(ds["M"], over="seed")  # doctest: +SKIP
    """
    return _moment_stat(obj, over, "sem", 1)


def quantile(obj: Obj, q: Any, over: Any = None) -> Obj:
    """Ensemble quantiles over ``over`` (NumPy's default linear method), lazily.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    q : float or sequence of float
        Probabilities in [0, 1].
    over : str or tuple of str, optional
        Dims to reduce; default all member dims.

    Returns
    -------
    DataArray or Dataset
        With a leading ``quantile`` dim when ``q`` is a sequence, and ``count``
        coordinate(s). Equal to :func:`numpy.quantile` of the used members.

    Examples
    --------
    >>> quantile(ds["M"], [0.05, 0.5, 0.95], over=("sample", "seed"))  # doctest: +SKIP
    """
    dims = _resolve_over(obj, over)
    probs = _check_probabilities(q)
    if isinstance(obj, xr.Dataset):
        return _per_variable(obj, dims, lambda da: quantile(da, q, dims))
    ordered, data, r = _prepared(obj, dims, mask=False)
    rows = _whole_blocks(
        data,
        _ok_mask(ordered),
        r,
        _sorted_kernel,
        1 + probs.size,
        q=probs.ravel(),
        with_mean=False,
    )
    attrs = _stat_attrs(obj, dims, "quantile")
    if probs.ndim == 0:
        result = _wrap(ordered, dims, rows[1], name=obj.name, attrs=attrs)
        result = result.assign_coords(quantile=float(probs))
    else:
        result = _wrap(
            ordered, dims, rows[1:], name=obj.name, attrs=attrs, leading=("quantile", probs)
        )
    counted = _wrap(ordered, dims, _as_count(rows[0]), attrs=_COUNT_ATTRS)
    return result.assign_coords(count=counted)


def envelope(
    obj: xr.DataArray | xr.Dataset,
    over: Any = None,
    q: Sequence[float] = (0.025, 0.975),
    median: bool = False,
) -> xr.Dataset:
    """Mean and quantile band of an ensemble, in one lazy pass over the data.

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    over : str or tuple of str, optional
        Dims to reduce; default all member dims (the dims of ``status``).
    q : (float, float), default (0.025, 0.975)
        Probabilities of the lower and upper edges of the band.
    median : bool, default False
        Also return the median.

    Returns
    -------
    Dataset
        For a DataArray: variables ``mean``, ``lower``, ``upper`` (and ``median``) with the
        input's attrs, and ``count`` (int64, members used per position). For a Dataset:
        the same per data variable, named ``<var>_mean``, ``<var>_lower``,
        ``<var>_upper``, (``<var>_median``) and ``<var>_count``. Attrs record ``over``
        and ``q``.

    Examples
    --------
    >>> band = envelope(ds["M"], over=("sample", "seed"), q=(0.025, 0.975))  # doctest: +SKIP
    >>> band = band.compute()  # doctest: +SKIP
    >>> band["upper"] - band["lower"]  # doctest: +SKIP
    """
    dims = _resolve_over(obj, over)
    lo, hi = _check_envelope_q(q)
    attrs = {"over": [str(d) for d in dims], "q": [lo, hi]}
    if isinstance(obj, xr.Dataset):
        parts = []
        for name in _selected_vars(obj, dims):
            band = envelope(obj[name], dims, (lo, hi), median)
            parts.append(band.rename({k: f"{name}_{k}" for k in band.data_vars}))
        out = xr.merge(parts, compat="override", join="exact", combine_attrs="drop")
        out.attrs = {**obj.attrs, **attrs}
        return out
    probs = np.array([lo, hi, 0.5] if median else [lo, hi])
    ordered, data, r = _prepared(obj, dims, mask=False)
    rows = _whole_blocks(
        data, _ok_mask(ordered), r, _sorted_kernel, 2 + probs.size, q=probs, with_mean=True
    )
    methods = {
        "mean": "mean",
        "lower": f"quantile({lo:g})",
        "upper": f"quantile({hi:g})",
        "median": "median",
    }
    names = list(methods)[: 1 + probs.size]
    stats = {
        name: _wrap(ordered, dims, rows[1 + i], attrs=_stat_attrs(obj, dims, methods[name]))
        for i, name in enumerate(names)
    }
    stats["count"] = _wrap(ordered, dims, _as_count(rows[0]), attrs=dict(_COUNT_ATTRS))
    if obj.name is not None:
        attrs["variable"] = str(obj.name)
    return xr.Dataset(stats, attrs=attrs)


# --------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------


def _bootstrap_stat(stat: Any) -> tuple[str, Callable[..., Any]]:
    """Name and ``f(values, axis)`` of a bootstrap statistic."""
    if callable(stat):
        return getattr(stat, "__name__", "stat"), stat
    if isinstance(stat, str):
        named: dict[str, Callable[..., Any]] = {
            "mean": np.mean,
            "median": np.median,
            "std": lambda x, axis: np.std(x, axis=axis, ddof=1),
        }
        if stat in named:
            return stat, named[stat]
    elif isinstance(stat, (float, int, np.floating)) and 0 <= float(stat) <= 1:
        prob = float(stat)
        return f"quantile({prob:g})", lambda x, axis: np.quantile(x, prob, axis=axis)
    msg = (
        f"stat={stat!r} is not a known statistic: use 'mean', 'median', 'std', a "
        "probability in [0, 1] for a quantile, or a function f(values, axis)"
    )
    raise AnalysisError(msg)


def _compact_valid(values: np.ndarray, valid: np.ndarray, used: int) -> np.ndarray:
    """Move each column's valid values to the top (member order kept), keep ``used`` rows."""
    order = np.argsort(~valid, axis=0, kind="stable")[:used]
    return np.take_along_axis(values, order, axis=0)


def _bootstrap_kernel(
    blocks: list[np.ndarray],
    ok: np.ndarray | None,
    *,
    r: int,
    numblocks: tuple[int, ...],
    cols: tuple[slice, ...],
    ok_index: list[tuple[slice, ...]],
    stat: Any,
    n_boot: int,
    level: float,
    rng_seed: int,
) -> np.ndarray:
    """Rows: count, estimate, lower, upper (percentile bootstrap over the members)."""
    _, func = _bootstrap_stat(stat)
    pieces = _masked_pieces(blocks, r, cols, ok, ok_index)
    a, rest = _as_columns(_assembled(pieces, r, numblocks), r)
    members, ncol = a.shape
    out = np.full((4, ncol), np.nan)
    valid = ~np.isnan(a)
    n = valid.sum(axis=0)
    out[0] = n
    tail = (1 - level) / 2
    for used in np.unique(n):
        if used == 0:
            continue
        columns = np.flatnonzero(n == used)
        # the same resamples for every column with this many members, whatever the chunking
        draws = np.random.default_rng([rng_seed, int(used)]).integers(0, used, (n_boot, used))
        width = max(1, _SLAB_BYTES // (8 * max(int(used), n_boot)))
        for start in range(0, columns.size, width):
            sub_cols = columns[start : start + width]
            values = a[:, sub_cols]
            if used < members:
                values = _compact_valid(values, valid[:, sub_cols], int(used))
            out[1, sub_cols] = func(values, axis=0)
            replicas = _replicas(values, draws, func, stat)
            out[2:, sub_cols] = np.quantile(replicas, [tail, 1 - tail], axis=0)
    return out.reshape((4, *rest))


def _replicas(values: np.ndarray, draws: np.ndarray, func: Callable, stat: Any) -> np.ndarray:
    """The statistic of each bootstrap resample: (n_boot, columns)."""
    n_boot, used = draws.shape
    if isinstance(stat, str) and stat == "mean":
        rows = np.repeat(np.arange(n_boot), used)
        weights = np.bincount(rows * used + draws.ravel(), minlength=n_boot * used)
        return weights.reshape(n_boot, used).astype(np.float64) @ values / used
    batch = max(1, _SLAB_BYTES // (8 * values.size or 1))
    reps = np.empty((n_boot, values.shape[1]))
    for start in range(0, n_boot, batch):
        reps[start : start + batch] = func(values[draws[start : start + batch]], axis=1)
    return reps


def bootstrap_ci(
    obj: xr.DataArray | xr.Dataset,
    stat: Any = "mean",
    over: Any = None,
    n: int = 1000,
    level: float = 0.95,
    rng_seed: int = 0,
) -> xr.Dataset:
    """Percentile-bootstrap confidence interval of an ensemble statistic, lazily.

    Members are resampled with replacement ``n`` times at each remaining position; the
    interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
    statistic. Draws depend only on ``rng_seed`` and the number of members used, so the
    result does not depend on chunking, and positions with the same count share resamples
    (whole members are resampled across the output dims of a time series).

    Parameters
    ----------
    obj : DataArray or Dataset
        Ensemble data.
    stat : {"mean", "median", "std"}, float or callable, default "mean"
        The statistic: a name, a probability in [0, 1] (that quantile), or a function
        ``f(values, axis)`` reducing NumPy arrays along ``axis``.
    over : str or tuple of str, optional
        Dims to resample; default all member dims.
    n : int, default 1000
        Number of bootstrap resamples.
    level : float, default 0.95
        Confidence level, in (0, 1).
    rng_seed : int, default 0
        Seed of the resampling generator.

    Returns
    -------
    Dataset
        ``estimate`` (the statistic of the used members), ``lower``, ``upper`` and
        ``count``; for a Dataset input, ``<var>_estimate`` etc. per data variable.

    Examples
    --------
    >>> ci = bootstrap_ci(ds["M"], "mean", over="seed", n=500).compute()  # doctest: +SKIP
    >>> (ci.upper - ci.lower) / 2  # half-width  # doctest: +SKIP
    """
    dims = _resolve_over(obj, over)
    name, _ = _bootstrap_stat(stat)
    if not isinstance(n, (int, np.integer)) or n < 1:
        msg = f"n={n!r} is not a number of resamples; use a positive integer, e.g. n=1000"
        raise AnalysisError(msg)
    if not 0 < level < 1:
        msg = f"level={level!r} is not a confidence level; use a value in (0, 1), e.g. 0.95"
        raise AnalysisError(msg)
    attrs = {"over": [str(d) for d in dims], "stat": name, "n": int(n), "level": float(level)}
    if isinstance(obj, xr.Dataset):
        parts = []
        for var in _selected_vars(obj, dims):
            ci = bootstrap_ci(obj[var], stat, dims, n, level, rng_seed)
            parts.append(ci.rename({k: f"{var}_{k}" for k in ci.data_vars}))
        out = xr.merge(parts, compat="override", join="exact", combine_attrs="drop")
        out.attrs = {**obj.attrs, **attrs}
        return out
    ordered, data, r = _prepared(obj, dims, mask=False)
    rows = _whole_blocks(
        data,
        _ok_mask(ordered),
        r,
        _bootstrap_kernel,
        4,
        stat=stat,
        n_boot=int(n),
        level=float(level),
        rng_seed=int(rng_seed),
    )
    stat_attrs = {k: v for k, v in obj.attrs.items() if k in ("units", "long_name")}
    interval = {
        key: _wrap(ordered, dims, rows[i], attrs=dict(stat_attrs))
        for i, key in ((1, "estimate"), (2, "lower"), (3, "upper"))
    }
    interval["count"] = _wrap(ordered, dims, _as_count(rows[0]), attrs=dict(_COUNT_ATTRS))
    if obj.name is not None:
        attrs["variable"] = str(obj.name)
    return xr.Dataset(interval, attrs=attrs)
