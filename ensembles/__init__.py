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

from importlib.metadata import PackageNotFoundError, version

from . import accessor as _accessor  # registers the .ens accessor
from .adapters import MesaModel, ModelClass
from .command import Command, CommandError
from .designs import Concat, Design, Grid, LatinHypercube, Points, Product, Sample, Sobol
from .distributions import (
    Choice,
    Distribution,
    LogUniform,
    Normal,
    ScipyDistribution,
    Uniform,
)
from .ensemble import Ensemble
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
from .outputs import OutputFileError, read_output
from .simulation import Output, Simulation, simulation
from .store import open_ensemble

try:
    __version__ = version("ensembles")
except PackageNotFoundError:  # pragma: no cover - not installed
    __version__ = "0+unknown"

del _accessor, PackageNotFoundError, version

__all__ = [
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
