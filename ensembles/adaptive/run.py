"""The rounds of an adaptive run into a store: decide, grow, run the round, read, repeat.

Each round reads what the targets judge from the store, calls
:func:`~ensembles.adaptive.decide`, records the decision in the store, grows the store's
seed (or sample) dim in place when the round needs more room, and runs exactly the
members the decision asks for. Decisions depend only on the stored members, so a driver
killed at any moment resumes where it stopped: it finishes the recorded round in progress,
then decides again, and ends with the same members and results as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ..execution.assemble import assemble_dataset, placeholders, warmed
from ..execution.dispatch import RunReport, run_blocks
from ..execution.planning import Job, plan_run
from ..layout import FAILED, PENDING, SKIPPED, STATUS
from ..members.blocks import Members, block_shape_for
from ..simulations.contract import Schema, Simulation
from ..store import lifecycle
from ..store.chunks import chunk_regions
from ..store.provenance import now, run_attrs
from .checks import check_grown, check_schema, resume_plan, run_spec
from .decide import Decision, decide
from .growth import Growth
from .masks import todo_mask
from .read import JudgedReader
from .record import (
    mark_skipped,
    progress_text,
    read_record,
    record_summary,
    write_record,
)
from .rules import Precision

if TYPE_CHECKING:
    from ..execution.backends import Backend
    from ..execution.worker import BlockRunner
    from ..store.zarr_store import EnsembleStore

__all__ = ["AdaptiveJob", "RunOptions", "run_adaptive"]


@dataclass(frozen=True)
class AdaptiveJob:
    """An adaptive run as plain values (``Ensemble.to_zarr`` builds it).

    Attributes
    ----------
    simulation : Simulation
    growth : Growth
        The rule, the design and what grows.
    root_seed : int
    fixed : mapping
    spec : dict
        ``Ensemble.spec()``: its run table holds the rule.
    setup : (str, object), optional
        Shared state and its keyword.
    batch_size : int, optional
        Members per task; default from the measured cost of the first members.
    """

    simulation: Simulation
    growth: Growth
    root_seed: int
    fixed: Mapping[str, Any]
    spec: Mapping[str, Any]
    setup: tuple[str, Any] | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class RunOptions:
    """How members run (as in ``Ensemble.to_zarr``)."""

    on_error: str = "record"
    retries: int = 0
    timeout: float | None = None
    progress: bool = True
    force: bool = False
    only: str | None = None


@dataclass
class _StoreRounds:
    """Lays out or grows the store for a round, and runs the round's members."""

    store: EnsembleStore
    job: AdaptiveJob
    targets: tuple[Precision, ...]
    backend: Backend
    options: RunOptions
    action: str = "create"  # what the run does to the store (``lifecycle.check_target``)
    schema: Schema | None = None
    block: tuple[int, ...] = ()
    reports: list[RunReport] = field(default_factory=list)
    shape: tuple[int, ...] = ()  # the store's member grid, once known
    template: Any = None  # the Dataset layout of the store's current member grid
    marked: np.ndarray | None = None  # members this driver marked skipped (member grid)
    unconsolidated: bool = False  # grown without its consolidated metadata (written later)
    seeds_due: np.ndarray | None = None  # members whose member_seed is written later

    def __post_init__(self) -> None:
        self.reader = JudgedReader(self.store, self.targets, self.job.growth)

    @property
    def resuming(self) -> bool:
        """True when the run continues the store's (else it lays out a new store)."""
        return self.action == "resume"

    def decide(self, n: np.ndarray) -> Decision:
        """The next round's decision from the members in the store (the pilot before any)."""
        growth = self.job.growth
        if n.any():
            values = self.reader.values(n)
        else:
            values = [np.zeros((*n.shape, 0, 1)) for _ in self.targets]
        return decide(values, n, self.targets, growth.rule, block=growth.block, prejudged=True)

    def extent(self) -> int:
        """The store's length along the grown dim (0 before this run laid it out)."""
        if self.schema is None and not self.resuming:
            return 0
        if not self.shape:
            self.shape = tuple(self.store.group()[STATUS].shape)
        return int(self.shape[self.job.growth.member_dims.index(self.job.growth.grown)])

    def _new_runner(self, design: Any, seeds: int, identity: str) -> BlockRunner:
        """The runner of a new store: the planner probes the first members for the schema."""
        job, options = self.job, self.options
        block = block_shape_for((*design.shape, seeds), job.batch_size or 1000)
        members = Members(design, seeds, job.root_seed, block, seed_bits=job.simulation.seed_bits)
        runner = plan_run(
            Job(job.simulation, members, job.fixed, identity, job.setup),
            running=True,
            batch_size=job.batch_size,
            n_workers=self.backend.workers,
            on_error=options.on_error,
            retries=options.retries,
            member_timeout=options.timeout,
            remote=self.backend.remote(options.timeout),
        )
        check_schema(self.targets, runner.schema)
        return runner

    def _next_runner(
        self, extent: int, design: Any, seeds: int, identity: str
    ) -> tuple[BlockRunner, bool]:
        """The runner of a store laid out before (checked against it by the first round),
        and whether the store grows for it."""
        job, options = self.job, self.options
        if self.schema is None:  # validates the run against the store before any write
            plan = resume_plan(self.store, job, self.targets, extent)
            members, self.schema, grows = plan.members, plan.schema, plan.grows
        else:
            members = Members(
                design, seeds, job.root_seed, self.block, seed_bits=job.simulation.seed_bits
            )
            grows = members.shape != self.shape
        runner = Job(job.simulation, members, job.fixed, identity, job.setup).runner(
            members,
            self.schema,
            on_error=options.on_error,
            retries=options.retries,
            member_timeout=options.timeout,
        )
        return runner, grows

    def prepare(
        self, extent: int, todo: np.ndarray | None = None, later: bool = False
    ) -> BlockRunner:
        """The runner of a store whose grown dim has ``extent``; creates or grows it.

        With ``todo`` (the members the round runs), their ``member_seed`` is written too
        (a new store has every member's already); with ``later``, that write and a grown
        store's consolidated metadata are left to :meth:`background`, which does them
        while the round's members run.
        """
        design, seeds = self.job.growth.sized(extent)
        spec = run_spec(self.job, self.targets, design)
        identity = json.dumps(spec, sort_keys=True, default=repr)
        first = self.schema is None
        new = first and not self.resuming
        if new:  # a new store (mode="w" replaces an old one)
            runner = self._new_runner(design, seeds, identity)
            action, grows = self.action, False
        else:
            runner, grows = self._next_runner(extent, design, seeds, identity)
            action = "resume"
        attrs = run_attrs(spec, runner, self.job.root_seed)
        template = assemble_dataset(runner, design.coords(), *placeholders(runner), attrs)
        lifecycle.lay_out(
            self.store,
            template,
            runner,
            action=action,
            grows=grows,
            started=first,
            # only members that run get their member_seed
            member_coords=False if todo is None or later else todo,
            consolidate=not later,
            grown=(self.job.growth.grown,),
        )
        self.unconsolidated = grows and later
        self.schema, self.block = runner.schema, tuple(runner.members.block)
        self.template = template
        self.shape = tuple(runner.members.shape)
        self.seeds_due = None
        if todo is not None and not new and (later or not grows):
            if later:
                self.seeds_due = todo
            else:
                self.member_seeds(todo)
        self.reader.expect(self.shape)  # the blocks the driver writes are judged as they go
        return runner

    def judging(self) -> float:
        """Seconds spent judging the blocks written since the last call (decision work)."""
        return self.reader.judging()

    def member_seeds(self, todo: np.ndarray) -> None:
        """Write ``member_seed`` where the members of ``todo`` are: only members that run
        get theirs written (a new store has them all; members never run read 0)."""
        self.store.write_member_coords(self.template, todo)

    def marked_mask(self) -> np.ndarray:
        """Members marked skipped so far, over the store's current member grid."""
        if self.marked is None:
            return np.zeros(self.shape, dtype=bool)
        pad = [(0, s - m) for m, s in zip(self.marked.shape, self.shape, strict=True)]
        return np.pad(self.marked, pad)

    def skippable(self, decision: Decision, todo: np.ndarray) -> np.ndarray:
        """Members known to be skipped for good that the round's writes do not touch.

        A point the decision gives no members (``add == 0``) never gets more: its members
        do not change, so every later decision is the same for it. Its members beyond
        ``n`` are skipped; those in chunks the round does not write (no member of
        ``todo``) and not marked before are returned (a mask over the member grid).
        """
        growth = self.job.growth
        extent = self.shape[growth.member_dims.index(growth.grown)]
        stopped = np.asarray(decision.add) == 0
        beyond = np.arange(extent) >= np.asarray(decision.n)[..., None]
        mask = growth.member_mask(beyond & stopped[..., None]) & ~self.marked_mask()
        for region in chunk_regions(todo, self.block, self.shape).values():
            mask[region] = False  # the round writes these chunks: marked at the end
        return mask

    @contextlib.contextmanager
    def background(self, decision: Decision, todo: np.ndarray) -> Iterator[None]:
        """Bookkeeping in a thread while the round's members run: off the critical path.

        The consolidated metadata of a store grown without it and the ``member_seed`` of
        the round's members (both left by :meth:`prepare`), then the members
        :meth:`skippable` finds are marked skipped, so that little is left to mark when
        the run ends. None of it touches what the round writes (outputs and bookkeeping
        of its members). The thread is joined (and its error raised) when the round is
        over; a driver killed before writes every recorded member's seed on resume.
        """
        mask = self.skippable(decision, todo)
        calls = [self.store.consolidate] if self.unconsolidated else []
        if self.seeds_due is not None:
            calls.append(partial(self.member_seeds, self.seeds_due))
        if mask.any():
            calls.append(lambda: self.store.set_status(mask, SKIPPED))
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for call in calls:
                    call()
            except BaseException as exc:  # raised in the driver once the round is over
                errors.append(exc)

        thread = threading.Thread(target=work, name="ensembles-round-bookkeeping", daemon=True)
        if calls:
            thread.start()
        try:
            yield
        finally:
            if thread.is_alive():
                thread.join()
        if errors:
            raise errors[0]
        self.unconsolidated, self.seeds_due = False, None
        self.marked = self.marked_mask() | mask

    def run(self, runner: BlockRunner, todo: np.ndarray, label: str, note: str) -> None:
        """Run the members of ``todo`` (a mask over the store's member grid)."""
        self.reports.append(
            run_blocks(
                self.backend,
                runner,
                todo=todo,
                store=self.store,
                progress=self.options.progress,
                timeout=self.options.timeout,
                label=label,
                note=note,
                written=self.reader.take,
            )
        )


def _fit(values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Recorded per-point counts padded with 0 to ``shape`` (a grid that gained values)."""
    arr = np.asarray(values, dtype=np.int64)
    return np.pad(arr, [(0, max(s - a, 0)) for a, s in zip(arr.shape, shape, strict=True)])


def _round_entry(number: int, decision: Decision, seconds: float, rule: Any) -> dict[str, Any]:
    return {
        "round": number,
        "time": now(),
        "rule": rule.to_dict(),
        "seconds": {"decide": round(seconds, 6)},
        **decision.to_dict(),
    }


def _note(number: int, decision: Decision, record: Mapping[str, Any]) -> str:
    add = decision.add
    points = int(np.count_nonzero(add))
    more = f"{int(add.sum()) * int(record['block']):,} members at {points} of {add.size} points"
    if not decision.n.any():
        return f"round {number}: the pilot, {more}"
    summary = record_summary(record)
    return f"round {number}: {progress_text(summary, rounds=False)}; running {more}"


def _start(
    store: EnsembleStore, rounds: _StoreRounds, record: dict[str, Any] | None, growth: Growth
) -> tuple[np.ndarray, int]:
    """Members per point so far and rounds done; a resumed run first finishes its round."""
    if record is None or not record.get("rounds"):
        return np.zeros(growth.point_shape, dtype=np.int64), 0
    check_grown(store, record, growth)
    last = record["rounds"][-1]
    totals = np.asarray(last["n"], dtype=np.int64) + np.asarray(last["add"], dtype=np.int64)
    extent = max(rounds.extent(), int(totals.max(initial=0)))
    runner = rounds.prepare(extent)
    totals = _fit(totals, growth.point_shape)
    status = rounds.store.status()
    wanted = growth.member_mask(np.arange(extent) < totals[..., None])
    redo = (PENDING, FAILED) if rounds.options.only == "failed" else (PENDING,)
    todo = wanted & np.isin(status, redo)
    number = len(record["rounds"])
    rounds.member_seeds(wanted)  # every recorded member's: a killed round may have left some
    if todo.any():
        note = f"resuming round {number}: {int(todo.sum()):,} of its members to run"
        rounds.run(runner, todo, f"round {number}", note)
    return totals, number


def run_adaptive(
    store: EnsembleStore,
    job: AdaptiveJob,
    targets: Sequence[Precision],
    backend: Backend,
    options: RunOptions,
    *,
    action: str,
) -> Decision:
    """Run rounds into ``store`` until every point meets ``targets`` or reaches ``max``.

    The caller holds the store's writer lease for the whole run (``store`` is fenced by
    it, see ``store.lifecycle.writing``) and keeps ``backend`` for every round; ``action``
    is what the run does to the store (``"create"``, ``"replace"`` or ``"resume"``, as
    ``store.lifecycle.check_target`` says).

    Returns
    -------
    Decision
        The final decision (``done``): per point its members, intervals, ``converged``
        and ``at_max``; the store's record holds every round's.
    """
    growth, rule, targets = job.growth, job.growth.rule, tuple(targets)
    _load_statistics()
    rounds = _StoreRounds(store, job, targets, backend, options, action)
    record = read_record(store) if rounds.resuming else None
    backend.prepare(job.simulation)  # once: the workers stay loaded for every round
    n, number = _start(store, rounds, record, growth)
    record = {
        **(record or {"rounds": []}),
        "format": 1,
        "grow": growth.grown,
        "point_dims": list(growth.point_dims),
        "block": growth.block,
        "rule": rule.to_dict(),
        "until": [t.to_dict() for t in targets],
        "state": "running",
    }
    while True:
        start = time.perf_counter()
        decision = rounds.decide(n)
        # the decision's reading includes judging the round's blocks as they were written
        seconds = time.perf_counter() - start + rounds.judging()
        if decision.done:
            break
        number += 1
        _round(rounds, record, number, decision, seconds)
        n = n + decision.add
    _finish(rounds, record, decision, seconds, growth, n, rule)
    _report(rounds, decision, record, options.progress, store.path)
    return decision


def _load_statistics() -> None:
    """Import what the intervals need (scipy.special) in the background, now.

    Its import (a tenth of a second or more) otherwise falls on the first decision that
    judges members, between the pilot and round 2; here it runs while the store is laid
    out and the pilot's members run (the pilot's decision needs no interval), after the
    run's xarray warm-up (one background import at a time). A failed import is left to
    the decision, which raises it.
    """
    import importlib
    import threading

    def load() -> None:
        warmed()
        with contextlib.suppress(Exception):  # the decision imports it again and raises
            importlib.import_module("scipy.special")

    threading.Thread(target=load, name="ensembles-load-statistics", daemon=True).start()


def _round(
    rounds: _StoreRounds,
    record: dict[str, Any],
    number: int,
    decision: Decision,
    seconds: float,
) -> None:
    """Lay out the round, record it, run the round's members.

    The record is written before any member of the round runs: a driver killed from
    then on resumes this round (:func:`_start`). Members of points that stopped become
    skipped while the round runs (:meth:`_StoreRounds.background`), those sharing a chunk
    with the round's members when the run ends; until then they read as pending (the
    record says they will not run).
    """
    store, growth, n, add = rounds.store, rounds.job.growth, decision.n, decision.add
    began = time.perf_counter()
    extent = max(rounds.extent(), int((n + add).max()))
    todo = growth.member_mask(todo_mask(n, add, extent))  # never run yet: pending or skipped
    runner = rounds.prepare(extent, todo, later=True)  # some bookkeeping while members run
    entry = _round_entry(number, decision, seconds, growth.rule)
    record["rounds"].append(entry)
    write_record(store, record)
    ran = time.perf_counter()
    entry["seconds"]["prepare"] = round(ran - began, 6)
    with rounds.background(decision, todo):  # bookkeeping while the members run
        rounds.run(runner, todo, f"round {number}", _note(number, decision, record))
    entry["seconds"]["run"] = round(time.perf_counter() - ran, 6)


def _finish(
    rounds: _StoreRounds,
    record: dict[str, Any],
    decision: Decision,
    seconds: float,
    growth: Growth,
    n: np.ndarray,
    rule: Any,
) -> None:
    """Mark the members not run as skipped, record the final decision, finish the store.

    Members the rounds marked already (:meth:`_StoreRounds.marking`) are not written again.
    """
    store, began = rounds.store, time.perf_counter()
    mark_skipped(store, growth, n, done=rounds.marked, shape=rounds.shape or None)
    record["final"] = _round_entry(len(record["rounds"]), decision, seconds, rule)
    record["state"] = "done"
    record["report"] = decision.report()
    record["final"]["seconds"]["finish"] = round(time.perf_counter() - began, 6)
    write_record(store, record)
    lifecycle.finish(store)


def _flat(member: int, shape: tuple[int, ...], grown: tuple[int, ...]) -> int:
    """The flat index in the grid ``grown`` of member ``member`` of the grid ``shape``."""
    return int(np.ravel_multi_index(np.unravel_index(member, shape), grown))


def _report(
    rounds: _StoreRounds,
    decision: Decision,
    record: Mapping[str, Any],
    progress: bool,
    where: str,
) -> None:
    """Tell on stderr how the run ended: rounds, points converged, failures."""
    grids = [(r, r.members) for r in rounds.reports if r.members is not None]
    if any(report.errors for report, _ in grids):
        members = grids[-1][1]  # the largest grid: earlier rounds' grids are its prefixes
        errors = [
            (_flat(member, grid.shape, members.shape), etype, message)
            for report, grid in grids
            for member, etype, message in report.errors
        ]
        total = sum(report.total for report, _ in grids)
        RunReport(total, errors, members=members).print_failures(progress, where=where)
    if not progress:
        return
    members = int(decision.n.sum()) * int(record["block"])
    print(
        f"adaptive run: {progress_text(record_summary(record))}; {members:,} members",
        file=sys.stderr,
        flush=True,
    )
    if decision.at_max.any():
        print(decision.report(), file=sys.stderr, flush=True)
