r"""The two-dimensional Ising model, simulated with a numba-compiled Metropolis kernel.

The model is the square-lattice ferromagnet with periodic boundaries,

.. math::

    H = -J \sum_{\langle ij \rangle} s_i s_j - h \sum_i s_i, \qquad s_i = \pm 1,

in units where :math:`J = 1` and :math:`k_B = 1`. :func:`simulate` runs single-spin-flip
Metropolis sweeps on an ``L x L`` lattice and records the magnetization and energy per spin;
it follows the :mod:`~ensembles.simulations.contract` (declared outputs ``M`` and ``E`` on the
``sweep`` dimension, integer ``seed``), so it can be swept directly with an ensemble, e.g.
as ``"ensembles.models.ising:simulate"``.

The exact infinite-lattice results (Onsager, Yang) are provided for checking:
:func:`critical_temperature`, :func:`onsager_magnetization` and :func:`exact_energy`.

Implementation notes
--------------------
The lattice is stored as its two checkerboard sublattices ("black" sites with ``i + j``
even, "white" sites with ``i + j`` odd), each an ``int8`` array of ``L`` rows of ``L // 2``
sites: black site ``k`` of row ``i`` is lattice site ``(i, 2k + i % 2)`` and white site
``k`` is ``(i, 2k + 1 - i % 2)``. The four neighbours of black site ``(i, k)`` are then the
white sites ``(i ± 1, k)``, ``(i, k)`` and ``(i, k ∓ 1)`` (minus for even rows, plus for
odd rows; the white sublattice is the mirror image). Each row carries two ghost columns,
copies of its last and first sites, refreshed after the row is updated, so a half-sweep is
a plain loop over contiguous rows without any wrap-around or modulo. No site of a
sublattice neighbours another site of the same sublattice, so updating all of them in one
pass is an exact Metropolis sweep (checkerboard order); this needs an even ``L``.

Each sublattice column ``k`` has its own xorshift64* generator, seeded through splitmix64
from the member's ``seed``, so drawing one number per site of a row is a vectorizable loop
over independent generators. The top 53 bits of each output are compared with an integer
threshold ``round(min(1, exp(-dE / T)) * 2**53)``, precomputed for the ten possible
``(spin, local field)`` pairs and selected without a memory lookup. Neighbour sums, the
threshold selection and the flip are all branch-free, so LLVM vectorizes the row loop and
the time per attempted flip changes little with the acceptance rate. The magnetization and
bond sums are kept as integers and updated incrementally, so recording a sweep is free.

Examples
--------
>>> from ensembles.models.ising import critical_temperature, simulate
>>> out = simulate(T=1.8, L=16, n_sweeps=300, burn_in=100, thin=50, seed=7)
>>> sorted(out)
['E', 'M', 'sweep']
>>> out["sweep"]
array([150, 200, 250, 300])
>>> round(critical_temperature(), 6)
2.269185
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numba import njit

from ensembles.simulations.contract import Output, simulation

__all__ = ["critical_temperature", "exact_energy", "onsager_magnetization", "simulate"]

_INITS = ("up", "down", "random")
_SEED_LIMIT = 2**63
_ACCEPT_BITS = 53  # random numbers and thresholds are integers in [0, 2**53]
_ALWAYS = 2**_ACCEPT_BITS

# xorshift64* multiplier and splitmix64 constants.
_XS_MULT = np.uint64(0x2545F4914F6CDD1D)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


# --------------------------------------------------------------------------------------
# Exact results
# --------------------------------------------------------------------------------------
def critical_temperature() -> float:
    r"""Return the exact critical temperature of the square-lattice Ising model.

    Returns
    -------
    float
        :math:`T_c = 2 / \ln(1 + \sqrt{2}) \approx 2.269185` (units of :math:`J/k_B`).

    Examples
    --------
    >>> round(critical_temperature(), 6)
    2.269185
    """
    return 2.0 / math.log1p(math.sqrt(2.0))


def _temperatures(T: Any) -> np.ndarray:
    t = np.asarray(T, dtype=np.float64)
    if not np.all(t > 0) or not np.all(np.isfinite(t)):
        msg = f"T must be finite and > 0 (units of J/k_B), got {T!r}"
        raise ValueError(msg)
    return t


def _scalar_or_array(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values


def onsager_magnetization(T: Any) -> float | np.ndarray:
    r"""Return the exact spontaneous magnetization per spin of the infinite lattice.

    Onsager and Yang's result for zero field,
    :math:`m(T) = (1 - \sinh(2/T)^{-4})^{1/8}` below :math:`T_c` and 0 above.

    Parameters
    ----------
    T : float or array_like
        Temperature(s), finite and > 0.

    Returns
    -------
    float or numpy.ndarray
        The magnetization, a float for scalar ``T``.

    Raises
    ------
    ValueError
        If any temperature is not finite and positive.

    Examples
    --------
    >>> round(onsager_magnetization(2.0), 6)
    0.911319
    >>> onsager_magnetization([1.0, 3.0])
    array([0.99927575, 0.        ])
    """
    t = _temperatures(T)
    with np.errstate(over="ignore"):  # sinh(2 / T) overflows to inf for tiny T: m -> 1
        inv = 1.0 / np.sinh(2.0 / t)
    below = t < critical_temperature()
    m = np.where(below, np.abs(1.0 - inv**4) ** 0.125, 0.0)
    return _scalar_or_array(m)


def exact_energy(T: Any) -> float | np.ndarray:
    r"""Return the exact energy per spin of the infinite lattice in zero field.

    Onsager's result, with :math:`K = 1/T`,
    :math:`u = -\coth 2K \, [1 + \tfrac{2}{\pi} (2 \tanh^2 2K - 1) \, K_1(\kappa)]`,
    :math:`\kappa = 2 \sinh 2K / \cosh^2 2K`, where :math:`K_1` is the complete elliptic
    integral of the first kind (``scipy.special.ellipk`` takes :math:`m = \kappa^2`; here
    ``ellipkm1`` of :math:`1 - \kappa^2 = (2 \tanh^2 2K - 1)^2` is used for accuracy near
    :math:`T_c`, where the product tends to 0 and :math:`u = -\sqrt{2}`).

    Parameters
    ----------
    T : float or array_like
        Temperature(s), finite and > 0.

    Returns
    -------
    float or numpy.ndarray
        The energy per spin in units of :math:`J`, a float for scalar ``T``.

    Raises
    ------
    ValueError
        If any temperature is not finite and positive.

    Examples
    --------
    >>> round(exact_energy(2.0), 6)
    -1.745565
    >>> round(exact_energy(critical_temperature()), 6)
    -1.414214
    """
    from scipy.special import ellipkm1

    t = _temperatures(T)
    tanh_2k = np.tanh(2.0 / t)
    kappa_prime = 2.0 * tanh_2k**2 - 1.0
    p = kappa_prime**2  # 1 - kappa^2, zero exactly at T_c
    at_tc = p == 0.0
    k1 = ellipkm1(np.where(at_tc, 1.0, p))  # K(m = 1 - p) = K(m = kappa^2)
    bracket = 1.0 + (2.0 / np.pi) * np.where(at_tc, 0.0, kappa_prime * k1)
    u = -bracket / tanh_2k
    return _scalar_or_array(u)


# --------------------------------------------------------------------------------------
# Parameters and declared outputs
# --------------------------------------------------------------------------------------
def _integer(name: str, value: Any, valid: str) -> int:
    """``value`` as an int (integral floats accepted), else a ValueError naming ``valid``."""
    if isinstance(value, bool | np.bool_):
        ok = False
    elif isinstance(value, numbers.Integral):
        ok = True
    elif isinstance(value, numbers.Real):
        ok = math.isfinite(value) and float(value).is_integer()
    else:
        ok = False
    if not ok:
        msg = f"{name} must be an integer ({valid}), got {value!r}"
        raise ValueError(msg)
    return int(value)


def _real(name: str, value: Any, valid: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number ({valid}), got {value!r}"
        raise ValueError(msg)
    return float(value)


def _schedule(n_sweeps: Any, burn_in: Any, thin: Any) -> tuple[int, int, int]:
    """Validate the sweep schedule and return it as ints."""
    n_sweeps = _integer("n_sweeps", n_sweeps, ">= 1")
    if n_sweeps < 1:
        msg = f"n_sweeps must be >= 1, got {n_sweeps}"
        raise ValueError(msg)
    burn_in = _integer("burn_in", burn_in, f"0 <= burn_in < n_sweeps = {n_sweeps}")
    if not 0 <= burn_in < n_sweeps:
        msg = f"burn_in must satisfy 0 <= burn_in < n_sweeps = {n_sweeps}, got {burn_in}"
        raise ValueError(msg)
    room = n_sweeps - burn_in
    thin = _integer("thin", thin, f"1 <= thin <= n_sweeps - burn_in = {room}")
    if not 1 <= thin <= room:
        msg = (
            f"thin must satisfy 1 <= thin <= n_sweeps - burn_in = {room} so that at least "
            f"one sweep is recorded, got {thin}"
        )
        raise ValueError(msg)
    return n_sweeps, burn_in, thin


def _recorded_sweeps(n_sweeps: int, burn_in: int, thin: int) -> np.ndarray:
    """Sweep numbers (1-based) at which M and E are recorded."""
    return np.arange(burn_in + thin, n_sweeps + 1, thin, dtype=np.int64)


def _outputs(
    *, n_sweeps: int = 1000, burn_in: int = 100, thin: int = 1, **_: Any
) -> dict[str, Output]:
    """Declared outputs of :func:`simulate` for one member's parameters."""
    n = len(_recorded_sweeps(*_schedule(n_sweeps, burn_in, thin)))
    return {
        "M": Output(
            dims=("sweep",),
            shape=(n,),
            dtype="float64",
            attrs={"long_name": "magnetization per spin", "units": "1"},
        ),
        "E": Output(
            dims=("sweep",),
            shape=(n,),
            dtype="float64",
            attrs={"long_name": "energy per spin", "units": "J"},
        ),
    }


def _coords(
    *, n_sweeps: int = 1000, burn_in: int = 100, thin: int = 1, **_: Any
) -> dict[str, np.ndarray]:
    """Declared ``sweep`` coordinate of :func:`simulate` for one member's parameters."""
    return {"sweep": _recorded_sweeps(*_schedule(n_sweeps, burn_in, thin))}


def _thresholds(T: float, h: float) -> tuple[int, ...]:
    """Integer acceptance thresholds, indexed by ``(s * nn + 4) // 2 + 5 * (s + 1) // 2``.

    Flipping spin ``s`` whose four neighbours sum to ``nn`` costs
    ``dE = 2 * s * nn + 2 * h * s``; the flip is accepted when a uniform integer in
    ``[0, 2**53)`` is below ``round(min(1, exp(-dE / T)) * 2**53)``, so ``dE <= 0`` always
    flips and the acceptance probability is exact to within ``2**-54``.
    """
    table = []
    for s in (-1, 1):
        for x in range(-4, 5, 2):
            d_e = 2.0 * (x + h * s)
            p = 1.0 if d_e <= 0.0 else math.exp(-d_e / T)
            table.append(round(p * _ALWAYS))
    return tuple(table)


# --------------------------------------------------------------------------------------
# The numba kernel
# --------------------------------------------------------------------------------------
@njit(inline="always")
def _mix64(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """The splitmix64 output function: a bijective avalanche of the 64 bits of ``z``."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(nogil=True, cache=True)
def _seed_lanes(seed: int, n: int) -> np.ndarray:  # pragma: no cover - compiled
    """``n`` nonzero xorshift64* states: a splitmix64 sequence started at a hash of ``seed``."""
    lanes = np.empty(n, dtype=np.uint64)
    z = _mix64(np.uint64(seed) + _GOLDEN)
    for k in range(n):
        z += _GOLDEN
        v = _mix64(z)
        lanes[k] = v if v != np.uint64(0) else _GOLDEN
    return lanes


@njit(inline="always")
def _draw(lanes: np.ndarray, k: int) -> int:  # pragma: no cover - compiled
    """Advance generator ``k`` (xorshift64*) and return the top 53 bits of its output."""
    x = lanes[k]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    lanes[k] = x
    return np.int64((x * _XS_MULT) >> np.uint64(11))


@njit(inline="always")
def _pick(x: int, a: int, b: int, c: int, d: int, e: int) -> int:  # pragma: no cover
    """``a, b, c, d, e`` for ``x = -4, -2, 0, 2, 4``: selects, not a table load."""
    return e if x == 4 else (d if x == 2 else (c if x == 0 else (b if x == -2 else a)))


@njit(inline="always")
def _threshold(x: int, s: int, t: tuple) -> int:  # pragma: no cover - compiled
    """The acceptance threshold of spin ``s`` with ``x = s * nn`` (see :func:`_thresholds`)."""
    up = _pick(x, t[5], t[6], t[7], t[8], t[9])
    down = _pick(x, t[0], t[1], t[2], t[3], t[4])
    return up if s > 0 else down


@njit(nogil=True, cache=True)
def _half_sweep(
    spins: np.ndarray,
    other: np.ndarray,
    lanes: np.ndarray,
    t: tuple,
    parity: int,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Update every site of one sublattice; ``parity`` is 0 for black and 1 for white.

    Both arrays have shape ``(L, L // 2 + 2)``: sublattice column ``k`` is array column
    ``k + 1``, and columns 0 and ``L // 2 + 1`` are ghost copies of the last and first
    columns, so the horizontal neighbours of ``spins[i, k + 1]`` are ``other[i, k + 1]`` and
    ``other[i, k]`` (even ``i + parity``) or ``other[i, k + 2]`` (odd) without wrapping.
    Returns the changes of the spin sum and of the bond sum.
    """
    L = spins.shape[0]
    H = spins.shape[1] - 2
    d_m = 0
    d_b = 0
    for i in range(L):
        above = i - 1 if i > 0 else L - 1
        below = i + 1 if i < L - 1 else 0
        e = 2 * ((i & 1) ^ parity)
        for k in range(H):
            c = k + 1
            r = _draw(lanes, k)
            s = spins[i, c]
            x = s * (other[above, c] + other[below, c] + other[i, c] + other[i, k + e])
            flip = np.int64(r < _threshold(x, s, t))
            spins[i, c] = s - 2 * s * flip
            d_m -= 2 * s * flip
            d_b -= 2 * x * flip
        spins[i, 0] = spins[i, H]
        spins[i, H + 1] = spins[i, 1]
    return d_m, d_b


@njit(nogil=True, cache=True)
def _totals(black: np.ndarray, white: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """Spin sum and bond sum (sum over nearest-neighbour pairs of s_i s_j) of the lattice."""
    L = black.shape[0]
    H = black.shape[1] - 2
    m = 0
    b = 0
    for i in range(L):
        above = i - 1 if i > 0 else L - 1
        below = i + 1 if i < L - 1 else 0
        e = 2 * (i & 1)
        for k in range(H):
            c = k + 1
            nn = white[above, c] + white[below, c] + white[i, c] + white[i, k + e]
            b += black[i, c] * nn
            m += black[i, c] + white[i, c]
    return m, b


@njit(nogil=True, cache=True)
def _fill(
    black: np.ndarray, white: np.ndarray, lanes: np.ndarray, mode: int
) -> None:  # pragma: no cover
    """Initial spins: all ``mode`` (+1 or -1), or independent random signs for ``mode == 0``."""
    L = black.shape[0]
    H = black.shape[1] - 2
    for lattice in (black, white):
        for i in range(L):
            for k in range(H):
                if mode == 0:
                    lattice[i, k + 1] = 1 if _draw(lanes, k) >> 52 else -1
                else:
                    lattice[i, k + 1] = mode
            lattice[i, 0] = lattice[i, H]
            lattice[i, H + 1] = lattice[i, 1]


@njit(nogil=True, cache=True)
def _metropolis(
    black: np.ndarray,
    white: np.ndarray,
    lanes: np.ndarray,
    t: tuple,
    h: float,
    n_sweeps: int,
    burn_in: int,
    thin: int,
    m_out: np.ndarray,
    e_out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Run ``n_sweeps`` checkerboard sweeps, recording M and E per spin after some of them.

    ``t`` holds the ten acceptance thresholds of :func:`_thresholds`; ``m_out`` and ``e_out``
    receive one value per recorded sweep.
    """
    n_spins = 2.0 * black.shape[0] * (black.shape[1] - 2)  # ghost columns excluded
    m, b = _totals(black, white)
    j = 0
    for sweep in range(1, n_sweeps + 1):
        d_m, d_b = _half_sweep(black, white, lanes, t, 0)
        m += d_m
        b += d_b
        d_m, d_b = _half_sweep(white, black, lanes, t, 1)
        m += d_m
        b += d_b
        if sweep > burn_in and (sweep - burn_in) % thin == 0:
            m_out[j] = m / n_spins
            e_out[j] = (-b - h * m) / n_spins
            j += 1


# --------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------
def _run(
    *,
    T: float,
    L: int = 32,
    n_sweeps: int = 1000,
    burn_in: int = 100,
    thin: int = 1,
    h: float = 0.0,
    init: str = "up",
    seed: int,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validate, run, and return ``(outputs, final lattice as an L x L int8 array)``."""
    temperature = _real("T", T, "finite and > 0")
    if not (math.isfinite(temperature) and temperature > 0.0):
        msg = f"T must be finite and > 0 (units of J/k_B), got {T!r}"
        raise ValueError(msg)
    size = _integer("L", L, "even and >= 2")
    if size < 2 or size % 2:
        msg = (
            f"L must be an even integer >= 2 (the checkerboard update needs an even "
            f"linear size), got {size}"
        )
        raise ValueError(msg)
    n_sweeps, burn_in, thin = _schedule(n_sweeps, burn_in, thin)
    field = _real("h", h, "finite")
    if not math.isfinite(field):
        msg = f"h must be a finite real number, got {h!r}"
        raise ValueError(msg)
    if init not in _INITS:
        msg = f"init must be one of {_INITS!r}, got {init!r}"
        raise ValueError(msg)
    seed = _integer("seed", seed, f"0 <= seed < 2**63 = {_SEED_LIMIT}")
    if not 0 <= seed < _SEED_LIMIT:
        msg = f"seed must satisfy 0 <= seed < 2**63 = {_SEED_LIMIT}, got {seed}"
        raise ValueError(msg)

    sweeps = _recorded_sweeps(n_sweeps, burn_in, thin)
    half = size // 2
    black = np.empty((size, half + 2), dtype=np.int8)  # with ghost columns, see _half_sweep
    white = np.empty((size, half + 2), dtype=np.int8)
    lanes = _seed_lanes(seed, half)
    _fill(black, white, lanes, {"up": 1, "down": -1, "random": 0}[init])
    m_out = np.empty(len(sweeps), dtype=np.float64)
    e_out = np.empty(len(sweeps), dtype=np.float64)
    thresholds = _thresholds(temperature, field)
    _metropolis(black, white, lanes, thresholds, field, n_sweeps, burn_in, thin, m_out, e_out)
    return {"M": m_out, "E": e_out, "sweep": sweeps}, _assemble(black, white)


def _assemble(black: np.ndarray, white: np.ndarray) -> np.ndarray:
    """The ``L x L`` lattice from its two sublattices (black sites have ``i + j`` even)."""
    black = black[:, 1:-1]  # drop the ghost columns
    white = white[:, 1:-1]
    L = black.shape[0]
    spins = np.empty((L, L), dtype=np.int8)
    spins[0::2, 0::2] = black[0::2]
    spins[1::2, 1::2] = black[1::2]
    spins[0::2, 1::2] = white[0::2]
    spins[1::2, 0::2] = white[1::2]
    return spins


def _simulate(
    *,
    T: float,
    L: int = 32,
    n_sweeps: int = 1000,
    burn_in: int = 100,
    thin: int = 1,
    h: float = 0.0,
    init: str = "up",
    seed: int,
) -> dict[str, np.ndarray]:
    r"""Simulate the 2D Ising model with checkerboard Metropolis sweeps.

    One sweep attempts one flip per spin. After ``burn_in`` sweeps, the magnetization and
    energy per spin are recorded every ``thin`` sweeps, i.e. after sweeps
    ``burn_in + thin, burn_in + 2 * thin, ...`` up to ``n_sweeps``: that is
    ``(n_sweeps - burn_in) // thin`` records. The compiled kernel releases the GIL.

    Parameters
    ----------
    T : float
        Temperature in units of :math:`J/k_B`, finite and > 0
        (:math:`T_c \approx 2.269`, see :func:`critical_temperature`).
    L : int, default 32
        Linear lattice size: ``L x L`` spins with periodic boundaries; even and >= 2.
    n_sweeps : int, default 1000
        Total number of sweeps, burn-in included; >= 1.
    burn_in : int, default 100
        Sweeps discarded before the first record; ``0 <= burn_in < n_sweeps``.
    thin : int, default 1
        Record every ``thin``-th sweep after burn-in; ``1 <= thin <= n_sweeps - burn_in``.
    h : float, default 0.0
        External magnetic field (units of :math:`J`), finite.
    init : {"up", "down", "random"}, default "up"
        Initial configuration: all spins +1, all -1, or independent random signs (a hot
        start; below :math:`T_c` it coarsens slowly and can stay in a striped state for a
        long time on periodic lattices, so prefer ``"up"`` there).
    seed : int
        Seed in ``[0, 2**63)``. The same seed gives bit-identical results.

    Returns
    -------
    dict
        ``"M"``: float64 array of the signed magnetization per spin,
        ``"E"``: float64 array of the energy per spin (:math:`-\sum s_i s_j / N - h M`),
        ``"sweep"``: int64 array of the recorded sweep numbers (1-based).

    Raises
    ------
    ValueError
        If a parameter is outside its valid range; the message names the value and the range.

    Examples
    --------
    >>> out = simulate(T=1.5, L=16, n_sweeps=200, burn_in=100, thin=25, seed=42)
    >>> out["sweep"]
    array([125, 150, 175, 200])
    >>> bool(out["M"].mean() > 0.9)
    True
    """
    outputs, _ = _run(
        T=T, L=L, n_sweeps=n_sweeps, burn_in=burn_in, thin=thin, h=h, init=init, seed=seed
    )
    return outputs


# The plain function stays importable as ``_simulate`` so that the Simulation pickles by
# reference (the name ``simulate`` is bound to the Simulation object itself).
simulate = simulation(
    _simulate,
    outputs=_outputs,
    coords=_coords,
    releases_gil=True,
    name="ensembles.models.ising:simulate",
)
