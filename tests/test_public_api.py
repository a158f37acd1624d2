"""The public API: a small, explicit, sorted export list."""

import sys

import ensembles

EXPECTED = {
    # designs and distributions
    "Choice",
    "Concat",
    "Design",
    "Distribution",
    "Grid",
    "LatinHypercube",
    "LogUniform",
    "Normal",
    "Points",
    "Product",
    "Sample",
    "ScipyDistribution",
    "Sobol",
    "Uniform",
    # simulations
    "Command",
    "MesaModel",
    "ModelClass",
    "Output",
    "Simulation",
    "read_output",
    "simulation",
    # running and storing
    "Ensemble",
    "Adaptive",
    "Precision",
    "open_ensemble",
    # errors
    "AnalysisError",
    "CommandError",
    "DesignError",
    "EnsembleError",
    "MemberError",
    "OutputFileError",
    "OutputMismatchError",
    "RunnerError",
    "SimulationError",
    "SpecError",
    "StoreError",
    "StoreExistsError",
    "StoreMismatchError",
    "__version__",
}


def test_all_is_sorted_and_complete():
    assert ensembles.__all__ == sorted(ensembles.__all__)
    assert set(ensembles.__all__) == EXPECTED
    for name in ensembles.__all__:
        assert hasattr(ensembles, name), name


def test_errors_share_one_base_and_a_builtin():
    for name in ensembles.__all__:
        obj = getattr(ensembles, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and obj is not ensembles.EnsembleError
        ):
            assert issubclass(obj, ensembles.EnsembleError), name
            assert issubclass(obj, (ValueError, RuntimeError)), name


def test_accessor_is_registered():
    import xarray as xr

    assert hasattr(xr.Dataset(), "ens")
    assert hasattr(xr.DataArray([1.0]), "ens")


def test_lazy_exports_are_the_defining_modules_objects():
    import ensembles.ensemble
    import ensembles.simulations.contract
    import ensembles.store.zarr_store

    assert ensembles.Ensemble is ensembles.ensemble.Ensemble
    assert ensembles.open_ensemble is ensembles.store.zarr_store.open_ensemble
    assert ensembles.simulation is sys.modules["ensembles.simulations.contract"].simulation
    assert set(ensembles.__all__) <= set(dir(ensembles))


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        _ = ensembles.no_such_thing
    assert ensembles.sweep.Grid is ensembles.Grid  # subpackages load on first access


def test_old_module_paths_still_import_with_a_deprecation_warning():
    import importlib

    import pytest

    from ensembles._moved import MOVED

    for old, new in MOVED.items():
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
            module = importlib.import_module(old)
        assert module is importlib.import_module(new)
        assert module.__spec__.name == new  # the new module keeps its own identity
    sys.modules.pop("ensembles.reduce")
    with pytest.warns(DeprecationWarning, match="ensembles.reduce moved"):
        from ensembles.reduce import envelope
    assert envelope is sys.modules["ensembles.analysis.reduce"].envelope


def test_an_old_module_path_does_not_hide_a_public_name():
    import importlib

    import pytest

    sys.modules.pop("ensembles.simulation", None)
    with pytest.warns(DeprecationWarning, match="ensembles.simulation moved"):
        old = importlib.import_module("ensembles.simulation")
    assert old is sys.modules["ensembles.simulations.contract"]
    assert ensembles.simulation is old.simulation  # still the decorator, not the module
    sys.modules.pop("ensembles.adapters", None)
    with pytest.warns(DeprecationWarning, match="ensembles.adapters moved"):
        from ensembles.adapters import MesaModel, ModelClass
    assert (MesaModel, ModelClass) == (ensembles.MesaModel, ensembles.ModelClass)
