"""An adaptive run's record in its store: the rule, the targets, every round's decision.

The record (with each round's members per point and achieved half-widths) lives in the
attributes of a small group, ``_ensembles_adaptive``, so the store stays a plain Zarr
hierarchy and ``xarray.open_zarr`` ignores it; :func:`record_summary` condenses it for
progress lines and ``ensembles info``. :func:`mark_skipped` gives the members a run will
not need the status ``SKIPPED``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..layout import SKIPPED, STATUS
from .growth import Growth
from .rules import Precision

if TYPE_CHECKING:
    from ..store.zarr_store import EnsembleStore

__all__ = [
    "RECORD_GROUP",
    "mark_skipped",
    "progress_text",
    "read_record",
    "record_summary",
    "write_record",
]

RECORD_GROUP = "_ensembles_adaptive"
"""The group whose attribute ``record`` holds an adaptive run's record."""


def read_record(store: EnsembleStore) -> dict[str, Any] | None:
    """The adaptive record of ``store``, or None (not adaptive, or no round recorded yet)."""
    import zarr

    try:
        root = zarr.open_group(
            store.zarr_store(read_only=True), mode="r", zarr_format=3, use_consolidated=False
        )
        record = dict(root[RECORD_GROUP].attrs).get("record")
    except (KeyError, FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    return dict(record) if record else None


def write_record(store: EnsembleStore, record: Mapping[str, Any]) -> None:
    """Replace the adaptive record of ``store`` (one small JSON document).

    Like every write of a run, checked against the store's fence first (a writer that
    lost the lease stops here, see ``store.lease``). The group's metadata document is
    written whole, in one atomic replace (a reader sees the old record or the new one),
    as zarr writes it: the group is created by the first record.
    """
    if store.fence is not None:
        store.fence.check()
    document = {"attributes": {"record": dict(record)}, "zarr_format": 3, "node_type": "group"}
    store.keys().replace(f"{RECORD_GROUP}/zarr.json", json.dumps(document).encode())


def mark_skipped(
    store: EnsembleStore,
    growth: Growth,
    n: np.ndarray,
    done: np.ndarray | None = None,
    shape: tuple[int, ...] | None = None,
) -> None:
    """Mark every point's members at or beyond its count ``n`` as skipped.

    An adaptive run never runs a point's members beyond its count, so they are pending
    (or already skipped): their status is written without reading it first. ``done``
    (a mask over the member grid, or a prefix of it along the grown dim) holds members
    already marked: they are not written again. ``shape`` is the store's member grid
    when the caller knows it (else it is read).
    """
    shape = tuple(shape) if shape else store.group()[STATUS].shape
    extent = shape[growth.member_dims.index(growth.grown)]
    beyond = growth.member_mask(np.arange(extent) >= np.asarray(n)[..., None])
    if done is not None:
        pad = [(0, max(s - d, 0)) for d, s in zip(done.shape, shape, strict=True)]
        beyond &= ~np.pad(done, pad)[tuple(slice(0, s) for s in shape)]
    if beyond.any():
        store.set_status(beyond, SKIPPED)


def _width(value: float | None, relative: bool) -> str:
    if value is None:
        return "unknown"
    return f"{value * 100:.3g} %" if relative else f"{value:.4g}"


def record_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """The state of an adaptive run from its record: rounds, points converged, widest.

    Returns
    -------
    dict
        ``state`` ("running" or "done"), ``rounds``, ``points``, ``converged``, ``at_max``,
        ``members`` (run or running), and ``targets``: per target its description, the
        widest half-width over the points (as last judged) and the limit.
    """
    rounds = record.get("rounds", [])
    last = record.get("final") or (rounds[-1] if rounds else None)
    if last is None:
        return {"state": record.get("state", "running"), "rounds": 0, "targets": []}
    n = np.asarray(last["n"], dtype=np.int64) + np.asarray(last["add"], dtype=np.int64)
    targets = []
    for entry in last["targets"]:
        target = Precision.from_dict(entry["target"])
        achieved = np.ravel(np.asarray(entry["achieved"], dtype=object))
        achieved = [a for a in achieved if a is not None]
        widest = max(achieved, default=None) if len(achieved) == n.size else None
        targets.append(
            {
                "target": target.describe(),
                "widest": None if widest is None else float(widest),
                "limit": float(target.halfwidth or target.rel_halfwidth),
                "relative": target.halfwidth is None,
            }
        )
    return {
        "state": record.get("state", "running"),
        "rounds": len(rounds),
        "points": int(n.size),
        "converged": int(np.sum(np.asarray(last["converged"], dtype=bool))),
        "at_max": int(np.sum(np.asarray(last["at_max"], dtype=bool))),
        "members": int(n.sum()) * int(record.get("block", 1)),
        "targets": targets,
    }


def progress_text(summary: Mapping[str, Any], rounds: bool = True) -> str:
    """``3 rounds, 19 of 21 points converged, widest +-0.0123 (target +-0.01)``.

    ``summary`` is :func:`record_summary`'s; ``rounds=False`` leaves the round count out.

    Examples
    --------
    >>> progress_text({"rounds": 2, "points": 21, "converged": 19, "at_max": 0,
    ...                "targets": [{"target": "mean of M +- 0.01 (95 % confidence)",
    ...                             "widest": 0.0123, "limit": 0.01, "relative": False}]})
    '2 rounds, 19 of 21 points converged, widest +-0.0123 (target +-0.01)'
    """
    count = summary.get("rounds", 0)
    parts = [f"{count} round{'s' if count != 1 else ''}"] if rounds else []
    if "points" in summary:
        parts.append(f"{summary['converged']} of {summary['points']} points converged")
        if summary.get("at_max"):
            parts.append(f"{summary['at_max']} stopped at max")
    for t in summary.get("targets", []):
        widest = _width(t["widest"], t["relative"])
        name = f"{t['target'].split(' +- ')[0]}: " if len(summary["targets"]) > 1 else ""
        parts.append(f"{name}widest +-{widest} (target +-{_width(t['limit'], t['relative'])})")
    return ", ".join(parts)
