"""Resume and extend: compare a run with its store, and plan the members still to run.

A store can be resumed (members not ok are run) or extended (a grown design or more seeds:
only the new members run). Both require the same simulation, fixed values, root seed and
outputs, and a design whose old values are a prefix of the new ones along every dim, so
every old member keeps its parameters, its seed and therefore its results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import StoreMismatchError
from ..layout import FAILED, OK, PENDING, SEED_DIM, STATUS
from ..members.blocks import Members
from ..simulations.contract import Output, Schema, Simulation
from ..sweep import Design
from .zarr_store import EnsembleStore

__all__ = ["ResumePlan", "plan_resume", "todo_mask"]

_SELECT = {None: (PENDING, FAILED), "failed": (FAILED,), "pending": (PENDING,)}


@dataclass(frozen=True)
class ResumePlan:
    """What resuming needs: the members (with the store's blocks), the stored schema."""

    members: Members
    schema: Schema
    grows: bool
    stored_spec: dict[str, Any]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def stored_schema(store: EnsembleStore, spec: dict[str, Any]) -> Schema:
    """The output schema recorded in a store, with its output coordinates."""
    outputs: dict[str, Output] = {}
    coords: dict[str, np.ndarray] = {}
    group = store.group()
    for name, out in spec["schema"].items():
        attrs = {
            k: v
            for k, v in dict(group[name].attrs).items()
            if k not in ("coordinates", "_FillValue")
        }
        outputs[name] = Output(tuple(out["dims"]), tuple(out["shape"]), out["dtype"], attrs)
        for dim in out["dims"]:
            if dim in group and dim not in coords:
                coords[dim] = np.asarray(group[dim][...])
    return Schema(outputs, coords)


def plan_resume(
    store: EnsembleStore,
    *,
    spec: Mapping[str, Any],
    design: Design,
    simulation: Simulation,
    fixed: Mapping[str, Any],
    seeds: int | None = None,
) -> ResumePlan:
    """Check that a run continues the one in ``store``; raise what differs if not.

    Parameters
    ----------
    store : EnsembleStore
    spec : mapping
        The run as ``Ensemble.spec()`` gives it (simulation, design, fixed, run).
    design, simulation, fixed
        The run's design, simulation and fixed values.
    seeds : int, optional
        Seeds per point to lay out; default ``spec["run"]["seeds"]`` (an adaptive run,
        whose spec holds its rule there, gives the extent of its current round).

    Raises
    ------
    StoreMismatchError
        Listing every difference (simulation, fixed values, root seed, outputs, design
        dims, changed design values, fewer seeds), before anything is written.
    """
    stored = store.spec()
    seeds = int(spec["run"]["seeds"] if seeds is None else seeds)
    root_seed = int(spec["run"]["root_seed"])
    diffs = _spec_differences(stored, spec)
    block = tuple(int(b) for b in stored["block"])
    members = Members(
        design,
        seeds,
        root_seed,
        block if len(block) == len(design.dims) + 1 else (),
        seed_bits=simulation.seed_bits,
    )
    group = store.group()
    old_shape = tuple(group[STATUS].shape)
    diffs += _design_differences(group, members, design)
    schema = stored_schema(store, stored)
    declared = simulation.declared_schema({**members.params(0), **fixed})
    if declared is not None and declared.to_dict() != schema.to_dict():
        diffs.append(
            f"outputs: the store has {_short(schema.to_dict())}, the simulation declares "
            f"{_short(declared.to_dict())}"
        )
    if diffs:
        listing = "\n  - ".join(diffs)
        msg = (
            f"cannot resume {store.path!r}: this run differs from the one in the store "
            f"(nothing was changed):\n  - {listing}"
        )
        raise StoreMismatchError(msg)
    # a grow interrupted before its last write left the old spec: growing again finishes it
    grows = members.shape != old_shape or any(
        stored.get(k) != spec.get(k) for k in ("design", "run")
    )
    return ResumePlan(members, schema, grows, stored)


def _spec_differences(stored: Mapping[str, Any], mine: Mapping[str, Any]) -> list[str]:
    """Differences of simulation, fixed values, root seed and seeds (fewer is refused)."""
    diffs: list[str] = []
    if stored["simulation"] != mine["simulation"]:
        diffs.append(
            f"simulation: the store has {_short(stored['simulation'])}, this run "
            f"{_short(mine['simulation'])}"
        )
    old_fixed, new_fixed = stored.get("fixed", {}), mine["fixed"]
    for key in sorted(set(old_fixed) | set(new_fixed)):
        old, new = old_fixed.get(key, "<unset>"), new_fixed.get(key, "<unset>")
        if old != new:
            diffs.append(
                f"fixed value {key!r}: the store has {_short(old)}, this run {_short(new)}"
            )
    old_root, new_root = int(stored["run"]["root_seed"]), int(mine["run"]["root_seed"])
    if old_root != new_root:
        diffs.append(f"root_seed: the store has {old_root}, this run {new_root}")
    old_rule, new_rule = _adaptive_rule(stored["run"]), _adaptive_rule(mine["run"])
    if (old_rule is None) != (new_rule is None):
        old, new = (
            "a fixed number of seeds" if rule is None else f"the adaptive rule {_short(rule)}"
            for rule in (old_rule, new_rule)
        )
        diffs.append(
            f"seeds: the store holds {old}, this run {new}; an adaptive store continues "
            "adaptively, and a fixed one with fixed seeds"
        )
        return diffs
    if old_rule is not None:  # an adaptive store only grows: its rounds decide the extent
        old_seeds, new_seeds = stored["run"]["seeds"], mine["run"]["seeds"]
        if not isinstance(old_seeds, Mapping) and old_seeds != new_seeds:
            diffs.append(f"seeds per sample: the store has {old_seeds}, this run {new_seeds}")
        return diffs
    old_seeds, new_seeds = int(stored["run"]["seeds"]), int(mine["run"]["seeds"])
    if new_seeds < old_seeds:
        diffs.append(
            f"seeds: the store has {old_seeds} per point, this run {new_seeds}; an "
            "ensemble can grow, not shrink (open the store and select fewer seeds instead)"
        )
    return diffs


def _adaptive_rule(run: Mapping[str, Any]) -> Any:
    """The adaptive rule of a run table (``seeds`` or ``samples`` as a table), or None."""
    if isinstance(run.get("seeds"), Mapping):
        return dict(run["seeds"])
    return dict(run["samples"]) if isinstance(run.get("samples"), Mapping) else None


def _design_differences(group: Any, members: Members, design: Design) -> list[str]:
    """Differences of design dims and values: old values must be a prefix of the new."""
    old_dims = tuple(group[STATUS].metadata.dimension_names)
    old_shape = tuple(group[STATUS].shape)
    if old_dims != members.dims:
        return [f"design dims: the store has {list(old_dims)}, this run {list(members.dims)}"]
    diffs = [
        f"design dim {dim!r}: the store has {old} values, this run {new}; designs can grow "
        "by appending values, not shrink"
        for dim, old, new in zip(old_dims, old_shape, members.shape, strict=True)
        if new < old and dim != SEED_DIM
    ]
    for name, (_, values) in design.coords().items():
        if name not in group:
            diffs.append(f"design parameter {name!r} is not in the store")
            continue
        stored = group[name]
        old_values, new_values = np.asarray(stored[...]), np.asarray(values)
        n = len(old_values)
        too_long = _too_long(stored.dtype, new_values[n:])
        if too_long is not None:
            diffs.append(
                f"design values of {name!r}: the store keeps them as fixed-width text "
                f"(written by an earlier version of ensembles) and {too_long!r} does not "
                "fit; extend into a new store instead"
            )
        if len(new_values) < n or np.array_equal(old_values, new_values[:n]):
            continue  # a shrinking dim is reported above
        pos = int(np.flatnonzero(old_values != new_values[:n])[0])
        diffs.append(
            f"design values of {name!r} differ at position {pos}: the store has "
            f"{old_values[pos]!r}, this run {new_values[pos]!r}; extend a design by "
            "appending values (same sampling seed, larger n) so old members keep "
            "their parameters"
        )
    return diffs


def _too_long(dtype: Any, values: np.ndarray) -> str | None:
    """A new value that does not fit a stored fixed-width text array, or None."""
    kind = getattr(dtype, "kind", None)
    if kind not in ("U", "S") or values.size == 0:
        return None
    width = dtype.itemsize // (4 if kind == "U" else 1)
    longest = max(values.tolist(), key=lambda v: len(str(v)))
    return str(longest) if len(str(longest)) > width else None


def todo_mask(status: np.ndarray, only: str | None = None) -> np.ndarray:
    """Members to run on resume: not ok (default), only ``"failed"`` or only ``"pending"``."""
    if only not in _SELECT:
        msg = f"only must be None, 'failed' or 'pending', got {only!r}"
        raise ValueError(msg)
    mask = np.isin(status, _SELECT[only])
    return mask & (status != OK)
