"""A process that races others for a store, trial after trial (used by tests/test_lease.py).

    python -m tests._racer ACTION WORKDIR BASE RACER TRIALS [STORAGE_OPTIONS_JSON]

Imports and warms up once, prints ``ready``, then for each trial ``i`` waits for the file
``WORKDIR/go-i``, acts on the store ``BASE/s-i.zarr`` and writes ``WORKDIR/result-i-RACER``
(``ok``, ``won``, or ``error: Type: message``). ACTION is ``lease`` (take the writer lease,
report, and hold it until ``WORKDIR/done-i`` appears), ``create`` (``to_zarr(mode="w-")``),
``resume`` (``to_zarr(mode="resume")``) or ``pause`` (``to_zarr`` of a run whose member
stops this process with SIGSTOP; see ``tests.store_sims.pausing``).
"""

from __future__ import annotations

import json
import os
import sys
import time

import ensembles as ens
from ensembles.store.lease import Lease
from ensembles.store.zarr_store import EnsembleStore

from . import store_sims

A_VALUES = [1.0, 2.0, 3.0, 4.0]


def logged_ensemble(log: str) -> ens.Ensemble:
    """The run raced for: 12 members in blocks of 2, each logging the process running it."""
    return ens.Ensemble(
        store_sims.logged,
        ens.Grid(a=A_VALUES),
        seeds=3,
        root_seed=11,
        fixed={"log": log, "delay": 0.01},
        batch_size=2,
    )


def pausing_ensemble(flag: str, stop_at: float) -> ens.Ensemble:
    """A run whose member ``a == stop_at`` pauses its process (once per ``flag``)."""
    return ens.Ensemble(
        store_sims.pausing,
        ens.Grid(a=A_VALUES),
        seeds=3,
        root_seed=12,
        fixed={"flag": flag, "stop_at": stop_at},
        batch_size=2,
    )


def _wait_for(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.001)


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _act(
    action: str, work: str, url: str, i: int, racer: str, options: dict, client: object
) -> str:
    store = EnsembleStore(url, options or None)
    if action == "lease":  # report while holding the lease, release when told to
        lease = Lease(store)
        lease.acquire()
        _write(os.path.join(work, f"result-{i}-{racer}"), "won")
        _wait_for(os.path.join(work, f"done-{i}"))
        lease.release()
        return "won"
    if action == "pause":
        e = pausing_ensemble(os.path.join(work, f"flag-{i}"), A_VALUES[i % len(A_VALUES)])
    else:
        e = logged_ensemble(os.path.join(work, f"log-{i}"))
    mode = "w-" if action in ("create", "pause") else "resume"
    e.to_zarr(
        url, mode=mode, storage_options=options or None, progress=False, **_where(action, client)
    )
    return "ok"


def _where(action: str, client: object) -> dict:
    """pause: a dask cluster of one thread in this process, so that the member stopping
    its process stops the writer itself while no block is being written; else the local
    pool of two workers."""
    return {"scheduler": client} if action == "pause" else {"workers": 2}


def main(argv: list[str]) -> None:
    action, work, base, racer, trials = argv[:5]
    options = json.loads(argv[5]) if len(argv) > 5 else {}
    client = None
    if action == "pause":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        )
        client = Client(cluster)
    if action != "lease":  # start the workers before the first trial
        warm = logged_ensemble(os.path.join(work, f"warm-{racer}.log"))
        warm.to_zarr(
            os.path.join(work, f"warm-{racer}.zarr"), progress=False, **_where(action, client)
        )
    print("ready", flush=True)
    for i in range(int(trials)):
        _wait_for(os.path.join(work, f"go-{i}"))
        try:
            result = _act(action, work, f"{base}/s-{i}.zarr", i, racer, options, client)
        except Exception as exc:
            result = f"error: {type(exc).__name__}: {exc}"
        _write(os.path.join(work, f"result-{i}-{racer}"), result)


if __name__ == "__main__":
    main(sys.argv[1:])
