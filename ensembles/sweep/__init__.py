"""1. What to run: parameter designs (Grid, Points, Sample, LatinHypercube, Sobol).

``design`` is the Design contract, ``explicit`` holds Grid and Points, ``sampled`` the
random and quasi-random designs, ``combine`` their products (``*``) and concatenations
(``+``), ``distributions`` what sampled parameters are drawn from, and ``serialize``
:func:`design_from_dict`, the inverse of ``Design.to_dict``.
"""

from .combine import Concat, Product
from .design import Design
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
