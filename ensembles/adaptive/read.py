"""What an adaptive run's targets judge: kept from the blocks the driver writes, read
from the store otherwise, each member once.

:class:`JudgedReader` keeps, per target, the judged values of every member it has seen
(the selected ``steps``, with ``reduce`` applied member by member). The driver hands it
each block it writes into the store (:meth:`JudgedReader.take`: the same numbers, cast
to the stored dtype, so nothing is read back); members written elsewhere (by the tasks
of a dask cluster, or before a resumed run) are read from the store, by whole chunk rows
of design points. Each member is judged on all its steps at once, so the values do not
depend on the store's chunking, the blocks, or the number of workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import OK, PENDING, STATUS, BlockResult
from .growth import Growth
from .rules import Precision
from .select import judged, step_positions

if TYPE_CHECKING:
    from ..store.zarr_store import EnsembleStore

__all__ = ["JudgedReader"]

_BATCH = 32  # regions read concurrently: bounds the memory of one read to 32 chunk rows


class JudgedReader:
    """The judged values of every target, ``(*points, members, positions)``, each member's
    once: taken from the blocks the driver writes, or read from the store.

    Parameters
    ----------
    store : EnsembleStore
    targets : sequence of Precision
    growth : Growth
        Where the points and the grown dim are among the store's member dims.

    """

    def __init__(self, store: EnsembleStore, targets: Sequence[Precision], growth: Growth) -> None:
        self.store, self.targets, self.growth = store, tuple(targets), growth
        self.plans: list[dict[str, Any]] | None = None  # per target: how to judge it
        self.cache: list[np.ndarray] | None = None  # per target, (*member dims, positions)
        self.known = np.zeros((0,) * len(growth.member_dims), dtype=bool)  # judged members
        self.seconds = 0.0

    def expect(self, shape: tuple[int, ...]) -> None:
        """Room for the store's member grid ``shape`` (laid out, or grown)."""
        if self.plans is None:
            group = self.store.group()
            self.plans = [self._plan(group, target) for target in self.targets]
        self._fit(tuple(shape))

    def values(self, n: np.ndarray) -> list[np.ndarray]:
        """Per target, the judged values of the first ``n`` members of every point (NaN
        for members that are not ok), as :func:`~ensembles.adaptive.decide` takes them
        with ``prejudged=True``. Members not judged yet are read from the store."""
        n = np.asarray(n, dtype=np.int64)
        axis = self.growth.member_dims.index(self.growth.grown)
        top = int(n.max(initial=0))
        if self.cache is None or top > self.known.shape[axis]:
            self.expect(tuple(self.store.group()[STATUS].shape))
        index = np.arange(self.known.shape[axis])
        wanted = self.growth.member_mask(index < n[..., None])
        need = wanted & ~self.known
        if need.any():  # else every member was taken as written: nothing to read
            group = self.store.group()
            for plan in self.plans or []:  # opened now: the store may have grown since
                plan["array"] = group[plan["target"].var]
            regions = self._regions(group, need)
            for start in range(0, len(regions), _BATCH):
                self._read(group, regions[start : start + _BATCH])
        self.known |= wanted  # every member below n has finished: its values are final
        out = []
        for cache in self.cache or []:
            head = np.take(cache, np.arange(top), axis=axis)
            out.append(self.growth.members_last(head))
        return out

    def take(self, result: BlockResult, region: tuple[slice, ...]) -> None:
        """Judge the members of a block the driver has just written into the store.

        ``result`` holds exactly what was written at ``region`` of the member grid (the
        outputs are cast to the stored dtypes, as the store does), so the values are those
        a read would give. A block outside the expected grid (:meth:`expect`), or without
        a target's output, is left to be read.
        """
        began = time.perf_counter()
        ran = result.status != PENDING
        inside = all(r.stop <= s for r, s in zip(region, self.known.shape, strict=True))
        outputs = all(t.var in result.outputs for t in self.targets)
        if self.cache is not None and inside and outputs and ran.any():
            m = len(self.growth.member_dims)
            ok = result.status == OK
            for plan, cache in zip(self.plans or [], self.cache, strict=True):
                raw = np.asarray(result.outputs[plan["target"].var], dtype=plan["dtype"])
                for axis, positions in enumerate(plan["positions"]):
                    if positions is not None:
                        raw = np.take(raw, positions, axis=m + axis)
                cache[region][ran] = self._judge(plan, raw, ok)[ran]
            self.known[region] |= ran
        self.seconds += time.perf_counter() - began

    def judging(self) -> float:
        """Seconds spent in :meth:`take` since the last call (the work of the next
        decision, done as the blocks were written)."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def _judge(self, plan: dict[str, Any], raw: Any, ok: np.ndarray) -> np.ndarray:
        """Judged values of ``raw`` (selected steps, member grid first), NaN unless ok."""
        m = len(self.growth.member_dims)
        raw = np.asarray(raw, dtype=np.float64)
        values = judged(raw, plan["target"], m - 1, plan["dims"], plan["coords"])
        return np.where(ok[..., None], values, np.nan)

    def _fit(self, shape: tuple[int, ...]) -> None:
        """Room for the member grid ``shape``: the grown dim only grows; a design that
        grew along another dim starts over (its members are read again)."""
        axis = self.growth.member_dims.index(self.growth.grown)
        have = self.known.shape
        same = all(a == b for i, (a, b) in enumerate(zip(have, shape, strict=True)) if i != axis)
        if self.cache is None or not same:
            self.known = np.zeros(shape, dtype=bool)
            self.cache = [np.full((*shape, p["width"]), np.nan) for p in self.plans or []]
        elif shape[axis] > have[axis]:
            pad = [(0, 0)] * (len(shape) + 1)
            pad[axis] = (0, shape[axis] - have[axis])
            self.known = np.pad(self.known, pad[:-1], constant_values=False)
            self.cache = [np.pad(c, pad, constant_values=np.nan) for c in self.cache]

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
            "dtype": arr.dtype,
        }

    def _regions(self, group: Any, need: np.ndarray) -> list[tuple[slice, ...]]:
        """Member-grid rectangles holding the members of ``need``, by chunk row of points."""
        growth = self.growth
        status = group[STATUS]
        dims = growth.member_dims
        point_axes = [dims.index(d) for d in growth.point_dims]
        axis = dims.index(growth.grown)
        kept = sorted([*point_axes, axis])  # the rest (seeds of a sample) are reduced
        along = need.any(axis=tuple(a for a in range(len(dims)) if a not in kept))
        along = np.moveaxis(along, kept.index(axis), -1)  # (*points, grown)
        chunks = [status.chunks[a] for a in point_axes]
        sizes = [status.shape[a] for a in point_axes]
        regions = []
        for corner in np.ndindex(*(-(-s // c) for s, c in zip(sizes, chunks, strict=True))):
            rows = tuple(
                slice(i * c, min((i + 1) * c, s))
                for i, c, s in zip(corner, chunks, sizes, strict=True)
            )
            found = np.flatnonzero(along[rows].reshape(-1, along.shape[-1]).any(axis=0))
            if not found.size:
                continue
            region = [slice(None)] * len(dims)
            for a, rows_slice in zip(point_axes, rows, strict=True):
                region[a] = rows_slice
            region[axis] = slice(int(found[0]), int(found[-1]) + 1)
            regions.append(tuple(region))
        return regions

    # -- reading -----------------------------------------------------------------------
    def _read(self, group: Any, regions: list[tuple]) -> None:
        """Read the regions of every target (and of status) concurrently; judge and keep."""
        from ..store.arrays import concurrently

        plans = self.plans or []
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
        for region in regions:
            ok = np.asarray(next(results)) == OK
            new = ~self.known[region]  # members judged before keep their values
            for plan, cache in zip(plans, self.cache or [], strict=True):
                cache[region][new] = self._judge(plan, next(results), ok)[new]
