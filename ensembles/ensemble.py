"""The Ensemble: a simulation, a design, seeds and fixed values; run lazily or to a store."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from .batch import (
    FAILED,
    OK,
    BatchRunner,
    BlockResult,
    fill_value,
    format_errors,
)
from .designs import Design, design_from_dict
from .errors import DesignError, MemberError, RunnerError
from .graph import assemble_dataset, lazy_arrays
from .members import Members, block_shape_for
from .planning import plan_run, run_token
from .provenance import now, provenance
from .runner import (
    Progress,
    is_killed_worker,
    resolve_client,
    run_tasks,
    split_into_members,
    worker_count,
)
from .simulation import Schema, Simulation, as_simulation
from .store import SPEC_ATTR, EnsembleStore
from .tasks import run_item, run_item_and_store

__all__ = ["Ensemble"]

_RESERVED = ("seed", "rng", "sample")
_ON_ERROR = ("raise", "record")


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class Ensemble:
    """A statistical ensemble: a simulation run over a design times N seeds.

    Parameters
    ----------
    simulation : callable, Simulation or str
        ``f(*, seed, **params)`` or ``f(*, rng, **params)`` returning a mapping of output
        name to scalar/array (or an xarray.Dataset); or ``"module:function"``.
    design : Design or dict
        The parameter design (``Grid``, ``Sample``, ``Points``, ...; or its ``to_dict()``).
    seeds : int
        Runs per design point; the ``seed`` dimension.
    root_seed : int, optional
        Root of every member's seed. Default: fresh entropy, recorded with the results.
    fixed : dict, optional
        Values passed unchanged to every member, recorded with the results.
    batch_size : int, optional
        Members per task. Default: chosen from the measured cost of a member (about
        0.1 s of work per task, at least four tasks per worker).
    setup : callable or object, optional
        Expensive shared initial state (an environment, a calibrated snapshot). A callable
        is called once, on the client, when the ensemble first runs; the object is
        shipped once to each worker, and each member receives a protected copy of it
        (arrays read-only, anything else deep-copied) as the keyword ``setup_name``.
    setup_name : str
        Keyword under which members receive the shared object.

    Examples
    --------
    >>> import ensembles as ens
    >>> def walk(*, rng, drift, n=5):
    ...     return {"x": np.cumsum(drift + rng.standard_normal(n))}
    >>> e = ens.Ensemble(walk, ens.Grid(drift=[0.0, 1.0]), seeds=3, root_seed=1)
    >>> len(e)
    6
    >>> ds = e.to_dataset()          # lazy; nothing has run
    >>> dict(ds.sizes)
    {'drift': 2, 'seed': 3, 'x_dim_0': 5}
    """

    def __init__(
        self,
        simulation: Any,
        design: Design | Mapping[str, Any],
        *,
        seeds: int = 1,
        root_seed: int | None = None,
        fixed: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        setup: Any = None,
        setup_name: str = "setup",
    ) -> None:
        self.simulation: Simulation = as_simulation(simulation)
        if isinstance(design, Mapping):
            design = design_from_dict(design)
        if not isinstance(design, Design):
            msg = (
                f"design must be a Design such as Grid(T=[1.5, 2.0]) or Sample(...), got "
                f"{design!r}"
            )
            raise DesignError(msg)
        self.design = design
        if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
            msg = f"seeds must be a positive integer (runs per design point), got {seeds!r}"
            raise DesignError(msg)
        self.seeds = int(seeds)
        if root_seed is None:
            root_seed = int(np.random.SeedSequence().entropy)  # recorded with the results
        if (
            isinstance(root_seed, bool)
            or not isinstance(root_seed, (int, np.integer))
            or not 0 <= int(root_seed) < 2**128
        ):
            msg = f"root_seed must be an integer in [0, 2**128), got {root_seed!r}"
            raise DesignError(msg)
        self.root_seed = int(root_seed)
        self.fixed = {str(k): _json_value(v) for k, v in dict(fixed or {}).items()}
        clash = sorted(set(self.fixed) & set(design.params))
        if clash:
            msg = f"parameter(s) {clash!r} are both in the design and in fixed=; keep one"
            raise DesignError(msg)
        reserved = sorted(set(self.fixed) & set(_RESERVED))
        if reserved:
            msg = (
                f"fixed= cannot set {reserved!r}: seeds come from root_seed and the seed index; "
                "use seeds= and root_seed="
            )
            raise DesignError(msg)
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            msg = f"batch_size must be a positive integer or None, got {batch_size!r}"
            raise DesignError(msg)
        self.batch_size = batch_size
        self.setup = setup
        self.setup_name = setup_name
        names = [*design.params, *self.fixed]
        if setup is not None:
            names.append(setup_name)
        self.simulation.check_parameters(names)

    def __len__(self) -> int:
        return len(self.design) * self.seeds

    def __repr__(self) -> str:
        return (
            f"Ensemble({self.simulation.name}, {self.design!r}, seeds={self.seeds}, "
            f"root_seed={self.root_seed}, fixed={self.fixed!r})"
        )

    # -- planning --------------------------------------------------------------------
    def members(self, batch_size: int | None = None) -> Members:
        """The member plan (design points x seeds, cut into blocks of ``batch_size``)."""
        table = self.design.table()
        shape = (*self.design.shape, self.seeds)
        bs = batch_size or self.batch_size or 1000
        return Members(
            table,
            tuple(self.design.dims),
            tuple(self.design.shape),
            self.seeds,
            self.root_seed,
            block_shape_for(shape, bs),
            seed_bits=self.simulation.seed_bits,
        )

    def _plan(
        self,
        *,
        running: bool,
        batch_size: int | None,
        n_workers: int,
        on_error: str,
        retries: int = 0,
    ) -> BatchRunner:
        return plan_run(
            self,
            running=running,
            batch_size=batch_size,
            n_workers=n_workers,
            on_error=on_error,
            retries=retries,
        )

    def _token(self, members: Members, schema: Schema) -> str:
        return run_token(self, members, schema)

    def _shared_kwargs(self) -> dict[str, Any]:
        """The shared state for runners: built once (on first use) and reused."""
        if self.setup is None:
            return {}
        if not hasattr(self, "_shared"):
            self._shared = self.setup() if callable(self.setup) else self.setup
        return {"shared": self._shared, "has_shared": True, "setup_name": self.setup_name}

    # -- specification -----------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """The run as a JSON-ready dict (the store keeps it; :meth:`from_spec` inverts it)."""
        to_dict = getattr(self.simulation, "to_dict", None)
        sim = to_dict() if callable(to_dict) else {"function": self.simulation.name}
        return {
            "simulation": sim,
            "design": self.design.to_dict(),
            "fixed": self.fixed,
            "run": {"seeds": self.seeds, "root_seed": self.root_seed},
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], **kwargs: Any) -> Ensemble:
        """Rebuild an ensemble from :meth:`spec` (or a TOML run file's tables)."""
        from .spec import ensemble_from_spec

        return ensemble_from_spec(spec, **kwargs)

    def _attrs(self, runner: BatchRunner) -> dict[str, Any]:
        spec = self.spec()
        spec["block"] = list(runner.members.block)
        spec["schema"] = runner.schema.to_dict()
        spec["format"] = 1
        text = json.dumps(spec, sort_keys=True, default=repr)
        return {
            SPEC_ATTR: text,
            "ensembles_spec_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "ensembles_provenance": json.dumps(provenance()),
            "ensembles_root_seed": str(self.root_seed),
        }

    # -- running ---------------------------------------------------------------------
    def _client(self, scheduler: Any, workers: int | None) -> Any:
        """The client a run uses (see :func:`ensembles.runner.resolve_client`)."""
        return resolve_client(
            scheduler, processes=not self.simulation.releases_gil, n_workers=workers
        )

    def to_dataset(self, *, batch_size: int | None = None) -> xr.Dataset:
        """The ensemble as a lazy Dataset: nothing runs until it is computed.

        Computing it follows plain dask semantics (the active scheduler or client). A
        simulation whose outputs are not declared runs one probe member first, here,
        whose result is reused.

        Returns
        -------
        xarray.Dataset
            Outputs over (design dims, ``seed``, output dims), with ``status`` and
            ``member_seed`` coordinates over the member dims.
        """
        from .clients import _cpu_count

        runner = self._plan(
            running=False, batch_size=batch_size, n_workers=_cpu_count(), on_error="raise"
        )
        outputs, status = lazy_arrays(runner, runner.token)
        return assemble_dataset(runner, self.design.coords(), outputs, status, self._attrs(runner))

    def compute(
        self,
        *,
        scheduler: Any = None,
        progress: bool = True,
        on_error: str = "raise",
        retries: int = 0,
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> xr.Dataset:
        """Run every member now and return the results in memory.

        Parameters
        ----------
        scheduler : distributed.Client or str, optional
            Where to run; default: the active client, else the embedded local cluster.
        progress : bool
            Show a progress line.
        on_error : {"raise", "record"}
            Stop at the first failing member, or record failures (status 2, NaN values).
        retries : int
            Extra attempts per failing member.
        batch_size : int, optional
            Members per task; default chosen from the measured cost of a member.
        workers : int, optional
            Workers of the embedded local cluster (default: every core); ignored when
            a scheduler is given or a client is active.
        """
        _check_on_error(on_error, retries)
        with self._client(scheduler, workers) as client:
            runner = self._plan(
                running=True,
                batch_size=batch_size,
                n_workers=worker_count(client),
                on_error=on_error,
                retries=retries,
            )
            members, schema = runner.members, runner.schema
            outputs = {
                name: np.full((*members.shape, *o.shape), fill_value(o.dtype), dtype=o.dtype)
                for name, o in schema.outputs.items()
            }
            status = np.zeros(members.shape, dtype=np.int8)
            errors: list[tuple[int, str, str]] = []
            bar = Progress(len(members), enabled=progress, client=client)
            items = [(bid, None) for bid in members.block_ids()]
            for outcome in run_tasks(
                client,
                run_item,
                runner,
                items,
                key_prefix=f"ensemble-block-{runner.token}",
                split=_member_split(members),
            ):
                res = _outcome_result(outcome, runner)
                region = members.block_slices(res.block_id)
                ran = res.status != 0  # a split part holds only some of its block's members
                for name, values in res.outputs.items():
                    outputs[name][region][ran] = values[ran]
                status[region][ran] = res.status[ran]
                errors.extend(res.errors)
                bar.update(res.n_run, res.n_failed)
            bar.close()
        _report_failures(errors, len(members), progress)
        return assemble_dataset(runner, self.design.coords(), outputs, status, self._attrs(runner))

    def to_zarr(
        self,
        path: Any,
        *,
        mode: str = "w-",
        only: str | None = None,
        force: bool = False,
        scheduler: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        on_error: str = "record",
        retries: int = 0,
        batch_size: int | None = None,
        workers: int | None = None,
    ) -> xr.Dataset:
        """Run every member, streaming results into a Zarr v3 store as they finish.

        Each task writes its own chunks (outputs, then status), so the driver never holds
        results, memory stays flat however many members there are, and a crash at any
        moment leaves a consistent store that ``mode="resume"`` finishes.

        Parameters
        ----------
        path : str or path-like
            Local directory or fsspec URL (``s3://bucket/run.zarr``).
        mode : {"w-", "w", "resume"}
            ``"w-"`` (default) refuses an existing store, ``"w"`` replaces it,
            ``"resume"`` runs only what the store lacks: members not ok, and new members
            when this ensemble extends the stored one (more seeds, more samples, appended
            grid values). A missing store is created.
        only : {None, "failed", "pending"}
            With ``mode="resume"``: run only failed, or only pending, members.
        force : bool
            Break the writer lease of another process (only if it is surely dead).
        scheduler, progress, retries, batch_size, workers
            As in :meth:`compute`.
        storage_options : dict, optional
            fsspec options for URLs.
        on_error : {"record", "raise"}
            Record failing members (default) or stop at the first.

        Returns
        -------
        xarray.Dataset
            The lazy Dataset over the store (as :func:`open_ensemble` gives).

        Raises
        ------
        StoreExistsError
            ``mode="w-"`` and the store exists.
        StoreMismatchError
            ``mode="resume"`` with a run that differs from the store's; nothing is written.
        StoreError
            Another live process holds the store's writer lease.
        """
        from .errors import StoreExistsError
        from .resume import plan_resume, todo_mask

        _check_on_error(on_error, retries)
        if mode not in ("w-", "w", "resume"):
            msg = f"mode must be 'w-' (new store), 'w' (overwrite) or 'resume', got {mode!r}"
            raise ValueError(msg)
        if only is not None and mode != "resume":
            msg = f"only={only!r} selects members of a store to rerun; it needs mode='resume'"
            raise ValueError(msg)
        store = EnsembleStore(str(path), storage_options)
        exists = store.exists()
        if mode == "w-" and exists:
            msg = (
                f"a store already exists at {store.path!r}; pass mode='w' (CLI: --overwrite) "
                "to replace it, or mode='resume' to finish or extend it"
            )
            raise StoreExistsError(msg)
        resuming = mode == "resume" and exists
        plan = plan_resume(self, store) if resuming else None  # validates before any write
        if exists:
            store.lease("check", force=force).check()
        with self._client(scheduler, workers) as client:
            if plan is not None:
                runner = BatchRunner(
                    self.simulation,
                    plan.members,
                    self.fixed,
                    plan.schema,
                    on_error=on_error,
                    retries=retries,
                    **self._shared_kwargs(),
                )
                runner.token = self._token(plan.members, plan.schema)
            else:
                runner = self._plan(
                    running=True,
                    batch_size=batch_size,
                    n_workers=worker_count(client),
                    on_error=on_error,
                    retries=retries,
                )
            members = runner.members
            outputs, status = lazy_arrays(runner, runner.token)
            attrs = self._attrs(runner)
            if plan is None:  # a new store: its creation marks the start of the run
                attrs["ensembles_started"] = now()
            template = assemble_dataset(runner, self.design.coords(), outputs, status, attrs)
            if plan is None:
                samples: dict[str, list[np.ndarray]] = {}
                for arrays in runner.precomputed.values():
                    for name, values in arrays.items():
                        samples.setdefault(name, []).append(values)
                store.create(
                    template, members.block, mode="w" if exists else "w-", samples=samples
                )
            elif plan.grows:
                store.grow(
                    template, {k: v for k, v in attrs.items() if k != "ensembles_provenance"}
                )
            with store.lease(runner.token, force=force):
                todo = None if plan is None else todo_mask(store.status(), only)
                if plan is not None:
                    store.update_attrs(ensembles_started=now())
                errors, counts = self._run_into(store, client, runner, todo, progress)
                store.update_attrs(
                    ensembles_finished=now(),
                    ensembles_counts=json.dumps(_status_counts(store.status())),
                )
        _report_failures(errors, counts["run"], progress, where=store.path)
        return store.open_dataset()

    def _run_into(
        self,
        store: EnsembleStore,
        client: Any,
        runner: BatchRunner,
        todo: np.ndarray | None,
        progress: bool,
    ) -> tuple[list[tuple[int, str, str]], dict[str, int]]:
        """Run the selected members block by block; each task writes into the store."""
        members = runner.members
        items = []
        for bid in members.block_ids():
            if todo is None:
                items.append((bid, None))
                continue
            mask = todo[members.block_slices(bid)]
            if mask.all():
                items.append((bid, None))
            elif mask.any():
                items.append((bid, mask))
        total = len(members) if todo is None else int(np.count_nonzero(todo))
        bar = Progress(total, enabled=progress, client=client)
        if todo is not None and total < len(members):
            bar.message(f"resuming: {total} of {len(members)} members to run")
        errors: list[tuple[int, str, str]] = []
        for outcome in run_tasks(
            client,
            run_item_and_store,
            (runner, store),
            items,
            key_prefix=f"ensemble-store-{runner.token}",
            split=_member_split(members),
        ):
            res = _outcome_result(outcome, runner)
            if outcome.error is not None:  # a member that killed its worker: record it here
                store.write_block(res, members.block_slices(res.block_id))
            errors.extend(res.errors)
            bar.update(res.n_run, res.n_failed)
        bar.close()
        return errors, {"run": total}


def _member_split(members: Members) -> Any:
    """How run_tasks splits a block whose task killed its worker: one member per part."""
    return split_into_members(
        lambda bid: tuple(s.stop - s.start for s in members.block_slices(bid))
    )


def _outcome_result(outcome: Any, runner: BatchRunner) -> BlockResult:
    """A task's BlockResult; a member that repeatedly killed its worker becomes a failure.

    Other task errors are raised. A lone member whose task ended in dask's KilledWorker
    is recorded as failed (``on_error="record"``) or raised as a :class:`MemberError`.
    """
    if outcome.error is None:
        return outcome.result
    block_id, todo = outcome.item
    alone = todo is not None and np.count_nonzero(todo) == 1
    if not is_killed_worker(outcome.error) or not alone:
        raise _task_error(outcome.error)
    index = runner.members.block_members(block_id)
    mask = np.asarray(todo, bool)
    member = int(index[mask][0])
    message = (
        f"the member repeatedly killed the dask worker running it ({outcome.error}); it may "
        "exhaust memory or crash the interpreter"
    )
    if runner.on_error == "raise":
        raise runner.member_error(member, RunnerError(message))
    shape = index.shape
    outputs = {
        n: np.full(shape + o.shape, fill_value(o.dtype), dtype=o.dtype)
        for n, o in runner.schema.outputs.items()
    }
    return BlockResult(
        tuple(block_id),
        outputs,
        np.where(mask, FAILED, 0).astype(np.int8),
        np.full(shape, np.nan, np.float32),
        mask.astype(np.uint8),
        [(member, "KilledWorker", message)],
    )


def _status_counts(status: np.ndarray) -> dict[str, int]:
    return {
        "ok": int(np.count_nonzero(status == OK)),
        "failed": int(np.count_nonzero(status == FAILED)),
        "pending": int(np.count_nonzero(status == 0)),
    }


def _check_on_error(on_error: str, retries: int) -> None:
    if on_error not in _ON_ERROR:
        msg = f"on_error must be 'raise' or 'record', got {on_error!r}"
        raise ValueError(msg)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        msg = f"retries must be a non-negative integer, got {retries!r}"
        raise ValueError(msg)


def _task_error(exc: BaseException) -> BaseException:
    if isinstance(exc, MemberError):
        return exc
    name = type(exc).__name__
    if name == "KilledWorker":
        msg = (
            f"a task repeatedly killed its worker ({exc}); a member may be exhausting memory "
            "or crashing the interpreter. Rerun with on_error='record' to isolate it"
        )
        return RunnerError(msg)
    return exc


def _report_failures(
    errors: list[tuple[int, str, str]], total: int, enabled: bool, where: str | None = None
) -> None:
    """Tell on stderr how many members failed and why, grouped by error (unless quiet)."""
    if not errors or not enabled:
        return
    store = f" (recorded in {where})" if where else ""
    print(
        f"{len(errors)} of {total} members failed{store}, by error:\n{format_errors(errors)}",
        file=sys.stderr,
        flush=True,
    )
