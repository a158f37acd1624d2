"""Bad input refused up front: NaN and infinity in fixed values, strict JSON run specs, and
designs too large for the machine (refused at once, never a silent hang)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import DesignError, SpecError

from . import sims

# -- NaN and infinity in fixed values ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(float("nan"), r"fixed value 'b' has the value nan; .*finite", id="nan"),
        pytest.param(-math.inf, r"fixed value 'b' has the value -inf; ", id="-inf"),
        pytest.param(np.float32("nan"), r"fixed value 'b' has the value nan", id="float32"),
        pytest.param([1.0, math.inf], r"fixed value 'b' has the value inf at \[1\]", id="list"),
        pytest.param(
            np.array([[0.0, 1.0], [2.0, np.nan]]),
            r"fixed value 'b' has the value nan at \[1\]\[1\]",
            id="array",
        ),
        pytest.param(
            {"tol": 1e-6, "limits": (0.0, -math.inf)},
            r"fixed value 'b' has the value -inf at \['limits'\]\[1\]",
            id="nested",
        ),
        pytest.param(complex(1.0, math.nan), r"fixed value 'b' has the value", id="complex"),
    ],
)
def test_nan_and_infinity_in_fixed_values_are_refused(value, match):
    with pytest.raises(DesignError, match=match + r".*remove it or replace it by a number"):
        ens.Ensemble(sims.seeded, ens.Grid(a=[1.0]), root_seed=0, fixed={"b": value})


def test_nan_in_a_spec_files_fixed_table_is_refused(tmp_path):
    spec = {
        "simulation": {"function": "tests.sims:seeded"},
        "design": {"grid": {"a": [1.0]}},
        "fixed": {"b": float("nan")},
        "run": {"seeds": 1, "root_seed": 0},
    }
    with pytest.raises(DesignError, match=r"fixed value 'b' has the value nan"):
        ens.Ensemble.from_spec(spec)


def test_finite_fixed_values_are_kept_as_given():
    fixed = {"b": 2.5, "opts": {"limits": [0, 10], "name": "x", "big": 10**30}, "c": None}
    e = ens.Ensemble(sims.seeded, ens.Grid(a=[1.0]), root_seed=0, fixed={"b": 2.5})
    assert e.fixed == {"b": 2.5}
    from ensembles.sweep.values import check_finite

    for key, value in fixed.items():
        check_finite(value, key)  # ints of any size, strings and None are fine


# -- the spec a store records is strict JSON ------------------------------------------------


def _strict(text):
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_the_stored_run_spec_is_strict_json(tmp_path):
    e = ens.Ensemble(
        sims.seeded,
        ens.Sample(n=3, seed=1, a=ens.Normal(0.0, 1.0)),
        root_seed=0,
        fixed={"b": 1e300},
    )
    ds = e.to_zarr(tmp_path / "run.zarr", progress=False, workers=1)
    spec = _strict(ds.attrs["ensembles"])
    assert spec["fixed"] == {"b": 1e300}
    assert spec["design"] == e.design.to_dict()


def test_a_non_finite_value_that_slips_into_the_spec_is_refused_before_any_write(tmp_path):
    e = ens.Ensemble(sims.seeded, ens.Grid(a=[1.0]), root_seed=0, fixed={"b": 1.0})
    e.fixed["b"] = float("inf")  # past the checks of the constructor
    with pytest.raises(SpecError, match=r"value inf at spec\['fixed'\]\['b'\].*strict JSON"):
        e.to_dataset()
    path = tmp_path / "run.zarr"
    with pytest.raises(SpecError, match=r"value inf at spec\['fixed'\]\['b'\]"):
        e.to_zarr(path, progress=False, workers=1)
    assert not path.exists()


# -- huge designs are refused at once; large ones plan in proportion ----------------------

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; the timeout only guards against a hang."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
        check=False,
    )


def test_a_design_too_large_for_the_machine_is_refused_at_once(tmp_path):
    out = _run(
        f"""
        import multiprocessing, os
        import ensembles as ens
        from ensembles.errors import DesignError
        from tests import sims

        huge = ens.Grid(a=range(10_000), b=range(10_000)) * ens.Grid(c=range(10_000))
        e = ens.Ensemble(sims.total, huge, root_seed=0)
        print(len(e))
        calls = {{
            "to_dataset": lambda: e.to_dataset(),
            "compute": lambda: e.compute(progress=False),
            "to_zarr": lambda: e.to_zarr({str(tmp_path / "huge.zarr")!r}, progress=False),
        }}
        for name, call in calls.items():
            try:
                call()
            except DesignError as exc:
                print(name, "refused:", exc)
        print("children:", len(multiprocessing.active_children()))
        print("store exists:", os.path.exists({str(tmp_path / "huge.zarr")!r}))
        """
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == str(10**12)
    for name, line in zip(["to_dataset", "compute", "to_zarr"], lines[1:4], strict=True):
        assert line.startswith(f"{name} refused: the ensemble has 1,000,000,000,000 members")
        assert "memory available here" in line
        assert "Run fewer members at a time" in line
    assert lines[4:] == ["children: 0", "store exists: False"]  # no workers, no store


def test_a_million_member_design_plans_without_a_task_per_member():
    out = _run(
        """
        import numpy as np
        import ensembles as ens
        from ensembles.members.blocks import Members
        from tests import sims

        big = ens.Grid(a=range(1000), b=range(1000))
        e = ens.Ensemble(sims.total, big, root_seed=4)
        ds = e.to_dataset()
        print(dict(ds.sizes))
        reference = Members(big, 1, 4)
        seeds = ds["member_seed"].values
        print(all(int(seeds[a, b, 0]) == reference.seed(1000 * a + b)
                  for a, b in [(0, 0), (0, 1), (517, 3), (999, 999)]))
        print(float(ds["y"][999, 999, 0].compute()))
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "{'a': 1000, 'b': 1000, 'seed': 1}",
        "True",
        "1998.0",
    ]
