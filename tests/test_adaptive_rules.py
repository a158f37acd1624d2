"""Adaptive ensembles: the rule objects, the judged values, the decision and its coverage."""

from __future__ import annotations

import copy
import itertools
import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensembles.adaptive import (
    SKIPPED,
    Adaptive,
    Precision,
    as_targets,
    decide,
    skipped_mask,
    todo_mask,
)
from ensembles.adaptive.select import check_targets, judged
from ensembles.analysis.intervals import mean_interval, stein_interval
from ensembles.errors import EnsembleError, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def run_loop(values, until, rule, **kwargs):
    """The adaptive loop as an engine runs it; returns the decisions and the todo masks."""
    n = np.zeros(values.shape[: values.ndim - 1 - kwargs.pop("outputs", 0)], dtype=np.int64)
    decisions, todos = [], []
    for _ in range(100):
        decision = decide(values, n, until, rule, **kwargs)
        decisions.append(decision)
        if decision.done:
            return decisions, todos
        todos.append(todo_mask(n, decision.add, rule.max))
        n = n + decision.add
    raise AssertionError("the adaptive loop did not finish in 100 rounds")


# --------------------------------------------------------------------------------------
# rule objects
# --------------------------------------------------------------------------------------

precisions = st.builds(
    lambda var, stat, q, width, relative, level, steps, reduce: Precision(
        var,
        stat,
        q if stat == "quantile" else None,
        None if relative else width,
        width if relative else None,
        level,
        steps,
        reduce,
    ),
    st.text("abcMET_", min_size=1, max_size=5),
    st.sampled_from(["mean", "quantile", "std"]),
    st.floats(0.001, 0.999),
    st.floats(1e-6, 1e6),
    st.booleans(),
    st.floats(0.5, 0.999),
    st.one_of(
        st.none(),
        st.lists(st.integers(-5, 5), min_size=1, max_size=3),
        st.dictionaries(
            st.sampled_from(["sweep", "x"]),
            st.lists(st.integers(0, 2000), min_size=1, max_size=3),
            min_size=1,
        ),
    ),
    st.sampled_from([None, "mean", "last"]),
)


@settings(max_examples=80, deadline=None)
@given(precisions)
def test_precision_round_trips_through_json(target):
    text = json.dumps(target.to_dict())
    assert Precision.from_dict(json.loads(text)) == target
    assert as_targets(json.loads(text)) == (target,)
    assert hash(target) == hash(Precision.from_dict(target.to_dict()))


def test_precision_from_a_toml_table():
    spec = tomllib.loads(
        """
        [run]
        until = [
          {var = "M", stat = "quantile", q = 0.975, halfwidth = 0.02, steps = {sweep = [500]}},
          {var = "M", stat = "mean", rel_halfwidth = 0.01, reduce = "mean"},
        ]
        seeds = {initial = 16, max = 1024}
        """
    )
    targets = as_targets(spec["run"]["until"])
    assert targets[0] == Precision("M", "quantile", 0.975, 0.02, steps={"sweep": [500]})
    assert targets[1] == Precision("M", rel_halfwidth=0.01, reduce="mean")
    assert Adaptive.from_dict(spec["run"]["seeds"]) == Adaptive(initial=16, max=1024)
    rule = Adaptive(initial=20, max=512, grow="sample", safety=1.5, growth=3.0, pow2=True)
    assert Adaptive.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


def test_methods_and_descriptions():
    assert Precision("M", halfwidth=0.01).method == "stein"
    assert Precision("M", rel_halfwidth=0.01).method == "sequential"
    assert Precision("M", "std", halfwidth=0.01).method == "sequential"
    assert Precision("M", "quantile", 0.975, 0.01).min_members == 146
    assert Precision("M", "std", halfwidth=0.1, level=0.9).describe() == (
        "std of M +- 0.1 (90 % confidence)"
    )


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: Precision("M", halfwidth=-0.5), "halfwidth=-0.5 is negative"),
        (lambda: Precision("M", halfwidth=0), "halfwidth=0"),
        (lambda: Precision("M", halfwidth=float("nan")), "halfwidth=nan"),
        (lambda: Precision("M", halfwidth=float("inf")), "halfwidth=inf"),
        (lambda: Precision("M", rel_halfwidth=-1.0), "rel_halfwidth=-1.0"),
        (lambda: Precision("M", halfwidth=0.1, rel_halfwidth=0.1), "both"),
        (lambda: Precision("M"), "neither"),
        (lambda: Precision("M", "variance", halfwidth=0.1), "stat='variance'"),
        (lambda: Precision("M", "median", halfwidth=0.1), "q=0.5"),
        (lambda: Precision("M", "quantile", q=1.5, halfwidth=0.1), "q=1.5"),
        (lambda: Precision("M", "quantile", q=0.0, halfwidth=0.1), "q=0.0"),
        (lambda: Precision("M", "quantile", halfwidth=0.1), "q=None"),
        (lambda: Precision("M", "mean", q=0.5, halfwidth=0.1), "q=0.5"),
        (lambda: Precision("M", halfwidth=0.1, level=1.0), "level=1.0"),
        (lambda: Precision("M", halfwidth=0.1, reduce="median"), "reduce='median'"),
        (lambda: Precision("M", halfwidth=0.1, steps=[]), "steps=[]"),
        (lambda: Precision("M", halfwidth=0.1, steps="last"), "steps='last'"),
        (lambda: Precision("M", halfwidth=0.1, steps=[1.5]), "steps=[1.5]"),
        (lambda: Precision("M", halfwidth=0.1, steps={}), "steps={}"),
        (lambda: Precision("", halfwidth=0.1), "var=''"),
        (lambda: Precision.from_dict({"var": "M", "halfwith": 0.1}), "'halfwith'"),
        (lambda: Precision.from_dict({"halfwidth": 0.1}), "'var'"),
        (lambda: as_targets("M"), "until='M'"),
        (lambda: as_targets([]), "until=[]"),
        (lambda: as_targets([Precision("M", halfwidth=1.0), 3]), "contains 3"),
        (lambda: Adaptive(initial=64, max=32), "initial=64 is larger than max=32"),
        (lambda: Adaptive(initial=2), "initial=2"),
        (lambda: Adaptive(max=10.5), "max=10.5"),
        (lambda: Adaptive(grow="T"), "grow='T'"),
        (lambda: Adaptive(safety=0.5), "safety=0.5"),
        (lambda: Adaptive(safety=2.0, growth=1.5), "growth=1.5"),
        (lambda: Adaptive(pow2="yes"), "pow2='yes'"),
        (lambda: Adaptive.from_dict({"initial": 8, "maximum": 64}), "'maximum'"),
    ],
)
def test_bad_rules_are_refused_naming_the_value(build, needle):
    with pytest.raises(SpecError) as info:
        build()
    assert needle in str(info.value)
    assert isinstance(info.value, EnsembleError)
    assert isinstance(info.value, ValueError)


def test_a_target_that_can_never_be_met_is_refused_before_anything_runs():
    target = Precision("M", "quantile", q=0.975, halfwidth=0.01)
    with pytest.raises(SpecError, match=r"can never be met.*146 members.*max=100"):
        Adaptive(initial=16, max=100).pilot(target)
    with pytest.raises(SpecError, match="can never be met"):
        decide(np.zeros((2, 0)), [0, 0], target, Adaptive(initial=16, max=100))
    assert Adaptive(initial=16, max=200).pilot(target) == 146
    assert Adaptive(initial=16, max=200).pilot(target, block=4) == 37  # samples of 4 seeds


# --------------------------------------------------------------------------------------
# judged values
# --------------------------------------------------------------------------------------


def test_judged_selects_and_reduces_steps():
    x = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)  # points, members, sweep
    x[0, 0, 3] = np.nan
    every = judged(x, Precision("M", halfwidth=1.0), 1)
    assert every.shape == (2, 3, 4)
    last = judged(x, Precision("M", halfwidth=1.0, steps=[-1, 0]), 1)
    np.testing.assert_array_equal(last, x[..., [3, 0]])
    by_value = judged(
        x,
        Precision("M", halfwidth=1.0, steps={"sweep": [300, 100]}),
        1,
        dims=("sweep",),
        coords={"sweep": np.array([100, 200, 300, 400])},
    )
    np.testing.assert_array_equal(by_value, x[..., [2, 0]])
    mean = judged(x, Precision("M", halfwidth=1.0, reduce="mean"), 1)
    assert mean.shape == (2, 3, 1)
    assert mean[0, 0, 0] == pytest.approx(1.0)  # the NaN step is left out
    assert judged(x, Precision("M", halfwidth=1.0, reduce="last"), 1)[1, 2, 0] == x[1, 2, 3]
    scalar = judged(x[..., 0], Precision("M", halfwidth=1.0, reduce="mean"), 1)
    np.testing.assert_array_equal(scalar[..., 0], x[..., 0])


def test_judged_on_a_two_dim_output_by_value():
    x = np.random.default_rng(0).normal(size=(3, 5, 4, 2))  # points, members, sweep, site
    target = Precision("M", halfwidth=1.0, steps={"site": ["b"]}, reduce="mean")
    out = judged(x, target, 1, dims=("sweep", "site"), coords={"site": np.array(["a", "b"])})
    np.testing.assert_allclose(out[..., 0], x[..., 1].mean(axis=-1))


@pytest.mark.parametrize(
    ("target", "dims", "coords", "needle"),
    [
        (Precision("M", halfwidth=1.0, steps=[0]), ("sweep", "site"), None, "one output dim"),
        (Precision("M", halfwidth=1.0, steps=[9]), ("sweep",), {"sweep": [1, 2]}, "outside"),
        (Precision("M", halfwidth=1.0, steps={"sweep": [5]}), ("sweep",), None, "unknown"),
        (Precision("M", halfwidth=1.0, steps={"sweep": [5]}), ("sweep",), {"sweep": [1]}, "[5]"),
        (Precision("M", halfwidth=1.0, steps={"time": [5]}), ("sweep",), {}, "'time'"),
        (Precision("M", halfwidth=1.0, steps=[0]), (), None, "no output dims"),
        (Precision("X", halfwidth=1.0), ("sweep",), None, "'X' is not an output"),
    ],
)
def test_targets_that_do_not_fit_the_outputs_are_refused(target, dims, coords, needle):
    with pytest.raises(SpecError) as info:
        check_targets(target, {"M": dims, "E": ("sweep",)}, coords)
    assert needle in str(info.value)


# --------------------------------------------------------------------------------------
# the decision
# --------------------------------------------------------------------------------------


def test_the_first_decision_is_the_pilot():
    rule = Adaptive(initial=16, max=1024)
    d = decide(np.zeros((4, 0)), np.zeros(4, dtype=int), Precision("M", halfwidth=0.1), rule)
    assert d.add.tolist() == [16] * 4
    assert not d.converged.any()
    envelope = [
        Precision("M", "quantile", q=0.025, halfwidth=0.1),
        Precision("M", "quantile", q=0.975, halfwidth=0.1),
    ]
    assert decide(np.zeros((4, 0)), [0] * 4, envelope, rule).add.tolist() == [146] * 4


def test_points_get_what_they_need_in_one_round_and_converged_points_get_nothing():
    rng = np.random.default_rng(1)
    sigma = np.array([0.01, 2.0, 3.0, 30.0])
    values = rng.normal(size=(4, 1024)) * sigma[:, None]
    rule = Adaptive(initial=16, max=1024)
    target = Precision("y", halfwidth=0.5)
    decisions, _ = run_loop(values, target, rule)
    pilot = decisions[1]
    assert pilot.converged.tolist() == [True, False, False, False]
    assert pilot.add[0] == 0
    # Stein: the pilot's spread fixes the size; after the next round its part is met
    n = pilot.n + pilot.add
    stein = stein_interval(np.where(np.arange(1024) < n[:, None], values, np.nan), 16, axis=1)
    assert (stein.half_width[1:3] <= 0.5).all()
    assert pilot.add[1] > 16  # sized from the estimate, not one member at a time
    final = decisions[-1]
    assert final.converged.tolist() == [True, True, True, False]
    assert final.at_max.tolist() == [False, False, False, True]
    assert (final.n <= rule.max).all()
    assert final.n[3] == 1024
    for earlier, later in itertools.pairwise(decisions):
        assert (later.n[earlier.converged] == earlier.n[earlier.converged]).all()


def test_a_target_never_met_stops_at_max_with_a_clear_report():
    values = np.random.default_rng(2).normal(size=(3, 256)) * np.array([[0.1], [5.0], [9.0]])
    rule = Adaptive(initial=8, max=256)
    decisions, _ = run_loop(values, Precision("y", halfwidth=0.2), rule)
    final = decisions[-1]
    assert final.done
    assert final.at_max.tolist() == [False, True, True]
    assert (final.projected[1:] > rule.max).all()
    report = final.report()
    assert "point (1,): stopped at max=256 members" in report
    assert "needs about" in report
    summary = final.summary()
    assert (summary["points"], summary["converged"], summary["at_max"]) == (3, 1, 2)
    json.dumps(final.to_dict(), allow_nan=False)  # JSON ready: no NaN or infinity


def test_decisions_depend_only_on_the_members_run_so_far():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(5, 300)) * rng.uniform(0.1, 4, size=(5, 1))
    rule = Adaptive(initial=10, max=300)
    target = [Precision("y", halfwidth=0.4), Precision("y", "std", halfwidth=0.5)]
    first, _ = run_loop(values, target, rule)
    second, _ = run_loop(copy.deepcopy(values), target, rule)
    assert [d.to_dict() for d in first] == [d.to_dict() for d in second]
    # members beyond n are never read: replace them and replay each decision
    for d in first:
        other = np.where(np.arange(300) < d.n[:, None], values, rng.normal(size=values.shape))
        assert decide(other, d.n, target, rule).to_dict() == d.to_dict()


def test_every_member_runs_once_and_the_rest_are_skipped():
    values = np.random.default_rng(4).normal(size=(6, 512)) * np.linspace(0.2, 3, 6)[:, None]
    rule = Adaptive(initial=8, max=512)
    decisions, todos = run_loop(values, Precision("y", halfwidth=0.3), rule)
    runs = np.sum(todos, axis=0)
    assert runs.max() == 1
    final_n = decisions[-1].n
    np.testing.assert_array_equal(runs == 0, skipped_mask(final_n, rule.max))
    assert SKIPPED == 3


def test_sequential_targets_grow_by_at_most_growth_and_at_least_safety():
    values = np.random.default_rng(5).normal(size=(1, 4096)) * 50.0
    rule = Adaptive(initial=16, max=4096, safety=1.25, growth=3.0)
    decisions, _ = run_loop(values, Precision("y", "std", halfwidth=0.5), rule)
    sizes = [int(d.n[0]) for d in decisions]
    ratios = np.diff(sizes[1:]) / np.array(sizes[1:-1])
    assert (ratios <= 2.0 + 1e-9).all()  # growth 3x: at most +200 % per round
    assert (ratios[:-1] >= 0.25 - 1e-9).all()  # safety: at least +25 % (before the cap)
    assert sizes[-1] == 4096


def test_relative_targets_and_several_targets_at_once():
    rng = np.random.default_rng(6)
    values = 10.0 + rng.normal(size=(3, 2000)) * np.array([[0.1], [1.0], [2.0]])
    targets = [Precision("y", rel_halfwidth=0.01), Precision("y", "quantile", 0.9, 0.5)]
    decisions, _ = run_loop(values, targets, Adaptive(initial=16, max=2000))
    final = decisions[-1]
    assert final.converged.all()
    rel, quantile = final.results
    assert (rel.achieved <= 0.01).all()
    ci = rel.interval
    assert (ci.half_width[..., 0] / np.abs(ci.estimate[..., 0]) <= 0.01).all()
    assert (quantile.achieved <= 0.5).all()
    assert rel.interval.method == "t"
    assert quantile.interval.method == "order statistics"


def test_time_series_targets_are_judged_at_their_worst_step():
    rng = np.random.default_rng(7)
    noise = np.array([0.1, 0.1, 2.0])  # the last step is the noisy one
    values = rng.normal(size=(2, 1024, 3)) * noise
    rule = Adaptive(initial=16, max=1024)
    every = run_loop(values, Precision("M", halfwidth=0.2), rule, outputs=1)[0][-1]
    early = run_loop(values, Precision("M", halfwidth=0.2, steps=[0, 1]), rule, outputs=1)[0][-1]
    assert (every.n > 100).all()
    assert (early.n == 16).all()
    assert every.results[0].interval.half_width.shape == (2, 3)


def test_failed_members_are_made_up_for():
    rng = np.random.default_rng(8)
    values = rng.normal(size=(2, 4000)) * 2.0
    values[:, 1::2] = np.nan  # every other member failed
    decisions, _ = run_loop(values, Precision("y", halfwidth=0.3), Adaptive(initial=16, max=4000))
    final = decisions[-1]
    assert final.converged.all()
    assert len(decisions) <= 4  # the failure share is planned for, not discovered each round
    used = final.results[0].interval.n[:, 0]
    assert (final.n >= 2 * used - 1).all()


def test_samples_grow_in_blocks_of_seeds():
    rng = np.random.default_rng(9)
    values = rng.normal(size=(512 * 4,))  # one point: sample x seed flattened, 4 seeds each
    rule = Adaptive(initial=8, max=512, grow="sample", pow2=True)
    target = Precision("y", halfwidth=0.1)
    n = np.int64(0)
    while True:
        d = decide(values, n, target, rule, block=4)
        if d.done:
            break
        total = int(n + d.add)
        assert total & (total - 1) == 0  # powers of 2: a Sobol' design stays balanced
        n = np.int64(total)
    ci = mean_interval(values[: int(n) * 4])
    assert d.converged
    assert ci.half_width < 0.11


def test_bad_inputs_to_decide():
    target = Precision("M", halfwidth=0.1)
    with pytest.raises(SpecError, match="no values of 'M'"):
        decide({"E": np.zeros((2, 8))}, [8, 8], target, Adaptive(initial=8))
    with pytest.raises(SpecError, match="at least 8 members"):
        decide(np.zeros((2, 4)), [8, 8], target, Adaptive(initial=8))
    with pytest.raises(SpecError, match=r"n=\[-1\]"):
        decide(np.zeros((1, 4)), [-1], target, Adaptive(initial=8))
    with pytest.raises(SpecError, match="block=0"):
        decide(np.zeros((1, 4)), [0], target, Adaptive(initial=8), block=0)
    with pytest.raises(SpecError, match="extent=3"):
        todo_mask([2], [2], 3)


# --------------------------------------------------------------------------------------
# honest stopping (the benchmark measures it at full size)
# --------------------------------------------------------------------------------------


def test_coverage_of_the_whole_procedure_for_normal_members():
    reps, points = 400, 4
    rng = np.random.default_rng(10)
    sigma = np.array([0.3, 1.0, 3.0, 6.0])
    values = rng.normal(size=(reps, points, 512)) * sigma[:, None]
    rule = Adaptive(initial=16, max=512)
    targets = [Precision("y", halfwidth=0.6), Precision("y", "quantile", q=0.9, halfwidth=2.5)]
    final = run_loop(values, targets, rule)[0][-1]
    mean, quantile = final.results
    covered = (mean.interval.lower[..., 0] <= 0) & (mean.interval.upper[..., 0] >= 0)
    slack = 4 * np.sqrt(0.05 * 0.95 / covered.size)
    assert covered.mean() >= 0.95 - slack
    truth = 1.2815515655446004 * sigma
    ci = quantile.interval
    assert ((ci.lower[..., 0] <= truth) & (truth <= ci.upper[..., 0])).mean() >= 0.95 - slack
    assert final.converged.mean() > 0.9
    assert final.n.sum(axis=1).mean() < 0.6 * points * final.n.max()
