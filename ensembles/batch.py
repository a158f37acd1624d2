"""Batches: run one block of members on a worker and return arrays and status.

:class:`BatchRunner` is shipped to workers once per run. ``run_block`` calls the simulation
for every member of a block, checks each result against the schema, and returns a
:class:`BlockResult` of block-shaped arrays, so the cost of a task is paid per block,
not per member.
"""

from __future__ import annotations

import copy
import math
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MemberError, OutputMismatchError
from .members import Members
from .simulation import Schema, Simulation, _normalize_result

__all__ = [
    "FAILED",
    "OK",
    "PENDING",
    "STATUS_ATTRS",
    "BatchRunner",
    "BlockResult",
    "fill_value",
]

PENDING, OK, FAILED = 0, 1, 2
STATUS_ATTRS = {
    "flag_values": [PENDING, OK, FAILED],
    "flag_meanings": "pending ok failed",
    "long_name": "member status",
}


def fill_value(dtype: np.dtype) -> Any:
    """The value that stands for a missing member in an output of ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "b":
        return False
    return 0


@dataclass
class BlockResult:
    """What one block of members produced.

    Attributes
    ----------
    block_id : tuple of int
    outputs : dict of str to numpy.ndarray
        Block-shaped output arrays (member block shape + output shape).
    status : numpy.ndarray of int8
        ``OK``, ``FAILED`` or ``PENDING`` (not run in this task) per member.
    wall_time : numpy.ndarray of float32
        Seconds spent per member (NaN where not run).
    attempts : numpy.ndarray of uint8
        Calls made per member in this task.
    errors : list of (member, error type, message)
        One entry per failed member.
    """

    block_id: tuple[int, ...]
    outputs: dict[str, np.ndarray]
    status: np.ndarray
    wall_time: np.ndarray
    attempts: np.ndarray
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return int(np.count_nonzero(self.status == OK))

    @property
    def n_failed(self) -> int:
        return int(np.count_nonzero(self.status == FAILED))

    @property
    def n_run(self) -> int:
        return int(np.count_nonzero(self.status != PENDING))


def protected_copy(obj: Any) -> Any:
    """What a member receives of the shared state: it cannot change it for the others.

    numpy arrays are passed as read-only views (no copy); anything else is deep-copied.
    """
    if isinstance(obj, np.ndarray):
        view = obj.view()
        view.flags.writeable = False
        return view
    return copy.deepcopy(obj)


@dataclass
class BatchRunner:
    """Everything a worker needs to run blocks of members.

    Parameters
    ----------
    simulation : Simulation
    members : Members
    fixed : dict
        Values passed unchanged to every member.
    schema : Schema
        Output schema every member must match.
    on_error : {"raise", "record"}
        Re-raise a member's exception (as :class:`MemberError` naming it), or record it
        as a failed member and go on.
    retries : int
        Extra attempts for a member that raises, before it counts as failed.
    precomputed : dict
        Results already computed on the client (the probe member), reused, not rerun.
    precomputed_errors : dict
        Exceptions of members that failed while probing, recorded without a rerun.
    shared : object, optional
        Shared initial state, built once on the client and shipped with the runner (so
        once per worker); each member gets a protected copy as the keyword
        ``setup_name`` (see :func:`protected_copy`).
    setup_name : str
        Keyword under which members receive the shared state.
    token : str
        Identifies the run (cache key of the shared state).
    """

    simulation: Simulation
    members: Members
    fixed: Mapping[str, Any]
    schema: Schema
    on_error: str = "raise"
    retries: int = 0
    precomputed: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    precomputed_errors: dict[int, BaseException] = field(default_factory=dict)
    shared: Any = None
    has_shared: bool = False
    setup_name: str = "setup"
    token: str = ""

    def member_params(self, member: int) -> dict[str, Any]:
        """Parameters of one member: its design values, then fixed values."""
        return {**self.members.params(member), **self.fixed}

    def run_member(self, member: int) -> dict[str, np.ndarray]:
        """Run one member (the simulation call and the schema check), raising on failure."""
        return self._run_one(member, self.member_params(member), self.members.seed(member))

    def _dims_hint(self, params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        hint = self.__dict__.get("_hint")
        if hint is None:  # the same for every member: derive it once per runner
            declared, _ = self.simulation.declared(params)
            hint = {k: o.dims for k, o in declared.items()}
            self.__dict__["_hint"] = hint
        return hint

    def _run_one(self, member: int, params: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
        if member in self.precomputed:
            return self.precomputed[member]
        if member in self.precomputed_errors:  # failed while probing: not run again
            raise self.precomputed_errors[member]
        kwargs = params
        if self.has_shared:
            kwargs = {**params, self.setup_name: protected_copy(self.shared)}
        return self._finish(member, params, self.call(member, kwargs, seed))

    def call(self, member: int, kwargs: Mapping[str, Any], seed: int) -> Any:
        """The simulation's raw result for one member.

        A simulation with ``takes_member`` (a Command, which names its scratch directory
        after the member) also receives :meth:`Members.identity` as ``member=``.
        """
        sim = self.simulation
        if sim.takes_member:
            return sim.call(kwargs, seed, member=self.members.identity(member))
        return sim.call(kwargs, seed)

    def _finish(self, member: int, params: dict[str, Any], raw: Any) -> dict[str, np.ndarray]:
        """Normalize and check one member's raw result against the schema."""
        if type(raw) is dict and raw.keys() == self.schema.outputs.keys():  # the common case
            return self.schema.check(
                {k: np.asarray(v) for k, v in raw.items()},
                lambda: self.members.describe(member),
            )
        if isinstance(raw, dict) and type(self.simulation) is Simulation:
            arrays, _, coords = _normalize_result(raw, self._dims_hint(params))
        else:  # adapters (commands, model classes) normalize their own results
            arrays, _, coords = self.simulation.normalize(raw, params)
        for dim, values in coords.items():
            expected = self.schema.coords.get(dim)
            if expected is not None and not np.array_equal(values, expected):
                msg = (
                    f"{self.members.describe(member)} returned coordinate {dim!r} = "
                    f"{_short(values)}, but the ensemble's is {_short(expected)}: an output "
                    "dimension's coordinate must be the same for every member (return a "
                    "varying value as an output instead)"
                )
                raise OutputMismatchError(msg)
        return self.schema.check(arrays, lambda: self.members.describe(member))

    def _direct_call(self) -> Any:
        """``call(params, seed)`` straight to a plain function, or None (use ``_run_one``).

        The per-member path of plain Python simulations: no copies of the parameters and no
        schema check once a member returned values of the same types and shapes (see
        ``run_block``). Adapters, shared setup state and precomputed members take the
        general path.
        """
        sim = self.simulation
        if type(sim) is not Simulation or self.has_shared:
            return None
        func, arg = sim.func, sim.seed_argument
        if arg == "seed":
            return lambda params, seed: func(**params, seed=seed)
        if arg == "rng":
            return lambda params, seed: func(**params, rng=np.random.default_rng(seed))
        return lambda params, seed: func(**params)

    def run_block(self, block_id: tuple[int, ...], todo: np.ndarray | None = None) -> BlockResult:
        """Run the members of one block.

        Parameters
        ----------
        block_id : tuple of int
        todo : boolean numpy.ndarray, optional
            Block-shaped mask of members to run; the others are left ``PENDING``
            (used by resume). Default: all.
        """
        members = self.members
        index = members.block_members(block_id)
        bshape = index.shape
        flat = index.reshape(-1)
        points = flat // members.n_seeds
        seeds = members.seeds.reshape(-1)[flat].tolist()
        names = list(members.table)
        columns = [np.asarray(members.table[k])[points].tolist() for k in names]
        # uninitialized: rows of members that do not end ok are filled once, at the end
        outputs = {
            name: np.empty(bshape + out.shape, dtype=out.dtype)
            for name, out in self.schema.outputs.items()
        }
        status = np.full(bshape, PENDING, dtype=np.int8)
        wall = np.full(bshape, np.nan, dtype=np.float32)
        attempts = np.zeros(bshape, dtype=np.uint8)
        errors: list[tuple[int, str, str]] = []
        todo_flat = None if todo is None else np.asarray(todo, bool).reshape(-1)
        # flat views: one member per row, no index arithmetic per member
        n = flat.size
        flat_out = {k: v.reshape((n, *v.shape[len(bshape) :])) for k, v in outputs.items()}
        flat_status, flat_wall = status.reshape(-1), wall.reshape(-1)
        flat_attempts = attempts.reshape(-1)
        clock = time.perf_counter
        fixed = self.fixed
        direct = self._direct_call()
        special = set(self.precomputed) | set(self.precomputed_errors)
        n_outputs = len(self.schema.outputs)
        # result signatures (per output: type, or type/shape/dtype of an array) already
        # checked against the schema: later members returning the same skip the check
        seen: set[tuple[Any, ...]] = set()
        for pos, member in enumerate(flat.tolist()):
            if todo_flat is not None and not todo_flat[pos]:
                continue
            params = dict(zip(names, [c[pos] for c in columns], strict=True))
            if fixed:
                params.update(fixed)
            start = clock()
            for attempt in range(self.retries + 1):
                try:
                    if direct is None or member in special:
                        result = self._run_one(member, params, seeds[pos])
                    else:
                        result = direct(params, seeds[pos])
                        key = _signature(result, n_outputs)
                        if key is None or key not in seen:
                            result = self._finish(member, params, result)
                            if key is not None:
                                seen.add(key)
                    for name, value in result.items():
                        flat_out[name][pos] = value
                except Exception as exc:
                    if attempt < self.retries and not isinstance(exc, OutputMismatchError):
                        continue
                    flat_attempts[pos] = attempt + 1
                    if self.on_error == "raise":
                        raise self.member_error(member, exc) from exc
                    flat_status[pos] = FAILED
                    errors.append((member, type(exc).__name__, _message(exc)))
                    break
                flat_attempts[pos] = attempt + 1
                flat_status[pos] = OK
                break
            flat_wall[pos] = clock() - start
        not_ok = flat_status != OK
        if not_ok.any():
            for name, out in self.schema.outputs.items():
                flat_out[name][not_ok] = fill_value(out.dtype)
        return BlockResult(tuple(block_id), outputs, status, wall, attempts, errors)

    def member_error(self, member: int, exc: BaseException) -> MemberError:
        desc = self.members.describe(member)
        if isinstance(exc, OutputMismatchError):
            msg = str(exc)
        else:
            msg = f"{desc} raised {type(exc).__name__}: {_message(exc)}"
        return MemberError(msg, params=self.member_params(member), seed=self.members.seed(member))


# result types a signature can stand for (a Python int only when it fits in int64)
_SCALARS = (float, int, bool, np.float64, np.float32, np.int64, np.int32, np.bool_)


def _signature(result: Any, n_outputs: int) -> tuple[Any, ...] | None:
    """What a result looks like (names, types, shapes, dtypes), or None if not simple.

    Two results with the same signature pass or fail the schema check alike, so a
    signature checked once needs no second check.
    """
    if type(result) is not dict or len(result) != n_outputs:
        return None
    parts: list[Any] = []
    for name, value in result.items():
        kind = type(value)
        if kind is np.ndarray:
            parts.append((name, value.shape, value.dtype))
        elif kind in _SCALARS and (kind is not int or -(2**63) <= value < 2**63):
            parts.append((name, kind))
        else:
            return None
    return tuple(parts)


def _short(values: Any) -> str:
    text = np.array2string(np.asarray(values), threshold=6, separator=", ")
    return text if len(text) <= 80 else text[:77] + "..."


def _message(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    if len(text) > 2000:
        text = text[:1000] + " ... " + text[-900:]
    return text


def format_errors(errors: list[tuple[int, str, str]], limit: int = 5) -> str:
    """Group failures by error type and message for a end-of-run report."""
    groups: dict[tuple[str, str], list[int]] = {}
    for member, etype, message in errors:
        first_line = message.strip().splitlines()[0] if message.strip() else ""
        groups.setdefault((etype, first_line), []).append(member)
    lines = []
    for (etype, msg), members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:limit]:
        shown = ", ".join(str(m) for m in members[:5]) + (", ..." if len(members) > 5 else "")
        lines.append(f"  {len(members)} x {etype}: {msg} (members {shown})")
    if len(groups) > limit:
        lines.append(f"  ... and {len(groups) - limit} other kinds of error")
    return "\n".join(lines)


def traceback_text(exc: BaseException) -> str:  # pragma: no cover - debugging helper
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


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
