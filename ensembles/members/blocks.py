"""Members: a design times N seeds, laid out as rectangular blocks (the unit of work).

A member is one design point run with one seed index. Members live on an N-d grid whose
dims are the design's dims followed by ``seed``. That grid is cut into rectangular blocks
of about ``batch_size`` members; a block is one task, and in a store it is exactly one Zarr
chunk along the member dims, so no two tasks ever write the same chunk. Planning touches
only the members it probes; a design whose bookkeeping would not fit in memory is refused
before anything is computed (:func:`check_size`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DesignError
from ..layout import SEED_DIM
from .seeds import DEFAULT_SEED_BITS, member_seeds, point_keys

if TYPE_CHECKING:
    from ..sweep import Design

__all__ = ["BYTES_PER_MEMBER", "Members", "available_memory", "block_shape_for", "check_size"]

#: Bookkeeping a run keeps per member on the machine that runs it: the seed (8 bytes), the
#: status (1), the wall time (4), the attempts (1) and masks over members (2).
BYTES_PER_MEMBER = 16
#: Bookkeeping per design point: its key and occurrence (16) and sort order (8).
BYTES_PER_POINT = 24
#: The bookkeeping of a run may take at most this share of the memory available.
MEMORY_SHARE = 0.5
#: Bookkeeping this small fits anywhere Python runs: the memory is not even looked up.
SMALL_PLAN = 16 * 2**20


def block_shape_for(shape: tuple[int, ...], batch_size: int) -> tuple[int, ...]:
    """A regular block shape over ``shape`` holding at most ``batch_size`` members.

    Trailing dims are taken whole while they fit, the first dim that does not fit is cut,
    and the dims before it get 1; so blocks are contiguous in C order.

    Examples
    --------
    >>> block_shape_for((3, 4, 1000), 500)
    (1, 1, 500)
    >>> block_shape_for((50, 4), 100)
    (25, 4)
    """
    if batch_size < 1:
        msg = f"batch_size must be at least 1, got {batch_size!r}"
        raise ValueError(msg)
    budget = int(batch_size)
    block = [1] * len(shape)
    for i in range(len(shape) - 1, -1, -1):
        size = shape[i]
        if size <= budget:
            block[i] = max(size, 1)
            budget //= max(size, 1)
        else:
            block[i] = max(budget, 1)
            break
    return tuple(block)


def check_size(n_points: int, n_seeds: int, n_params: int = 1) -> None:
    """Refuse at once members whose bookkeeping alone cannot fit in the memory at hand.

    A run keeps every member's seed and status on the machine that plans it (about
    :data:`BYTES_PER_MEMBER` bytes per member), so a design beyond that is refused before
    anything is computed, rather than hanging while it fills the memory.

    Parameters
    ----------
    n_points, n_seeds : int
        Design points, and seeds per point.
    n_params : int
        Design parameters (their values are kept per point).

    Raises
    ------
    DesignError
        The bookkeeping would take more than half the memory available here; the message
        gives the sizes and what to do.

    Examples
    --------
    >>> check_size(1_000, 10)             # 10,000 members: a few hundred kB
    >>> check_size(10**12, 1)             # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ensembles.errors.DesignError: the ensemble has 1,000,000,000,000 members ...
    """
    n_members = n_points * n_seeds
    need = n_members * BYTES_PER_MEMBER + n_points * (BYTES_PER_POINT + 8 * n_params)
    if need <= SMALL_PLAN:
        return
    available = available_memory()
    if need <= MEMORY_SHARE * available:
        return
    seeds = f"{n_seeds:,} seed{'s' if n_seeds != 1 else ''}"
    msg = (
        f"the ensemble has {n_members:,} members ({n_points:,} design points x {seeds}), "
        "too many for this machine: their bookkeeping alone (each member's seed, status "
        f"and wall time, each point's values) would take {_size(need)}, more than half of "
        f"the {_size(available)} of memory available here. Run fewer members at a time "
        "(split the design into several ensembles, e.g. by ranges of one parameter, or use "
        "fewer seeds), or plan the run on a machine with more memory"
    )
    raise DesignError(msg)


#: Where Linux states a container's memory limit (cgroup v2, then v1).
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def available_memory() -> int:
    """Bytes of memory available to this process (within a container's limit, if any)."""
    import psutil

    available = psutil.virtual_memory().available
    for path in _CGROUP_LIMITS:
        try:
            limit = Path(path).read_text().strip()
        except OSError:
            continue
        if limit.isdigit():  # "max" means no limit
            available = min(available, int(limit))
    return int(available)


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError  # pragma: no cover - the loop returns


@dataclass(frozen=True)
class Members:
    """The members of an ensemble: design points x seed indices, and their block layout.

    Nothing is computed up front: a member's parameters and seed are worked out for that
    member alone (planning probes the first few), while :attr:`table` and :attr:`seeds`,
    which cover every member, are computed on first use and shipped to workers with the
    plan. A plan whose bookkeeping cannot fit in this machine's memory is refused at once
    (see :func:`check_size`).

    Parameters
    ----------
    design : Design
        The design points.
    n_seeds : int
        Seeds per design point.
    root_seed : int
        The root of every member's seed.
    block : tuple of int
        Block shape over the member dims (design dims + ``seed``).
    seed_bits : int
        Bits per member seed (the simulation's ``seed_bits``): seeds in ``[0, 2**seed_bits)``.

    Examples
    --------
    >>> from ensembles import Grid
    >>> m = Members(Grid(T=[1.5, 2.0]), n_seeds=3, root_seed=7)
    >>> m.dims, m.shape, len(m)
    (('T', 'seed'), (2, 3), 6)
    >>> m.params(4), m.seed(4) == int(m.seeds[1, 1])
    ({'T': 2.0}, True)
    """

    design: Design
    n_seeds: int
    root_seed: int
    block: tuple[int, ...] = field(default=())
    seed_bits: int = DEFAULT_SEED_BITS

    def __post_init__(self) -> None:
        check_size(self.n_points, self.n_seeds, len(self.design.params))
        if not self.block:
            object.__setattr__(self, "block", block_shape_for(self.shape, 1000))
        if len(self.block) != len(self.shape):
            msg = f"block {self.block!r} does not match member dims {self.dims!r}"
            raise ValueError(msg)

    # -- geometry --------------------------------------------------------------------
    @property
    def design_dims(self) -> tuple[str, ...]:
        return tuple(self.design.dims)

    @property
    def design_shape(self) -> tuple[int, ...]:
        return tuple(self.design.shape)

    @property
    def dims(self) -> tuple[str, ...]:
        """Member dims: the design dims then ``seed``."""
        return (*self.design_dims, SEED_DIM)

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.design_shape, self.n_seeds)

    @property
    def n_points(self) -> int:
        return len(self.design)

    def __len__(self) -> int:
        return self.n_points * self.n_seeds

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """Dask-style chunks of the member grid."""
        out = []
        for size, b in zip(self.shape, self.block, strict=True):
            full, rest = divmod(size, b)
            out.append((b,) * full + ((rest,) if rest else ()))
        return tuple(out)

    @property
    def nblocks(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.chunks)

    def block_ids(self) -> Iterator[tuple[int, ...]]:
        """Every block index, in C order."""
        yield from np.ndindex(*self.nblocks)

    def block_slices(self, block_id: tuple[int, ...]) -> tuple[slice, ...]:
        """The region of the member grid covered by ``block_id``."""
        return tuple(
            slice(i * b, min((i + 1) * b, size))
            for i, b, size in zip(block_id, self.block, self.shape, strict=True)
        )

    def block_members(self, block_id: tuple[int, ...]) -> np.ndarray:
        """Flat member indices of a block, shaped like the block."""
        strides = np.cumprod((*self.shape[1:], 1)[::-1])[::-1]
        axes = np.ix_(*[np.arange(s.start, s.stop) for s in self.block_slices(block_id)])
        return sum(a * int(st) for a, st in zip(axes, strides, strict=True)).astype(np.int64)

    def __getstate__(self) -> dict[str, Any]:
        # workers get every member's values and seed, computed once here, not the point
        # keys they derive from
        state = dict(self.__dict__)
        state["table"], state["seeds"] = self.table, self.seeds
        state.pop("keys", None)
        return state

    def with_batch_size(self, batch_size: int) -> Members:
        """The same members cut into blocks of about ``batch_size``; seeds computed once.

        Examples
        --------
        >>> from ensembles import Points
        >>> m = Members(Points([{"x": float(i)} for i in range(5)]), 2, 7, (5, 2))
        >>> m2 = m.with_batch_size(2)
        >>> m2.block, bool((m2.seeds == m.seeds).all())
        ((1, 2), True)
        """
        return self.with_block(block_shape_for(self.shape, batch_size))

    def with_block(self, block: tuple[int, ...]) -> Members:
        """The same members cut into blocks of shape ``block``; seeds computed once.

        Examples
        --------
        >>> from ensembles import Grid
        >>> m = Members(Grid(T=[1.0, 2.0, 3.0]), 2, 7)
        >>> m.with_block((1, 2)).nblocks
        (3, 1)
        """
        other = replace(self, block=tuple(block))
        for name in ("table", "keys", "seeds"):  # cached values do not depend on the blocks
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    # -- every member ----------------------------------------------------------------
    @cached_property
    def table(self) -> dict[str, np.ndarray]:
        """Each design parameter's value per design point (``Design.table()``)."""
        return self.design.table()

    @cached_property
    def keys(self) -> tuple[np.ndarray, np.ndarray]:
        """Stable point keys and occurrence counts, one per design point."""
        return point_keys(self.table)

    @cached_property
    def seeds(self) -> np.ndarray:
        """Integer seed of every member, shaped like the member grid (int64)."""
        keys, occurrences = self.keys
        seeds = member_seeds(
            self.root_seed,
            keys[:, None],
            occurrences[:, None],
            np.arange(self.n_seeds)[None, :],
            bits=self.seed_bits,
        )
        return seeds.reshape(self.shape)

    # -- one member ------------------------------------------------------------------
    def point_of(self, member: int) -> int:
        """Design point index of a flat member index."""
        return int(member) // self.n_seeds

    def params(self, member: int) -> dict[str, Any]:
        """Design parameters of a member as Python scalars (computed for it alone)."""
        point = self.point_of(member)
        if "table" in self.__dict__:
            return {name: values[point].item() for name, values in self.table.items()}
        return {name: values.item() for name, values in self.design.rows(point).items()}

    def seed(self, member: int) -> int:
        """The seed of a member (computed for it alone unless every seed is known)."""
        if "seeds" in self.__dict__:
            return int(self.seeds.reshape(-1)[member])
        point, index = divmod(int(member), self.n_seeds)
        if "keys" in self.__dict__:
            key, occurrence = self.keys[0][point], self.keys[1][point]
        else:  # the occurrence counts earlier points with the same values
            keys, occurrences = point_keys(self.design.rows(np.arange(point + 1)))
            key, occurrence = keys[-1], occurrences[-1]
        return int(member_seeds(self.root_seed, key, occurrence, index, bits=self.seed_bits))

    def identity(self, member: int) -> dict[str, Any]:
        """Who a member is: its flat index, its position on the member grid, its parameters.

        Examples
        --------
        >>> from ensembles import Grid
        >>> m = Members(Grid(T=[2.0, 3.0]), n_seeds=3, root_seed=7)
        >>> m.identity(5)
        {'member': 5, 'position': {'T': 1, 'seed': 2}, 'params': {'T': 3.0}}
        """
        position = np.unravel_index(member, self.shape)
        return {
            "member": int(member),
            "position": {d: int(i) for d, i in zip(self.dims, position, strict=True)},
            "params": self.params(member),
        }

    def describe(self, member: int, fixed: Mapping[str, Any] | None = None) -> str:
        """``member 7 (T=2.0, seed index 3, seed=123...)`` for messages."""
        index = np.unravel_index(member, self.shape)
        where = ", ".join(f"{d}={i}" for d, i in zip(self.dims, index, strict=True))
        params = ", ".join(f"{k}={v!r}" for k, v in self.params(member).items())
        return f"member {member} [{where}] ({params}, seed={self.seed(member)})"
