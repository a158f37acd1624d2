"""8. Adaptive ensembles: run each design point until its statistic is precise enough.

:class:`Precision` states a target (a confidence-interval half-width of the mean, a
quantile or the standard deviation of an output), :class:`Adaptive` how members grow
(pilot size, cap, safety factor), and :func:`decide` turns the stored values into the next
round's members per point, deterministically, with a stopping rule that keeps the stated
coverage (see ``docs/adaptive.md``). ``Ensemble.to_zarr(until=...)`` runs the rounds
(``run``): it reads the judged values from the store (``read``), records every round
(``record``) and grows the seed or sample dim in place (``growth``).
"""

from .decide import Decision, decide
from .masks import SKIPPED, skipped_mask, todo_mask
from .rules import Adaptive, Precision, as_targets

__all__ = [
    "SKIPPED",
    "Adaptive",
    "Decision",
    "Precision",
    "as_targets",
    "decide",
    "skipped_mask",
    "todo_mask",
]
