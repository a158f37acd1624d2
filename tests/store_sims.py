"""Simulations for the store's safety tests (importable by worker processes)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from ensembles.simulations.contract import simulation


@simulation(releases_gil=True)
def logged(*, seed, a, log, delay=0.0):
    """Logs ``pid a seed`` per call (to tell which process ran which member)."""
    if delay:
        time.sleep(delay)
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {a} {seed}\n")
    rng = np.random.default_rng(seed)
    return {"y": a + rng.standard_normal(3)}


@simulation(releases_gil=True)
def pausing(*, seed, a, flag, stop_at):
    """Stops its own process (SIGSTOP) in the member ``a == stop_at``, once per ``flag``.

    The signal goes to the calling thread, which stops at once, inside the member; the
    process's other threads (driver, lease heartbeat) stop with it. With the threaded
    local cluster (``releases_gil``) and one worker thread, no block is being written.
    """
    if a == stop_at and not os.path.exists(flag):
        with open(flag, "w") as f:
            f.write(str(os.getpid()))
        signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)
    rng = np.random.default_rng(seed)
    return {"y": a + rng.standard_normal(2)}


def labelled(*, seed, model, x=1.0):
    """A design over text values (``model``)."""
    return {"y": float(len(model)) + x + seed % 7}


def many_outputs(*, seed, a, n=60):
    """``n`` outputs: creating the store takes ``n`` array creations."""
    return {f"o{i:03d}": float(a + i) for i in range(n)}
