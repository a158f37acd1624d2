"""Register the ``.ens`` accessor when xarray is imported, not before.

``import ensembles`` must stay light: worker processes import it to run members and
never use ``.ens``, and xarray (with pandas) costs them about 100 MB and a second or two.
The accessor is registered at once if xarray is already imported, else right after
xarray's own import finishes, so ``ds.ens`` works whichever is imported first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__all__ = ["install"]


def _register() -> None:
    importlib.import_module("ensembles.analysis.accessor")


class _AfterXarray(importlib.abc.MetaPathFinder):
    """A one-shot finder: wraps xarray's loader to register the accessor after it runs."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "xarray":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec("xarray")
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            _register()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Register ``.ens`` now if xarray is imported, else as soon as it is."""
    if "xarray" in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterXarray) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterXarray())
