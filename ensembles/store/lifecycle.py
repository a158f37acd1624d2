"""A run's life in a store: check the target, lay it out or grow it, finish it.

``Ensemble.to_zarr`` calls these in order; they own the store's attribute keys (the run
spec, its hash, provenance, start and finish times, member counts), so the facade never
touches the store's layout itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import StoreExistsError
from ..layout import FAILED, OK, PENDING, SKIPPED
from .provenance import now, provenance
from .zarr_store import SPEC_ATTR, EnsembleStore

if TYPE_CHECKING:
    import xarray as xr

    from ..execution.worker import BlockRunner

__all__ = ["check_target", "finish", "lay_out", "run_attrs", "status_counts"]

#: Attribute keys of a store's root group.
SPEC_SHA256 = "ensembles_spec_sha256"
PROVENANCE = "ensembles_provenance"
ROOT_SEED = "ensembles_root_seed"
STARTED = "ensembles_started"
FINISHED = "ensembles_finished"
COUNTS = "ensembles_counts"
MODES = ("w-", "w", "resume")


def check_target(store: EnsembleStore, mode: str) -> bool:
    """Check that ``mode`` may write at the store's path; True when a store is resumed.

    Raises
    ------
    StoreExistsError
        ``mode="w-"`` and a store exists at the path.
    """
    if mode not in MODES:
        msg = f"mode must be 'w-' (new store), 'w' (overwrite) or 'resume', got {mode!r}"
        raise ValueError(msg)
    exists = store.exists()
    if mode == "w-" and exists:
        msg = (
            f"a store already exists at {store.path!r}; pass mode='w' (CLI: --overwrite) "
            "to replace it, or mode='resume' to finish or extend it"
        )
        raise StoreExistsError(msg)
    return mode == "resume" and exists


def run_attrs(spec: Mapping[str, Any], runner: BlockRunner, root_seed: int) -> dict[str, Any]:
    """The root attributes that describe a run: its spec (with blocks and schema)."""
    full = dict(spec)
    full["block"] = list(runner.members.block)
    full["schema"] = runner.schema.to_dict()
    full["format"] = 1
    text = json.dumps(full, sort_keys=True, default=repr)
    return {
        SPEC_ATTR: text,
        SPEC_SHA256: hashlib.sha256(text.encode()).hexdigest(),
        PROVENANCE: json.dumps(provenance()),
        ROOT_SEED: str(root_seed),
    }


def lay_out(
    store: EnsembleStore,
    template: xr.Dataset,
    runner: BlockRunner,
    *,
    resuming: bool,
    grows: bool = False,
    started: bool = True,
    member_coords: bool = True,
) -> None:
    """Create the store's layout for a new run, or grow a resumed one to the template.

    A new store is written with the template's attributes and its start time; the
    outputs' codecs are chosen from the values of members the planner already ran. A
    resumed store records a new start time unless ``started=False`` (the later rounds of
    an adaptive run, which belong to the run that started them). ``member_coords=False``
    leaves the new members' ``member_seed`` to the caller (an adaptive run writes it for
    the members it runs only).
    """
    if not resuming:
        samples: dict[str, list[np.ndarray]] = {}
        for arrays in runner.precomputed.values():
            for name, values in arrays.items():
                samples.setdefault(name, []).append(values)
        template = template.assign_attrs({STARTED: now()})
        mode = "w" if store.exists() else "w-"
        store.create(template, runner.members.block, mode=mode, samples=samples)
        return
    if grows:
        attrs = {k: v for k, v in template.attrs.items() if k != PROVENANCE}
        store.grow(template, attrs, member_coords=member_coords)
    if started:
        store.update_attrs(**{STARTED: now()})


def status_counts(status: np.ndarray) -> dict[str, int]:
    """Members ok, failed and pending (and skipped by an adaptive run, when there are any)."""
    counts = {
        "ok": int(np.count_nonzero(status == OK)),
        "failed": int(np.count_nonzero(status == FAILED)),
        "pending": int(np.count_nonzero(status == PENDING)),
    }
    skipped = int(np.count_nonzero(status == SKIPPED))
    if skipped:
        counts["skipped"] = skipped
    return counts


def finish(store: EnsembleStore) -> None:
    """Record the end of a run: its finish time and member counts."""
    store.update_attrs(**{FINISHED: now(), COUNTS: json.dumps(status_counts(store.status()))})
