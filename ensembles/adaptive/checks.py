"""What an adaptive run is checked against before anything is written.

The arguments of an adaptive :class:`~ensembles.Ensemble` (``seeds=``, ``samples=``,
``until=``), its targets against the simulation's outputs, and a resumed run against its
store: :func:`check_run` is called before the writer lease is taken, and again once held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import DesignError, SpecError, StoreMismatchError
from ..layout import STATUS
from ..store import lifecycle
from ..store.resume import ResumePlan, plan_resume
from .growth import Growth, growth_for
from .record import read_record
from .rules import Adaptive, Precision, as_targets
from .select import check_targets

if TYPE_CHECKING:
    from ..simulations.contract import Schema
    from ..store.zarr_store import EnsembleStore
    from ..sweep import Design
    from .run import AdaptiveJob

__all__ = [
    "check_grown",
    "check_resume",
    "check_run",
    "check_samples",
    "check_schema",
    "check_seeds_rule",
    "growth_of",
    "refuse_until",
    "resume_plan",
    "run_spec",
]


# -- the ensemble's arguments --------------------------------------------------------------


def check_seeds_rule(seeds: Any) -> Adaptive:
    """``seeds=`` that is not a positive integer: an adaptive rule that grows seeds.

    Examples
    --------
    >>> check_seeds_rule(Adaptive(initial=8, max=64)).max
    64
    """
    if not isinstance(seeds, Adaptive):
        msg = (
            "seeds must be a positive integer (runs per design point) or "
            f"Adaptive(initial=16, max=1024) (runs until a precision target), got {seeds!r}"
        )
        raise DesignError(msg)
    if seeds.grow != "seed":
        msg = (
            f"seeds={seeds!r} grows samples: pass it as samples=Adaptive(...) (and "
            "seeds= the seeds per sample)"
        )
        raise DesignError(msg)
    return seeds


def check_samples(samples: Any, seeds: int | Adaptive) -> Adaptive | None:
    """``samples=``: None, or an adaptive rule that grows the sample dim (not both)."""
    if samples is None:
        return None
    if not isinstance(samples, Adaptive):
        msg = f"samples must be Adaptive(initial=..., max=...) or None, got {samples!r}"
        raise DesignError(msg)
    if isinstance(seeds, Adaptive):
        msg = "give seeds=Adaptive(...) or samples=Adaptive(...), not both: one dim grows"
        raise DesignError(msg)
    return Adaptive.from_dict({**samples.to_dict(), "grow": "sample"})


def growth_of(design: Design, rule: Adaptive | None, seeds: int | Adaptive) -> Growth | None:
    """How an adaptive ensemble grows (refused for designs that cannot), or None."""
    if rule is None:
        return None
    return growth_for(design, rule, seeds if isinstance(seeds, int) else 1)


def refuse_until(until: Any, seeds: Any) -> None:
    """Refuse a precision target for an ensemble with a fixed number of seeds."""
    if until is not None:
        msg = (
            f"until={until!r} needs an adaptive ensemble: Ensemble(..., "
            "seeds=Adaptive(initial=16, max=1024)) (or samples=Adaptive(...) to grow a "
            f"sampled design); this one has seeds={seeds!r}"
        )
        raise SpecError(msg)


# -- the targets and the store ---------------------------------------------------------------


def check_schema(targets: Sequence[Precision], schema: Schema) -> None:
    """Refuse targets that do not fit the outputs of ``schema`` (see ``check_targets``)."""
    outputs = {name: out.dims for name, out in schema.outputs.items()}
    check_targets(list(targets), outputs, dict(schema.coords))


def run_spec(job: AdaptiveJob, targets: Sequence[Precision], design: Any) -> dict[str, Any]:
    """The run spec a store keeps: the round's design, the rule and the targets."""
    run = {**job.spec["run"], "until": [t.to_dict() for t in targets]}
    return {**job.spec, "design": design.to_dict(), "run": run}


def resume_plan(
    store: EnsembleStore, job: AdaptiveJob, targets: Sequence[Precision], extent: int
) -> ResumePlan:
    """The run checked against ``store`` at ``extent`` along the grown dim, and its
    targets against the stored outputs; raises what differs, writing nothing."""
    design, seeds = job.growth.sized(extent)
    plan = plan_resume(
        store,
        spec=run_spec(job, targets, design),
        design=design,
        simulation=job.simulation,
        fixed=job.fixed,
        seeds=seeds,
    )
    check_schema(targets, plan.schema)
    return plan


def check_grown(store: EnsembleStore, record: Mapping[str, Any] | None, growth: Growth) -> None:
    """Refuse to resume an adaptive run that grew another dim than ``growth`` grows."""
    if record and record.get("rounds") and record.get("grow") != growth.grown:
        msg = (
            f"cannot resume {store.path!r}: its adaptive run grows {record.get('grow')!r}, "
            f"this run grows {growth.grown!r} (nothing was changed)"
        )
        raise StoreMismatchError(msg)


def check_resume(store: EnsembleStore, job: AdaptiveJob, targets: Sequence[Precision]) -> None:
    """Refuse to resume ``store`` with a run that differs from its own (see
    :func:`~ensembles.store.resume.plan_resume`) or targets its outputs cannot meet.

    Nothing is written; the first round checks the run again at its own extent.
    """
    growth = job.growth
    shape = tuple(store.group()[STATUS].shape)
    axis = growth.member_dims.index(growth.grown)
    extent = int(shape[axis]) if len(shape) == len(growth.member_dims) else 1  # dims differ
    resume_plan(store, job, targets, extent)
    check_grown(store, read_record(store), growth)


def check_run(
    store: EnsembleStore, mode: str, until: Any, job: AdaptiveJob, declared: Schema | None
) -> tuple[str, tuple[Precision, ...]]:
    """What ``mode`` does at the store (``lifecycle.check_target``) and the run's targets.

    ``until`` defaults to the stored targets when resuming. The targets are checked
    against the ``declared`` outputs (if any; otherwise after the first member runs) and
    a resumed run against its store. Nothing is written.
    """
    action = lifecycle.check_target(store, mode)
    if until is None and action == "resume":
        until = store.spec()["run"].get("until")
    if until is None:
        msg = (
            "an adaptive ensemble runs until a precision target: pass until=, e.g. "
            "until=Precision('M', stat='mean', halfwidth=0.01)"
        )
        raise SpecError(msg)
    targets = tuple(as_targets(until))
    if declared is not None:
        check_schema(targets, declared)
    if action == "resume":
        check_resume(store, job, targets)
    return action, targets
