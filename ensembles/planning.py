"""Planning a run: probe the first members, fix the output schema and the batch size.

The probe runs on the client: members in order until one succeeds (its result gives the
schema, unless the simulation declares it), and, when timing, a few more to measure the
cost of a member without the first call's warm-up. Every probed result is reused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.base import tokenize

from .batch import BatchRunner, batch_size_for, protected_copy
from .errors import MemberError, SimulationError
from .members import Members
from .simulation import Schema

if TYPE_CHECKING:
    from .ensemble import Ensemble

__all__ = ["plan_run", "probe", "run_token"]


def probe(
    ensemble: Ensemble, members: Members, on_error: str, timing: bool
) -> tuple[Schema, dict[int, dict[str, np.ndarray]], dict[int, BaseException], float]:
    """Run the first members on the client: learn the schema and the cost of a member.

    Members run in order until one succeeds (its result gives the schema). With
    ``timing``, a few more members run to measure the cost without the first call's
    warm-up (imports, JIT compilation): cheap members until about 10 ms have passed,
    a slow member once more. Every result is kept and reused; nothing runs twice.
    """
    precomputed: dict[int, dict[str, np.ndarray]] = {}
    failures: dict[int, BaseException] = {}
    runner = BatchRunner(
        ensemble.simulation, members, ensemble.fixed, Schema({}), **ensemble._shared_kwargs()
    )
    limit = min(len(members), 20)
    schema: Schema | None = None
    times: list[float] = []
    for member in range(len(members)):
        params = runner.member_params(member)
        kwargs = params
        if runner.has_shared:
            kwargs = {**params, ensemble.setup_name: protected_copy(runner.shared)}
        start = time.perf_counter()
        try:
            raw = runner.call(member, kwargs, members.seed(member))
            elapsed = time.perf_counter() - start
            if schema is None:
                schema = ensemble.simulation.declared_schema(params)
                if schema is None:
                    schema = ensemble.simulation.schema_from_result(raw, params)
            arrays, _, _ = ensemble.simulation.normalize(raw, params)
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
    ensemble: Ensemble,
    *,
    running: bool,
    batch_size: int | None,
    n_workers: int,
    on_error: str,
    retries: int = 0,
) -> BatchRunner:
    members = ensemble.members(batch_size or ensemble.batch_size or 1000)
    params0 = {**members.params(0), **ensemble.fixed}
    declared = ensemble.simulation.declared_schema(params0)
    explicit = batch_size or ensemble.batch_size
    precomputed: dict[int, dict[str, np.ndarray]] = {}
    failures: dict[int, BaseException] = {}
    cost = None
    if declared is None or (running and explicit is None):
        schema, precomputed, failures, cost = probe(
            ensemble, members, on_error, timing=running and explicit is None
        )
    else:
        schema = declared
    _check_output_names(schema, members, ensemble.fixed)
    if explicit is None:
        member_bytes = sum(math.prod(o.shape) * o.dtype.itemsize for o in schema.outputs.values())
        if cost is None:  # lazy graph of a declared simulation: no timing available
            size = batch_size_for(1e-3, len(members), n_workers, member_bytes)
        else:
            size = batch_size_for(cost, len(members), n_workers, member_bytes)
        members = members.with_batch_size(size)
    runner = BatchRunner(
        ensemble.simulation,
        members,
        ensemble.fixed,
        schema,
        on_error=on_error,
        retries=retries,
        precomputed=precomputed,
        precomputed_errors=failures,
        **ensemble._shared_kwargs(),
    )
    runner.token = run_token(ensemble, members, schema)
    return runner


def run_token(ensemble: Ensemble, members: Members, schema: Schema) -> str:
    return tokenize(
        ensemble.simulation.name,
        json.dumps(ensemble.design.to_dict(), sort_keys=True),
        json.dumps(ensemble.fixed, sort_keys=True, default=repr),
        ensemble.seeds,
        ensemble.root_seed,
        members.block,
        json.dumps(schema.to_dict(), sort_keys=True),
    )


def _check_output_names(schema: Schema, members: Members, fixed: Mapping[str, Any]) -> None:
    taken = {*members.table, *members.dims, "member_seed", "status", "wall_time"}
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
