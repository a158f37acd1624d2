"""Shared initial state: built once, shipped once per worker, protected from members."""

from __future__ import annotations

import functools

import numpy as np

import ensembles as ens

from . import sims


def test_setup_is_built_once_and_members_cannot_corrupt_it(client, tmp_path):
    log = tmp_path / "setup.txt"
    e = ens.Ensemble(
        sims.uses_env,
        ens.Grid(a=[1.0, 2.0, 3.0]),
        seeds=4,
        root_seed=0,
        batch_size=2,
        setup=functools.partial(sims.make_env, log=str(log)),
        setup_name="env",
    )
    ds = e.compute(scheduler=client, progress=False)
    # every member saw the pristine state, despite its predecessors' mutations
    np.testing.assert_array_equal(
        ds["y"].values, (np.array([1.0, 2.0, 3.0]) + 16.0)[:, None] * np.ones((1, 4))
    )
    e.compute(scheduler=client, progress=False)
    assert log.read_text().splitlines() == ["setup"]  # once, on the client, reused


def test_shared_arrays_are_read_only(tmp_path):
    e = ens.Ensemble(
        sims.uses_array_env,
        ens.Grid(a=[1.0, 2.0]),
        seeds=2,
        root_seed=0,
        setup=np.arange(3.0),
        setup_name="env",
    )
    ds = e.to_dataset().compute(scheduler="synchronous")
    assert (ds["wrote"].values == 0.0).all()
    np.testing.assert_array_equal(ds["y"].values, np.array([[4.0, 4.0], [5.0, 5.0]]))


def test_setup_keyword_must_be_accepted():
    import pytest

    with pytest.raises(ens.SimulationError, match=r"does not accept parameter\(s\) \['setup'\]"):
        ens.Ensemble(sims.flaky, ens.Grid(a=[1.0]), setup=sims.make_env)
