"""Seeds a program accepts: a real C program that refuses seeds above 2**31 - 1."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import ensembles as ens
from ensembles.errors import MemberError
from ensembles.simulations.command import Command, CommandError
from ensembles.simulations.contract import Output

# Like R's set.seed and many C codes: the seed must fit a signed 32-bit int. Echoes the
# seed it received into its output, so the test can compare it with the stored one.
SEEDCHECK_C = r"""
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: seedcheck SEED T OUTPUT\n");
        return 2;
    }
    char *end;
    errno = 0;
    long long seed = strtoll(argv[1], &end, 10);
    if (errno != 0 || *end != '\0' || seed < 0 || seed > INT_MAX) {
        fprintf(stderr, "error: seed '%s' is not a valid 32-bit integer\n", argv[1]);
        return 3;
    }
    srand((unsigned int)seed);
    double t = atof(argv[2]);
    FILE *f = fopen(argv[3], "w");
    if (f == NULL) return 4;
    fprintf(f, "received_seed,x\n%lld,%.17g\n", seed, t * rand() / (double)RAND_MAX);
    return fclose(f) == 0 ? 0 : 4;
}
"""

OUTPUTS = {
    "received_seed": Output(dims=(), shape=(), dtype="int64"),
    "x": Output(dims=(), shape=(), dtype="float64"),
}


@pytest.fixture(scope="module")
def seedcheck(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH to build the test program")
    where = tmp_path_factory.mktemp("seedcheck")
    (where / "seedcheck.c").write_text(SEEDCHECK_C)
    program = where / "seedcheck"
    subprocess.run([cc, "-O1", "-o", str(program), str(where / "seedcheck.c")], check=True)
    return str(program)


def _ensemble(program: str, batch_size: int | None = None, **kwargs) -> ens.Ensemble:
    argv = [program, "{seed}", "{T}", "{output}"]
    sim = Command(argv, output="o.csv", outputs=OUTPUTS, **kwargs)
    design = ens.Grid(T=[1.0, 2.0, 3.0])
    return ens.Ensemble(sim, design, seeds=2, root_seed=11, batch_size=batch_size)


def test_the_program_refuses_large_seeds_by_hand(seedcheck):
    sim = Command([seedcheck, "{seed}", "{T}", "{output}"], output="o.csv")
    assert int(sim(T=1.0, seed=2**31 - 1)["received_seed"]) == 2**31 - 1
    with pytest.raises(CommandError) as info:
        sim(T=1.0, seed=2**31)
    message = str(info.value)
    assert "command failed with exit code 3" in message
    assert f"  command: {seedcheck} 2147483648 1.0 " in message
    assert "error: seed '2147483648' is not a valid 32-bit integer" in message
    assert "hint: the program's error mentions the seed" in message
    assert "pass seed_bits=31 to Command" in message
    assert info.value.returncode == 3


def test_default_63_bit_seeds_fail_with_a_clear_recorded_error(seedcheck, tmp_path):
    # timing the first members: they all fail, and the run stops saying why
    with pytest.raises(MemberError, match=r"(?s)all failed.*exit code 3.*seed_bits=31"):
        _ensemble(seedcheck).to_zarr(tmp_path / "probed.zarr", progress=False)
    # with a batch size nothing is probed: every member runs, fails, and is recorded
    ds = _ensemble(seedcheck, batch_size=2).to_zarr(tmp_path / "wide.zarr", progress=False)
    assert (ds["status"] == 2).all()  # a 63-bit seed is below 2**31 once in 2**32
    errors = ds["error"].values.ravel().tolist()
    for error, seed in zip(errors, ds["member_seed"].values.ravel().tolist(), strict=True):
        assert error.startswith("CommandError: command failed with exit code 3")
        assert "is not a valid 32-bit integer" in error
        assert f"{{seed}} was {seed}" in error
        assert "seed_bits=31" in error


def test_31_bit_seeds_run_and_the_store_holds_what_the_program_received(seedcheck, tmp_path):
    ds = _ensemble(seedcheck, seed_bits=31).to_zarr(tmp_path / "narrow.zarr", progress=False)
    assert (ds["status"] == 1).all()
    received = ds["received_seed"].values
    np.testing.assert_array_equal(received, ds["member_seed"].values)
    assert received.min() >= 0
    assert received.max() <= 2**31 - 1
    assert len(np.unique(received)) == received.size
    # a member rerun by hand with its stored seed gives its stored result
    member = ds.isel(T=2, seed=1)
    sim = Command([seedcheck, "{seed}", "{T}", "{output}"], output="o.csv")
    by_hand = sim(T=float(member["T"]), seed=int(member["member_seed"]))
    assert float(by_hand["x"]) == float(member["x"])


def test_no_seed_hint_when_the_failure_is_not_about_the_seed(tmp_path):
    script = tmp_path / "usage.py"
    script.write_text(
        "import sys\n"
        "print('usage: prog [-h] --temps TEMPS [--seed SEED] --output OUTPUT', file=sys.stderr)\n"
        "print('prog: error: --temps needs at least one positive temperature', file=sys.stderr)\n"
        "sys.exit(2)\n"
    )
    sim = Command([sys.executable, str(script), "{T}", "--seed", "{seed}"], output="o.csv")
    with pytest.raises(CommandError) as info:
        sim(T=-1.0, seed=2**40)
    assert "--temps needs at least one positive temperature" in str(info.value)
    assert "  hint:" not in str(info.value)
