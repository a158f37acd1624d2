"""Run an external program (an R script, a binary, a Julia model, ...) as a simulation.

:class:`Command` fills placeholders such as ``{T}`` and ``{seed}`` into an argument list,
runs the program without a shell in a fresh scratch directory per member, and reads its
output file into arrays with :func:`.output_files.read_output`. A member whose program
fails (non-zero exit, timeout, missing or garbled output) raises :class:`CommandError`
carrying the command line, the exit code and the tail of stderr.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import MemberError, SimulationError
from ..members.seeds import DEFAULT_SEED_BITS
from .command_templates import (
    FIELDS,
    STDOUT,
    compile_template,
    default_name,
    outputs_to_dict,
    parse_argv,
    parse_env,
    parse_index,
    parse_inputs,
    parse_output,
    parse_timeout,
    placeholder_sites,
    relative_path_hints,
    render_template,
    spec_arguments,
)
from .contract import Coords, Output, Outputs, Simulation, object_path
from .output_files import OutputFileError, infer_format, read_member_output
from .programs import TAIL_LINES as TAIL_LINES  # re-exported: documented here
from .programs import (
    ProgramFailure,
    copy_inputs,
    describe_exit,
    failure_report,
    make_member_dir,
    member_dir_name,
    run_program,
    tail,
    write_member_record,
)

__all__ = ["Command", "CommandError"]

#: Words that, on a line of stderr mentioning the seed, say the program refused it.
_SEED_TROUBLE = ("valid", "range", "overflow", "too large", "too big", "integer")


class CommandError(MemberError):
    """A member's program failed: non-zero exit, timeout, missing or garbled output.

    Attributes
    ----------
    argv : tuple of str
        The command line exactly as it was run (after filling placeholders).
    returncode : int or None
        The exit code; negative for a signal (POSIX); None when it was killed on timeout
        or never started.
    stderr : str
        The last lines of the program's standard error.
    reason : str
        ``"exit"``, ``"timeout"``, ``"missing-output"``, ``"garbled-output"`` or
        ``"not-started"``.
    workdir : str or None
        The member's scratch directory (removed unless ``keep_workdirs=True``).
    params, seed
        The member's parameters and seed, as for :class:`~ensembles.errors.MemberError`.
    """

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        returncode: int | None = None,
        stderr: str = "",
        reason: str = "exit",
        workdir: str | None = None,
        params: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(message, params=dict(params or {}), seed=seed)
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.reason = reason
        self.workdir = workdir

    def __reduce__(self):  # keep the class and every attribute across processes
        kwargs = {
            "argv": self.argv,
            "returncode": self.returncode,
            "stderr": self.stderr,
            "reason": self.reason,
            "workdir": self.workdir,
            "params": self.params,
            "seed": self.seed,
        }
        return (_rebuild_command_error, (str(self), kwargs))


def _rebuild_command_error(message: str, kwargs: dict[str, Any]) -> CommandError:
    return CommandError(message, **kwargs)


class Command(Simulation):
    """An external program run once per member, its output file read into arrays.

    Each element of ``argv`` may hold ``str.format`` placeholders: ``{name}`` for a design
    parameter or fixed value, ``{seed}`` for the member's integer seed, ``{output}`` for the
    absolute path where the program must write its output and ``{workdir}`` for its scratch
    directory. Format specs work (``{T:.3f}``); attribute and index access do not. Each
    element is filled separately and stays exactly one argument, whatever the value holds:
    the program is started from the argument list, never through a shell. Write ``{{`` and
    ``}}`` for literal braces.

    The program runs with a fresh scratch directory as its working directory, seeded with
    ``inputs``; relative paths in ``argv`` are relative to it, so pass scripts and data the
    program reads through ``inputs`` or give absolute paths.

    Parameters
    ----------
    argv : list of str
        The program and its arguments, e.g. ``["Rscript", "run.R", "--temp", "{T}"]``.
    output : str
        Path of the output file relative to the scratch directory (``{output}`` expands to
        its absolute path), or ``"-"`` to read the program's standard output.
    index : str or list of str, optional
        CSV/TSV/JSON: the columns that index rows (e.g. ``"sweep"`` or
        ``["ParamValue", "sweep"]``); they become output dimensions with their values as
        coordinates. See :func:`ensembles.simulations.output_files.read_output`.
    format : str, optional
        ``"csv"``, ``"tsv"``, ``"json"``, ``"netcdf"`` or ``"zarr"``; by default from the
        extension of ``output`` (``"csv"`` for standard output).
    timeout : float, optional
        Seconds a member may run; then its process group is killed and the member fails.
    inputs : path, list of paths or dict, optional
        Copied into every scratch directory before the program starts: a file keeps its
        name, a directory is a template whose contents are copied; a dict maps a relative
        destination to its source.
    keep_workdirs : bool
        Keep each member's scratch directory instead of removing it. It is named after the
        member (``member-000017_T=3.07392_seed=2-<suffix>``) and holds ``member.json``
        (the command line, parameters and seed), ``stdout.txt``, ``stderr.txt`` and the
        program's ``work/`` directory.
    env : dict of str to str, optional
        Environment variables set for the program on top of the inherited ones; values may
        hold placeholders.
    outputs : dict of str to Output, optional
        Declared outputs (dims, shape, dtype) so the ensemble needs no probe member; only
        these outputs are read.
    coords : dict, optional
        Coordinate values of declared output dimensions.
    variables : list of str, optional
        Read only these outputs (e.g. ``["M", "E"]``), ignoring other columns.
    scratch_dir : str, optional
        Directory under which scratch directories are made; default: the system's
        temporary directory.
    name : str, optional
        Name recorded in stores; default ``"command:"`` and the program's first words.
    seed_bits : int
        Bits of the seed passed through ``{seed}``, 1 to 63 (default 63: seeds below
        ``2**63``). Use 31 for programs that take a 32-bit signed integer seed, such as
        R's ``set.seed`` and many C and Fortran codes: seeds are then below ``2**31``. The
        stored ``member_seed`` is always the value the program received.

    Examples
    --------
    >>> import sys
    >>> sim = Command(
    ...     [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write('x\\\\n{T}\\\\n')",
    ...      "{output}"],
    ...     output="out.csv",
    ... )
    >>> sim.parameters
    ('T',)
    >>> float(sim(T=2.5, seed=0)["x"])
    2.5
    """

    #: Scratch directories are named after their member: :meth:`call` takes ``member=``.
    takes_member = True

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        output: str,
        index: str | Sequence[str] | None = None,
        format: str | None = None,
        timeout: float | None = None,
        inputs: str | os.PathLike[str] | Sequence[Any] | Mapping[str, Any] | None = None,
        keep_workdirs: bool = False,
        env: Mapping[str, str] | None = None,
        outputs: Outputs | None = None,
        *,
        coords: Coords | None = None,
        variables: Sequence[str] | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        self.argv = parse_argv(argv)
        self.output = parse_output(output)
        self.index = parse_index(index)
        try:
            self.format = infer_format(
                "out.csv" if self.output == STDOUT and format is None else self.output, format
            )
        except OutputFileError as exc:
            raise SimulationError(str(exc)) from None
        if self.index and self.format in ("netcdf", "zarr"):
            msg = (
                f"index={index!r} only applies to csv, tsv and json outputs; a {self.format} "
                "file carries its own dimensions and coordinates, so drop index="
            )
            raise SimulationError(msg)
        self.timeout = parse_timeout(timeout)
        self.inputs = parse_inputs(inputs)
        self.keep_workdirs = bool(keep_workdirs)
        self.env = parse_env(env)
        self.variables = None if variables is None else tuple(str(v) for v in variables)
        self.scratch_dir = None if scratch_dir is None else os.path.abspath(scratch_dir)
        self._templates = tuple(compile_template(a, f"argv[{i}]") for i, a in enumerate(self.argv))
        self._env_templates = tuple(
            (k, compile_template(v, f"env[{k!r}]")) for k, v in self.env.items()
        )
        fields = placeholder_sites(self._templates, self._env_templates)
        if self.output == STDOUT and "output" in fields:
            msg = (
                f"{{output}} is used in {fields['output']} but output='-' reads standard "
                "output; name an output file instead, e.g. output='results.csv'"
            )
            raise SimulationError(msg)
        self._fields = fields
        self._hints = relative_path_hints(self.argv, self._templates, self.inputs)
        super().__init__(
            name=name or default_name(self.argv),
            outputs=outputs,
            coords=coords,
            seed_bits=seed_bits,
            releases_gil=True,  # the member waits on a subprocess
        )

    # -- the Simulation contract ---------------------------------------------------------
    @property
    def func(self) -> Callable[..., Any]:
        """The member function: ``sim.func(seed=..., **params)`` runs one member."""
        return self.__call__

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Every placeholder used in ``argv`` and ``env``, in order of appearance."""
        return tuple(self._fields)

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameters the command takes: its placeholders other than seed/output/workdir."""
        return tuple(f for f in self._fields if f not in FIELDS)

    @property
    def required(self) -> tuple[str, ...]:
        """Every parameter placeholder must be filled."""
        return self.parameters

    @property
    def seed_argument(self) -> str:
        """Commands receive the integer seed (through ``{seed}``)."""
        return "seed"

    def check_parameters(self, names: Any) -> None:
        """Raise :class:`SimulationError` unless ``names`` fill exactly the placeholders.

        Called before anything runs, with every design and fixed parameter name.
        """
        names = list(names)
        reserved = [n for n in names if n in FIELDS]
        if reserved:
            msg = (
                f"parameter name(s) {reserved!r} clash with placeholders that {self.name!r} "
                f"fills itself ({', '.join('{' + f + '}' for f in FIELDS)}); rename the "
                "parameter in the design or fixed values"
            )
            raise SimulationError(msg)
        missing = [p for p in self.parameters if p not in names]
        if missing:
            where = ", ".join(f"{{{p}}} in {self._fields[p]}" for p in missing)
            msg = (
                f"placeholder(s) {where} of {self.name!r} name no parameter; the design and "
                f"fixed values provide {sorted(names)!r} and the command fills "
                f"{list(FIELDS)!r} itself. Add the parameter to the design or fixed=, or "
                "fix the placeholder's spelling"
            )
            raise SimulationError(msg)
        unused = [n for n in names if n not in self._fields]
        if unused:
            msg = (
                f"parameter(s) {unused!r} are not used by {self.name!r}, whose placeholders "
                f"are {list(self.placeholders)!r}; pass them to the program with e.g. "
                f"'--{unused[0]}', '{{{unused[0]}}}', or drop them from the design and fixed="
            )
            raise SimulationError(msg)

    def call(
        self, params: Mapping[str, Any], seed: int, member: Mapping[str, Any] | None = None
    ) -> Any:
        """Run the program for one member and return its output as an xarray.Dataset.

        Parameters
        ----------
        params : mapping
            The member's parameters (design and fixed values).
        seed : int
            Its seed, passed through ``{seed}``.
        member : mapping, optional
            Its identity (:meth:`ensembles.members.Members.identity`), which names its
            scratch directory ``member-000017_T=3.07392_seed=2-<suffix>``; ensembles passes
            it, a call by hand need not.

        Raises
        ------
        CommandError
            When the program cannot start, exits non-zero, times out, or its output is
            missing or garbled.
        SimulationError
            When a placeholder has no value in ``params``.
        """
        member_dir = make_member_dir(self.scratch_dir, member_dir_name(member, params))
        try:
            return self._run_member(member_dir, dict(params), seed, member)
        finally:
            if not self.keep_workdirs:
                shutil.rmtree(member_dir, ignore_errors=True)

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification (JSON and TOML ready).

        Only settings that differ from their defaults are included.

        Examples
        --------
        >>> Command(["prog", "--t", "{T}", "-o", "{output}"], output="r.csv",
        ...         index="sweep", timeout=60).to_dict()
        {'command': ['prog', '--t', '{T}', '-o', '{output}'], 'output': 'r.csv', \
'index': 'sweep', 'timeout': 60}
        """
        d: dict[str, Any] = {"command": list(self.argv), "output": self.output}
        if self.index:
            d["index"] = self.index[0] if len(self.index) == 1 else list(self.index)
        if self.format != infer_format("out.csv" if self.output == STDOUT else self.output):
            d["format"] = self.format
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.inputs:
            if all(dest is None for _, dest, _ in self.inputs):
                d["inputs"] = [given for _, _, given in self.inputs]
            else:
                d["inputs"] = {dest: given for _, dest, given in self.inputs}
        if self.keep_workdirs:
            d["keep_workdirs"] = True
        if self.env:
            d["env"] = dict(self.env)
        if self.outputs is not None:
            d["outputs"] = outputs_to_dict(self.outputs)
        if self.coords is not None:
            if callable(self.coords):
                d["coords"] = object_path(self.coords)
            else:
                d["coords"] = {k: np.asarray(v).tolist() for k, v in self.coords.items()}
        if self.variables is not None:
            d["variables"] = list(self.variables)
        if self.scratch_dir is not None:
            d["scratch_dir"] = self.scratch_dir
        if self.name != default_name(self.argv):
            d["name"] = self.name
        if self.seed_bits != DEFAULT_SEED_BITS:
            d["seed_bits"] = self.seed_bits
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Command:
        """Build a Command from its :meth:`to_dict` form (a TOML ``[simulation]`` table).

        Examples
        --------
        >>> sim = Command.from_dict({"command": ["prog", "{T}", "{output}"],
        ...                          "output": "results.csv", "index": "sweep"})
        >>> sim.name, sim.index
        ('command:prog', ('sweep',))
        """
        argv, kwargs = spec_arguments(d)
        return cls(argv, **kwargs)

    def __dask_tokenize__(self) -> Any:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return (type(self).__qualname__, state)

    def __repr__(self) -> str:
        return f"Command({list(self.argv)!r}, output={self.output!r}, index={self.index!r})"

    # -- running -------------------------------------------------------------------------
    def _run_member(
        self,
        member_dir: str,
        params: dict[str, Any],
        seed: int,
        member: Mapping[str, Any] | None,
    ) -> Any:
        workdir, output_path = self._prepare(member_dir)
        values = {**params, "seed": seed, "output": output_path, "workdir": workdir}
        argv = [render_template(t, values, self.name) for t in self._templates]
        extra_env = {k: render_template(t, values, self.name) for k, t in self._env_templates}
        env = {**os.environ, **extra_env} if extra_env else None
        if self.keep_workdirs:  # for whoever audits or reruns the member by hand
            record = {
                **(member or {}),
                "params": params,
                "seed": seed,
                "seed_bits": self.seed_bits,
                "argv": argv,
                "command": shlex.join(argv),
                "env": extra_env,
                "workdir": workdir,
                "output": output_path,
            }
            write_member_record(member_dir, record)

        def fail(reason: str, summary: str, returncode: int | None) -> CommandError:
            return self._error(reason, summary, argv, returncode, member_dir, params, seed)

        try:
            returncode = run_program(argv, workdir, env, member_dir, self.timeout)
        except ProgramFailure as exc:
            raise fail(exc.reason, exc.summary, None) from None
        if returncode != 0:
            raise fail("exit", f"command failed with {describe_exit(returncode)}", returncode)
        if not os.path.exists(output_path):
            present = sorted(os.listdir(workdir))[:10]
            summary = (
                f"command exited with code 0 but did not write its output {self.output!r} "
                f"(the scratch directory holds {present!r}); check that the program writes "
                "to the path given by '{output}'"
            )
            raise fail("missing-output", summary, returncode)
        try:
            return self._read(output_path, params)
        except OutputFileError as exc:
            raise fail("garbled-output", f"command output is unusable: {exc}", 0) from None

    def _prepare(self, member_dir: str) -> tuple[str, str]:
        """Make the member's working directory with its inputs; return it and the output path."""
        workdir = os.path.join(member_dir, "work")
        os.mkdir(workdir)
        copy_inputs(self.inputs, workdir)
        if self.output == STDOUT:
            return workdir, os.path.join(member_dir, "stdout.txt")
        output_path = os.path.join(workdir, self.output)
        parent = os.path.dirname(output_path)
        if parent != workdir:
            os.makedirs(parent, exist_ok=True)
        return workdir, output_path

    def _read(self, output_path: str, params: Mapping[str, Any]) -> Any:
        """Read the member's output: the selected or declared outputs, in declared types."""
        declared = self._declared(params)
        variables = self.variables
        if variables is None and declared is not None:
            variables = list(declared)  # only the declared outputs are read
        return read_member_output(
            output_path,
            self.format,
            index=self.index or None,
            variables=variables,
            dtypes=_declared_dtypes(declared),
        )

    def _declared(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The declared outputs of a member with these parameters, or None."""
        if self.outputs is None:
            return None
        return dict(self.outputs(**params) if callable(self.outputs) else self.outputs)

    def _error(
        self,
        reason: str,
        summary: str,
        argv: Sequence[str],
        returncode: int | None,
        member_dir: str,
        params: Mapping[str, Any],
        seed: int,
    ) -> CommandError:
        message, stderr = failure_report(
            reason,
            summary,
            argv,
            returncode,
            member_dir,
            params,
            seed,
            hints=self._hints + self._seed_hint(reason, member_dir, seed),
            keep_workdirs=self.keep_workdirs,
        )
        return CommandError(
            message,
            argv=argv,
            returncode=returncode,
            stderr=stderr,
            reason=reason,
            workdir=member_dir,
            params=params,
            seed=seed,
        )

    def _seed_hint(self, reason: str, member_dir: str, seed: int) -> tuple[str, ...]:
        """A hint when the program failed on a seed it may find too large (32-bit codes)."""
        if reason != "exit" or "seed" not in self._fields or seed < 2**31:
            return ()
        stderr = tail(os.path.join(member_dir, "stderr.txt"))
        if str(seed) not in stderr and not any(
            "seed" in line and any(word in line for word in _SEED_TROUBLE)
            for line in stderr.lower().splitlines()
        ):  # (a usage line such as "[--seed SEED]" is no complaint about the seed)
            return ()
        return (
            f"the program's error mentions the seed, and {{seed}} was {seed}, which needs "
            f"{seed.bit_length()} bits; if the program takes a 32-bit integer seed (R's "
            "set.seed, many C and Fortran codes), pass seed_bits=31 to Command (seed_bits = "
            "31 in a spec's [simulation] table) to give every member a seed below 2**31",
        )


def _declared_dtypes(declared: Mapping[str, Any] | None) -> dict[str, Any]:
    """The dtypes that declared outputs fix (an output declared by its dims alone has none)."""
    return {
        name: out.dtype
        for name, out in (declared or {}).items()
        if isinstance(out, Output) and out.dtype is not None
    }
