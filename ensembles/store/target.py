"""What is at a store's path: nothing, an ensembles store (whole or half-created), another
Zarr store, a folder or a file; told from the raw keys, and an error when it cannot be told.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from .keys import TMP_PREFIX, Keys
from .lease import LEASE_GROUP

__all__ = ["INCOMPLETE_ATTR", "KINDS", "SPEC_ATTR", "Found", "inspect_path"]

#: Root attribute holding the run specification (JSON): what makes a store an ensemble.
SPEC_ATTR = "ensembles"
#: Root attribute present while a store's layout is being written, removed last.
INCOMPLETE_ATTR = "ensembles_incomplete"
_REQUIRED = ("status",)
#: What :func:`inspect_path` can find.
KINDS = ("nothing", "empty", "ensemble", "incomplete", "zarr", "folder", "file")


@dataclass(frozen=True)
class Found:
    """What is at a path: one of :data:`KINDS`, and words for it in messages."""

    kind: str
    detail: str


def inspect_path(path: str, storage_options: Mapping[str, Any] | None = None) -> Found:
    """Look at what is at ``path`` without changing it.

    Raises
    ------
    StoreError
        When the path cannot be read (permissions, network, credentials): ensembles
        never guesses that a store is absent, or that it is not there.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> inspect_path(folder).kind
    'empty'
    >>> with open(os.path.join(folder, "notes.txt"), "w") as f:
    ...     _ = f.write("important")
    >>> print(inspect_path(folder).detail)
    a folder with 1 entry (notes.txt) that is not a Zarr store
    """
    try:
        keys = Keys(path, storage_options)
        return _inspect(keys)
    except StoreError:
        raise
    except Exception as exc:  # fail closed: any error reading the path is reported
        msg = (
            f"cannot tell what is at {path!r} ({type(exc).__name__}: {exc}); check the "
            "path, its permissions and the storage credentials"
        )
        raise StoreError(msg) from exc


def _inspect(keys: Keys) -> Found:
    kind = keys.kind()
    if kind == "missing":
        return Found("nothing", "nothing")
    if kind == "file":
        return Found("file", "a file, not a folder")
    names = [n for n in keys.list_dir("") if n != LEASE_GROUP and not n.startswith(TMP_PREFIX)]
    if not names:
        return Found("empty", "an empty folder")
    if "zarr.json" in names:
        return _zarr_v3(keys)
    v2 = [n for n in (".zgroup", ".zarray", ".zmetadata") if n in names]
    if v2:
        return Found("zarr", f"a Zarr v2 store ({', '.join(v2)}), written by xarray or zarr 2")
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    entries = f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}"
    return Found("folder", f"a folder with {entries} ({shown}) that is not a Zarr store")


def _zarr_v3(keys: Keys) -> Found:
    try:
        root = json.loads(keys.get("zarr.json") or b"")
    except ValueError:
        return Found("zarr", "a Zarr store whose root zarr.json is not valid JSON")
    if not isinstance(root, dict) or root.get("node_type") != "group":
        return Found("zarr", "a Zarr v3 array, not an ensembles store")
    attrs = root.get("attributes") or {}
    if SPEC_ATTR not in attrs:
        detail = f"a Zarr v3 store that is not an ensemble (no {SPEC_ATTR!r} attribute)"
        return Found("zarr", detail)
    try:
        outputs = list(json.loads(attrs[SPEC_ATTR]).get("schema", {}))
    except (ValueError, TypeError, AttributeError):
        return Found("zarr", f"a Zarr v3 store whose {SPEC_ATTR!r} attribute is not a run spec")
    names = set(keys.list_dir(""))
    missing = [n for n in (*outputs, *_REQUIRED) if n not in names]
    if INCOMPLETE_ATTR in attrs or missing or not keys.exists("status/zarr.json"):
        return Found("incomplete", "a half-created ensembles store (its creation was interrupted)")
    return Found("ensemble", "an ensembles store")
