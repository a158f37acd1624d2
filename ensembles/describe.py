"""Describe a saved ensemble: its run spec, dims, outputs and member status counts."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .layout import FAILED, OK, PENDING, SKIPPED
from .store.zarr_store import EnsembleStore

__all__ = ["describe"]


def describe(
    path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-ready description of the store at ``path``.

    Returns
    -------
    dict
        ``path``, ``simulation``, ``design`` (its dict form), ``fixed``, ``seeds``,
        ``root_seed``, ``dims`` (name -> size), ``outputs``, ``members`` (counts of
        ok/failed/pending/total, and skipped for an adaptive run), ``errors`` (failed members
        counted by the first line of their error), ``created``/``finished`` times, package
        versions, and for an adaptive run ``adaptive``: its state, rounds, points converged
        and the widest half-width per target (:func:`~ensembles.adaptive.record.record_summary`),
        with the rule and the targets.

    Examples
    --------
    >>> describe("ising.zarr")["members"]  # doctest: +SKIP
    {'ok': 204, 'failed': 0, 'pending': 0, 'total': 204}
    """
    store = EnsembleStore(os.fspath(path), storage_options)
    spec = store.spec()
    attrs = store.attrs()
    ds = store.open_dataset()
    status = store.status()
    errors: dict[str, int] = {}
    if (status == FAILED).any():
        texts = np.asarray(ds["error"].values)[status == FAILED]
        for text in texts.tolist():
            first = str(text).splitlines()[0] if str(text) else "(no message)"
            errors[first] = errors.get(first, 0) + 1
    provenance = json.loads(attrs.get("ensembles_provenance", "{}"))
    members = {
        "ok": int(np.count_nonzero(status == OK)),
        "failed": int(np.count_nonzero(status == FAILED)),
        "pending": int(np.count_nonzero(status == PENDING)),
        "total": int(status.size),
    }
    adaptive = _adaptive(store)
    if adaptive is not None or (status == SKIPPED).any():
        members["skipped"] = int(np.count_nonzero(status == SKIPPED))
    info = {
        "path": store.path,
        "simulation": spec["simulation"].get("function") or spec["simulation"],
        "design": spec["design"],
        "fixed": spec.get("fixed", {}),
        "seeds": spec["run"]["seeds"],
        "root_seed": spec["run"]["root_seed"],
        "dims": {str(k): int(v) for k, v in ds.sizes.items()},
        "member_dims": list(ds["status"].dims),
        "outputs": [str(v) for v in ds.data_vars],
        "members": members,
        "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        "created": provenance.get("created"),
        "finished": attrs.get("ensembles_finished"),
        "versions": provenance.get("versions", {}),
    }
    if adaptive is not None:
        info["adaptive"] = adaptive
    return info


def _adaptive(store: EnsembleStore) -> dict[str, Any] | None:
    """The state of an adaptive run from the store's record (None for other stores)."""
    from .adaptive.record import read_record, record_summary

    record = read_record(store)
    if record is None:
        return None
    return {**record_summary(record), "rule": record["rule"], "until": record["until"]}
