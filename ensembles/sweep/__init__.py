"""Parameter designs: Grid, Points, Sample, LatinHypercube, Sobol and their combinations.

One module per kind: ``base`` (the Design contract), ``explicit`` (Grid, Points),
``sampled`` (Sample, LatinHypercube, Sobol), ``combine`` (``*`` and ``+``) and
``serialize`` (:func:`design_from_dict`, the inverse of ``Design.to_dict``).
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
