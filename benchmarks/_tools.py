"""The same members through each tool: a plain loop, joblib, pipefunc and ensembles.

Every runner takes the parameter values ``xs`` and the member seeds ``seeds`` (shape
``(len(xs), n_seeds)``: ensembles' own member seeds, so every tool computes the very same
numbers) and returns a function that runs all members and gives back ``y`` with the seeds'
shape. Building the runner (imports, executors, the ensemble) is part of a cold start.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import _members
import numpy as np

#: the member functions by workload: (keyword form for ensembles, positional for the rest)
WORKLOADS = {
    "tiny": ("tiny", "tiny_plain"),
    "cpu": ("cpu_bound", "cpu_plain"),
    "cpu_logged": ("cpu_logged", "cpu_logged_plain"),
}
ROOT_SEED = 20261201


def design(n_members: int, n_seeds: int = 10) -> tuple[np.ndarray, int]:
    """Parameter values (one per design point) and seeds per point for ``n_members``."""
    return np.linspace(0.0, 1.0, n_members // n_seeds), n_seeds


def member_seeds(workload: str, xs: np.ndarray, n_seeds: int) -> np.ndarray:
    """The seeds ensembles gives these members (from the lazy Dataset: public API)."""
    import ensembles as ens

    fn = getattr(_members, WORKLOADS[workload][0])
    e = ens.Ensemble(fn, ens.Grid(x=xs), seeds=n_seeds, root_seed=ROOT_SEED)
    return e.to_dataset()["member_seed"].values


def digest(y: Any) -> str:
    """A short fingerprint of the results (rounded, so the same numbers agree)."""
    a = np.round(np.asarray(y, dtype=float), 9)
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


def loop(workload: str, xs, seeds, **_: Any) -> Callable[[], np.ndarray]:
    fn = getattr(_members, WORKLOADS[workload][1])

    def run() -> np.ndarray:
        return np.array([[fn(x, int(s)) for s in row] for x, row in zip(xs, seeds, strict=True)])

    return run


def joblib(workload: str, xs, seeds, cache: str | None = None, **_: Any) -> Callable[[], Any]:
    """``Parallel(n_jobs=2)``; with ``cache``, calls memoized on disk by ``joblib.Memory``."""
    from joblib import Memory, Parallel, delayed

    fn = getattr(_members, WORKLOADS[workload][1])
    if cache is not None:
        fn = Memory(cache, verbose=0).cache(fn)
    parallel = Parallel(n_jobs=2)

    def run() -> np.ndarray:
        out = parallel(
            delayed(fn)(x, int(s)) for x, row in zip(xs, seeds, strict=True) for s in row
        )
        return np.asarray(out, dtype=float).reshape(np.shape(seeds))

    return run


def pipefunc(
    workload: str,
    xs,
    seeds,
    folder: str,
    storage: str = "file_array",
    resume: bool = False,
    **_: Any,
) -> Callable[[], np.ndarray]:
    """``pipeline.map`` over ``x[i], seed[i, j] -> y[i, j]`` on a 2-process pool."""
    from concurrent.futures import ProcessPoolExecutor

    from pipefunc import Pipeline
    from pipefunc import pipefunc as make

    fn = getattr(_members, WORKLOADS[workload][1])
    pipeline = Pipeline([make(output_name="y", mapspec="x[i], seed[i, j] -> y[i, j]")(fn)])
    executor = ProcessPoolExecutor(2)
    inputs = {"x": np.asarray(xs), "seed": np.asarray(seeds, dtype=np.int64)}

    def run() -> np.ndarray:
        result = pipeline.map(
            inputs,
            run_folder=folder,
            parallel=True,
            executor=executor,
            storage=storage,
            show_progress=False,
            resume=resume,
        )
        return np.asarray(result["y"].output, dtype=float)

    return run


def ensembles(
    workload: str, xs, seeds, folder: str | None = None, resume: bool = False, **_: Any
) -> Callable[[], np.ndarray]:
    """``Ensemble.compute()``, or ``to_zarr(folder)`` (``mode="resume"`` with ``resume``)."""
    import ensembles as ens

    fn = getattr(_members, WORKLOADS[workload][0])
    e = ens.Ensemble(fn, ens.Grid(x=np.asarray(xs)), seeds=np.shape(seeds)[1], root_seed=ROOT_SEED)

    def run() -> np.ndarray:
        if folder is None:
            ds = e.compute(progress=False)
        else:
            ds = e.to_zarr(folder, mode="resume" if resume else "w", progress=False)
        return ds["y"].values

    return run


RUNNERS = {"loop": loop, "joblib": joblib, "pipefunc": pipefunc, "ensembles": ensembles}
