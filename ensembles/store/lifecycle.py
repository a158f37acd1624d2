"""A run's life in a store: check the target, take the lease, lay it out or grow it, finish.

``Ensemble.to_zarr`` calls these in order; they own the store's attribute keys (the run
spec, its hash, provenance, start and finish times, member counts), so the facade never
touches the store's layout itself.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import StoreError, StoreExistsError
from ..layout import FAILED, OK, PENDING, SKIPPED
from . import trust
from .lease import LEASE_GROUP, Lease
from .provenance import PROVENANCE, now
from .zarr_store import SPEC_ATTR, EnsembleStore

if TYPE_CHECKING:
    import xarray as xr

    from ..execution.worker import BlockRunner

__all__ = ["check_target", "finish", "lay_out", "status_counts", "writing"]

#: Attribute keys of a store's root group (and those of provenance.py).
STARTED = "ensembles_started"
FINISHED = "ensembles_finished"
COUNTS = "ensembles_counts"
MODES = ("w-", "w", "resume")
#: What a run does to its target: lay out a new store, replace what is there, resume.
ACTIONS = ("create", "replace", "resume")


def check_target(store: EnsembleStore, mode: str) -> str:
    """What ``mode`` does at the store's path: ``"create"``, ``"replace"`` or ``"resume"``.

    Nothing is written. Only an ensembles store is resumed; ``mode="w"`` replaces an
    ensembles store or another Zarr store, never a folder or file that is not a Zarr store
    (an empty folder is used as it is); a half-created store is created again by
    ``mode="resume"``.

    Raises
    ------
    StoreExistsError
        What is at the path may not be written with ``mode``; says what was found.
    StoreError
        What is at the path cannot be told (permissions, network).
    """
    if mode not in MODES:
        msg = f"mode must be 'w-' (new store), 'w' (overwrite) or 'resume', got {mode!r}"
        raise ValueError(msg)
    found = store.found()
    where = store.path
    if found.kind in ("nothing", "empty"):
        return "create"
    if found.kind in ("folder", "file"):
        msg = (
            f"{where!r} is {found.detail}; ensembles never deletes what it did not write, "
            "not even with mode='w' (CLI: --overwrite). Choose another path, or move it away"
        )
        raise StoreExistsError(msg)
    if found.kind == "zarr" and mode != "w":
        msg = (
            f"{where!r} is {found.detail}; choose another path, or pass mode='w' (CLI: "
            "--overwrite) to replace it"
        )
        raise StoreExistsError(msg)
    if found.kind == "incomplete" and mode == "w-":
        if store.fence is None:  # a store being created right now is not half-created
            Lease(store).check_free()
        msg = (
            f"a half-created store is at {where!r} (its creation was interrupted before any "
            "member ran); pass mode='resume' (CLI: --resume, or ensembles resume) to create "
            "it again, or mode='w' (CLI: --overwrite) to replace it"
        )
        raise StoreExistsError(msg)
    if found.kind == "ensemble" and mode == "w-":
        msg = (
            f"a store already exists at {where!r}; pass mode='w' (CLI: --overwrite) "
            "to replace it, or mode='resume' to finish or extend it"
        )
        raise StoreExistsError(msg)
    return "resume" if found.kind == "ensemble" and mode == "resume" else "replace"


@contextlib.contextmanager
def writing(store: EnsembleStore, *, force: bool = False) -> Iterator[EnsembleStore]:
    """Hold the store's writer lease; yield the store fenced by it (see ``lease``).

    The lease is taken before anything else is written, creation included. When the run
    ends before it laid out a store, the lease record is removed again, so the path
    looks as it did (a folder ensembles created for the lease is removed too).
    """
    was_there = store.found().kind != "nothing"
    lease = Lease(store, force=force)
    try:
        fence = lease.acquire()
    except StoreError:
        if not was_there:  # remove the folders the attempt made (empty ones only)
            keys = store.keys()
            keys.remove_empty_dir(LEASE_GROUP)
            keys.remove_empty_dir("")
        raise
    laid_out = True
    try:
        yield store.fenced(fence)
    finally:
        with contextlib.suppress(StoreError):
            laid_out = store.found().kind not in ("nothing", "empty")
        if laid_out:
            lease.release()
        else:
            lease.discard(remove_root=not was_there)


def lay_out(
    store: EnsembleStore,
    template: xr.Dataset,
    runner: BlockRunner,
    *,
    action: str,
    grows: bool = False,
    started: bool = True,
    member_coords: bool | np.ndarray = True,
    consolidate: bool = True,
    grown: Sequence[str] | None = None,
) -> None:
    """Create the store's layout for a new run, or grow a resumed one to the template.

    A new store (``action`` ``"create"`` or ``"replace"``) is written with the
    template's attributes and its start time; the outputs' codecs are chosen from the
    values of members the planner already ran. Every spec written is remembered as this
    user's (see :mod:`ensembles.store.trust`). A resumed store records a new start time
    unless ``started=False`` (the later rounds of an adaptive run, which belong to the
    run that started them). ``member_coords=False`` leaves the new members'
    ``member_seed`` to the caller (an adaptive run writes it for the members it runs only);
    a mask over the member grid has a growing store write it for those members only.
    ``consolidate=False`` leaves a grown store without consolidated metadata, for the
    caller to write later; ``grown`` names the dims that grow (see ``EnsembleStore.grow``).
    """
    if action not in ACTIONS:
        msg = f"action must be one of {ACTIONS!r}, got {action!r}"
        raise ValueError(msg)
    if action != "resume":
        samples: dict[str, list[np.ndarray]] = {}
        for arrays in runner.precomputed.values():
            for name, values in arrays.items():
                samples.setdefault(name, []).append(values)
        template = template.assign_attrs({STARTED: now()})
        trust.remember(template.attrs[SPEC_ATTR])  # first: a half-created store is ours too
        store.create(template, runner.members.block, replace=action == "replace", samples=samples)
        return
    if grows:
        attrs = {k: v for k, v in template.attrs.items() if k != PROVENANCE}
        trust.remember(attrs[SPEC_ATTR])
        store.grow(
            template, attrs, member_coords=member_coords, consolidate=consolidate, grown=grown
        )
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
