"""1. What to run: parameter designs (Grid, Points, Sample, LatinHypercube, Sobol).

``values`` validates parameter values (shared by designs and distributions);
``distribution`` is the Distribution contract, ``distributions`` and
``scipy_distribution`` what sampled parameters are drawn from; ``design`` is the Design
contract with its algebra (products ``*`` and concatenations ``+``), ``explicit`` holds
Grid and Points, ``sampled`` the random and quasi-random designs, and ``serialize``
:func:`design_from_dict`, the inverse of ``Design.to_dict``.
"""

from .design import Concat, Design, Product
from .explicit import Grid, Points
from .sampled import LatinHypercube, Sample, Sobol, stream_key
from .serialize import design_from_dict

__all__ = [
    "Concat",
    "Design",
    "Grid",
    "LatinHypercube",
    "Points",
    "Product",
    "Sample",
    "Sobol",
    "design_from_dict",
    "stream_key",
]
