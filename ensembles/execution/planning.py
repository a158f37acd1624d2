"""Planning a run: probe the first members, fix the output schema and the batch size.

The probe runs on the client: members in order until one succeeds (its result gives the
schema, unless the simulation declares it), and, when timing, a few more to measure the
cost of a member without the first call's warm-up. Every probed result is reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MemberError, RunnerError, SimulationError
from ..layout import BOOKKEEPING
from ..members.blocks import Members
from ..simulations.contract import Schema, Simulation
from .deadline import deadline
from .pool_task import MemberTimeout, WorkerDied
from .pool_worker import end_member, report_member
from .worker import BlockRunner

__all__ = [
    "Job",
    "Learned",
    "Probe",
    "batch_size_for",
    "plan_run",
    "probe",
    "probe_members",
    "run_token",
]


@dataclass(frozen=True)
class Job:
    """What a run executes, as plain values: the planner's input.

    Attributes
    ----------
    simulation : Simulation
    members : Members
        Design points x seeds, cut into provisional blocks (the planner may re-cut them).
    fixed : mapping
        Values every member receives.
    identity : str
        Canonical JSON of the run (``Ensemble.spec()``); names the run's tasks.
    setup : (str, object), optional
        Shared state and the keyword members receive it as.
    """

    simulation: Simulation
    members: Members
    fixed: Mapping[str, Any]
    identity: str
    setup: tuple[str, Any] | None = None

    def runner(self, members: Members, schema: Schema, **options: Any) -> BlockRunner:
        """A :class:`BlockRunner` for ``members`` and ``schema`` (its token set)."""
        return BlockRunner(
            self.simulation,
            members,
            self.fixed,
            schema,
            setup=self.setup,
            token=run_token(self.identity, members, schema),
            **options,
        )


@dataclass
class Probe:
    """What the first members told: the schema, their results, their errors, their times."""

    schema: Schema | None = None
    precomputed: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    failures: dict[int, BaseException] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    next: int = 0  # the member to run next; -1 once probing is done

    @property
    def cost(self) -> float:
        """Seconds per member, without the first call's warm-up where there is more."""
        return min(self.times[1:]) if len(self.times) > 1 else self.times[0]


def probe_members(
    job: Job, on_error: str, timing: bool, member_timeout: float | None, probe: Probe
) -> Probe:
    """Run members from ``probe.next`` on, in this process, until the probe is done.

    Members run in order until one succeeds (its result gives the schema). With
    ``timing``, a few more members run to measure the cost without the first call's
    warm-up (imports, JIT compilation): cheap members until about 10 ms have passed,
    a slow member once more. Every result is kept and reused; nothing runs twice.
    """
    members, sim = job.members, job.simulation
    runner = BlockRunner(sim, members, job.fixed, Schema({}), setup=job.setup)
    limit = min(len(members), 20)
    for member in range(probe.next, len(members)):
        probe.next = member + 1
        params, seed = runner.member_params(member), members.seed(member)  # not timed
        report_member(member)
        start = time.perf_counter()
        try:
            with deadline(member_timeout):
                raw = runner.call(member, params, seed)
            elapsed = time.perf_counter() - start
            schema = probe.schema or sim.declared_schema(params)
            schema = schema or sim.schema_from_result(raw, params)
            arrays, _, _ = sim.normalize(raw, params)
            probe.precomputed[member] = schema.check(arrays, members.describe(member))
            probe.schema = schema
        except Exception as exc:
            if on_error == "raise" or isinstance(exc, SimulationError):
                raise runner.member_error(member, exc) from exc
            probe.failures[member] = exc
            if probe.schema is None and member + 1 >= limit:
                break
            continue
        finally:
            end_member()
        probe.times.append(elapsed)
        times = probe.times
        if not timing or len(times) >= 20 or elapsed > 2.0:
            break
        if len(times) >= 2 and (elapsed > 1e-3 or sum(times[1:]) > 0.01):
            break
    probe.next = -1
    return probe


def probe(
    job: Job,
    on_error: str,
    timing: bool,
    member_timeout: float | None = None,
    remote: Callable[..., Probe] | None = None,
) -> Probe:
    """Probe the first members, here or (``remote``) on a worker process.

    ``remote(probe_members, *args)`` runs the probe where a member that kills its
    process or overruns ``member_timeout`` cannot take the client down or hang it:
    such a member is recorded as failed and probing goes on with the next.
    """
    state = Probe()
    while state.next >= 0:
        if remote is None:
            state = probe_members(job, on_error, timing, member_timeout, state)
            break
        try:
            state = remote(probe_members, job, on_error, timing, member_timeout, state)
        except (WorkerDied, MemberTimeout) as exc:
            if exc.member is None:
                raise
            failure = RunnerError(
                f"timed out after {member_timeout:g} s"
                if isinstance(exc, MemberTimeout)
                else f"the member killed the worker process running it ({exc})"
            )
            if on_error == "raise":
                raise BlockRunner(job.simulation, job.members, job.fixed, Schema({})).member_error(
                    exc.member, failure
                ) from None
            state.failures[exc.member] = failure
            state.next = exc.member + 1
            if state.next >= min(len(job.members), 20) and state.schema is None:
                break
    if state.schema is None:
        first = next(iter(state.failures.values()))
        msg = (
            f"the first {len(state.failures)} members all failed, so the outputs could not "
            f"be learned; the first error was {type(first).__name__}: {first}"
        )
        members = job.members
        raise MemberError(msg, params={**members.params(0), **job.fixed}, seed=members.seed(0))
    return state


@dataclass(frozen=True)
class Learned:
    """What probing a job told, kept for later runs of the same job (see :func:`plan_run`).

    Attributes
    ----------
    identity : str
        The job's :attr:`Job.identity`.
    simulation, setup : object
        The job's simulation and shared state: the very objects (compared by identity).
    schema : Schema
    cost : float
        Seconds per member, as measured.
    """

    identity: str
    simulation: Simulation
    setup: Any
    schema: Schema
    cost: float

    def fits(self, job: Job) -> bool:
        """True when ``job`` is the job this was learned from."""
        return (
            self.identity == job.identity
            and self.simulation is job.simulation
            and self.setup is job.setup
        )


class RunMemory:
    """What the runs of one ensemble work out once and share.

    Every member's values and seeds (a design is frozen: the same design object has the
    same points), the design's part of the run identity (a large design takes
    milliseconds to encode), and what a probe learned (:class:`Learned`, for
    :func:`plan_run`'s ``memo``).
    """

    def __init__(self) -> None:
        self._members: Members | None = None
        self._design_json: tuple[Any, str] | None = None
        self.learned: list[Learned] = []

    def members(
        self, design: Any, n_seeds: int, root_seed: int, block: tuple[int, ...], seed_bits: int
    ) -> Members:
        """The members of ``design`` x ``n_seeds`` in blocks of ``block``; seeds known once."""
        known = self._members
        if (
            known is not None
            and known.design is design
            and (known.n_seeds, known.root_seed, known.seed_bits)
            == (n_seeds, root_seed, seed_bits)
        ):
            return known.with_block(block)
        self._members = Members(design, n_seeds, root_seed, block, seed_bits=seed_bits)
        return self._members

    def identity(self, spec: Mapping[str, Any], design: Any) -> str:
        """Canonical JSON of ``spec`` (sorted keys), whose ``"design"`` entry is ``design``'s.

        Examples
        --------
        >>> from ensembles import Grid
        >>> design = Grid(T=[1.0])
        >>> RunMemory().identity({"run": {"seeds": 2}, "design": design.to_dict()}, design)
        '{"design": {"grid": {"T": [1.0]}}, "run": {"seeds": 2}}'
        """
        spec = dict(spec)
        entry = spec.pop("design")
        if self._design_json is None or self._design_json[0] is not design:
            self._design_json = (design, json.dumps(entry, sort_keys=True, default=repr))
        rest = json.dumps(spec, sort_keys=True, default=repr)[1:-1]
        return "{" + ", ".join(p for p in (f'"design": {self._design_json[1]}', rest) if p) + "}"


def plan_run(
    job: Job,
    *,
    running: bool,
    batch_size: int | None,
    n_workers: int,
    on_error: str,
    retries: int = 0,
    member_timeout: float | None = None,
    remote: Callable[..., Probe] | None = None,
    memo: list[Learned] | None = None,
) -> BlockRunner:
    """The runner of a new run: its schema (declared or probed) and its blocks.

    Parameters
    ----------
    job : Job
    running : bool
        The run starts now (probe members to time them), or a lazy graph is built.
    batch_size : int, optional
        Members per block, as the user gave it; default: from the measured cost.
    n_workers : int
        Threads that will run blocks (blocks are cut so each gets several).
    on_error, retries, member_timeout
        As in :meth:`ensembles.Ensemble.compute` (``timeout``).
    remote : callable, optional
        Runs the probe on a worker process (see :func:`probe`).
    memo : list, optional
        What an earlier run of the same job learned (one :class:`Learned` at most): a timed
        run reuses it instead of probing; one that probes leaves what it learned here.
    """
    members = job.members
    declared = job.simulation.declared_schema({**members.params(0), **job.fixed})
    timing = running and batch_size is None
    known = next((k for k in memo or () if timing and k.fits(job)), None)
    found = Probe(schema=declared)
    if known is not None:
        found.schema, found.times = known.schema, [known.cost]
    elif declared is None or timing:
        found = probe(job, on_error, timing, member_timeout, remote=remote)
        if memo is not None and timing and found.schema is not None:
            memo[:] = [Learned(job.identity, job.simulation, job.setup, found.schema, found.cost)]
    schema = found.schema
    assert schema is not None  # declared, or probing raised
    _check_output_names(schema, members)
    if batch_size is None:
        member_bytes = sum(math.prod(o.shape) * o.dtype.itemsize for o in schema.outputs.values())
        # a lazy graph of a declared simulation has no timing: assume a millisecond
        cost = found.cost if running and found.times else None
        size = batch_size_for(cost or 1e-3, len(members), n_workers, member_bytes)
        members = members.with_batch_size(size)
    return job.runner(
        members,
        schema,
        on_error=on_error,
        retries=retries,
        precomputed=found.precomputed,
        precomputed_errors=found.failures,
        member_timeout=member_timeout,
    )


def run_token(identity: str, members: Members, schema: Schema) -> str:
    """A short deterministic name of a run: its spec, its blocks and its outputs."""
    text = "\n".join([identity, repr(members.block), repr(sorted(schema.to_dict().items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _check_output_names(schema: Schema, members: Members) -> None:
    taken = {*members.design.params, *members.dims, *BOOKKEEPING}
    for name, out in schema.outputs.items():
        if name in taken:
            msg = (
                f"the simulation returns an output named {name!r}, which is already a "
                "parameter, dimension or bookkeeping variable of the ensemble; rename the output"
            )
            raise SimulationError(msg)
        clash = sorted(set(out.dims) & set(members.dims))
        if clash:
            msg = (
                f"output {name!r} has dimension(s) {clash!r}, which the ensemble uses for its "
                "members; rename the output's dimension"
            )
            raise SimulationError(msg)


def batch_size_for(
    member_seconds: float, n_members: int, n_workers: int, member_bytes: int
) -> int:
    """Members per task: about 0.1 s of work, at least 4 tasks per worker, chunks <= 64 MiB.

    Examples
    --------
    >>> batch_size_for(1e-6, 100_000, 2, 8)   # tiny members: thousands per task
    10000
    >>> batch_size_for(0.5, 200, 2, 8000)     # slow members: one per task
    1
    """
    target_seconds = 0.1
    by_time = target_seconds / max(member_seconds, 1e-7)
    by_spread = math.ceil(n_members / max(4 * n_workers, 1))
    by_bytes = (64 * 2**20) / max(member_bytes, 1)
    size = int(min(by_time, by_spread, by_bytes, 10_000))
    return max(size, 1)
