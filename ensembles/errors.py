"""The exception hierarchy of ensembles, rooted in :class:`EnsembleError`.

Every error ensembles raises on purpose derives from :class:`EnsembleError` and from the
builtin that best describes it, so ``except ValueError`` keeps working for callers that
do not know about ensembles::

    EnsembleError
    ├── DesignError(ValueError)        a parameter design is invalid
    ├── SimulationError(ValueError)    a simulation or its declared outputs are invalid
    ├── SpecError(ValueError)          a TOML/JSON run specification is invalid
    ├── OutputMismatchError(ValueError) a member returned outputs that disagree with the schema
    ├── MemberError(RuntimeError)      a member raised; carries its parameters and seed
    ├── StoreError(RuntimeError)       a Zarr store cannot be created, opened or resumed
    │   ├── StoreExistsError(FileExistsError)
    │   ├── StoreMismatchError(ValueError) resume/extend with a different run than the store's
    │   └── LeaseLostError                 a newer writer took over this writer's store
    ├── RunnerError(RuntimeError)      the run could not be scheduled or executed
    └── AnalysisError(ValueError)      an analysis asked what the data cannot answer
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "DesignError",
    "EnsembleError",
    "LeaseLostError",
    "MemberError",
    "OutputMismatchError",
    "RunnerError",
    "SimulationError",
    "SpecError",
    "StoreError",
    "StoreExistsError",
    "StoreMismatchError",
]


class EnsembleError(Exception):
    """Base class of every error raised by ensembles."""


class DesignError(EnsembleError, ValueError):
    """A parameter design is invalid (empty values, NaN, reversed bounds, ...)."""


class SimulationError(EnsembleError, ValueError):
    """A simulation function or its output declaration is invalid."""


class SpecError(EnsembleError, ValueError):
    """A run specification (TOML or JSON) is invalid."""


class OutputMismatchError(EnsembleError, ValueError):
    """A member's outputs disagree with the ensemble's output schema (names, shape, dtype)."""


class MemberError(EnsembleError, RuntimeError):
    """A member of the ensemble raised an exception.

    Attributes
    ----------
    params : dict
        The member's parameters (design values and fixed values).
    seed : int
        The integer seed the member received; ``simulation(seed=seed, **params)`` reruns it.
    """

    def __init__(self, message: str, *, params: dict | None = None, seed: int | None = None):
        super().__init__(message)
        self.params = dict(params or {})
        self.seed = seed

    def __reduce__(self):  # keep params and seed when pickled across processes
        return (_rebuild_member_error, (str(self), self.params, self.seed))


def _rebuild_member_error(message: str, params: dict, seed: int | None) -> MemberError:
    return MemberError(message, params=params, seed=seed)


class StoreError(EnsembleError, RuntimeError):
    """A Zarr store cannot be created, opened, resumed or extended."""


class StoreExistsError(StoreError, FileExistsError):
    """The target store exists and the caller did not ask to overwrite or resume it."""


class StoreMismatchError(StoreError, ValueError):
    """A resume or extend was asked with a run that differs from the store's."""


class LeaseLostError(StoreError):
    """A writer lost its store's lease to a newer writer and stopped before writing."""


class RunnerError(EnsembleError, RuntimeError):
    """The run could not be scheduled or executed (cluster unreachable, ...)."""


class AnalysisError(EnsembleError, ValueError):
    """An ensemble analysis was asked something the data cannot answer.

    Raised for unknown or uninferable ``over`` dims, invalid quantiles or levels, unknown
    statistics and unsupported table formats; the message names the value and the fix.
    """
