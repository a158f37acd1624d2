"""Bad input refused up front: NaN and infinity in fixed values, strict JSON run specs."""

from __future__ import annotations

import json
import math

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
