"""Command: external programs as simulations, run in real subprocesses."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import ensembles as ens
from ensembles.errors import MemberError, SimulationError, SpecError
from ensembles.simulations.command import Command, CommandError
from ensembles.simulations.contract import Output, Simulation, as_simulation
from ensembles.simulations.programs import member_dir_name

ISING = Path(__file__).resolve().parents[1] / "examples" / "ising_cli" / "run_ising.py"

# One small program with several behaviours, chosen by its first argument.
TOOL = r"""
import json, os, subprocess, sys, time
mode, out, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "echo":  # write the argv it received, as character codes
    with open(out, "w") as f:
        json.dump({"n_args": len(rest), "codes": [ord(c) for c in rest[0]]}, f)
elif mode == "csv":  # x = a * seed over 3 steps
    a, seed = float(rest[0]), int(rest[1])
    with open(out, "w") as f:
        f.write("step,x\n" + "".join(f"{s},{a * seed + s}\n" for s in range(3)))
elif mode == "fail":
    for i in range(30):
        print(f"diagnostic line {i}", file=sys.stderr)
    sys.exit(int(rest[0]))
elif mode == "sleep":
    print("about to sleep", file=sys.stderr, flush=True)
    if rest:  # start a grandchild that would outlive us, and record its pid
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(rest[0], "w") as f:
            f.write(str(child.pid))
    time.sleep(60)
elif mode == "nothing":
    print("ran fine but wrote nothing")
elif mode == "garbled":
    with open(out, "w") as f:
        f.write("step,x\n0,1.0\n1,2.0\n2\n")
    print("wrote a short last line", file=sys.stderr)
elif mode == "cwd":  # list what the scratch directory holds, and the env
    files = sorted(os.listdir("."))
    with open(out, "w") as f:
        json.dump({"n_files": len(files), "has_data": int("data.txt" in files),
                   "has_sub": int(os.path.exists(os.path.join("sub", "inner.txt"))),
                   "env": float(os.environ.get("TOOL_VALUE", "nan"))}, f)
elif mode == "stdout":
    print("k,v")
    print(f"1,{rest[0]}")
"""


@pytest.fixture(scope="module")
def tool(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tool") / "tool.py"
    path.write_text(TOOL)
    return str(path)


def _cmd(tool: str, mode: str, *args: str, **kwargs) -> Command:
    output = kwargs.pop("output", "out.json" if mode in ("echo", "cwd") else "out.csv")
    return Command([sys.executable, tool, mode, "{output}", *args], output=output, **kwargs)


def _ising_argv(output: str) -> list[str]:
    return [
        sys.executable, str(ISING), "--temps", "{T}", "--grid-size", "{L}",
        "--n-sweeps", "{n_sweeps}", "--burn-in", "{burn_in}", "--thin", "{thin}",
        "--seed", "{seed}", "--output", output,
    ]  # fmt: skip


ISING_FIXED = {"L": 8, "n_sweeps": 40, "burn_in": 10, "thin": 5}


def _ising_by_hand(tmp_path: Path, T: float, seed: int, **fixed) -> pd.DataFrame:
    out = tmp_path / f"hand-{T}-{seed}.csv"
    argv = _ising_argv(str(out))
    values = {"T": T, "seed": seed, **fixed}
    subprocess.run([a.format(**values) for a in argv], check=True)
    return pd.read_csv(out)


# -- values --------------------------------------------------------------------------------


def test_values_equal_the_program_called_by_hand(tmp_path):
    sim = Command(_ising_argv("{output}"), output="results.csv", index="sweep")
    ds = sim(T=2.0, seed=11, **ISING_FIXED)
    hand = _ising_by_hand(tmp_path, 2.0, 11, **ISING_FIXED)
    assert ds["M"].dims == ("sweep",)
    np.testing.assert_array_equal(ds["sweep"].values, hand["sweep"].to_numpy())
    np.testing.assert_array_equal(ds["M"].values, hand["M"].to_numpy())
    np.testing.assert_array_equal(ds["E"].values, hand["E"].to_numpy())


def test_command_ensemble_equals_members_run_by_hand(tmp_path):
    sim = Command(
        _ising_argv("{output}"), output="results.csv", index="sweep", variables=["M", "E"]
    )
    e = ens.Ensemble(sim, ens.Grid(T=[1.5, 3.0]), seeds=1, root_seed=5, fixed=ISING_FIXED)
    ds = e.to_dataset().compute(scheduler="threads")
    assert ds["M"].dims == ("T", "seed", "sweep")
    assert ds["sweep"].values.tolist() == [15, 20, 25, 30, 35, 40]
    spec = json.loads(ds.attrs["ensembles"])  # the run's spec records the command
    assert Command.from_dict(spec["simulation"]).to_dict() == sim.to_dict()
    for T in (1.5, 3.0):
        member = ds.sel(T=T).isel(seed=0)
        hand = _ising_by_hand(tmp_path, T, int(member["member_seed"]), **ISING_FIXED)
        np.testing.assert_array_equal(member["M"].values, hand["M"].to_numpy())
        np.testing.assert_array_equal(member["E"].values, hand["E"].to_numpy())


def test_program_sweeping_its_own_parameter_pivots_on_two_index_columns():
    sim = Command(_ising_argv("{output}"), output="results.csv", index=["ParamValue", "sweep"])
    ds = sim(T="1.5,2.5", seed=3, **ISING_FIXED)
    assert ds["M"].dims == ("ParamValue", "sweep")
    assert ds["ParamValue"].values.tolist() == [1.5, 2.5]


# Writes its temperature like R's write.csv: `3` when it is whole, `2.95` otherwise.
WHOLE_AS_INTEGER = """
import sys
out, t = sys.argv[1], float(sys.argv[2])
text = str(int(t)) if t.is_integer() else repr(t)
with open(out, "w") as f:
    f.write("sweep,temp,count\\n" + "".join(f"{s},{text},{2 * s}\\n" for s in (1, 2, 3)))
"""


def test_a_first_member_writing_integers_does_not_fix_the_output_type(tmp_path):
    script = tmp_path / "whole.py"
    script.write_text(WHOLE_AS_INTEGER)
    argv = [sys.executable, str(script), "{output}", "{T}"]
    design = ens.Grid(T=[3.0, 2.95, 3.05])  # the first member writes `3`, the others floats
    sim = Command(argv, output="r.csv", index="sweep")
    ds = ens.Ensemble(sim, design, seeds=2, root_seed=1).to_dataset().compute(scheduler="threads")
    assert (ds["status"] == 1).all()
    assert ds["temp"].dtype == np.float64
    np.testing.assert_array_equal(ds["temp"].isel(seed=0, sweep=0).values, [3.0, 2.95, 3.05])
    assert ds["sweep"].dtype == np.int64
    # a declared dtype wins over the promotion to float64
    outputs = {"temp": Output(dims=("sweep",)), "count": Output(dims=("sweep",), dtype="int64")}
    sim = Command(argv, output="r.csv", index="sweep", outputs=outputs)
    ds = ens.Ensemble(sim, design, seeds=1, root_seed=1).to_dataset().compute(scheduler="threads")
    assert (ds["temp"].dtype, ds["count"].dtype) == (np.float64, np.int64)
    assert ds["count"].isel(T=1, seed=0).values.tolist() == [2, 4, 6]


def test_schema_and_normalize_follow_the_simulation_contract(tool):
    sim = _cmd(tool, "csv", "{a}", "{seed}", index="step")
    result = sim.call({"a": 2.0}, 10)
    schema = sim.schema_from_result(result, {"a": 2.0})
    assert schema.outputs["x"].dims == ("step",)
    assert schema.outputs["x"].shape == (3,)
    assert schema.coords["step"].tolist() == [0, 1, 2]
    arrays, _, _ = sim.normalize(result, {"a": 2.0})
    np.testing.assert_array_equal(arrays["x"], [20.0, 21.0, 22.0])
    assert sim.declared_schema({"a": 2.0}) is None
    pickle.dumps(result)  # results travel between processes


def test_declared_outputs_need_no_probe(tool):
    outputs = {"x": Output(dims=("step",), shape=(3,), dtype="float64")}
    sim = _cmd(tool, "csv", "{a}", "{seed}", index="step", outputs=outputs,
               coords={"step": [0, 1, 2]})  # fmt: skip
    schema = sim.declared_schema({"a": 1.0})
    assert schema is not None
    assert schema.outputs["x"].shape == (3,)


def test_stdout_output_and_format_override(tool):
    sim = Command([sys.executable, tool, "stdout", "-", "{v}"], output="-")
    assert sim(v=4.5, seed=0)["v"].item() == 4.5
    with pytest.raises(SimulationError, match="output='-' reads standard output"):
        Command(["prog", "{output}"], output="-")


# -- failures ------------------------------------------------------------------------------


def test_non_zero_exit_carries_command_line_exit_code_and_stderr_tail(tool):
    sim = _cmd(tool, "fail", "{code}")
    with pytest.raises(CommandError, match="failed with exit code 3") as info:
        sim(code=3, seed=42)
    err = info.value
    assert isinstance(err, MemberError)
    assert err.reason == "exit"
    assert err.returncode == 3
    assert err.seed == 42
    assert err.params == {"code": 3}
    assert err.argv[0] == sys.executable
    assert err.argv[2:] != ()
    message = str(err)
    assert "command: " in message
    assert tool in message
    assert "exit code: 3" in message
    assert "diagnostic line 29" in message  # the tail ...
    assert "diagnostic line 10" in message
    assert "diagnostic line 9" not in message  # ... is the last 20 lines only
    assert err.stderr.splitlines()[-1] == "diagnostic line 29"


def test_signal_exit_is_named(tmp_path):
    script = tmp_path / "kill_self.py"
    script.write_text("import os, signal; os.kill(os.getpid(), signal.SIGTERM)\n")
    sim = Command([sys.executable, str(script), "{output}"], output="o.csv")
    if os.name != "posix":  # pragma: no cover
        pytest.skip("signals are POSIX")
    with pytest.raises(CommandError, match="killed by SIGTERM"):
        sim(seed=0)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")
def test_timeout_kills_the_program_and_its_children(tool, tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    sim = _cmd(tool, "sleep", str(pid_file), timeout=1)
    start = time.perf_counter()
    with pytest.raises(CommandError, match=r"timed out after 1 s") as info:
        sim(seed=1)
    assert time.perf_counter() - start < 10
    assert info.value.reason == "timeout"
    assert info.value.returncode is None
    assert "about to sleep" in str(info.value)
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)
    assert not _alive(grandchild), "the program's own child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "zombie" not in state


def test_missing_output_file(tool):
    with pytest.raises(CommandError, match=r"did not write its output 'out\.csv'") as info:
        _cmd(tool, "nothing")(seed=0)
    assert info.value.reason == "missing-output"
    assert info.value.returncode == 0
    assert "ran fine but wrote nothing" in str(info.value)  # stdout tail when stderr is empty


def test_garbled_output(tool):
    with pytest.raises(CommandError, match=r"output is unusable.*line 4 has 1 field") as info:
        _cmd(tool, "garbled", index="step")(seed=0)
    assert info.value.reason == "garbled-output"
    assert "wrote a short last line" in str(info.value)


def test_program_that_cannot_start():
    sim = Command(["ensembles-no-such-program-xyz", "{output}"], output="o.csv")
    with pytest.raises(CommandError, match="cannot start program") as info:
        sim(seed=0)
    assert info.value.reason == "not-started"


def test_command_error_pickles_with_its_details(tool):
    with pytest.raises(CommandError) as info:
        _cmd(tool, "fail", "{code}")(code=5, seed=9)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is CommandError
    assert str(copy) == str(info.value)
    assert (copy.returncode, copy.reason, copy.seed, copy.params) == (5, "exit", 9, {"code": 5})
    assert copy.argv == info.value.argv
    assert copy.stderr == info.value.stderr


@pytest.mark.distributed
def test_failures_are_recorded_and_the_run_completes(tool, client, capsys):
    sim = _cmd(tool, "fail_or_csv", "{a}", "{seed}")
    script = Path(tool).with_name("fail_or_csv.py")
    script.write_text(
        "import sys\n"
        "out, a, seed = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])\n"
        "if a < 0:\n"
        "    print('negative a is not allowed', file=sys.stderr); sys.exit(2)\n"
        "open(out, 'w').write('x\\n%r\\n' % (a * 2))\n"
    )
    sim = Command([sys.executable, str(script), "{output}", "{a}", "{seed}"], output="o.csv")
    e = ens.Ensemble(sim, ens.Grid(a=[1.0, -1.0, 2.0]), seeds=2, root_seed=0)
    ds = e.compute(scheduler=client, on_error="record", progress=True)
    assert ds["status"].values.tolist() == [[1, 1], [2, 2], [1, 1]]
    assert ds["x"].sel(a=2.0).values.tolist() == [4.0, 4.0]
    assert np.isnan(ds["x"].sel(a=-1.0).values).all()
    report = capsys.readouterr()
    assert "CommandError" in report.out + report.err


# -- safety --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["x; rm -rf ~", "$(touch pwned)", "`touch pwned` && echo hi > pwned", "a b\tc\n'\"", "{seed}"],
    ids=["semicolon", "substitution", "backticks", "whitespace-quotes", "braces"],
)
def test_parameter_values_arrive_as_one_literal_argument(tool, tmp_path, value):
    sim = _cmd(tool, "echo", "{v}", "tail", keep_workdirs=True, scratch_dir=tmp_path)
    ds = sim(v=value, seed=1)
    assert int(ds["n_args"]) == 2  # the value and "tail": nothing split, nothing added
    assert "".join(chr(int(c)) for c in ds["codes"].values) == value
    (member,) = list(tmp_path.iterdir())
    assert not (member / "work" / "pwned").exists()
    assert not Path("pwned").exists()


def test_no_shell_anywhere_in_the_package():
    source = Path(ens.__file__).parent
    for path in source.rglob("*.py"):
        assert "shell=True" not in path.read_text(), path


# -- scratch directories -------------------------------------------------------------------


def test_scratch_directories_are_removed(tool, tmp_path):
    base = tmp_path / "scratch"
    ok = _cmd(tool, "csv", "1", "{seed}", index="step", scratch_dir=base)
    ok(seed=3)
    ok(seed=4)
    with pytest.raises(CommandError, match="keep_workdirs=True"):
        _cmd(tool, "fail", "1", scratch_dir=base)(seed=0)
    assert list(base.iterdir()) == []


def test_keep_workdirs_keeps_them_with_logs(tool, tmp_path):
    sim = _cmd(tool, "fail", "4", scratch_dir=tmp_path, keep_workdirs=True)
    with pytest.raises(CommandError) as info:
        sim(seed=0)
    (member,) = list(tmp_path.iterdir())
    assert f"scratch directory kept at {member}" in str(info.value)
    assert info.value.workdir == str(member)
    assert sorted(p.name for p in member.iterdir()) == [
        "member.json",
        "stderr.txt",
        "stdout.txt",
        "work",
    ]
    assert "diagnostic line 0" in (member / "stderr.txt").read_text()
    assert json.loads((member / "member.json").read_text())["seed"] == 0


def test_kept_scratch_directories_name_their_member_and_record_how_to_rerun_it(tool, tmp_path):
    scratch = tmp_path / "scratch"
    sim = _cmd(tool, "csv", "{a}", "{seed}", index="step", keep_workdirs=True, scratch_dir=scratch)
    e = ens.Ensemble(sim, ens.Grid(a=[3.0739214, -2.5]), seeds=2, root_seed=4)
    ds = e.to_dataset().compute(scheduler="threads")
    e.to_dataset().compute(scheduler="threads")  # a second run sharing the scratch dir
    dirs = sorted(p.name for p in scratch.iterdir())
    assert len(dirs) == 8  # nothing overwritten
    expected = [
        "member-000000_a=3.07392_seed=0-",
        "member-000001_a=3.07392_seed=1-",
        "member-000002_a=-2.5_seed=0-",
        "member-000003_a=-2.5_seed=1-",
    ]
    assert [d[: d.rindex("-") + 1] for d in dirs] == sorted(expected * 2)
    for path in scratch.iterdir():
        record = json.loads((path / "member.json").read_text())
        pos = record["position"]
        here = ds.isel(a=pos["a"], seed=pos["seed"])
        assert record["member"] == int(path.name[7:13])
        assert record["params"] == {"a": float(here["a"])}
        assert record["seed"] == int(here["member_seed"])
        assert record["seed_bits"] == 63
        assert record["argv"][-2:] == [repr(float(here["a"])), str(record["seed"])]
        assert record["command"] == " ".join(record["argv"])
        # rerun by hand, exactly as recorded: the same output
        rerun = tmp_path / "rerun.csv"
        argv = [str(rerun) if a == record["output"] else a for a in record["argv"]]
        subprocess.run(argv, check=True)
        assert rerun.read_text() == Path(record["output"]).read_text()
        np.testing.assert_array_equal(pd.read_csv(rerun)["x"].to_numpy(), here["x"].values)


def test_a_member_run_by_hand_is_named_by_its_parameters(tool, tmp_path):
    sim = _cmd(
        tool, "csv", "{a}", "{seed}", index="step", keep_workdirs=True, scratch_dir=tmp_path
    )
    sim(a=1.5, seed=3)
    (member,) = list(tmp_path.iterdir())
    assert member.name.startswith("member_a=1.5-")
    record = json.loads((member / "member.json").read_text())
    assert (record["params"], record["seed"]) == ({"a": 1.5}, 3)
    assert "member" not in record  # not part of an ensemble
    # unsafe characters are replaced, long names cut (keeping the seed index)
    assert member_dir_name(None, {"s": "a b/c:d"}) == "member_s=a_b_c_d"
    many = {"a": 1.0, **{f"parameter_{i}": "v" * 20 for i in range(10)}}
    name = member_dir_name({"member": 1, "position": {"seed": 3}, "params": many}, many)
    assert len(name) == 100
    assert name.startswith("member-000001_a=1_parameter_0=vvv")
    assert name.endswith("_seed=3")


def test_members_get_fresh_directories_seeded_with_inputs(tool, tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("1 2 3")
    template = tmp_path / "template"
    (template / "sub").mkdir(parents=True)
    (template / "sub" / "inner.txt").write_text("x")
    sim = _cmd(tool, "cwd", inputs=[data, template], env={"TOOL_VALUE": "{v}"})
    ds = sim(v=2.5, seed=0)
    assert int(ds["has_data"]) == 1
    assert int(ds["has_sub"]) == 1
    assert int(ds["n_files"]) == 2  # data.txt, sub/ -- nothing left by an earlier member
    assert float(ds["env"]) == 2.5
    mapped = _cmd(tool, "cwd", inputs={"sub/inner.txt": data}, env={"TOOL_VALUE": "1"})
    out = mapped(seed=0)
    assert (int(out["has_data"]), int(out["has_sub"])) == (0, 1)


def test_relative_path_to_a_script_gets_a_hint(tmp_path, monkeypatch):
    script = tmp_path / "make.py"
    script.write_text("import sys; open(sys.argv[1], 'w').write('x\\n1\\n')\n")
    monkeypatch.chdir(tmp_path)
    sim = Command([sys.executable, "make.py", "{output}"], output="o.csv")
    with pytest.raises(CommandError, match=r"pass inputs=\['make.py'\]"):
        sim(seed=0)
    copied = Command([sys.executable, "make.py", "{output}"], output="o.csv", inputs=["make.py"])
    assert copied(seed=0)["x"].item() == 1


# -- placeholders and validation -----------------------------------------------------------


def test_placeholders_are_checked_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    sim = Command(
        [sys.executable, "-c", f"open({str(marker)!r}, 'w')", "{T}", "{n_sweeps}", "{seed}"],
        output="o.csv",
    )
    assert sim.parameters == ("T", "n_sweeps")
    assert sim.required == ("T", "n_sweeps")
    sim.check_parameters(["T", "n_sweeps"])
    with pytest.raises(SimulationError, match=r"\{n_sweeps\} in argv\[4\].*name no parameter"):
        sim.check_parameters(["T"])
    with pytest.raises(SimulationError, match=r"\['L'\] are not used"):
        sim.check_parameters(["T", "n_sweeps", "L"])
    with pytest.raises(SimulationError, match=r"\['output'\] clash with placeholders"):
        sim.check_parameters(["T", "n_sweeps", "output"])
    with pytest.raises(SimulationError, match="name no parameter"):
        ens.Ensemble(sim, ens.Grid(T=[1.0, 2.0]), seeds=2)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        ("prog --t {T}", r"must be a list of arguments.*\['prog', '--t', '\{T\}'\]"),
        ([], "argv is empty"),
        (["prog", None], r"argv\[1\] = None is not a string"),
        (["prog", "{0}"], r"placeholder \{0\}"),
        (["prog", "{}"], r"placeholder \{\}"),
        (["prog", "{T.real}"], "no positions, attributes or indexing"),
        (["prog", "{T[0]}"], "no positions, attributes or indexing"),
        (["prog", "{T"], "not a valid template"),
        (["prog", "T}"], "not a valid template"),
        (["prog", "{T:{w}}"], "nests a placeholder"),
    ],
    ids=[
        "string",
        "empty",
        "none",
        "positional",
        "auto",
        "attr",
        "index",
        "open",
        "close",
        "nest",
    ],
)
def test_invalid_argv(argv, match):
    with pytest.raises(SimulationError, match=match):
        Command(argv, output="o.csv")


def test_format_specs_literal_braces_and_numbers(tool):
    sim = Command(["prog", "--t={T:.3f}", "{{literal}}", 7, Path("/x")], output="o.csv")
    assert sim.argv == ("prog", "--t={T:.3f}", "{{literal}}", "7", "/x")
    assert sim.parameters == ("T",)
    echo = _cmd(tool, "echo", "--t={T:.3f}{{{T!r}}}", "x")
    ds = echo(T=np.float64(2.0), seed=0)
    assert "".join(chr(int(c)) for c in ds["codes"].values) == "--t=2.000{np.float64(2.0)}"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"output": "/abs/out.csv"}, "must be a relative path"),
        ({"output": "../out.csv"}, "must be a relative path"),
        ({"output": ""}, "must be a file name"),
        ({"output": "out.xyz"}, "cannot tell the format"),
        ({"output": "out.csv", "format": "xlsx"}, "unknown output format"),
        ({"output": "out.nc", "index": "sweep"}, "only applies to csv, tsv and json"),
        ({"output": "out.csv", "timeout": 0}, "timeout must be a positive number"),
        ({"output": "out.csv", "timeout": "soon"}, "timeout must be a positive number"),
        ({"output": "out.csv", "inputs": ["/no/such/file"]}, "does not exist"),
        ({"output": "out.csv", "env": {"A=B": "1"}}, "name 'A=B' is invalid"),
        ({"output": "out.csv", "index": ["a", "a"]}, "distinct column names"),
    ],
    ids=[
        "abs", "parent", "empty", "ext", "format", "index-nc", "timeout0", "timeout-str",
        "inputs", "env", "index-dup",
    ],
)  # fmt: skip
def test_invalid_settings(kwargs, match):
    with pytest.raises(SimulationError, match=match):
        Command(["prog", "{output}"], **kwargs)


def test_a_missing_value_when_called_by_hand(tool):
    with pytest.raises(SimulationError, match=r"needs a value for the placeholder \{a\}"):
        _cmd(tool, "csv", "{a}", "{seed}")(seed=1)


# -- the Simulation contract, names, specs, pickling ---------------------------------------


def test_is_a_simulation(tool):
    sim = _cmd(tool, "csv", "{a}", "{seed}")
    assert isinstance(sim, Simulation)
    assert as_simulation(sim) is sim
    assert sim.direct_call() is None  # each member goes through call()
    assert sim.releases_gil is True
    assert sim.seed_argument == "seed"
    assert sim.func(a=1.0, seed=2)["x"].shape == (3,)


def test_default_name():
    argv = ["Rscript", "run_ising_model.R", "--temps", "{T}", "--output", "{output}"]
    assert Command(argv, output="r.csv").name == "command:Rscript run_ising_model.R"
    assert Command(["/usr/bin/prog", "{T}"], output="r.csv").name == "command:prog"
    assert Command(["prog"], output="r.csv", name="mine").name == "mine"


def test_to_dict_from_dict_roundtrip(tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("x")
    sim = Command(
        ["Rscript", "run.R", "--temps", "{T}", "--seed", "{seed}", "--output", "{output}"],
        output="results.csv",
        index=["ParamValue", "sweep"],
        timeout=60,
        inputs=[str(data)],
        env={"OMP_NUM_THREADS": "1"},
        outputs={"M": Output(dims=("ParamValue", "sweep"), shape=(1, 10), dtype="float64")},
        variables=["M"],
        name="ising-r",
    )
    d = sim.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["command"][0] == "Rscript"
    assert d["timeout"] == 60
    again = Command.from_dict(d)
    assert again.to_dict() == d
    assert again.outputs["M"].shape == (1, 10)
    assert Command.from_dict({"command": ["p", "{output}"], "output": "o.csv"}).to_dict() == {
        "command": ["p", "{output}"],
        "output": "o.csv",
    }


def test_spec_table_builds_a_command():
    from ensembles.spec import simulation_from_spec

    table = {"command": ["prog", "--t", "{T}", "{output}"], "output": "r.csv", "index": "sweep"}
    sim = as_simulation(simulation_from_spec(table))
    assert isinstance(sim, Command)
    assert sim.index == ("sweep",)


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"command": ["p"], "output": "o.csv", "shell": True}, r"unknown key\(s\) \['shell'\]"),
        ({"output": "o.csv"}, "needs 'command'"),
        ({"command": ["p"]}, "needs 'output'"),
        ({"command": "p --x 1", "output": "o.csv"}, r"\['p', '--x', '1'\]"),
        ({"command": ["p"], "output": "o.csv", "outputs": {"M": {"size": 3}}}, "keys dims"),
        (["p"], "must be a table"),
    ],
    ids=["unknown", "no-command", "no-output", "string", "bad-outputs", "not-table"],
)
def test_from_dict_errors(d, match):
    with pytest.raises(SpecError, match=match):
        Command.from_dict(d)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_pickle_roundtrip(tool, dumps):
    sim = _cmd(tool, "csv", "{a}", "{seed}", index="step", timeout=30)
    copy = pickle.loads(dumps(sim))
    assert isinstance(copy, Command)
    assert copy.to_dict() == sim.to_dict()
    xr.testing.assert_identical(copy(a=1.5, seed=2), sim(a=1.5, seed=2))
