"""1. What to run: parameter designs (Grid, Points, Sample, LatinHypercube, Sobol).

``values`` validates parameter values (shared by designs and distributions);
``distribution`` is the Distribution contract, ``distributions`` and
``scipy_distribution`` what sampled parameters are drawn from; ``design`` is the Design
contract with its algebra (products ``*`` and concatenations ``+``), ``explicit`` holds
Grid and Points, ``sampled`` the random and quasi-random designs. Each design kind
reads and writes its own dict form; :func:`design_from_dict` (``Design.from_dict``)
dispatches on the dict's key.
"""

from .design import Concat, Design, Product, design_from_dict
from .explicit import Grid, Points
from .sampled import LatinHypercube, Sample, Sobol, stream_key

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
