"""Module paths from before the stage subpackages, kept importable with a warning.

``import ensembles.reduce`` (and every other module path that existed before the package
was grouped into ``sweep/``, ``members/``, ``simulations/``, ``execution/``, ``store/``
and ``analysis/``) still works: it returns the module's new home and emits a
:class:`DeprecationWarning` naming it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "install"]

#: Old module path -> new module path.
MOVED: dict[str, str] = {
    "ensembles.accessor": "ensembles.analysis.accessor",
    "ensembles.adapters": "ensembles.simulations.mesa",
    "ensembles.batch": "ensembles.execution.worker",
    "ensembles.clients": "ensembles.execution.clients",
    "ensembles.command": "ensembles.simulations.command",
    "ensembles.command_args": "ensembles.simulations.command_templates",
    "ensembles.command_process": "ensembles.simulations.programs",
    "ensembles.convergence": "ensembles.analysis.convergence",
    "ensembles.designs": "ensembles.sweep",
    "ensembles.dims": "ensembles.analysis.arguments",
    "ensembles.distributions": "ensembles.sweep.distributions",
    "ensembles.graph": "ensembles.execution.graph",
    "ensembles.info": "ensembles.describe",
    "ensembles.lease": "ensembles.store.lease",
    "ensembles.mesa_support": "ensembles.simulations.mesa",
    "ensembles.model_support": "ensembles.simulations.model_class",
    "ensembles.outputs": "ensembles.simulations.output_files",
    "ensembles.planning": "ensembles.execution.planning",
    "ensembles.plot": "ensembles.analysis.plot",
    "ensembles.progress": "ensembles.execution.progress",
    "ensembles.provenance": "ensembles.store.provenance",
    "ensembles.reduce": "ensembles.analysis.reduce",
    "ensembles.reduce_engine": "ensembles.analysis.kernels",
    "ensembles.resume": "ensembles.store.resume",
    "ensembles.runner": "ensembles.execution.submit",
    "ensembles.scipy_distribution": "ensembles.sweep.scipy_distribution",
    "ensembles.seeds": "ensembles.members.seeds",
    "ensembles.sensitivity": "ensembles.analysis.sensitivity",
    "ensembles.store.describe": "ensembles.describe",
    "ensembles.simulation": "ensembles.simulations.contract",
    "ensembles.tables": "ensembles.analysis.summary",
    "ensembles.tasks": "ensembles.execution.worker",
    "ensembles.wire": "ensembles.execution.wire",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and loads it as the module at its new path."""

    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}  # old name -> the new module's own spec

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there (the old path will be removed)",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the import system gave the module the old name's spec: give it back its own
        module.__spec__ = self._specs.pop(module.__spec__.name)


class _Package(ModuleType):
    """The ``ensembles`` package: importing an old module path never hides a public name.

    Importing a submodule binds it as an attribute of its package, so ``import
    ensembles.simulation`` (the old path of ``simulations.contract``) would replace the
    ``ensembles.simulation`` decorator with a module. An old path whose name the package
    already uses is importable, but not bound.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, ModuleType)
            and f"{self.__name__}.{name}" in MOVED
            and name in self.__dict__
        ):
            return
        super().__setattr__(name, value)


def install() -> None:
    """Make the old module paths importable (once per interpreter)."""
    sys.modules[__name__.rpartition(".")[0]].__class__ = _Package
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
