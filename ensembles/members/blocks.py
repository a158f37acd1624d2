"""Members: a design times N seeds, laid out as rectangular blocks (the unit of work).

A member is one design point run with one seed index. Members live on an N-d grid whose
dims are the design's dims followed by ``seed``. That grid is cut into rectangular blocks
of about ``batch_size`` members; a block is one task, and in a store it is exactly one Zarr
chunk along the member dims, so no two tasks ever write the same chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from ..layout import SEED_DIM
from .seeds import DEFAULT_SEED_BITS, member_seeds, point_keys

__all__ = ["Members", "block_shape_for"]


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


@dataclass(frozen=True)
class Members:
    """The members of an ensemble: design points x seed indices, and their block layout.

    Parameters
    ----------
    table : mapping of str to 1-D numpy array
        Each design parameter's value per design point (``Design.table()``).
    design_dims, design_shape : tuple
        The design's dims and shape; ``prod(design_shape) == len(points)``.
    n_seeds : int
        Seeds per design point.
    root_seed : int
        The root of every member's seed.
    block : tuple of int
        Block shape over the member dims (design dims + ``seed``).
    seed_bits : int
        Bits per member seed (the simulation's ``seed_bits``): seeds in ``[0, 2**seed_bits)``.
    """

    table: Mapping[str, np.ndarray]
    design_dims: tuple[str, ...]
    design_shape: tuple[int, ...]
    n_seeds: int
    root_seed: int
    block: tuple[int, ...] = field(default=())
    seed_bits: int = DEFAULT_SEED_BITS

    def __post_init__(self) -> None:
        if not self.block:
            object.__setattr__(self, "block", block_shape_for(self.shape, 1000))
        if len(self.block) != len(self.shape):
            msg = f"block {self.block!r} does not match member dims {self.dims!r}"
            raise ValueError(msg)

    # -- geometry --------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        """Member dims: the design dims then ``seed``."""
        return (*self.design_dims, SEED_DIM)

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.design_shape, self.n_seeds)

    @property
    def n_points(self) -> int:
        return math.prod(self.design_shape)

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
        # workers need the seeds, not the point keys they were derived from
        state = dict(self.__dict__)
        if "seeds" in state:
            state.pop("keys", None)
        return state

    def with_batch_size(self, batch_size: int) -> Members:
        """The same members cut into blocks of about ``batch_size``; seeds computed once.

        Examples
        --------
        >>> m = Members({"x": np.arange(5.0)}, ("sample",), (5,), 2, 7, (5, 2))
        >>> m2 = m.with_batch_size(2)
        >>> m2.block, bool((m2.seeds == m.seeds).all())
        ((1, 2), True)
        """
        other = replace(self, block=block_shape_for(self.shape, batch_size))
        for name in ("keys", "seeds"):  # cached values do not depend on the blocks
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    # -- seeds -----------------------------------------------------------------------
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

    # -- members ---------------------------------------------------------------------
    def point_of(self, member: int) -> int:
        """Design point index of a flat member index."""
        return int(member) // self.n_seeds

    def params(self, member: int) -> dict[str, Any]:
        """Design parameters of a member as Python scalars."""
        p = self.point_of(member)
        return {k: v[p].item() if hasattr(v[p], "item") else v[p] for k, v in self.table.items()}

    def seed(self, member: int) -> int:
        return int(self.seeds.reshape(-1)[member])

    def identity(self, member: int) -> dict[str, Any]:
        """Who a member is: its flat index, its position on the member grid, its parameters.

        Examples
        --------
        >>> m = Members({"T": np.array([2.0, 3.0])}, ("T",), (2,), 3, 7, (1, 3))
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
