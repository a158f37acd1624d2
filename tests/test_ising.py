"""Tests of the 2D Ising model: exact results, the simulation contract, determinism, errors.

Statistical tolerances are ``5 * standard error`` (batch means over the recorded series,
which accounts for autocorrelation) plus, where it matters, a bound on the finite-size
correction. The seeds are fixed, so the tests are deterministic; the tolerances justify
why they pass for any seed with overwhelming probability.
"""

from __future__ import annotations

import itertools
import math
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ensembles.models import ising
from ensembles.models.ising import (
    critical_temperature,
    exact_energy,
    onsager_magnetization,
    simulate,
)

TC = 2.0 / math.log(1.0 + math.sqrt(2.0))


def standard_error(x: np.ndarray, n_batches: int = 25) -> float:
    """Batch-means standard error of the mean of a correlated series."""
    n = len(x) // n_batches
    means = x[: n * n_batches].reshape(n_batches, n).mean(axis=1)
    return float(means.std(ddof=1) / math.sqrt(n_batches))


def lattice_energy_and_magnetization(spins: np.ndarray, h: float) -> tuple[float, float]:
    """Energy and magnetization per spin of an L x L periodic lattice, from scratch."""
    s = spins.astype(np.int64)
    bonds = (s * (np.roll(s, 1, axis=0) + np.roll(s, 1, axis=1))).sum()
    return float((-bonds - h * s.sum()) / s.size), float(s.mean())


# --------------------------------------------------------------------------------------
# Exact results
# --------------------------------------------------------------------------------------
def test_public_api() -> None:
    assert ising.__all__ == [
        "critical_temperature",
        "exact_energy",
        "onsager_magnetization",
        "simulate",
    ]
    for name in ising.__all__:
        assert getattr(ising, name).__doc__


def test_critical_temperature() -> None:
    assert critical_temperature() == pytest.approx(2.269185314213022, rel=1e-15)


def test_onsager_magnetization() -> None:
    assert onsager_magnetization(2.0) == pytest.approx(0.9113193778775, rel=1e-12)
    assert onsager_magnetization(1e-3) == 1.0  # sinh overflows: no warning, m -> 1
    assert onsager_magnetization(TC * (1 + 1e-12)) == 0.0
    assert onsager_magnetization(TC * (1 - 1e-6)) == pytest.approx(0.0, abs=0.25)
    m = onsager_magnetization(np.array([1.0, 2.0, 2.2, 3.0]))
    assert isinstance(m, np.ndarray)
    assert m.shape == (4,)
    assert np.all(np.diff(m) <= 0)
    assert m[-1] == 0.0


def onsager_free_energy(K: float, n: int = 256) -> float:
    """-beta * f per spin from Onsager's double integral (midpoint rule, exponentially exact)."""
    theta = (np.arange(n) + 0.5) * (math.pi / n)
    c = np.cos(theta)
    integrand = np.log(math.cosh(2 * K) ** 2 - math.sinh(2 * K) * (c[:, None] + c[None, :]))
    return math.log(2.0) + integrand.mean() / 2.0


@pytest.mark.parametrize("T", [0.8, 1.8, 2.0, 2.6, 3.0, 6.0])
def test_exact_energy_is_derivative_of_onsager_free_energy(T: float) -> None:
    # u = -d(-beta f)/d beta, by central differences of an independent formula
    d = 1e-5
    u = -(onsager_free_energy(1 / T + d) - onsager_free_energy(1 / T - d)) / (2 * d)
    assert exact_energy(T) == pytest.approx(u, abs=1e-7)


def test_exact_energy_limits() -> None:
    assert exact_energy(TC) == pytest.approx(-math.sqrt(2.0), abs=1e-12)
    assert exact_energy(TC * (1 + 1e-9)) == pytest.approx(-math.sqrt(2.0), abs=1e-6)
    assert exact_energy(0.01) == -2.0  # ground state
    assert exact_energy(1000.0) == pytest.approx(-2.0 / 1000.0, rel=1e-5)  # high-T series
    u = exact_energy([1.0, 2.0, 3.0])
    assert isinstance(u, np.ndarray)
    assert np.all(np.diff(u) > 0)


@pytest.mark.parametrize("func", [onsager_magnetization, exact_energy], ids=["onsager", "energy"])
@pytest.mark.parametrize("T", [0.0, -1.0, math.nan, math.inf], ids=["zero", "neg", "nan", "inf"])
def test_exact_results_reject_bad_temperatures(func, T: float) -> None:
    with pytest.raises(ValueError, match=r"T must be finite and > 0"):
        func(T)


# --------------------------------------------------------------------------------------
# Simulation against exact results
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1.8, 2.0])
def test_magnetization_below_tc_matches_onsager(T: float) -> None:
    # L = 48 is many correlation lengths (xi < 1 here): finite-size corrections to <|M|>
    # are far below the 0.002 allowance.
    out = simulate(T=T, L=48, n_sweeps=6000, burn_in=500, init="up", seed=11)
    m = np.abs(out["M"])
    tolerance = 5 * standard_error(m) + 0.002
    assert abs(m.mean() - onsager_magnetization(T)) < tolerance
    assert tolerance < 0.01  # the check is sharp


@pytest.mark.parametrize("T", [1.8, 2.0, 3.0, 4.0])
def test_energy_matches_exact(T: float) -> None:
    # Finite-size corrections to E are exponentially small in L / xi away from T_c.
    out = simulate(T=T, L=48, n_sweeps=6000, burn_in=500, init="up", seed=5)
    e = out["E"]
    tolerance = 5 * standard_error(e) + 0.002
    assert abs(e.mean() - exact_energy(T)) < tolerance
    assert tolerance < 0.01


def test_high_temperature_magnetization_is_small() -> None:
    out = simulate(T=5.0, L=32, n_sweeps=3000, burn_in=200, init="up", seed=3)
    m = out["M"]
    # the paramagnet's |M| ~ sqrt(chi T / N) ~ 0.02 for N = 1024
    assert np.abs(m).mean() < 0.06
    assert abs(m.mean()) < 5 * standard_error(m) + 0.005


def enumerate_4x4(T: float, h: float) -> tuple[float, float, float]:
    """Exact <E>, <|M|> and <M> per spin of the periodic 4 x 4 lattice, over all 2**16 states."""
    states = np.array(list(itertools.product((-1, 1), repeat=16)), dtype=np.int64)
    s = states.reshape(-1, 4, 4)
    bonds = (s * (np.roll(s, 1, axis=1) + np.roll(s, 1, axis=2))).sum(axis=(1, 2))
    m = s.sum(axis=(1, 2))
    energy = -bonds - h * m
    w = np.exp(-(energy - energy.min()) / T)
    w /= w.sum()
    return float(w @ energy / 16), float(w @ np.abs(m) / 16), float(w @ m / 16)


@pytest.mark.parametrize(("T", "h"), [(2.5, 0.0), (2.0, 0.3), (3.0, -0.5)])
def test_small_lattice_matches_exact_enumeration(T: float, h: float) -> None:
    # No finite-size excuse: the Markov chain must sample the exact 4 x 4 Boltzmann law.
    e_exact, abs_m_exact, m_exact = enumerate_4x4(T, h)
    out = simulate(T=T, L=4, n_sweeps=100_000, burn_in=100, h=h, init="random", seed=2024)
    for values, exact in [(out["E"], e_exact), (np.abs(out["M"]), abs_m_exact)]:
        assert abs(values.mean() - exact) < 5 * standard_error(values)
    if h != 0.0:
        assert abs(out["M"].mean() - m_exact) < 5 * standard_error(out["M"])


def test_field_biases_magnetization() -> None:
    kwargs = {"T": 5.0, "L": 32, "n_sweeps": 1000, "burn_in": 200, "init": "random"}
    up = simulate(h=0.5, seed=9, **kwargs)["M"]
    down = simulate(h=-0.5, seed=9, **kwargs)["M"]
    assert up.mean() > 0.1
    assert down.mean() < -0.1


def test_spin_flip_symmetry_is_exact() -> None:
    # (spins, h) -> (-spins, -h) maps the dynamics onto itself draw by draw
    kwargs = {"T": 2.2, "L": 16, "n_sweeps": 300, "burn_in": 0, "seed": 77}
    a = simulate(h=0.3, init="up", **kwargs)
    b = simulate(h=-0.3, init="down", **kwargs)
    np.testing.assert_array_equal(a["M"], -b["M"])
    np.testing.assert_array_equal(a["E"], b["E"])


@pytest.mark.parametrize(
    ("L", "T", "h", "init"),
    [
        (2, 2.0, 0.0, "random"),
        (4, 1.0, 0.7, "up"),
        (16, 2.3, -0.2, "random"),
        (30, 4.0, 0.0, "down"),
    ],
    ids=["L2", "L4-field", "L16-negative-field", "L30"],
)
def test_recorded_values_match_final_lattice(L: int, T: float, h: float, init: str) -> None:
    # M and E are updated incrementally; recompute them from the final configuration
    out, spins = ising._run(T=T, L=L, n_sweeps=50, burn_in=10, h=h, init=init, seed=1)
    assert spins.shape == (L, L)
    assert set(np.unique(spins)) <= {-1, 1}
    e, m = lattice_energy_and_magnetization(spins, h)
    assert out["E"][-1] == pytest.approx(e, abs=1e-12)
    assert out["M"][-1] == pytest.approx(m, abs=1e-12)


def test_initial_states() -> None:
    kwargs = {"T": 0.5, "L": 64, "n_sweeps": 1, "burn_in": 0, "seed": 4}
    # at T = 0.5 almost nothing flips in one sweep from an ordered state
    assert simulate(init="up", **kwargs)["M"][0] > 0.99
    assert simulate(init="down", **kwargs)["M"][0] < -0.99
    _, spins = ising._run(init="random", **{**kwargs, "T": 1e6})
    assert abs(spins.mean()) < 5 / 64  # 5 sigma of the mean of 4096 fair signs


# --------------------------------------------------------------------------------------
# Determinism and the simulation contract
# --------------------------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_seeds_differ() -> None:
    kwargs = {"T": 2.4, "L": 20, "n_sweeps": 200, "burn_in": 20, "init": "random"}
    a = simulate(seed=123, **kwargs)
    b = simulate(seed=123, **kwargs)
    c = simulate(seed=124, **kwargs)
    for key in ("M", "E", "sweep"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["M"], c["M"])
    assert not np.array_equal(a["E"], c["E"])
    d = simulate(seed=2**63 - 1, **kwargs)
    assert not np.array_equal(a["M"], d["M"])


def test_threads_give_the_serial_results() -> None:
    def run(seed: int) -> np.ndarray:
        return simulate(T=2.3, L=24, n_sweeps=200, burn_in=0, seed=seed)["E"]

    serial = [run(seed) for seed in range(4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = list(pool.map(run, range(4)))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


SCHEDULES = [
    pytest.param({}, 900, id="defaults"),
    pytest.param({"n_sweeps": 10, "burn_in": 0}, 10, id="no-burn-in"),
    pytest.param({"n_sweeps": 100, "burn_in": 10, "thin": 7}, 12, id="thin-7"),
    pytest.param({"n_sweeps": 5, "burn_in": 4}, 1, id="one-record"),
    pytest.param({"n_sweeps": 50, "burn_in": 0, "thin": 50}, 1, id="thin-all"),
    pytest.param({"n_sweeps": 40.0, "burn_in": 5.0, "thin": 5.0, "L": 2.0}, 7, id="float-ints"),
    pytest.param(
        {"L": 6, "h": 0.4, "init": "random", "n_sweeps": 30, "burn_in": 3, "thin": 4},
        6,
        id="L6-field",
    ),
]


@pytest.mark.parametrize(("schedule", "n_expected"), SCHEDULES)
def test_declared_outputs_match_result(schedule: dict, n_expected: int) -> None:
    params = {"T": 2.0, **schedule}  # every member parameter reaches outputs() and coords()
    outputs, coords = simulate.declared(params)
    assert set(outputs) == {"M", "E"}
    schema = simulate.declared_schema(params)
    assert schema is not None
    result = simulate.call(params, seed=99)
    assert result["sweep"].dtype == np.int64
    for name, out in outputs.items():
        assert out.dims == ("sweep",)
        assert out.shape == (n_expected,) == result[name].shape
        assert out.dtype == result[name].dtype == np.float64
        assert out.attrs["units"] == {"M": "1", "E": "J"}[name]
    assert coords["sweep"].dtype == np.int64
    np.testing.assert_array_equal(coords["sweep"], result["sweep"])
    arrays, dims, found_coords = simulate.normalize(result, params)
    schema.check(arrays, "member 0")
    assert dims == {"M": ("sweep",), "E": ("sweep",)}
    np.testing.assert_array_equal(found_coords["sweep"], coords["sweep"])
    # recorded sweeps: burn_in + thin, burn_in + 2 thin, ... <= n_sweeps
    n_sweeps = int(params.get("n_sweeps", 1000))
    burn_in, thin = int(params.get("burn_in", 100)), int(params.get("thin", 1))
    expected = np.arange(burn_in + thin, n_sweeps + 1, thin)
    np.testing.assert_array_equal(result["sweep"], expected)
    assert expected[-1] <= n_sweeps < expected[-1] + thin


def test_simulation_metadata_and_pickling() -> None:
    assert simulate.name == "ensembles.models.ising:simulate"
    assert simulate.releases_gil
    assert simulate.seed_argument == "seed"
    assert simulate.required == ("T",)
    assert set(simulate.parameters) == {"T", "L", "n_sweeps", "burn_in", "thin", "h", "init"}
    again = pickle.loads(pickle.dumps(simulate))
    np.testing.assert_array_equal(
        again(T=2.0, L=8, n_sweeps=20, burn_in=0, seed=1)["M"],
        simulate(T=2.0, L=8, n_sweeps=20, burn_in=0, seed=1)["M"],
    )


# --------------------------------------------------------------------------------------
# Invalid parameters
# --------------------------------------------------------------------------------------
INVALID = [
    pytest.param({"T": 0.0}, r"T must be finite and > 0 .*got 0\.0", id="T-zero"),
    pytest.param({"T": -1.5}, r"T must be finite and > 0 .*got -1\.5", id="T-negative"),
    pytest.param({"T": math.nan}, r"T must be finite and > 0 .*got nan", id="T-nan"),
    pytest.param({"T": math.inf}, r"T must be finite and > 0 .*got inf", id="T-inf"),
    pytest.param({"T": "hot"}, r"T must be a real number .*got 'hot'", id="T-string"),
    pytest.param({"L": 1}, r"L must be an even integer >= 2 .*got 1", id="L-one"),
    pytest.param({"L": 0}, r"L must be an even integer >= 2 .*got 0", id="L-zero"),
    pytest.param({"L": 31}, r"L must be an even integer >= 2 .*got 31", id="L-odd"),
    pytest.param({"L": 32.5}, r"L must be an integer \(even and >= 2\), got 32\.5", id="L-frac"),
    pytest.param({"L": True}, r"L must be an integer .*got True", id="L-bool"),
    pytest.param({"n_sweeps": 0}, r"n_sweeps must be >= 1, got 0", id="n_sweeps-zero"),
    pytest.param(
        {"burn_in": -1},
        r"burn_in must satisfy 0 <= burn_in < n_sweeps = 1000, got -1",
        id="burn-neg",
    ),
    pytest.param({"n_sweeps": 50, "burn_in": 50}, r"< n_sweeps = 50, got 50", id="burn-all"),
    pytest.param({"thin": 0}, r"1 <= thin <= n_sweeps - burn_in = 900 .*got 0", id="thin-zero"),
    pytest.param(
        {"n_sweeps": 20, "burn_in": 10, "thin": 11},
        r"thin <= n_sweeps - burn_in = 10 .*got 11",
        id="thin-big",
    ),
    pytest.param({"h": math.nan}, r"h must be a finite real number, got nan", id="h-nan"),
    pytest.param({"h": None}, r"h must be a real number \(finite\), got None", id="h-none"),
    pytest.param(
        {"init": "cold"}, r"init must be one of \('up', 'down', 'random'\), got 'cold'", id="init"
    ),
    pytest.param({"seed": -1}, r"seed must satisfy 0 <= seed < 2\*\*63 .*got -1", id="seed-neg"),
    pytest.param({"seed": 2**63}, r"0 <= seed < 2\*\*63 .*got 9223372036854775808", id="seed-big"),
    pytest.param({"seed": 1.5}, r"seed must be an integer .*got 1\.5", id="seed-frac"),
]


@pytest.mark.parametrize(("bad", "match"), INVALID)
def test_invalid_parameters_raise(bad: dict, match: str) -> None:
    params = {"T": 2.0, "seed": 0, **bad}
    with pytest.raises(ValueError, match=match):
        simulate(**params)


def test_invalid_schedule_raises_when_declaring_outputs() -> None:
    with pytest.raises(ValueError, match=r"thin must satisfy .*got 0"):
        simulate.declared({"T": 2.0, "thin": 0})
    with pytest.raises(ValueError, match=r"burn_in must satisfy .*got 1000"):
        simulate.declared_schema({"T": 2.0, "burn_in": 1000})


def test_thresholds() -> None:
    table = ising._thresholds(2.0, 0.0)
    always = 2**53
    # index (x + 4) // 2 + 5 * (s + 1) // 2 with x = s * nn; zero field: same for both spins
    assert table[:5] == table[5:]
    assert table[:3] == (always, always, always)
    assert table[3] == round(math.exp(-4.0 / 2.0) * always)
    assert table[4] == round(math.exp(-8.0 / 2.0) * always)
    field = ising._thresholds(1.0, 0.5)
    assert field[7] == round(math.exp(-1.0) * always)  # s = +1, x = 0: dE = 2 h = 1
    assert field[2] == always  # s = -1, x = 0: dE = -1
