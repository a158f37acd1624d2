"""What an adaptive run judges: blocks taken as the driver writes them equal a store read."""

from __future__ import annotations

import numpy as np

import ensembles as ens
from ensembles.adaptive import decide
from ensembles.adaptive.growth import growth_for
from ensembles.adaptive.read import JudgedReader
from ensembles.adaptive.record import read_record
from ensembles.layout import OK, PENDING, SKIPPED, BlockResult
from ensembles.store.zarr_store import EnsembleStore

from . import sims

TARGET = ens.Precision("z", halfwidth=0.4, steps={"step": [10, 20, 30]}, reduce="mean")
RULE = ens.Adaptive(initial=6, max=64)
DESIGN = ens.Grid(a=[0.1, 1.0, 2.0, 3.0])


def test_decisions_from_blocks_as_written_equal_those_from_reading_the_store(tmp_path):
    path = tmp_path / "r.zarr"
    e = ens.Ensemble(sims.spread, DESIGN, seeds=RULE, root_seed=5, batch_size=3)
    e.to_zarr(path, until=TARGET, progress=False, workers=2)
    store = EnsembleStore(str(path))
    record = read_record(store)
    assert len(record["rounds"]) >= 2  # round 2 and the final decision: from blocks taken
    growth = growth_for(DESIGN, RULE)
    for entry in [*record["rounds"][1:], record["final"]]:
        fresh = JudgedReader(store, [TARGET], growth)  # reads every member from the store
        n = np.asarray(entry["n"])
        again = decide(fresh.values(n), n, TARGET, RULE, prejudged=True)
        assert again.to_dict() == {k: entry[k] for k in again.to_dict()}
    # the members beyond each point's count, in many chunks, are skipped
    status = store.status()
    final = np.asarray(record["final"]["n"])
    beyond = np.arange(status.shape[1]) >= final[:, None]
    assert store.group()["status"].nchunks > 4 * status.shape[0]
    np.testing.assert_array_equal(status == SKIPPED, beyond)


def test_a_block_taken_is_not_read_again_and_others_are(tmp_path):
    path = tmp_path / "t.zarr"
    ens.Ensemble(sims.spread, DESIGN, seeds=8, root_seed=5, batch_size=4).to_zarr(
        path, progress=False
    )
    store = EnsembleStore(str(path))
    growth = growth_for(DESIGN, RULE)
    stored = JudgedReader(store, [TARGET], growth).values(np.full(4, 8))[0]
    reader = JudgedReader(store, [TARGET], growth)
    reader.expect((4, 8))
    region = (slice(1, 2), slice(4, 8))
    z = np.full((1, 4, 4), 7.0)  # 4 steps (0, 10, 20, 30): the target averages 3 of them
    status = np.array([[OK, OK, PENDING, 2]], dtype=np.int8)
    result = BlockResult((1, 1), {"z": z, "y": np.zeros((1, 4))}, status, *_bookkeeping())
    reader.take(result, region)
    got = reader.values(np.full(4, 8))[0]
    # members taken keep what was handed over (7, NaN when failed); the rest are read
    np.testing.assert_array_equal(got[1, 4:6, 0], [7.0, 7.0])
    assert np.isnan(got[1, 7, 0])
    np.testing.assert_array_equal(got[1, 6], stored[1, 6])
    np.testing.assert_array_equal(got[0], stored[0])
    np.testing.assert_array_equal(got[2:], stored[2:])
    assert reader.judging() > 0  # the time taken was counted for the next decision ...
    assert reader.judging() == 0  # ... once


def _bookkeeping():
    return np.zeros((1, 4), np.float32), np.ones((1, 4), np.uint8)


def test_growing_rounds_write_the_seeds_of_the_chunks_they_run_only(tmp_path):
    path = tmp_path / "g.zarr"
    rule = ens.Adaptive(initial=8, max=64, growth=2.0)  # rounds of at most twice the members
    target = ens.Precision("y", stat="std", halfwidth=0.2)
    e = ens.Ensemble(sims.spread, DESIGN, seeds=rule, root_seed=5, batch_size=4)
    ds = e.to_zarr(path, until=target, progress=False)
    record = read_record(EnsembleStore(str(path)))
    assert len(record["rounds"]) >= 3  # the store grew at least twice
    n = np.asarray(record["final"]["n"])
    assert n.min() < n.max()  # some chunks never ran a member
    status, seeds = ds["status"].values, ds["member_seed"].values
    expected = ens.Ensemble(sims.spread, DESIGN, seeds=status.shape[1], root_seed=5)
    full = expected.members().seeds
    chunks = EnsembleStore(str(path)).group()["member_seed"].chunks
    for i in range(0, status.shape[0], chunks[0]):
        for j in range(0, status.shape[1], chunks[1]):
            ran = np.isin(status[i : i + chunks[0], j : j + chunks[1]], [OK, 2]).any()
            got = seeds[i : i + chunks[0], j : j + chunks[1]]
            want = full[i : i + chunks[0], j : j + chunks[1]] if ran else np.zeros_like(got)
            np.testing.assert_array_equal(got, want)
