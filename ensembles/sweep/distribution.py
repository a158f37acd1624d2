"""The Distribution contract: a frozen description of a 1-d distribution, mapping uniforms.

:meth:`Distribution.ppf` (the inverse cumulative distribution function) turns uniforms on
[0, 1] into values; :meth:`Distribution.to_dict` gives the JSON form. The distributions
themselves are in :mod:`ensembles.sweep.distributions` and
:mod:`ensembles.sweep.scipy_distribution`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from ..errors import DesignError

__all__ = ["Distribution"]


def _check_uniforms(u: Any) -> np.ndarray:
    u = np.asarray(u, dtype=np.float64)
    if not np.all((u >= 0.0) & (u <= 1.0)):  # also catches NaN
        bad = u[~((u >= 0.0) & (u <= 1.0))].ravel()[0]
        msg = f"ppf takes uniforms in [0, 1], got {float(bad)!r}"
        raise DesignError(msg) from None
    return u


class Distribution(ABC):
    """Base class of the distributions of sampled parameters.

    Subclasses are frozen dataclasses: hashable, comparable with ``==`` and validated at
    construction. They implement :meth:`ppf` (through ``_ppf``) and :meth:`to_dict`.
    """

    dist: ClassVar[str]  # the "dist" tag of the dict form

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms ``u`` in [0, 1] to values (the inverse cumulative distribution).

        Parameters
        ----------
        u : array_like of float
            Uniforms in the closed interval [0, 1]; any shape.

        Returns
        -------
        numpy.ndarray
            Values of the distribution, with the shape of ``u``.
        """
        return self._ppf(_check_uniforms(u))

    @abstractmethod
    def _ppf(self, u: np.ndarray) -> np.ndarray:
        """Inverse CDF on validated float64 uniforms."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-compatible dict form (see :func:`distribution_from_dict`)."""
