"""1. What to run: parameter designs (Grid, Points, Sample, LatinHypercube, Sobol).

In import order (each module imports only those above it):

- ``values``: parameter values, validation and reprs shared by designs and distributions;
- ``distribution``: the Distribution contract (uniforms on [0, 1] -> values);
- ``scipy_distribution``: any frozen ``scipy.stats`` distribution (scipy loads on use);
- ``distributions``: Normal, Uniform, LogUniform, Choice, and what users write for a
  distribution (a tuple, a dict, a scipy object) turned into one;
- ``design``: the Design contract, its algebra (``*`` Product, ``+`` Concat) and the
  dict form's dispatch (:func:`design_from_dict`, ``Design.from_dict``);
- ``explicit``: Grid and Points; ``sampled``: Sample, LatinHypercube and Sobol. Each kind
  writes and reads its own dict form.
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
