"""Planning a run: probe the first members, fix the output schema and the batch size.

The probe runs on the client: members in order until one succeeds (its result gives the
schema, unless the simulation declares it), and, when timing, a few more to measure the
cost of a member without the first call's warm-up. Every probed result is reused.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MemberError, SimulationError
from ..layout import BOOKKEEPING
from ..members.blocks import Members
from ..simulations.contract import Schema, Simulation
from .worker import BlockRunner

__all__ = ["Job", "batch_size_for", "plan_run", "probe", "run_token"]


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


def probe(
    job: Job, on_error: str, timing: bool
) -> tuple[Schema, dict[int, dict[str, np.ndarray]], dict[int, BaseException], float]:
    """Run the first members on the client: learn the schema and the cost of a member.

    Members run in order until one succeeds (its result gives the schema). With
    ``timing``, a few more members run to measure the cost without the first call's
    warm-up (imports, JIT compilation): cheap members until about 10 ms have passed,
    a slow member once more. Every result is kept and reused; nothing runs twice.
    """
    members, sim = job.members, job.simulation
    precomputed: dict[int, dict[str, np.ndarray]] = {}
    failures: dict[int, BaseException] = {}
    runner = BlockRunner(sim, members, job.fixed, Schema({}), setup=job.setup)
    limit = min(len(members), 20)
    schema: Schema | None = None
    times: list[float] = []
    for member in range(len(members)):
        params = runner.member_params(member)
        start = time.perf_counter()
        try:
            raw = runner.call(params, members.seed(member))
            elapsed = time.perf_counter() - start
            if schema is None:
                schema = sim.declared_schema(params) or sim.schema_from_result(raw, params)
            arrays, _, _ = sim.normalize(raw, params)
            arrays = schema.check(arrays, members.describe(member))
        except Exception as exc:
            if on_error == "raise" or isinstance(exc, SimulationError):
                raise runner.member_error(member, exc) from exc
            failures[member] = exc
            if schema is None and member + 1 >= limit:
                break
            continue
        precomputed[member] = arrays
        times.append(elapsed)
        if not timing or len(times) >= 20 or elapsed > 2.0:
            break
        if len(times) >= 2 and (elapsed > 1e-3 or sum(times[1:]) > 0.01):
            break
    if schema is None:
        first = next(iter(failures.values()))
        msg = (
            f"the first {len(failures)} members all failed, so the outputs could not be "
            f"learned; the first error was {type(first).__name__}: {first}"
        )
        raise MemberError(msg, params=runner.member_params(0), seed=members.seed(0))
    cost = min(times[1:]) if len(times) > 1 else times[0]
    return schema, precomputed, failures, cost


def plan_run(
    job: Job,
    *,
    running: bool,
    batch_size: int | None,
    n_workers: int,
    on_error: str,
    retries: int = 0,
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
    on_error, retries
        As in :meth:`ensembles.Ensemble.compute`.
    """
    members = job.members
    declared = job.simulation.declared_schema({**members.params(0), **job.fixed})
    precomputed: dict[int, dict[str, np.ndarray]] = {}
    failures: dict[int, BaseException] = {}
    cost = None
    if declared is None or (running and batch_size is None):
        schema, precomputed, failures, cost = probe(
            job, on_error, timing=running and batch_size is None
        )
    else:
        schema = declared
    _check_output_names(schema, members)
    if batch_size is None:
        member_bytes = sum(math.prod(o.shape) * o.dtype.itemsize for o in schema.outputs.values())
        # a lazy graph of a declared simulation has no timing: assume a millisecond
        size = batch_size_for(cost or 1e-3, len(members), n_workers, member_bytes)
        members = members.with_batch_size(size)
    return job.runner(
        members,
        schema,
        on_error=on_error,
        retries=retries,
        precomputed=precomputed,
        precomputed_errors=failures,
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
