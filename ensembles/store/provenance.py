"""Provenance: what a store records about how, where and when its run was made.

:func:`run_attrs` is the root attributes of a run (its spec, the spec's hash, provenance,
the root seed): an in-memory ``compute()`` gives its Dataset the same ones, without
loading the store's stack (zarr).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import hashlib
import json
import platform
import socket
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..sweep.values import first_nonfinite
from .target import SPEC_ATTR

if TYPE_CHECKING:
    from ..execution.worker import BlockRunner

__all__ = ["PROVENANCE", "ROOT_SEED", "SPEC_SHA256", "now", "provenance", "run_attrs"]

#: Attribute keys of a store's root group (the spec itself is under ``SPEC_ATTR``).
SPEC_SHA256 = "ensembles_spec_sha256"
PROVENANCE = "ensembles_provenance"
ROOT_SEED = "ensembles_root_seed"


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


def run_attrs(spec: Mapping[str, Any], runner: BlockRunner, root_seed: int) -> dict[str, Any]:
    """The root attributes that describe a run: its spec (with blocks and schema)."""
    full = dict(spec)
    full["block"] = list(runner.members.block)
    full["schema"] = runner.schema.to_dict()
    full["format"] = 1
    found = first_nonfinite(full)
    if found is not None:  # strict JSON has no NaN or infinity, and NaN != NaN on resume
        where, value = found
        msg = (
            f"the run's spec has the value {value!r} at spec{where}, which a store cannot "
            "record (strict JSON has no NaN or infinity); use finite numbers (or None) in "
            "the simulation's settings, the design and the fixed values"
        )
        raise SpecError(msg)
    text = json.dumps(full, sort_keys=True, default=repr, allow_nan=False)
    return {
        SPEC_ATTR: text,
        SPEC_SHA256: hashlib.sha256(text.encode()).hexdigest(),
        PROVENANCE: json.dumps(provenance()),
        ROOT_SEED: str(root_seed),
    }
