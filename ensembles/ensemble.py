"""The Ensemble: a simulation, a design, seeds and fixed values; run lazily or to a store.

:class:`Ensemble` is a thin facade: planning (``execution.planning``), running
(``execution.dispatch``) and the store's life (``store.lifecycle``, ``store.resume``)
each live in their stage; this module validates the arguments and calls them in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DesignError, SpecError
from .execution.assemble import assemble_dataset, placeholders, warm_up
from .execution.backends import resolve_backend, start_local_pool
from .execution.dispatch import run_blocks
from .execution.planning import Job, Learned, RunMemory, plan_run
from .execution.worker import BlockRunner
from .layout import RESERVED
from .members.blocks import Members, block_shape_for
from .simulations.contract import Simulation, as_simulation
from .spec import ensemble_arguments
from .sweep import Design, design_from_dict
from .sweep.values import check_finite

if TYPE_CHECKING:
    import xarray as xr

    from .adaptive.growth import Growth
    from .adaptive.rules import Adaptive
    from .adaptive.run import AdaptiveJob, RunOptions
    from .store.resume import ResumePlan
    from .store.zarr_store import EnsembleStore

__all__ = ["Ensemble"]

_ON_ERROR = ("raise", "record")


class Ensemble:
    """A statistical ensemble: a simulation run over a design times N seeds.

    Parameters
    ----------
    simulation : callable, Simulation or str
        ``f(*, seed, **params)`` or ``f(*, rng, **params)`` returning a mapping of output
        name to scalar/array (or an xarray.Dataset); or ``"module:function"``.
    design : Design or dict
        The parameter design (``Grid``, ``Sample``, ``Points``, ...; or its ``to_dict()``).
    seeds : int or Adaptive
        Runs per design point (the ``seed`` dimension), or ``Adaptive(initial=16,
        max=1024)``: each point gets seeds until a precision target is met
        (``to_zarr(..., until=Precision(...))``; see ``docs/adaptive.md``).
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
    samples : Adaptive, optional
        Grow the ``sample`` dim of a :class:`~ensembles.Sample` or :class:`~ensembles.Sobol`
        design instead (``seeds`` seeds per sample) until the target is met; the design's
        ``n`` is replaced by the run's.

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
    >>> a = ens.Ensemble(walk, ens.Grid(drift=[0.0, 1.0]), seeds=ens.Adaptive(initial=8, max=64))
    >>> a.adaptive, len(a)  # at most 64 members per point
    (Adaptive(initial=8, max=64, grow='seed', safety=1.2, growth=4.0, pow2=False), 128)
    """

    def __init__(
        self,
        simulation: Any,
        design: Design | Mapping[str, Any],
        *,
        seeds: int | Adaptive = 1,
        root_seed: int | None = None,
        fixed: Mapping[str, Any] | None = None,
        batch_size: int | None = None,
        setup: Any = None,
        setup_name: str = "setup",
        samples: Adaptive | None = None,
    ) -> None:
        self.simulation: Simulation = as_simulation(simulation)
        self.design = _check_design(design)
        self.seeds: int | Adaptive = _check_seeds(seeds)
        self.samples: Adaptive | None = None
        self.growth: Growth | None = None
        if samples is not None or not isinstance(self.seeds, int):
            from .adaptive.checks import check_samples, growth_of

            self.samples = check_samples(samples, self.seeds)
            self.growth = growth_of(self.design, self.adaptive, self.seeds)
        self.root_seed = _check_root_seed(root_seed)
        self.fixed = _check_fixed(fixed, self.design)
        self.batch_size = _check_batch_size(batch_size)
        self.setup = setup
        self.setup_name = setup_name
        self._setup_value: tuple[str, Any] | None = None
        self._memory = RunMemory()  # what this ensemble's runs work out once
        names = [*self.design.params, *self.fixed]
        if setup is not None:
            names.append(setup_name)
        self.simulation.check_parameters(names)

    @property
    def adaptive(self) -> Adaptive | None:
        """The adaptive rule (``seeds=`` or ``samples=``), or None for a fixed-size ensemble."""
        return self.samples if isinstance(self.seeds, int) else self.seeds

    def __len__(self) -> int:
        """Members; for an adaptive ensemble, the most it can run (``max`` per point)."""
        if self.growth is None:
            return len(self.design) * int(self.seeds)  # type: ignore[arg-type]
        design, seeds = self.growth.sized(self.growth.rule.max)
        return len(design) * seeds

    def __repr__(self) -> str:
        samples = f", samples={self.samples!r}" if self.samples is not None else ""
        return (
            f"Ensemble({self.simulation.name}, {self.design!r}, seeds={self.seeds!r}"
            f"{samples}, root_seed={self.root_seed}, fixed={self.fixed!r})"
        )

    # -- planning --------------------------------------------------------------------
    def members(self, batch_size: int | None = None) -> Members:
        """The member plan (design points x seeds, cut into blocks of ``batch_size``).

        For an adaptive ensemble, the plan of its pilot (``initial`` per point).
        """
        design, seeds = self.design, self.seeds
        if self.growth is not None:
            design, seeds = self.growth.sized(self.growth.rule.initial)
        shape = (*design.shape, seeds)
        block = block_shape_for(shape, batch_size or self.batch_size or 1000)
        bits = self.simulation.seed_bits
        return self._memory.members(design, seeds, self.root_seed, block, bits)

    def _job(self) -> Job:
        """The run as plain values for the planner (the shared setup built once)."""
        if self.setup is not None and self._setup_value is None:
            value = self.setup() if callable(self.setup) else self.setup
            self._setup_value = (self.setup_name, value)
        identity = self._memory.identity(self.spec(), self.design)
        return Job(self.simulation, self.members(), self.fixed, identity, self._setup_value)

    def _runner(
        self,
        *,
        running: bool,
        n_workers: int,
        on_error: str,
        retries: int = 0,
        batch_size: int | None = None,
        timeout: float | None = None,
        backend: Any = None,
        memo: list[Learned] | None = None,
    ) -> BlockRunner:
        if backend is not None:
            backend.prepare(self.simulation)
        return plan_run(
            self._job(),
            running=running,
            batch_size=batch_size or self.batch_size,
            n_workers=n_workers,
            on_error=on_error,
            retries=retries,
            member_timeout=timeout,
            remote=None if backend is None else backend.remote(timeout),
            memo=memo,
        )

    # -- specification -----------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """The run as a JSON-ready dict (the store keeps it; :meth:`from_spec` inverts it)."""
        to_dict = getattr(self.simulation, "to_dict", None)
        sim = to_dict() if callable(to_dict) else {"function": self.simulation.name}
        seeds = self.seeds if isinstance(self.seeds, int) else self.seeds.to_dict()
        run: dict[str, Any] = {"seeds": seeds, "root_seed": self.root_seed}
        if self.samples is not None:
            run["samples"] = self.samples.to_dict()
        design = self.design.to_dict()
        return {"simulation": sim, "design": design, "fixed": self.fixed, "run": run}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], **kwargs: Any) -> Ensemble:
        """Rebuild an ensemble from :meth:`spec` (or a TOML run file's tables)."""
        return cls(**ensemble_arguments(spec, **kwargs))

    def _dataset(self, runner: BlockRunner, outputs: Any, status: Any) -> xr.Dataset:
        from .store.provenance import run_attrs  # not the store's stack: no zarr here

        attrs = run_attrs(self.spec(), runner, self.root_seed)
        return assemble_dataset(runner, self.design.coords(), outputs, status, attrs)

    # -- running ---------------------------------------------------------------------
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
        from .execution.clients import cpu_count
        from .execution.graph import lazy_arrays

        self._check_fixed_size("to_dataset()")
        runner = self._runner(
            running=False, batch_size=batch_size, n_workers=cpu_count(), on_error="raise"
        )
        outputs, status = lazy_arrays(runner, runner.token)
        return self._dataset(runner, outputs, status)

    def compute(
        self,
        *,
        scheduler: Any = None,
        progress: bool = True,
        on_error: str = "raise",
        retries: int = 0,
        batch_size: int | None = None,
        workers: int | None = None,
        timeout: float | None = None,
    ) -> xr.Dataset:
        """Run every member now and return the results in memory.

        Parameters
        ----------
        scheduler : distributed.Client, cluster or str, optional
            Where to run: a dask client, cluster object, address (``tcp://host:8786``)
            or scheduler file; default: the active dask client, else the local pool
            (worker processes on this machine).
        progress : bool
            Show a progress line.
        on_error : {"raise", "record"}
            Stop at the first failing member, or record failures (status 2, NaN values).
        retries : int
            Extra attempts per failing member.
        batch_size : int, optional
            Members per task; default chosen from the measured cost of a member.
        workers : int, optional
            Worker processes of the local pool (default: every core); ignored when a
            scheduler is given or a client is active.
        timeout : float, optional
            Seconds a member may run; a member over its time is recorded as failed
            ("timed out after N s") and the run goes on (with ``on_error="raise"`` it
            stops the run). On the local pool a member stuck in compiled code has its
            worker process replaced; see ``docs/running.md``.

        Notes
        -----
        The first run probes its first members for the outputs and a member's cost; a
        later ``compute()`` of the same ensemble reuses both and runs without a probe.
        """
        self._check_fixed_size("compute()")
        _check_on_error(on_error, retries)
        timeout = _check_timeout(timeout)
        self.members()  # a run too large for this machine is refused before workers start
        if start_local_pool(scheduler, workers):  # forked workers, then xarray loads
            warm_up()
        with resolve_backend(scheduler, workers=workers) as backend:
            # a second compute() plans from what the first learned (the memo)
            options = (batch_size, on_error, retries, timeout, self._memory.learned)
            runner = self._runner_for(None, backend, *options)
            report = run_blocks(backend, runner, progress=progress, timeout=timeout)
        report.print_failures(progress)
        return self._dataset(runner, report.outputs, report.status)

    def _check_fixed_size(self, what: str) -> None:
        if self.adaptive is not None:
            msg = (
                f"{what} needs a fixed number of members, but this ensemble is adaptive "
                f"({self.adaptive!r}): its rounds run into a store, "
                "to_zarr(path, until=Precision(...))"
            )
            raise SpecError(msg)

    def to_zarr(
        self,
        path: Any,
        *,
        mode: str = "w-",
        until: Any = None,
        only: str | None = None,
        force: bool = False,
        scheduler: Any = None,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        on_error: str = "record",
        retries: int = 0,
        batch_size: int | None = None,
        workers: int | None = None,
        timeout: float | None = None,
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
            grid values). A missing store (or an empty folder) is created, and a
            half-created one created again. Nothing but a Zarr store is ever replaced:
            a folder with other files, or a file, is refused in every mode. An adaptive
            run resumes where it stopped: it finishes the round in progress, then
            decides again.
        until : Precision, dict or list of them, optional
            The precision target(s) of an adaptive ensemble (``seeds=Adaptive(...)`` or
            ``samples=Adaptive(...)``): rounds add members where the target is not met
            until every point meets it or reaches ``max``. Checked against the outputs
            before any member runs. With ``mode="resume"``, default: the stored target.
        only : {None, "failed", "pending"}
            With ``mode="resume"``: run only failed, or only pending, members. An
            adaptive run reruns its failed members with ``only="failed"`` (by default
            they stay failed, as the decisions counted them), then goes on.
        force : bool
            Break the writer lease of another process (only if it is surely dead).
        scheduler, progress, retries, batch_size, workers, timeout
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
            What is at the path may not be written with ``mode`` (the message says what
            was found); nothing is written.
        StoreMismatchError
            ``mode="resume"`` with a run that differs from the store's; nothing is written.
        StoreError
            Another live process holds the store's writer lease, or its lease or path
            cannot be read. ``LeaseLostError`` (a ``StoreError``): a newer writer took the
            lease while this run was paused; it stopped before writing.
        SpecError
            ``until`` does not fit the outputs (unknown variable, steps), or is given
            without an adaptive ensemble, or missing for one; nothing is written.
        """
        from .store import lifecycle  # the store's stack (zarr) loads when a store is used
        from .store.resume import todo_mask
        from .store.zarr_store import EnsembleStore

        _check_on_error(on_error, retries)
        timeout = _check_timeout(timeout)
        if only is not None and mode != "resume":
            msg = f"only={only!r} selects members of a store to rerun; it needs mode='resume'"
            raise ValueError(msg)
        store = EnsembleStore(str(path), storage_options)
        if self.growth is not None:
            from .adaptive.run import RunOptions

            options = RunOptions(on_error, retries, timeout, progress, force, only)
            where = {"scheduler": scheduler, "workers": workers, "batch_size": batch_size}
            return self._to_zarr_adaptive(store, mode, until, options, **where)
        if until is not None:
            from .adaptive.checks import refuse_until

            refuse_until(until, self.seeds)
        self._check_store(store, mode)  # refuses before anything is written
        self.members()  # a run too large for this machine is refused before workers start
        if start_local_pool(scheduler, workers):  # before the lease's thread: forked workers
            warm_up()  # xarray loads while the first members run
        with (
            lifecycle.writing(store, force=force) as store,  # the lease, before any write
            resolve_backend(scheduler, workers=workers) as backend,
        ):
            action, plan = self._check_store(store, mode)  # again, now the only writer
            runner = self._runner_for(plan, backend, batch_size, on_error, retries, timeout)
            template = self._dataset(runner, *placeholders(runner))
            grows = plan is not None and plan.grows
            lifecycle.lay_out(store, template, runner, action=action, grows=grows)
            todo = None if plan is None else todo_mask(store.status(), only)
            report = run_blocks(
                backend, runner, todo=todo, store=store, progress=progress, timeout=timeout
            )
            lifecycle.finish(store)
        report.print_failures(progress, where=store.path)
        return store.open_dataset()

    def _runner_for(
        self,
        plan: ResumePlan | None,
        backend: Any,
        batch_size: Any,
        on_error: str,
        retries: int,
        timeout: float | None,
        memo: list[Learned] | None = None,
    ) -> BlockRunner:
        """The runner of a new run (``plan`` None), or of the members a resumed store lacks."""
        if plan is not None:
            return self._job().runner(
                plan.members,
                plan.schema,
                on_error=on_error,
                retries=retries,
                member_timeout=timeout,
            )
        return self._runner(
            running=True,
            batch_size=batch_size,
            n_workers=backend.workers,
            on_error=on_error,
            retries=retries,
            timeout=timeout,
            backend=backend,
            memo=memo,
        )

    def _check_store(self, store: EnsembleStore, mode: str) -> tuple[str, ResumePlan | None]:
        """What ``mode`` does at the store (see ``lifecycle.check_target``); for a resume,
        the plan, checked against the store (nothing is written)."""
        from .store import lifecycle
        from .store.resume import plan_resume

        action = lifecycle.check_target(store, mode)
        if action != "resume":
            return action, None
        plan = plan_resume(
            store,
            spec=self.spec(),
            design=self.design,
            simulation=self.simulation,
            fixed=self.fixed,
        )
        return action, plan

    def _to_zarr_adaptive(
        self, store: EnsembleStore, mode: str, until: Any, options: RunOptions, **where: Any
    ) -> xr.Dataset:
        """The rounds of an adaptive run (``ensembles.adaptive.run``) into ``store``.

        As for a fixed run, the targets and the run are checked before anything is
        written, and again once the writer lease is held; the lease and the backend (its
        warm workers) are kept for every round.
        """
        from .adaptive.checks import check_run
        from .adaptive.run import run_adaptive
        from .store import lifecycle

        # the pilot's members: one too large for this machine is refused here
        declared = self.simulation.declared_schema({**self.members().params(0), **self.fixed})
        job = self._adaptive_job(where["batch_size"])
        check_run(store, mode, until, job, declared)  # refuses before anything is written
        if start_local_pool(where["scheduler"], where["workers"]):  # before the lease's thread
            warm_up()
        with (
            lifecycle.writing(store, force=options.force) as store,  # held for every round
            resolve_backend(where["scheduler"], workers=where["workers"]) as backend,
        ):
            job = self._adaptive_job(where["batch_size"], setup=True)
            action, targets = check_run(store, mode, until, job, declared)  # the only writer
            run_adaptive(store, job, targets, backend, options, action=action)
        return store.open_dataset()

    def _adaptive_job(self, batch_size: int | None, *, setup: bool = False) -> AdaptiveJob:
        """The adaptive run as plain values (with the shared setup, built once, if asked)."""
        from .adaptive.run import AdaptiveJob

        if self.growth is None:
            raise TypeError("not an adaptive ensemble")  # callers check self.growth
        return AdaptiveJob(
            self.simulation,
            self.growth,
            self.root_seed,
            self.fixed,
            self.spec(),
            self._job().setup if setup else None,
            batch_size or self.batch_size,
        )


# -- argument checks ---------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _check_design(design: Any) -> Design:
    if isinstance(design, Mapping):
        design = design_from_dict(design)
    if not isinstance(design, Design):
        msg = f"design must be a Design such as Grid(T=[1.5, 2.0]) or Sample(...), got {design!r}"
        raise DesignError(msg)
    return design


def _check_seeds(seeds: Any) -> int | Adaptive:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool) and seeds >= 1:
        return int(seeds)
    from .adaptive.checks import check_seeds_rule

    return check_seeds_rule(seeds)  # refuses anything else, saying what seeds= takes


def _check_root_seed(root_seed: Any) -> int:
    if root_seed is None:
        return int(np.random.SeedSequence().entropy)  # recorded with the results
    if (
        isinstance(root_seed, bool)
        or not isinstance(root_seed, (int, np.integer))
        or not 0 <= int(root_seed) < 2**128
    ):
        msg = f"root_seed must be an integer in [0, 2**128), got {root_seed!r}"
        raise DesignError(msg)
    return int(root_seed)


def _check_fixed(fixed: Any, design: Design) -> dict[str, Any]:
    values = {str(k): _json_value(v) for k, v in dict(fixed or {}).items()}
    clash = sorted(set(values) & set(design.params))
    if clash:
        msg = f"parameter(s) {clash!r} are both in the design and in fixed=; keep one"
        raise DesignError(msg)
    reserved = sorted(set(values) & set(RESERVED))
    if reserved:
        msg = (
            f"fixed= cannot set {reserved!r}: seeds come from root_seed and the seed index; "
            "use seeds= and root_seed="
        )
        raise DesignError(msg)
    for key, value in values.items():  # NaN != NaN: a store could never be resumed
        check_finite(value, f"fixed value {key!r}")
    return values


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        msg = f"batch_size must be a positive integer or None, got {batch_size!r}"
        raise DesignError(msg)
    return batch_size


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float, np.integer, np.floating))
        or not np.isfinite(timeout)
        or timeout <= 0
    ):
        msg = f"timeout must be a positive number of seconds per member or None, got {timeout!r}"
        raise ValueError(msg)
    return float(timeout)


def _check_on_error(on_error: str, retries: int) -> None:
    if on_error not in _ON_ERROR:
        msg = f"on_error must be 'raise' or 'record', got {on_error!r}"
        raise ValueError(msg)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        msg = f"retries must be a non-negative integer, got {retries!r}"
        raise ValueError(msg)
