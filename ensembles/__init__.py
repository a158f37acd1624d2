"""ensembles: statistical ensembles and parameter sweeps of simulations.

Run a simulation over a parameter design times N seeds as a lazy xarray Dataset,
stream it into Zarr, and reduce it (means, quantiles, envelopes) with dask.

Examples
--------
>>> import ensembles as ens
>>> from ensembles.models import ising
>>> sweep = ens.Points([{"T": 3.0}]) + ens.Sample(T=ens.Normal(3.0, 0.05), n=50, seed=123)
>>> e = ens.Ensemble(ising.simulate, sweep, seeds=4, root_seed=42,
...                  fixed={"L": 32, "n_sweeps": 1000, "burn_in": 100, "thin": 10})
>>> ds = e.to_dataset()     # lazy: nothing has run yet
>>> dict(ds.sizes)
{'sample': 51, 'seed': 4, 'sweep': 90}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _accessor_hook, _moved
from .errors import (
    AnalysisError,
    DesignError,
    EnsembleError,
    MemberError,
    OutputMismatchError,
    RunnerError,
    SimulationError,
    SpecError,
    StoreError,
    StoreExistsError,
    StoreMismatchError,
)
from .simulations.contract import Output, Simulation, simulation

# The public API loads on first use (PEP 562): ``import ensembles`` stays light, and a
# worker that unpickles a task from ``ensembles.execution.worker`` does not import the
# analysis stack (dask.array, scipy.stats, numba) it never uses.
_EXPORTS = {
    "MesaModel": "simulations.mesa",
    "ModelClass": "simulations.model_class",
    "Command": "simulations.command",
    "CommandError": "simulations.command",
    "Concat": "sweep",
    "Design": "sweep",
    "Grid": "sweep",
    "LatinHypercube": "sweep",
    "Points": "sweep",
    "Product": "sweep",
    "Sample": "sweep",
    "Sobol": "sweep",
    "Choice": "sweep.distributions",
    "Distribution": "sweep.distributions",
    "LogUniform": "sweep.distributions",
    "Normal": "sweep.distributions",
    "ScipyDistribution": "sweep.distributions",
    "Uniform": "sweep.distributions",
    "Ensemble": "ensemble",
    "Adaptive": "adaptive.rules",
    "Precision": "adaptive.rules",
    "OutputFileError": "simulations.output_files",
    "read_output": "simulations.output_files",
    "open_ensemble": "store.zarr_store",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .adaptive.rules import Adaptive, Precision
    from .ensemble import Ensemble
    from .simulations.command import Command, CommandError
    from .simulations.mesa import MesaModel
    from .simulations.model_class import ModelClass
    from .simulations.output_files import OutputFileError, read_output
    from .store.zarr_store import open_ensemble
    from .sweep import Concat, Design, Grid, LatinHypercube, Points, Product, Sample, Sobol
    from .sweep.distributions import (
        Choice,
        Distribution,
        LogUniform,
        Normal,
        ScipyDistribution,
        Uniform,
    )


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("ensembles")
        except PackageNotFoundError:  # pragma: no cover - not installed
            value = "0+unknown"
    else:
        try:  # submodules: ``ensembles.analysis.reduce`` after a bare ``import ensembles``
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            msg = f"module {__name__!r} has no attribute {name!r}"
            raise AttributeError(msg) from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_moved.install()  # module paths from before the stage subpackages keep working
_accessor_hook.install()  # ds.ens, registered when xarray is imported

__all__ = [
    "Adaptive",
    "AnalysisError",
    "Choice",
    "Command",
    "CommandError",
    "Concat",
    "Design",
    "DesignError",
    "Distribution",
    "Ensemble",
    "EnsembleError",
    "Grid",
    "LatinHypercube",
    "LogUniform",
    "MemberError",
    "MesaModel",
    "ModelClass",
    "Normal",
    "Output",
    "OutputFileError",
    "OutputMismatchError",
    "Points",
    "Precision",
    "Product",
    "RunnerError",
    "Sample",
    "ScipyDistribution",
    "Simulation",
    "SimulationError",
    "Sobol",
    "SpecError",
    "StoreError",
    "StoreExistsError",
    "StoreMismatchError",
    "Uniform",
    "__version__",
    "open_ensemble",
    "read_output",
    "simulation",
]
