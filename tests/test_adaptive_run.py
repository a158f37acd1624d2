"""Adaptive ensembles end to end: rounds into a real store, skipped members, resume, spec/CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import ensembles as ens
from ensembles.adaptive import decide
from ensembles.adaptive.masks import todo_mask as round_mask
from ensembles.adaptive.record import read_record
from ensembles.cli import main
from ensembles.describe import describe
from ensembles.errors import DesignError, SpecError, StoreError, StoreMismatchError
from ensembles.layout import FAILED, OK, PENDING, SKIPPED
from ensembles.store.resume import todo_mask
from ensembles.store.zarr_store import EnsembleStore

from . import sims

ROOT = Path(__file__).resolve().parents[1]
TARGET = ens.Precision("y", stat="mean", halfwidth=0.5)
RULE = ens.Adaptive(initial=8, max=128)


def _ensemble(log=None, a=(0.1, 1.0, 3.0), delay=0.0, rule=RULE, **kwargs):
    fixed = {"delay": delay, **({"log": str(log)} if log is not None else {})}
    return ens.Ensemble(
        sims.spread, ens.Grid(a=list(a)), seeds=rule, root_seed=11, fixed=fixed, **kwargs
    )


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _record(path) -> dict:
    return read_record(EnsembleStore(str(path)))


def _decisions(record: dict) -> list:
    """Every round's members and additions, and the final members (no timings)."""
    rounds = [(r["round"], r["n"], r["add"], r["converged"]) for r in record["rounds"]]
    return [*rounds, ("final", record["final"]["n"], record["final"]["converged"])]


def _run_members(status: np.ndarray) -> np.ndarray:
    """Members run per point: the length of the prefix that is not skipped or pending."""
    return np.count_nonzero((status == OK) | (status == FAILED), axis=-1)


# -- the run -----------------------------------------------------------------------------


def test_rounds_run_until_each_point_meets_its_target_or_max(tmp_path, capsys):
    log = tmp_path / "calls.txt"
    ds = _ensemble(log).to_zarr(tmp_path / "a.zarr", until=TARGET, workers=2, batch_size=4)
    status = ds["status"].values
    record = _record(tmp_path / "a.zarr")
    n = np.asarray(record["final"]["n"])
    # each point ran a prefix of its seeds; every member beyond it is skipped, none pending
    assert _run_members(status).tolist() == n.tolist()
    assert ((np.arange(status.shape[1]) >= n[:, None]) == (status == SKIPPED)).all()
    assert not (status == PENDING).any()
    # the easy point stopped after the pilot, the hard one at max, the middle one between
    assert n[0] == 8
    assert 8 < n[1] < 128
    assert n[2] == 128
    assert record["final"]["converged"] == [True, True, False]
    assert record["final"]["at_max"] == [False, False, True]
    # the members that ran have the seeds of the same members of a fixed-size ensemble
    fixed_size = _ensemble(log, rule=status.shape[1]).members().seeds
    ok = status == OK
    np.testing.assert_array_equal(ds["member_seed"].values[ok], fixed_size[ok])
    # every member ran once, and only the members the rule asked for
    calls = _calls(log)
    assert len(calls) == len(set(calls)) == int(n.sum()) == int((status == OK).sum())
    # the record's intervals are those of the stored values
    values = np.where(status == OK, ds["y"].values, np.nan)
    final = decide({"y": values}, n, TARGET, RULE)
    achieved = record["final"]["targets"][0]["achieved"]
    np.testing.assert_allclose(achieved, final.results[0].achieved)
    assert final.done
    assert final.converged.tolist() == [True, True, False]
    # the progress lines and the report of the point that cannot meet the target
    err = capsys.readouterr().err
    assert "round 1: the pilot, 24 members at 3 of 3 points" in err
    assert "round 2: 1 of 3 points converged, widest +-" in err
    assert "adaptive run: 2 rounds, 2 of 3 points converged, 1 stopped at max" in err
    assert "point (2,): stopped at max=128 members: mean of y +- 0.5" in err


def test_every_round_is_recorded_and_replays_from_the_stored_members(tmp_path):
    ds = _ensemble().to_zarr(tmp_path / "r.zarr", until=TARGET, progress=False)
    record = _record(tmp_path / "r.zarr")
    assert record["state"] == "done"
    assert record["rule"] == RULE.to_dict()
    assert record["until"] == [TARGET.to_dict()]
    assert json.loads(ds.attrs["ensembles"])["run"]["until"] == [TARGET.to_dict()]
    values = np.where(ds["status"].values == OK, ds["y"].values, np.nan)
    n = np.zeros(3, dtype=np.int64)
    for entry in record["rounds"]:  # decisions are a function of the stored members only
        replay = decide({"y": values}, n, TARGET, RULE)
        assert replay.add.tolist() == entry["add"]
        assert replay.n.tolist() == entry["n"]
        assert set(entry["seconds"]) == {"decide", "prepare", "run"}
        n = n + replay.add
    assert decide({"y": values}, n, TARGET, RULE).done


def test_one_or_two_workers_give_the_same_members_decisions_and_results(tmp_path):
    runs = {}
    for workers in (1, 2):  # batch sizes come from timing: the blocks may differ too
        path = tmp_path / f"w{workers}.zarr"
        ds = _ensemble().to_zarr(path, until=TARGET, workers=workers, progress=False)
        runs[workers] = (ds.load(), _record(path))
    (one, rec1), (two, rec2) = runs[1], runs[2]
    np.testing.assert_array_equal(one["status"].values, two["status"].values)
    np.testing.assert_array_equal(one["y"].values, two["y"].values)
    np.testing.assert_array_equal(one["z"].values, two["z"].values)
    assert _decisions(rec1) == _decisions(rec2)
    assert rec1["final"]["targets"] == rec2["final"]["targets"]


def test_a_target_on_a_reduced_time_series(tmp_path):
    target = ens.Precision("z", halfwidth=0.4, steps={"step": [10, 20, 30]}, reduce="mean")
    ds = _ensemble(rule=ens.Adaptive(initial=6, max=64)).to_zarr(
        tmp_path / "z.zarr", until=target, progress=False
    )
    record = _record(tmp_path / "z.zarr")
    n = np.asarray(record["final"]["n"])
    z = np.where(ds["status"].values[..., None] == OK, ds["z"].values, np.nan)
    rule, coords = ens.Adaptive(initial=6, max=64), {"step": ds["step"].values}
    again = decide({"z": z}, n, target, rule, dims={"z": ("step",)}, coords=coords)
    achieved = record["final"]["targets"][0]["achieved"]
    np.testing.assert_allclose(achieved, again.results[0].achieved)
    assert record["final"]["targets"][0]["target"] == target.to_dict()
    assert again.done
    assert n[0] < n[2]


# -- bad targets --------------------------------------------------------------------------


def test_bad_targets_are_refused_before_anything_runs(tmp_path):
    log = tmp_path / "calls.txt"
    path = tmp_path / "bad.zarr"
    with pytest.raises(SpecError, match=r"'Y' is not an output; the outputs are \['y', 'z'\]"):
        _ensemble(log).to_zarr(path, until=ens.Precision("Y", halfwidth=0.5), progress=False)
    with pytest.raises(SpecError, match=r"steps=\[9\] are outside the 4 steps of 'step'"):
        _ensemble(log).to_zarr(path, until=ens.Precision("z", halfwidth=0.5, steps=[9]))
    with pytest.raises(SpecError, match=r"halfwidth=-0\.5 is negative"):
        ens.Precision("y", halfwidth=-0.5)
    with pytest.raises(SpecError, match=r"stat='median' is not one of .*q=0\.5"):
        ens.Precision("y", stat="median", halfwidth=0.5)
    with pytest.raises(SpecError, match=r"halfwidth=-1 is negative"):
        _ensemble(log).to_zarr(path, until={"var": "y", "halfwidth": -1})
    with pytest.raises(SpecError, match="needs an adaptive ensemble"):
        _ensemble(log, rule=4).to_zarr(path, until=TARGET)
    with pytest.raises(SpecError, match="pass until="):
        _ensemble(log).to_zarr(path)
    with pytest.raises(SpecError, match=r"can never be met: .* needs at least 146 members"):
        _ensemble(log, rule=ens.Adaptive(initial=8, max=100)).to_zarr(
            path, until=ens.Precision("y", stat="quantile", q=0.975, halfwidth=0.5)
        )
    assert not path.exists()
    assert not _calls(log)


def test_an_undeclared_output_is_checked_after_the_first_member_before_any_write(tmp_path):
    e = ens.Ensemble(sims.walk, ens.Grid(drift=[0.0]), seeds=ens.Adaptive(initial=8, max=16))
    with pytest.raises(SpecError, match=r"'y' is not an output; the outputs are \['final', 'x'\]"):
        e.to_zarr(tmp_path / "u.zarr", until=TARGET, progress=False)
    assert not (tmp_path / "u.zarr").exists()


def test_adaptive_ensembles_need_a_store_and_a_growable_design():
    e = _ensemble()
    with pytest.raises(SpecError, match=r"adaptive .*to_zarr"):
        e.compute()
    with pytest.raises(SpecError, match="adaptive"):
        e.to_dataset()
    with pytest.raises(DesignError, match=r"LatinHypercube\(n=8.* cannot grow: its points change"):
        ens.Ensemble(
            sims.spread,
            ens.LatinHypercube(n=8, seed=0, a=(0.5, 2.0)),
            samples=ens.Adaptive(initial=8, max=64),
        )
    with pytest.raises(DesignError, match="use seeds=Adaptive"):
        ens.Ensemble(sims.spread, ens.Grid(a=[1.0]), samples=ens.Adaptive())
    with pytest.raises(DesignError, match="pass it as samples=Adaptive"):
        ens.Ensemble(sims.spread, ens.Grid(a=[1.0]), seeds=ens.Adaptive(grow="sample"))


# -- skipped members everywhere -------------------------------------------------------------


def test_skipped_members_in_statistics_info_summary_resume_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "s.zarr"
    ds = _ensemble().to_zarr(path, until=TARGET, progress=False)
    status = ds["status"].values
    n = _run_members(status)
    assert ds["status"].attrs["flag_meanings"] == "pending ok failed skipped"
    # statistics use the ok members only: the same as on each point's prefix
    means = ds["y"].ens.mean("seed").values
    counts = ds["y"].ens.count("seed").values
    for p in range(3):
        assert counts[p] == n[p]
        np.testing.assert_allclose(means[p], ds["y"].values[p, : n[p]].mean())
    table = ds.ens.summary(vars=["y"])
    assert table["n"].tolist() == n.tolist()
    # info counts skipped members apart and reports the run
    info = describe(path)
    assert info["members"]["skipped"] == int((status == SKIPPED).sum())
    assert info["members"]["pending"] == 0
    assert info["adaptive"]["state"] == "done"
    assert info["adaptive"]["rounds"] == 2
    assert info["adaptive"]["converged"] == 2
    assert info["adaptive"]["targets"][0]["limit"] == 0.5
    # a plain resume never runs skipped members
    assert not todo_mask(status).any()
    # members per point, beside the envelope
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True)
    ds["y"].ens.plot_envelope(over="seed", ax=top)
    ax = ds.ens.plot_members(ax=bottom)
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == n.tolist()
    assert "members per a" in ax.get_title()
    assert "not needed (adaptive)" in ax.get_title()
    plt.close(fig)


def test_set_status_writes_whole_chunks_by_copy_and_merges_partial_ones(tmp_path):
    e = ens.Ensemble(sims.spread, ens.Grid(a=[1.0, 2.0, 3.0]), seeds=10, batch_size=4)
    e.to_zarr(tmp_path / "s.zarr", progress=False)  # chunks (1, 4): edge chunks of 2
    store = EnsembleStore(str(tmp_path / "s.zarr"))
    expected = store.status().copy()
    rng = np.random.default_rng(3)
    for code in (SKIPPED, PENDING, FAILED, SKIPPED, OK):
        mask = rng.random(expected.shape) < 0.4
        mask[1] = True  # a whole row: interior and edge chunks covered whole
        store.set_status(mask, code)
        expected[mask] = code
        np.testing.assert_array_equal(EnsembleStore(str(tmp_path / "s.zarr")).status(), expected)


def test_info_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "i.zarr"
    _ensemble().to_zarr(path, until=TARGET, progress=False)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "skipped of 384" in out
    assert "adaptive:   done, 2 rounds, 2 of 3 points converged, 1 stopped at max" in out
    assert "target:     mean of y +- 0.5 (95 % confidence)" in out
    assert "seeds:      adaptive (below), root_seed 11" in out


# -- durable: kill the driver, resume ------------------------------------------------------

KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import ensembles as ens
    from tests import sims
    if __name__ == "__main__":
        e = ens.Ensemble(sims.spread, ens.Grid(a=[0.1, 1.0, 3.0]),
                         seeds=ens.Adaptive(initial=8, max=128), root_seed=11,
                         fixed={{"delay": 0.02, "log": {log!r}}}, batch_size=4)
        e.to_zarr({path!r}, until=ens.Precision("y", halfwidth=0.5), progress=False, workers=2)
    """
)


def _run_and_kill(script: Path, log: Path, after_calls: int) -> None:
    """Run a script in its own process group; SIGKILL the group after some member calls."""
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_calls(log)) < after_calls and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


GATED_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    import ensembles as ens
    from tests import sims
    if __name__ == "__main__":
        e = ens.Ensemble(sims.spread, ens.Grid(a=[0.1, 1.0, 3.0]),
                         seeds=ens.Adaptive(initial=8, max=128), root_seed=11,
                         fixed={{"log": {log!r}, "gate": {gate!r}, "gate_after": 24}})
        e.to_zarr({path!r}, until=ens.Precision("y", halfwidth=0.5), progress=False, workers=2)
    """
)


def _lease_generations(path: Path) -> list[str]:
    return sorted(n for n in os.listdir(path / "_ensembles_lease") if n.startswith("g"))


def _consolidated_status_shape(path: Path) -> list[int] | None:
    """The status array's shape in the store's consolidated copy (None: no copy)."""
    root = json.loads((path / "zarr.json").read_text())
    copy = (root.get("consolidated_metadata") or {}).get("metadata")
    return None if copy is None else copy["status"]["shape"]


def _wait_for(check, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def _gated_run(tmp_path: Path, path: Path) -> Iterator[Path]:
    """Run GATED_SCRIPT into ``path`` in its own process; yields its member log while
    round 2's members wait; then opens the gate and requires the run to end well."""
    log, gate = tmp_path / "calls.txt", tmp_path / "gate"
    gate.write_text("")  # members after the pilot's 24 wait while it exists
    script = tmp_path / "run.py"
    script.write_text(
        GATED_SCRIPT.format(root=str(ROOT), log=str(log), gate=str(gate), path=str(path))
    )
    proc = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    try:
        yield log
    finally:
        gate.unlink()
        try:
            proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0


def test_a_live_store_is_consistent_while_a_round_runs_and_its_bookkeeping_is_done(tmp_path):
    """A round's store is grown before its members run; its consolidated metadata, the
    round's member seeds and the skipped members of stopped points are written while the
    members run. A reader meanwhile sees the grown layout (never a stale copy), and the
    bookkeeping is all there before the round's members are."""
    path = tmp_path / "live.zarr"
    with _gated_run(tmp_path, path) as log:
        assert _wait_for(lambda: len(_calls(log)) >= 24 and len(_record(path)["rounds"]) == 2)
        second = _record(path)["rounds"][1]
        n, add = np.asarray(second["n"]), np.asarray(second["add"])
        extent = int((n + add).max())
        assert (add == 0).any()  # some points stopped ...
        assert (add > 0).any()  # ... and some go on
        todo = round_mask(n, add, extent)
        beyond = (np.arange(extent) >= n[:, None]) & (add == 0)[:, None]
        seeds = (
            ens.Ensemble(sims.spread, ens.Grid(a=[0.1, 1.0, 3.0]), seeds=extent, root_seed=11)
            .members()
            .seeds
        )

        def bookkept() -> bool:
            ds = ens.open_ensemble(path)
            return bool(
                (ds["member_seed"].values[todo] == seeds[todo]).all()
                and (ds["status"].values[beyond] == SKIPPED).all()
            )

        assert _wait_for(bookkept), "the round's bookkeeping was not written while it ran"
        ds = ens.open_ensemble(path)
        assert ds.sizes["seed"] == extent
        assert (ds["status"].values[todo] == PENDING).all()  # gated: none ran yet
        assert _consolidated_status_shape(path) in (None, [3, extent])  # never a stale copy
        assert len(_calls(log)) == 24
    assert _consolidated_status_shape(path) == list(ens.open_ensemble(path)["status"].shape)


def test_one_writer_lease_for_every_round_and_bad_input_refused_before_it(tmp_path):
    path = tmp_path / "held.zarr"
    with _gated_run(tmp_path, path) as log:
        assert _wait_for(lambda: len(_calls(log)) >= 24, 180)
        assert len(_calls(log)) == 24, "the pilot did not finish, or round 2 did not wait"
        held = _lease_generations(path)
        assert len(held) == 1
        same = ens.Ensemble(
            sims.spread,
            ens.Grid(a=[0.1, 1.0, 3.0]),
            seeds=RULE,
            root_seed=11,
            fixed={"log": str(log), "gate": str(tmp_path / "gate"), "gate_after": 24},
        )
        # bad input is refused before the lease is asked for: a SpecError, nothing written
        with pytest.raises(SpecError, match=r"'Y' is not an output"):
            same.to_zarr(path, mode="resume", until=ens.Precision("Y", halfwidth=0.5))
        # the pilot is done and round 2 runs: the run still holds the lease it took first
        for mode in ("resume", "w"):
            with pytest.raises(StoreError, match="another process is writing") as info:
                same.to_zarr(path, mode=mode, until=TARGET, progress=False)
            assert not isinstance(info.value, StoreMismatchError)
        assert _lease_generations(path) == held
        assert len(_calls(log)) == 24
    record = _record(path)
    assert record["state"] == "done"
    assert len(record["rounds"]) == 2
    assert _lease_generations(path) == held  # one lease, taken once, for every round
    status = EnsembleStore(str(path)).status()
    assert not (status == PENDING).any()
    assert int(((status == OK) | (status == FAILED)).sum()) == len(_calls(log))


@pytest.mark.parametrize("how", ["to_zarr", "cli"])
def test_sigkill_mid_round_then_resume_ends_as_an_uninterrupted_run(tmp_path, how):
    ref_path = tmp_path / "ref.zarr"
    ref = _ensemble(batch_size=4).to_zarr(ref_path, until=TARGET, progress=False).load()
    log, path = tmp_path / "calls.txt", tmp_path / "kill.zarr"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), log=str(log), path=str(path)))
    _run_and_kill(script, log, after_calls=24 + 20)  # the pilot, then into round 2
    record = _record(path)
    assert record["state"] == "running"
    assert len(record["rounds"]) == 2
    info = describe(path)["adaptive"]  # info reports a running store too
    assert info["state"] == "running"
    assert info["rounds"] == 2
    assert info["converged"] == 1
    ok_before = int((EnsembleStore(str(path)).status() == OK).sum())
    last = record["rounds"][-1]
    assert 24 <= ok_before < int(np.sum(last["n"]) + np.sum(last["add"]))
    calls_before = len(_calls(log))
    if how == "to_zarr":
        e = _ensemble(log, delay=0.02, batch_size=4)
        final = e.to_zarr(path, mode="resume", until=TARGET, progress=False, workers=2)
    else:
        assert main(["resume", str(path), "-q", "--workers", "2"]) == 0
        final = ens.open_ensemble(path)
    # the round in progress was finished, then the run went on; ok members never reran
    assert len(_calls(log)) - calls_before == int((final["status"].values == OK).sum()) - ok_before
    np.testing.assert_array_equal(final["status"].values, ref["status"].values)
    np.testing.assert_array_equal(final["y"].values, ref["y"].values)
    ok = ref["status"].values == OK
    np.testing.assert_array_equal(final["member_seed"].values[ok], ref["member_seed"].values[ok])
    assert _decisions(_record(path)) == _decisions(_record(ref_path))


def test_resume_of_a_finished_run_runs_nothing_and_a_new_target_goes_on(tmp_path):
    log, path = tmp_path / "calls.txt", tmp_path / "f.zarr"
    first = _ensemble(log).to_zarr(path, until=TARGET, progress=False)
    n_first = _run_members(first["status"].values)
    before = len(_calls(log))
    assert before == n_first.sum()
    _ensemble(log).to_zarr(path, mode="resume", progress=False)  # the stored target
    assert len(_calls(log)) == before
    # a tighter target continues from the stored members (skipped ones may run now)
    tighter = ens.Precision("y", halfwidth=0.25)
    ds = _ensemble(log).to_zarr(path, mode="resume", until=tighter, progress=False)
    record = _record(path)
    assert record["until"] == [tighter.to_dict()]
    assert len(record["rounds"]) == 3
    n = _run_members(ds["status"].values)
    assert (n >= n_first).all()
    assert n[1] > n_first[1]
    assert len(_calls(log)) - before == int(n.sum() - n_first.sum())
    # a fixed-size run cannot resume an adaptive store
    with pytest.raises(StoreMismatchError, match="the store holds the adaptive rule"):
        _ensemble(log, rule=8).to_zarr(path, mode="resume", progress=False)


def test_failed_members_stay_failed_until_resumed_with_only_failed(tmp_path):
    flag, path = tmp_path / "fail", tmp_path / "f.zarr"
    flag.write_text("")
    e = ens.Ensemble(
        sims.spread,
        ens.Grid(a=[0.1, 1.0, 3.0]),
        seeds=RULE,
        root_seed=11,
        fixed={"fail_flag": str(flag)},
    )
    ds = e.to_zarr(path, until=TARGET, progress=False)
    status = ds["status"].values
    failed = status == FAILED
    assert failed.any()
    assert "ValueError: seed" in str(ds["error"].values[failed][0])
    # the decisions counted them as missing: each point's members are ok + failed
    n = np.asarray(_record(path)["final"]["n"])
    assert _run_members(status).tolist() == n.tolist()
    assert ds["y"].ens.count("seed").values.tolist() == (n - failed.sum(axis=1)).tolist()
    # a plain resume leaves them failed; only="failed" runs them again, then goes on
    e.to_zarr(path, mode="resume", progress=False)
    np.testing.assert_array_equal(ens.open_ensemble(path)["status"].values, status)
    flag.unlink()
    again = e.to_zarr(path, mode="resume", only="failed", progress=False)
    assert not (again["status"].values == FAILED).any()
    assert (again["status"].values[failed] == OK).all()


def test_a_larger_max_on_resume_grows_the_store_again(tmp_path):
    path = tmp_path / "m.zarr"
    small = ens.Adaptive(initial=8, max=64)  # seed chunks of 3: the last one sticks out
    _ensemble(rule=small, batch_size=3).to_zarr(path, until=TARGET, progress=False)
    assert _record(path)["final"]["at_max"] == [False, False, True]
    ds = _ensemble(batch_size=3).to_zarr(path, mode="resume", until=TARGET, progress=False)
    n = np.asarray(_record(path)["final"]["n"])
    assert n[2] == 128
    status = ds["status"].values
    np.testing.assert_array_equal(_run_members(status), n)
    assert ((np.arange(status.shape[1]) >= n[:, None]) == (status == SKIPPED)).all()
    ref = _ensemble(batch_size=3).to_zarr(tmp_path / "ref.zarr", until=TARGET, progress=False)
    np.testing.assert_array_equal(ds["y"].values, ref["y"].values)


def test_overwrite_replaces_an_adaptive_store(tmp_path):
    path = tmp_path / "o.zarr"
    _ensemble().to_zarr(path, until=TARGET, progress=False)
    loose = ens.Precision("y", halfwidth=5.0)  # met by the pilot everywhere
    ds = _ensemble().to_zarr(path, mode="w", until=loose, progress=False)
    assert ds.sizes["seed"] == 8
    assert (ds["status"].values == OK).all()
    assert len(_record(path)["rounds"]) == 1


# -- everywhere: spec, CLI, sampled designs, a dask cluster ----------------------------------

SPEC = """
[simulation]
function = "tests.sims:spread"

[design.grid]
a = [0.1, 1.0, 3.0]

[run]
seeds = {initial = 8, max = 128}
root_seed = 11
until = {var = "y", stat = "mean", halfwidth = 0.5}
"""


def test_spec_to_store_to_resume_round_trip(tmp_path, capsys):
    spec, out = tmp_path / "run.toml", tmp_path / "cli.zarr"
    spec.write_text(SPEC)
    assert main(["run", str(spec), "-o", str(out), "-q", "--workers", "2"]) == 0
    ok = int((ens.open_ensemble(out)["status"].values == OK).sum())
    line = f"{ok} of {ok} members ok ({384 - ok} not run: the adaptive rule needed no more)"
    assert line in capsys.readouterr().out
    stored = EnsembleStore(str(out)).spec()
    assert stored["run"]["seeds"] == RULE.to_dict()
    assert stored["run"]["until"] == [TARGET.to_dict()]
    assert ens.Ensemble.from_spec(stored).adaptive == RULE
    ref = _ensemble().to_zarr(tmp_path / "api.zarr", until=TARGET, progress=False)
    ds = ens.open_ensemble(out)
    np.testing.assert_array_equal(ds["status"].values, ref["status"].values)
    np.testing.assert_array_equal(ds["y"].values, ref["y"].values)
    before = _decisions(_record(out))
    assert main(["resume", str(out), "-q"]) == 0
    assert _decisions(_record(out)) == before


def test_samples_grow_for_a_sampled_design(tmp_path):
    design = ens.Sobol(n=4, seed=1, a=(0.5, 2.0))
    rule = ens.Adaptive(initial=8, max=256, pow2=True)
    e = ens.Ensemble(sims.spread, design, seeds=2, root_seed=3, samples=rule)
    target = ens.Precision("y", halfwidth=0.4)
    ds = e.to_zarr(tmp_path / "s.zarr", until=target, progress=False)
    record = _record(tmp_path / "s.zarr")
    n = int(record["final"]["n"])
    assert record["grow"] == "sample"
    assert record["block"] == 2
    assert record["point_dims"] == []
    assert ds.sizes["sample"] == n
    assert n & (n - 1) == 0
    assert 8 < n <= 256
    assert (ds["status"].values == OK).all()
    # the store holds the prefix-stable extension of the design
    np.testing.assert_array_equal(
        ds["a"].values, ens.Sobol(n=n, seed=1, a=(0.5, 2.0)).table()["a"]
    )
    pooled = ds["y"].values.reshape(-1)
    rule = ens.Adaptive.from_dict(record["rule"])
    again = decide([pooled[:, None]], np.asarray(n), target, rule, block=2, prejudged=True)
    assert again.done
    assert bool(again.converged)


def test_an_adaptive_run_on_a_dask_cluster(tmp_path, client):
    remote = _ensemble(a=(0.1, 1.0)).to_zarr(
        tmp_path / "d.zarr", until=TARGET, scheduler=client, progress=False
    )
    local = _ensemble(a=(0.1, 1.0)).to_zarr(tmp_path / "l.zarr", until=TARGET, progress=False)
    np.testing.assert_array_equal(remote["status"].values, local["status"].values)
    np.testing.assert_array_equal(remote["y"].values, local["y"].values)
    assert _decisions(_record(tmp_path / "d.zarr")) == _decisions(_record(tmp_path / "l.zarr"))
