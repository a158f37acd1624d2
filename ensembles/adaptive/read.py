"""Reading what an adaptive run's targets judge from its store, one chunk row at a time.

:class:`JudgedReader` reads, per target, only the selected ``steps`` of the members run
since its last read (a member's values never change once it ran), applies ``reduce``
member by member, and keeps the results for the next round. Each read covers whole
chunk rows of design points, so a round touches only the chunks its new members are in;
each member is judged on all its steps at once, so the values do not depend on the
store's chunking (and so not on the batch size or the number of workers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import OK, STATUS
from .growth import Growth
from .rules import Precision
from .select import judged, step_positions

if TYPE_CHECKING:
    from ..store.zarr_store import EnsembleStore

__all__ = ["JudgedReader"]

_BATCH = 32  # regions read concurrently: bounds the memory of one read to 32 chunk rows


class JudgedReader:
    """The judged values of every target, ``(*points, members, positions)``, read once each.

    Parameters
    ----------
    store : EnsembleStore
    targets : sequence of Precision
    growth : Growth
        Where the points and the grown dim are among the store's member dims.
    """

    def __init__(self, store: EnsembleStore, targets: Sequence[Precision], growth: Growth) -> None:
        self.store, self.targets, self.growth = store, tuple(targets), growth
        self.read = np.zeros(growth.point_shape, dtype=np.int64)  # members read per point
        self.cache: list[np.ndarray] | None = None  # per target, (*member dims, positions)

    def values(self, n: np.ndarray) -> list[np.ndarray]:
        """Per target, the judged values of the first ``n`` members of every point (NaN
        for members that are not ok), as :func:`~ensembles.adaptive.decide` takes them
        with ``prejudged=True``."""
        n = np.asarray(n, dtype=np.int64)
        if self.read.shape != n.shape:  # the design grew: read everything again
            self.read, self.cache = np.zeros(n.shape, dtype=np.int64), None
        group = self.store.group()
        plans = [self._plan(group, target) for target in self.targets]
        top = int(n.max(initial=0))
        self._reserve(plans, group, top)
        regions = self._regions(group, n)
        for start in range(0, len(regions), _BATCH):
            self._read(group, plans, regions[start : start + _BATCH])
        self.read = np.maximum(self.read, n)
        axis = self.growth.member_dims.index(self.growth.grown)
        out = []
        for cache in self.cache or []:
            head = np.take(cache, np.arange(top), axis=axis)
            out.append(self.growth.members_last(head))
        return out

    # -- planning ----------------------------------------------------------------------
    def _plan(self, group: Any, target: Precision) -> dict[str, Any]:
        """How to read a target: its array, output dims, step selection, reduced target."""
        arr = group[target.var]
        m = len(self.growth.member_dims)
        dims = tuple(str(d) for d in arr.metadata.dimension_names[m:])
        coords = {d: np.asarray(group[d][...]) for d in dims if d in group}
        positions = step_positions(target, dims, arr.shape[m:], coords)
        selected = [
            len(p) if p is not None else size
            for p, size in zip(positions, arr.shape[m:], strict=True)
        ]
        rest = {k: v for k, v in target.to_dict().items() if k != "steps"}
        plain = Precision.from_dict(rest)  # the steps are selected while reading
        probe = judged(np.zeros((1,) * m + tuple(selected)), plain, m - 1, dims, coords)
        return {
            "array": arr,
            "positions": positions,
            "target": plain,
            "dims": dims,
            "coords": coords,
            "width": probe.shape[-1],
        }

    def _reserve(self, plans: list[dict[str, Any]], group: Any, top: int) -> None:
        """Room in the cache for ``top`` members along the grown dim."""
        axis = self.growth.member_dims.index(self.growth.grown)
        shape = list(group[STATUS].shape)
        if self.cache is None:
            shape[axis] = top
            self.cache = [np.full((*shape, p["width"]), np.nan) for p in plans]
            return
        have = self.cache[0].shape[axis]
        if top > have:
            pad = [(0, 0)] * (len(shape) + 1)
            pad[axis] = (0, top - have)
            self.cache = [np.pad(c, pad, constant_values=np.nan) for c in self.cache]

    def _regions(self, group: Any, n: np.ndarray) -> list[tuple[slice, ...]]:
        """Member-grid rectangles holding the members not read yet, by chunk row of points."""
        growth = self.growth
        status = group[STATUS]
        dims = growth.member_dims
        point_axes = [dims.index(d) for d in growth.point_dims]
        axis = dims.index(growth.grown)
        chunks = [status.chunks[a] for a in point_axes]
        sizes = [status.shape[a] for a in point_axes]
        regions = []
        for corner in np.ndindex(*(-(-s // c) for s, c in zip(sizes, chunks, strict=True))):
            rows = tuple(
                slice(i * c, min((i + 1) * c, s))
                for i, c, s in zip(corner, chunks, sizes, strict=True)
            )
            lo, hi = int(self.read[rows].min(initial=0)), int(n[rows].max(initial=0))
            if hi <= lo:
                continue
            region = [slice(None)] * len(dims)
            for a, rows_slice in zip(point_axes, rows, strict=True):
                region[a] = rows_slice
            region[axis] = slice(lo, hi)
            regions.append(tuple(region))
        return regions

    # -- reading -----------------------------------------------------------------------
    def _read(self, group: Any, plans: list[dict[str, Any]], regions: list[tuple]) -> None:
        """Read the regions of every target (and of status) concurrently; judge and keep."""
        from ..store.arrays import concurrently

        status = group[STATUS]
        reads: list[Callable[[], Any]] = []
        for region in regions:
            reads.append(partial(status.__getitem__, region))
            for plan in plans:
                outputs = [slice(None) if p is None else p for p in plan["positions"]]
                selection = (*region, *outputs)
                reads.append(partial(plan["array"].get_orthogonal_selection, selection))
        found: list[Any] = [None] * len(reads)

        def keep(i: int, read: Callable[[], Any]) -> Callable[[], None]:
            def call() -> None:
                found[i] = read()

            return call

        concurrently([keep(i, read) for i, read in enumerate(reads)])
        results = iter(found)
        m = len(self.growth.member_dims)
        for region in regions:
            ok = np.asarray(next(results)) == OK
            for plan, cache in zip(plans, self.cache or [], strict=True):
                raw = np.asarray(next(results), dtype=np.float64)
                values = judged(raw, plan["target"], m - 1, plan["dims"], plan["coords"])
                cache[region] = np.where(ok[..., None], values, np.nan)
