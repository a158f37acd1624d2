"""Small simulations used by the tests (importable by dask worker processes)."""

from __future__ import annotations

import os

import numpy as np

from ensembles.simulations.contract import Output, Simulation, simulation


def walk(*, rng, drift, n=5):
    """A random walk: depends on the member's generator."""
    return {"x": np.cumsum(drift + rng.standard_normal(n)), "final": float(drift)}


def seeded(*, seed, a, b=1.0):
    """Returns its inputs, so tests can check what each member received."""
    return {"got_a": float(a), "got_b": float(b), "seed_lo": float(seed % 1_000_003), "y": a * b}


def counting(*, seed, a, log):
    """Appends one line per call to ``log`` (works across processes)."""
    with open(log, "a") as f:
        f.write(f"{a} {seed}\n")
    return {"y": np.full(3, float(a))}


@simulation(
    outputs=lambda *, n=4, **_: {
        "z": Output(dims=("step",), shape=(n,), dtype="float64", attrs={"units": "m"})
    },
    coords=lambda *, n=4, **_: {"step": np.arange(n) * 10},
)
def declared(*, seed, a, n=4, log=None):
    """Outputs declared up front: building the graph runs nothing."""
    if log is not None:
        with open(log, "a") as f:
            f.write("call\n")
    rng = np.random.default_rng(seed)
    return {"z": a + rng.standard_normal(n), "step": np.arange(n) * 10}


def flaky(*, seed, a):
    """Raises for negative ``a``."""
    if a < 0:
        msg = f"a must be non-negative, got {a}"
        raise ValueError(msg)
    return {"y": float(a)}


def flaky_ab(*, seed, a, b):
    """Raises for negative ``a``; two parameters, for reports that name both."""
    if a < 0:
        msg = "a must be non-negative"
        raise ValueError(msg)
    return {"y": float(a * b)}


def ragged(*, seed, a):
    """Returns a shape that depends on ``a``: an output mismatch for a != first."""
    return {"y": np.zeros(int(a))}


def pid(*, seed, a):
    return {"pid": float(os.getpid())}


def echo_param(*, seed, a):
    """Returns an output named like its parameter: refused with a clear message."""
    return {"a": float(a)}


@simulation(releases_gil=True)
def slow(*, seed, a, log, delay=0.05):
    """Sleeps (releasing the GIL), logs each call: for crash and resume tests."""
    import time

    time.sleep(delay)
    with open(log, "a") as f:
        f.write(f"{a} {seed}\n")
    rng = np.random.default_rng(seed)
    return {"y": a + rng.standard_normal(3)}


def make_env(log=None):
    """An 'expensive' shared initial state; logs each time it is built."""
    if log is not None:
        with open(log, "a") as f:
            f.write("setup\n")
    return {"offsets": [10.0, 20.0], "grid": np.arange(4.0)}


def uses_env(*, seed, a, env):
    """Reads the shared state, then tries to corrupt it for later members."""
    y = a + env["offsets"][0] + env["grid"].sum()
    env["offsets"][0] = -1e9
    env["grid"] = None
    return {"y": float(y)}


def uses_array_env(*, seed, a, env):
    """A shared array arrives read-only."""
    try:
        env[0] = 99.0
        wrote = 1.0
    except ValueError:
        wrote = 0.0
    return {"y": float(a + env.sum()), "wrote": wrote}


# -- added for the runner and cluster tests (tests/test_runner.py, tests/test_distributed.py)


def _in_worker() -> bool:
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def slow_walk(*, rng, drift, n=5, delay=0.02):
    """``walk`` that takes ``delay`` seconds: long enough to kill a worker mid-run."""
    import time

    time.sleep(delay)
    return {"x": np.cumsum(drift + rng.standard_normal(n)), "final": float(drift)}


def kills_worker(*, seed, a, bad=13.0):
    """SIGKILLs the dask worker process running it when ``a == bad`` (never the client)."""
    import signal

    if a == bad and _in_worker():
        os.kill(os.getpid(), signal.SIGKILL)
    return {"y": float(a)}


def square_range(shared, item):
    """A ``run_tasks`` task: squares of ``range(*item)`` (plus ``shared``)."""
    lo, hi = item
    return [i * i + shared for i in range(lo, hi)]


def fail_on_three(shared, item):
    """A ``run_tasks`` task that raises a ValueError for the item 3."""
    if item == 3:
        msg = f"item {item} is bad"
        raise ValueError(msg)
    return item


def killer_range(log_dir, item):
    """A ``run_tasks`` task over ``range(*item)`` that SIGKILLs its worker at 13.

    Writes ``start end`` times per item to ``log_dir`` so tests can check that the
    parts of a split item never ran at the same time.
    """
    import signal
    import time

    lo, hi = item
    start = time.time()
    for i in range(lo, hi):
        if i == 13 and _in_worker():
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)
    with open(os.path.join(log_dir, f"{lo}-{hi}-{os.getpid()}-{start}"), "w") as f:
        f.write(f"{start} {time.time()}\n")
    return list(range(lo, hi))


def as_dataset(*, seed, a, n=3):
    """Returns an xarray.Dataset: its dims and coordinates are kept."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"v": (("t",), a + rng.standard_normal(n), {"units": "m/s"})},
        coords={"t": np.arange(n) * 0.5},
    )


def moving_coord(*, seed, a):
    """Its output coordinate depends on the parameter: refused, naming the member."""
    import xarray as xr

    return xr.Dataset({"v": (("t",), np.zeros(2))}, coords={"t": [a, a + 1]})


def noise_and_steps(*, seed, a, n=2000):
    """Two outputs: normal noise (incompressible) and a slowly rising staircase."""
    rng = np.random.default_rng(seed)
    return {"noise": rng.standard_normal(n), "steps": np.floor(np.arange(n) / 100.0) + a}


def shape_shifter(*, seed, a):
    """Scalar ``y``; returns an array, a huge int or a float for some ``a``."""
    if a == 2.0:
        return {"y": np.zeros(3)}
    if a == 3.0:
        return {"y": 2**70}
    if a == 4.0:
        return {"y": "text"}
    return {"y": float(a)}


@simulation(seed_bits=31)
def small_seed(*, seed, a):
    """Like R's set.seed: refuses seeds above 2**31 - 1; returns the seed it received."""
    if not 0 <= seed <= 2**31 - 1:
        msg = f"supplied seed {seed} is not a valid integer"
        raise ValueError(msg)
    return {"got_seed": seed, "y": float(a)}


def misbehaves(*, seed, a, driver, kill=(), sigkill=(), sleep=(), spin=(), stuck=()):
    """Kills its worker, sleeps, spins or hangs in uninterruptible code, by ``a``.

    Never in the test process itself (``driver`` is its pid), so planning on the client
    stays safe whatever the member does.
    """
    import signal
    import time

    here = os.getpid() != driver
    if here and a in kill:
        os._exit(3)
    if here and a in sigkill:
        os.kill(os.getpid(), signal.SIGKILL)
    if a in sleep:
        time.sleep(600)
    if a in spin:
        while True:
            pass
    if a in stuck:  # like compiled code that ignores interruptions: only a kill stops it
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(600)
    return {"y": float(a)}


def total(*, seed, **params):
    """Sums its parameters, whatever they are named."""
    return {"y": float(sum(params.values()))}


# -- bare results: one number or array is one output ---------------------------------------


def energy(*, seed, T):
    """A bare Python float: the output is named ``energy``."""
    return -2.0 * T + (seed % 1000) / 1000.0


def energy32(*, seed, T):
    """A bare numpy scalar (float32)."""
    return np.float32(T * 0.5)


def level(*, seed, T):
    """A bare 0-d array."""
    return np.array(T + 1.0)


def trace(*, rng, T, n=4):
    """A bare 1-d array."""
    return T + rng.standard_normal(n)


def grid(*, seed, T):
    """A bare 2-d array."""
    return np.full((2, 3), T) + np.arange(3)


def listed(*, seed, T):
    """A bare list."""
    return [T, 2.0 * T, 3.0 * T]


@simulation(outputs={"E": Output(dims=("t",), shape=(3,), dtype="float64")})
def declared_bare(*, seed, T):
    """A bare array stored as its one declared output."""
    return np.arange(3.0) * T


def pair(*, seed, T):
    """A tuple: refused (it reads as two outputs)."""
    return T, 2 * T


# -- a simulation written against the contract itself ----------------------------------------


class Polynomial(Simulation):
    """``c0 + c1 * x + noise``: a Simulation subclass that is neither a function nor an adapter.

    It takes ``member=`` (``takes_member``) and returns the member's flat index with it.
    """

    takes_member = True

    def __init__(self, scale: float = 0.1) -> None:
        super().__init__(name="tests:polynomial", outputs={"y": ("x_dim",)}, seed_bits=40)
        self.scale = scale

    @property
    def seed_argument(self):
        return "rng"

    @property
    def parameters(self):
        return ("c0", "c1")

    @property
    def required(self):
        return ("c0", "c1")

    def call(self, params, seed, member=None):
        rng = np.random.default_rng(seed)
        x = np.arange(3.0)
        y = params["c0"] + params["c1"] * x + self.scale * rng.standard_normal(3)
        return {"y": y, "index": -1 if member is None else member["member"]}

    def to_dict(self):
        return {"function": "tests.sims:Polynomial"}


@simulation(
    outputs=lambda *, n=4, **_: {
        "y": Output(dims=(), shape=(), dtype="float64"),
        "z": Output(dims=("step",), shape=(n,), dtype="float64"),
    },
    coords=lambda *, n=4, **_: {"step": np.arange(n) * 10},
    releases_gil=True,
)
def spread(*, seed, a, n=4, log=None, delay=0.0, fail_flag=None, gate=None, gate_after=0):
    """Normal members whose spread is ``a`` (for adaptive runs); logs each call.

    While the file ``fail_flag`` exists, members whose seed is a multiple of 5 fail. While
    the file ``gate`` exists, members that start once ``log`` holds ``gate_after`` calls
    wait (at most 5 minutes), so a test can act while a later round is running.
    """
    import time

    if fail_flag is not None and os.path.exists(fail_flag) and seed % 5 == 0:
        msg = f"seed {seed} fails while {fail_flag} exists"
        raise ValueError(msg)
    if gate is not None and log is not None and os.path.exists(log):
        with open(log) as f:
            calls = sum(1 for _ in f)
        deadline = time.monotonic() + 300
        while calls >= gate_after and os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
    if delay:
        time.sleep(delay)
    if log is not None:
        with open(log, "a") as f:
            f.write(f"{a} {seed}\n")
    rng = np.random.default_rng(seed)
    return {"y": rng.normal(0.0, a), "z": a + rng.normal(0.0, a, size=n)}


# -- the plain per-member loop: results of changing kinds -------------------------------------


def mixed_kinds(*, seed, a):
    """``y`` of a different scalar type by ``a`` (float, float32, int64, bool, float64), and
    the seed (a Python int); raises for ``a == 3``, an array where a scalar was promised
    for ``a == 7``."""
    if a == 3.0:
        raise ValueError(f"three is bad (seed {seed})")
    if a == 7.0:
        return {"y": np.zeros(2), "s": seed}
    kinds = [float, np.float32, lambda v: np.int64(int(v)), lambda v: v > 2.0, np.float64]
    return {"y": kinds[int(a) % 5](a), "s": seed}
