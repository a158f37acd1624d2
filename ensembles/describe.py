"""Describe a saved ensemble (its run spec, dims, outputs, member status counts, adaptive
record) and write that as the text of ``ensembles info``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .layout import FAILED, OK, PENDING, SKIPPED
from .store.zarr_store import EnsembleStore

__all__ = ["describe", "format_failed_members", "format_info", "plain"]


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


# -- the text of `ensembles info` ----------------------------------------------------


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON writes exactly."""
    return value.item() if hasattr(value, "item") and callable(value.item) else value


def format_info(info: dict[str, Any], failures: str = "") -> str:
    """The text of ``ensembles info``: what ran, its shape and how its members fared."""
    lines = [f"ensemble store {info['path']}"]
    lines.append(f"  simulation: {_simulation_text(info['simulation'])}")
    lines.append(f"  design:     {_design_text(info['design'])}")
    if info.get("fixed"):
        lines.append(f"  fixed:      {_assignments(info['fixed'])}")
    seeds = info["seeds"]
    per_point = "adaptive (below)" if isinstance(seeds, dict) else f"{seeds} per point"
    lines.append(f"  seeds:      {per_point}, root_seed {info['root_seed']}")
    dims = ", ".join(f"{k}: {v}" for k, v in info["dims"].items())
    lines.append(f"  dims:       {dims}")
    lines.append(f"  outputs:    {', '.join(info['outputs'])}")
    c = info["members"]
    skipped = f", {c['skipped']} skipped" if "skipped" in c else ""
    lines.append(
        f"  members:    {c['ok']} ok, {c['failed']} failed, {c['pending']} pending{skipped} "
        f"of {c['total']}"
    )
    if info.get("adaptive"):
        lines.extend(_adaptive_lines(info["adaptive"]))
    if failures:
        lines.append("  failed, by error (all of them: --failed):")
        lines.extend("  " + line for line in failures.splitlines())
    if info.get("created"):
        lines.append(f"  created:    {info['created']}")
    if info.get("finished"):
        lines.append(f"  finished:   {info['finished']}")
    return "\n".join(lines)


def _adaptive_lines(adaptive: dict[str, Any]) -> list[str]:
    from .adaptive.record import progress_text
    from .adaptive.rules import Adaptive, as_targets

    rule = Adaptive.from_dict(adaptive["rule"])
    targets = "; ".join(t.describe() for t in as_targets(adaptive["until"]))
    return [
        f"  adaptive:   {adaptive['state']}, {progress_text(adaptive)}",
        f"  target:     {targets}",
        f"  rule:       {rule.initial} to {rule.max} {rule.grow}s per point",
    ]


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), default=str)


def _assignments(values: dict[str, Any]) -> str:
    """``L=32, n_sweeps=2000`` for a table of values."""
    return ", ".join(f"{k}={_compact(v)}" for k, v in values.items())


def _simulation_text(simulation: Any) -> str:
    """``ensembles.models.ising:simulate``, or a command line and its settings."""
    if not isinstance(simulation, dict):
        return str(simulation)
    import shlex

    rest = dict(simulation)
    for kind in ("function", "command", "model", "mesa_model"):
        if kind in rest:
            main = rest.pop(kind)
            text = shlex.join(map(str, main)) if kind == "command" else _compact(main)
            head = f"{kind} {text}"
            break
    else:
        head = ""
    extra = _assignments(rest)
    return f"{head}\n              ({extra})" if head and extra else head or extra


def _design_text(design: Any) -> str:
    """The design as Python would write it: ``Grid(T=[1.5, 2.0, 2.5])``."""
    from .errors import EnsembleError
    from .sweep import design_from_dict

    try:
        return repr(design_from_dict(design))
    except (EnsembleError, TypeError, ValueError):  # a form this version does not know
        return _compact(design)


def format_failed_members(table: Any) -> str:
    """Every failed member, one per line: parameters, seed, member_seed, error, message."""
    if not len(table):
        return "no failed members"
    columns = [str(c) for c in table.columns if c != "attempts"]
    rows = [columns]
    for record in table.to_dict("records"):
        row = []
        for name in columns:
            value = plain(record[name])
            if name == "message":
                lines = str(value).strip().splitlines()
                value = lines[0] if lines else ""
            row.append(repr(value) if isinstance(value, float) else str(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
