"""Provenance: what a store records about how, where and when its run was made."""

from __future__ import annotations

import contextlib
import functools
import getpass
import platform
import socket
import sys
from datetime import datetime, timezone
from typing import Any

__all__ = ["now", "provenance"]


def now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def _environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("ensembles", "numpy", "dask", "distributed", "xarray", "zarr", "numba", "scipy"):
        loaded = getattr(sys.modules.get(pkg), "__version__", None) if pkg != "ensembles" else None
        if isinstance(loaded, str):  # what runs here (and no scan of site-packages)
            versions[pkg] = loaded
            continue
        with contextlib.suppress(PackageNotFoundError):
            versions[pkg] = version(pkg)
    try:
        user = getpass.getuser()
    except Exception:  # pragma: no cover - no user database in some containers
        user = None
    return {
        "host": socket.gethostname(),
        "user": user,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def provenance() -> dict[str, Any]:
    """Creation time, host, user, Python, platform and package versions.

    Examples
    --------
    >>> sorted(provenance())
    ['created', 'host', 'platform', 'python', 'user', 'versions']
    """
    return {"created": now(), **_environment()}
