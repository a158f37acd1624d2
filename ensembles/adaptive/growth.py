"""What an adaptive run grows in a store: the seed dim, or the sample dim of its design.

``Ensemble(seeds=Adaptive(...))`` grows ``seed``: every design point is a point of the
rule and its seed indices are its members. ``Ensemble(samples=Adaptive(...))`` grows
``sample``: the sampled design is extended in place (:class:`~ensembles.Sample` and
:class:`~ensembles.Sobol` are prefix-stable), the other design dims are the points, and
the seeds of one sample are one unit of the rule. :class:`Growth` maps between the
store's member grid and the ``(*points, members)`` layout of
:func:`~ensembles.adaptive.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DesignError
from ..layout import SAMPLE_DIM, SEED_DIM
from ..sweep import Design, LatinHypercube, Product, Sample, Sobol, design_from_dict
from .rules import Adaptive

__all__ = ["Growth", "growth_for"]

_LHS_HINT = (
    "its points change with n (every stratum moves); use Sample or Sobol for an "
    "adaptive run, or a fixed n"
)


@dataclass(frozen=True)
class Growth:
    """How the members of an adaptive run are laid out in its store.

    Attributes
    ----------
    rule : Adaptive
        The growth rule (``rule.grow`` is the grown dim).
    design : Design
        The design as given (for ``sample`` growth, its ``n`` is replaced each round).
    seeds : int
        Seeds per sample when samples grow (the rule's ``block``); 1 when seeds grow.

    Examples
    --------
    >>> from ensembles import Grid
    >>> g = growth_for(Grid(T=[1.0, 2.0, 3.0]), Adaptive(initial=8, max=64))
    >>> g.member_dims, g.point_dims, g.point_shape
    (('T', 'seed'), ('T',), (3,))
    >>> g.member_mask(np.array([[True, False], [False, False], [True, True]])).shape
    (3, 2)
    """

    rule: Adaptive
    design: Design
    seeds: int = 1

    @property
    def grown(self) -> str:
        """The grown dim: ``"seed"`` or ``"sample"``."""
        return SEED_DIM if self.rule.grow == "seed" else SAMPLE_DIM

    @property
    def member_dims(self) -> tuple[str, ...]:
        """The store's member dims: the design dims, then ``seed``."""
        return (*self.design.dims, SEED_DIM)

    @property
    def point_dims(self) -> tuple[str, ...]:
        """The dims of the rule's points: the member dims except the grown one and ``seed``."""
        return tuple(d for d in self.design.dims if d != self.grown)

    @property
    def point_shape(self) -> tuple[int, ...]:
        sizes = dict(zip(self.design.dims, self.design.shape, strict=True))
        return tuple(sizes[d] for d in self.point_dims)

    @property
    def block(self) -> int:
        """Members per unit of the grown dim (the seeds of one sample)."""
        return self.seeds if self.grown == SAMPLE_DIM else 1

    def sized(self, extent: int) -> tuple[Design, int]:
        """The design and seeds per point of a store whose grown dim has ``extent``."""
        if self.grown == SEED_DIM:
            return self.design, int(extent)
        return resized(self.design, int(extent)), self.seeds

    def member_mask(self, mask: np.ndarray) -> np.ndarray:
        """A mask ``(*points, extent)`` over the store's member grid (design dims, seed)."""
        mask = np.asarray(mask, dtype=bool)
        if self.grown == SEED_DIM:
            return mask
        axis = self.design.dims.index(SAMPLE_DIM)
        moved = np.moveaxis(mask, -1, axis)[..., None]
        return np.broadcast_to(moved, (*moved.shape[:-1], self.seeds)).copy()

    def members_last(self, values: np.ndarray) -> np.ndarray:
        """Values ``(*member dims, positions)`` as ``(*points, members, positions)``."""
        if self.grown == SEED_DIM:
            return values
        axis = self.design.dims.index(SAMPLE_DIM)
        moved = np.moveaxis(values, axis, -3)  # (*points, sample, seed, positions)
        return moved.reshape(*moved.shape[:-3], moved.shape[-3] * moved.shape[-2], -1)


def growth_for(design: Design, rule: Adaptive, seeds: int = 1) -> Growth:
    """Check that ``design`` can grow as ``rule`` says; the :class:`Growth` if it can.

    Raises
    ------
    DesignError
        ``sample`` growth of a design without a growable ``sample`` dim: a grid, a Latin
        hypercube (its points change with ``n``), a concatenation.

    Examples
    --------
    >>> from ensembles import LatinHypercube
    >>> growth_for(LatinHypercube(n=8, seed=0, x=(0, 1)), Adaptive(grow="sample"))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ensembles.errors.DesignError: LatinHypercube(n=8, ...) cannot grow: its points change ...
    """
    growth = Growth(rule, design, int(seeds))
    if rule.grow == "sample":
        resized(design, len(design))  # raises for designs that cannot grow
    return growth


def resized(design: Design, n: int) -> Design:
    """``design`` with its sampled part drawing ``n`` points (a prefix-stable extension).

    Examples
    --------
    >>> from ensembles import Grid, Sobol
    >>> d = resized(Sobol(n=8, seed=1, x=(0.0, 1.0)) * Grid(L=[16, 32]), 32)
    >>> d.shape
    (32, 2)
    """
    if isinstance(design, (Sample, Sobol)):
        ((kind, body),) = design.to_dict().items()
        return design_from_dict({kind: {**body, "n": n}})
    if isinstance(design, Product):
        sampled = [i for i, f in enumerate(design.factors) if SAMPLE_DIM in f.dims]
        if len(sampled) == 1 and SAMPLE_DIM in design.dims:
            factors = list(design.factors)
            factors[sampled[0]] = resized(factors[sampled[0]], n)
            return Product(*factors)
    if isinstance(design, LatinHypercube) or (
        isinstance(design, Product) and any(isinstance(f, LatinHypercube) for f in design.factors)
    ):
        msg = f"{design!r} cannot grow: {_LHS_HINT}"
        raise DesignError(msg)
    if SAMPLE_DIM not in design.dims:
        msg = (
            f"samples=Adaptive(...) grows the 'sample' dim of a sampled design, but {design!r} "
            f"has dims {list(design.dims)!r}; use seeds=Adaptive(...) to grow the seeds per "
            "point instead"
        )
        raise DesignError(msg)
    msg = (
        f"{design!r} cannot grow: only a Sample or a Sobol design (alone, or one factor of a "
        "product with grids or points) extends in place; build the design from one of them"
    )
    raise DesignError(msg)
