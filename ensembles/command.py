"""Run an external program (an R script, a binary, a Julia model, ...) as a simulation.

:class:`Command` fills placeholders such as ``{T}`` and ``{seed}`` into an argument list,
runs the program without a shell in a fresh scratch directory per member, and reads its
output file into arrays with :func:`ensembles.outputs.read_output`. A member whose program
fails (non-zero exit, timeout, missing or garbled output) raises :class:`CommandError`
carrying the command line, the exit code and the tail of stderr.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import string
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import MemberError, SimulationError, SpecError
from .outputs import OutputFileError, infer_format, read_output
from .simulation import Output, Simulation, import_object

__all__ = ["Command", "CommandError"]

#: Placeholders that :class:`Command` fills itself for every member.
FIELDS: tuple[str, ...] = ("seed", "output", "workdir")

#: How many lines of stderr a :class:`CommandError` carries.
TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_STDOUT = "-"

_Part = tuple[str, str | None, str | None, str]  # literal, field, conversion, format spec
_CONVERSIONS: dict[str, Callable[[Any], str]] = {"r": repr, "s": str, "a": ascii}


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
        coordinates. See :func:`ensembles.outputs.read_output`.
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
        Keep each member's scratch directory (with ``stdout.txt``, ``stderr.txt`` and the
        program's ``work/`` directory) instead of removing it.
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
        outputs: Mapping[str, Output] | Callable[..., Mapping[str, Output]] | None = None,
        *,
        coords: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
        variables: Sequence[str] | None = None,
        scratch_dir: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = _parse_argv(argv)
        self.output = _parse_output(output)
        self.index = _parse_index(index)
        try:
            self.format = infer_format(
                "out.csv" if self.output == _STDOUT and format is None else self.output, format
            )
        except OutputFileError as exc:
            raise SimulationError(str(exc)) from None
        if self.index and self.format in ("netcdf", "zarr"):
            msg = (
                f"index={index!r} only applies to csv, tsv and json outputs; a {self.format} "
                "file carries its own dimensions and coordinates, so drop index="
            )
            raise SimulationError(msg)
        self.timeout = _parse_timeout(timeout)
        self.inputs = _parse_inputs(inputs)
        self.keep_workdirs = bool(keep_workdirs)
        self.env = _parse_env(env)
        self.outputs = outputs
        self.coords = coords
        self.variables = None if variables is None else tuple(str(v) for v in variables)
        self.scratch_dir = None if scratch_dir is None else os.path.abspath(scratch_dir)
        self.releases_gil = True  # the member waits on a subprocess
        self._signature = None
        self._templates = tuple(_compile(a, f"argv[{i}]") for i, a in enumerate(self.argv))
        self._env_templates = tuple((k, _compile(v, f"env[{k!r}]")) for k, v in self.env.items())
        fields: dict[str, str] = {}  # placeholder -> where it first appears
        for where, parts in [(f"argv[{i}]", t) for i, t in enumerate(self._templates)] + [
            (f"env[{k!r}]", t) for k, t in self._env_templates
        ]:
            for _, field, _, _ in parts:
                if field is not None:
                    fields.setdefault(field, where)
        if self.output == _STDOUT and "output" in fields:
            msg = (
                f"{{output}} is used in {fields['output']} but output='-' reads standard "
                "output; name an output file instead, e.g. output='results.csv'"
            )
            raise SimulationError(msg)
        self._fields = fields
        self._hints = self._relative_path_hints()
        self.name = name or _default_name(self.argv)

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

    def __call__(self, *, seed: int, **params: Any) -> Any:
        """Run one member by hand: ``sim(seed=7, T=2.0)`` returns its Dataset."""
        return self.call(params, seed)

    def __ensembles_simulation__(self) -> Command:
        return self

    def call(self, params: Mapping[str, Any], seed: int) -> Any:
        """Run the program for one member and return its output as an xarray.Dataset.

        Raises
        ------
        CommandError
            When the program cannot start, exits non-zero, times out, or its output is
            missing or garbled.
        SimulationError
            When a placeholder has no value in ``params``.
        """
        base = self.scratch_dir
        if base is not None:
            os.makedirs(base, exist_ok=True)
        member_dir = tempfile.mkdtemp(prefix="ensembles-", dir=base)
        try:
            return self._run_member(member_dir, dict(params), seed)
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
        if self.format != infer_format("out.csv" if self.output == _STDOUT else self.output):
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
            d["outputs"] = _outputs_to_dict(self.outputs)
        if self.coords is not None:
            if callable(self.coords):
                d["coords"] = _callable_path(self.coords)
            else:
                d["coords"] = {k: np.asarray(v).tolist() for k, v in self.coords.items()}
        if self.variables is not None:
            d["variables"] = list(self.variables)
        if self.scratch_dir is not None:
            d["scratch_dir"] = self.scratch_dir
        if self.name != _default_name(self.argv):
            d["name"] = self.name
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
        if not isinstance(d, Mapping):
            msg = f"a command specification must be a table, got {d!r}"
            raise SpecError(msg)
        allowed = {
            "command", "output", "index", "format", "timeout", "inputs", "keep_workdirs",
            "env", "outputs", "coords", "variables", "scratch_dir", "name",
        }  # fmt: skip
        unknown = sorted(set(d) - allowed)
        if unknown:
            msg = (
                f"unknown key(s) {unknown!r} in the command specification; valid keys are "
                f"{sorted(allowed)!r}"
            )
            raise SpecError(msg)
        for key in ("command", "output"):
            if key not in d:
                msg = (
                    f"a command specification needs {key!r}, e.g. command = ['Rscript', "
                    "'run.R', '--seed', '{seed}', '--output', '{output}'] and "
                    "output = 'results.csv'"
                )
                raise SpecError(msg)
        command = d["command"]
        if isinstance(command, str) or not isinstance(command, Sequence):
            msg = (
                f"command must be a list of arguments, got {command!r}; write e.g. "
                f"{shlex.split(command) if isinstance(command, str) else ['prog', '{T}']!r}"
            )
            raise SpecError(msg)
        kwargs = {k: v for k, v in d.items() if k != "command"}
        if isinstance(kwargs.get("outputs"), str):
            kwargs["outputs"] = import_object(kwargs["outputs"])
        elif "outputs" in kwargs:
            kwargs["outputs"] = _outputs_from_dict(kwargs["outputs"])
        if isinstance(kwargs.get("coords"), str):
            kwargs["coords"] = import_object(kwargs["coords"])
        return cls(list(command), **kwargs)

    def __reduce__(self):
        return (_restore, (type(self), self.__dict__.copy()))

    def __dask_tokenize__(self) -> Any:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        return (type(self).__qualname__, state)

    def __repr__(self) -> str:
        return f"Command({list(self.argv)!r}, output={self.output!r}, index={self.index!r})"

    # -- running -------------------------------------------------------------------------
    def _run_member(self, member_dir: str, params: dict[str, Any], seed: int) -> Any:
        workdir = os.path.join(member_dir, "work")
        os.mkdir(workdir)
        self._copy_inputs(workdir)
        if self.output == _STDOUT:
            output_path = os.path.join(member_dir, "stdout.txt")
        else:
            output_path = os.path.join(workdir, self.output)
            parent = os.path.dirname(output_path)
            if parent != workdir:
                os.makedirs(parent, exist_ok=True)
        values = {**params, "seed": seed, "output": output_path, "workdir": workdir}
        argv = [_render(t, values, self.name) for t in self._templates]
        env = None
        if self._env_templates:
            env = dict(os.environ)
            env.update({k: _render(t, values, self.name) for k, t in self._env_templates})

        def fail(reason: str, summary: str, returncode: int | None) -> CommandError:
            return self._error(reason, summary, argv, returncode, member_dir, params, seed)

        with (
            open(os.path.join(member_dir, "stdout.txt"), "wb") as out,
            open(os.path.join(member_dir, "stderr.txt"), "wb") as err,
        ):
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=os.name == "posix",
                )
            except OSError as exc:
                summary = (
                    f"cannot start program {argv[0]!r}: {exc.strerror or exc}; check the "
                    "name, that it is on PATH (or give its absolute path) and executable"
                )
                raise fail("not-started", summary, None) from None
            try:
                returncode = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                proc.wait()
                summary = f"command timed out after {self.timeout:g} s and was killed"
                raise fail("timeout", summary, None) from None
            except BaseException:
                _kill(proc)
                proc.wait()
                raise
        if returncode != 0:
            raise fail("exit", f"command failed with {_describe_exit(returncode)}", returncode)
        if not os.path.exists(output_path):
            present = sorted(os.listdir(workdir))[:10]
            summary = (
                f"command exited with code 0 but did not write its output {self.output!r} "
                f"(the scratch directory holds {present!r}); check that the program writes "
                "to the path given by '{output}'"
            )
            raise fail("missing-output", summary, returncode)
        try:
            return read_output(
                output_path,
                self.format,
                index=self.index or None,
                variables=self._selected_variables(params),
            )
        except OutputFileError as exc:
            raise fail("garbled-output", f"command output is unusable: {exc}", 0) from None

    def _selected_variables(self, params: Mapping[str, Any]) -> Sequence[str] | None:
        if self.variables is not None:
            return self.variables
        if self.outputs is None:
            return None
        declared = self.outputs(**params) if callable(self.outputs) else self.outputs
        return list(declared)

    def _copy_inputs(self, workdir: str) -> None:
        for src, dest, _ in self.inputs:
            if dest is None:
                if os.path.isdir(src):
                    shutil.copytree(src, workdir, dirs_exist_ok=True)
                else:
                    shutil.copy(src, workdir)
                continue
            target = os.path.join(workdir, dest)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                shutil.copy(src, target)

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
        stderr = _tail(os.path.join(member_dir, "stderr.txt"))
        lines = [
            summary,
            f"  command: {shlex.join(argv)}",
            f"  exit code: {returncode if returncode is not None else 'none'}",
            f"  member: seed={seed}, params={_short(params)}",
        ]
        if stderr:
            lines.append(f"  stderr (last {TAIL_LINES} lines):")
            lines.extend("    " + line for line in stderr.splitlines())
        else:
            lines.append("  stderr: (empty)")
            stdout = _tail(os.path.join(member_dir, "stdout.txt"))
            if stdout and reason != "garbled-output":
                lines.append(f"  stdout (last {TAIL_LINES} lines):")
                lines.extend("    " + line for line in stdout.splitlines())
        if reason in ("exit", "not-started", "missing-output"):
            lines.extend(f"  hint: {h}" for h in self._hints)
        if self.keep_workdirs:
            lines.append(f"  scratch directory kept at {member_dir}")
        else:
            lines.append("  rerun with keep_workdirs=True to keep the scratch directory")
        return CommandError(
            "\n".join(lines),
            argv=argv,
            returncode=returncode,
            stderr=stderr,
            reason=reason,
            workdir=member_dir,
            params=params,
            seed=seed,
        )

    def _relative_path_hints(self) -> tuple[str, ...]:
        """Hints for arguments that look like files relative to the caller's directory."""
        copied = {os.path.basename(src) for src, dest, _ in self.inputs if dest is None}
        copied |= {dest for _, dest, _ in self.inputs if dest is not None}
        hints = []
        for i, (arg, parts) in enumerate(zip(self.argv, self._templates, strict=True)):
            if any(f is not None for _, f, _, _ in parts) or arg.startswith("-"):
                continue
            if i == 0 and os.sep not in arg:
                continue  # a bare program name is looked up on PATH
            if not os.path.isabs(arg) and os.path.exists(arg) and arg not in copied:
                hints.append(
                    f"argument {arg!r} is a relative path; the program runs in a fresh "
                    f"scratch directory, so pass inputs=[{arg!r}] to copy it there or use "
                    f"{os.path.abspath(arg)!r}"
                )
        return tuple(hints)


# -- helpers -------------------------------------------------------------------------------
def _restore(cls: type, state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _kill(proc: subprocess.Popen) -> None:
    """Kill the member's process and everything it started (its process group on POSIX)."""
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:  # pragma: no cover - Windows
        proc.kill()


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"exit code {returncode} (killed by {name})"
    return f"exit code {returncode}"


def _tail(path: str, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compile(template: str, where: str) -> tuple[_Part, ...]:
    """Parse one argv element into (literal, field, conversion, spec) parts, validating it."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        msg = (
            f"{where} = {template!r} is not a valid template ({exc}); placeholders look like "
            "'{T}', and literal braces are written '{{' and '}}'"
        )
        raise SimulationError(msg) from None
    parts: list[_Part] = []
    for literal, field, spec, conversion in parsed:
        if field is None:
            parts.append((literal, None, None, ""))
            continue
        if not field.isidentifier():
            msg = (
                f"{where} = {template!r} has the placeholder {{{field}}}; placeholders must "
                "be plain parameter names such as '{T}' or '{seed}' (no positions, "
                "attributes or indexing); write '{{' and '}}' for literal braces"
            )
            raise SimulationError(msg)
        if spec and "{" in spec:
            msg = f"{where} = {template!r} nests a placeholder in a format spec; use '{{T:.3f}}'"
            raise SimulationError(msg)
        parts.append((literal, field, conversion, spec or ""))
    return tuple(parts)


def _render(parts: tuple[_Part, ...], values: Mapping[str, Any], name: str) -> str:
    out = []
    for literal, field, conversion, spec in parts:
        out.append(literal)
        if field is None:
            continue
        try:
            value = values[field]
        except KeyError:
            msg = (
                f"{name!r} needs a value for the placeholder {{{field}}}; pass it as a "
                "parameter or fixed value"
            )
            raise SimulationError(msg) from None
        if conversion:
            value = _CONVERSIONS[conversion](value)
        try:
            out.append(format(value, spec))
        except (ValueError, TypeError) as exc:
            msg = f"cannot format {{{field}:{spec}}} with the value {value!r}: {exc}"
            raise SimulationError(msg) from None
    return "".join(out)


def _parse_argv(argv: Any) -> tuple[str, ...]:
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        example = shlex.split(argv) if isinstance(argv, str) else ["prog", "--temp", "{T}"]
        msg = (
            f"argv must be a list of arguments (no shell is used), got {argv!r}; "
            f"write e.g. {example!r}"
        )
        raise SimulationError(msg)
    if not argv:
        msg = "argv is empty; give the program and its arguments, e.g. ['Rscript', 'run.R']"
        raise SimulationError(msg)
    out = []
    for i, arg in enumerate(argv):
        if isinstance(arg, os.PathLike):
            arg = os.fspath(arg)
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            arg = str(arg)
        if not isinstance(arg, str):
            msg = f"argv[{i}] = {arg!r} is not a string; every argument must be text"
            raise SimulationError(msg)
        out.append(arg)
    return tuple(out)


def _parse_output(output: Any) -> str:
    if isinstance(output, os.PathLike):
        output = os.fspath(output)
    if not isinstance(output, str) or not output:
        msg = f"output must be a file name such as 'results.csv', got {output!r}"
        raise SimulationError(msg)
    if output == _STDOUT:
        return output
    norm = os.path.normpath(output)
    if os.path.isabs(output) or norm.startswith(os.pardir):
        msg = (
            f"output {output!r} must be a relative path inside the member's scratch directory "
            "(e.g. 'results.csv'); the program gets its absolute path through '{output}'"
        )
        raise SimulationError(msg)
    return norm


def _parse_index(index: Any) -> tuple[str, ...]:
    if index is None:
        return ()
    names = (index,) if isinstance(index, str) else tuple(index)
    if (
        not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        msg = f"index must be a column name or a list of distinct column names, got {index!r}"
        raise SimulationError(msg)
    return names


def _parse_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        msg = f"timeout must be a positive number of seconds or None, got {timeout!r}"
        raise SimulationError(msg)
    return int(value) if value == int(value) else value


def _parse_inputs(inputs: Any) -> tuple[tuple[str, str | None, str], ...]:
    """Normalize inputs to (absolute source, destination or None, as given) triples."""
    if inputs is None:
        return ()
    if isinstance(inputs, Mapping):
        items = [(str(dest), src) for dest, src in inputs.items()]
    elif isinstance(inputs, (str, os.PathLike)):
        items = [(None, inputs)]
    else:
        items = [(None, src) for src in inputs]
    out = []
    for dest, src in items:
        given = os.fspath(src)
        path = os.path.abspath(given)
        if not os.path.exists(path):
            msg = (
                f"input {given!r} does not exist (looked for {path!r}); inputs are files or "
                "template directories copied into every member's scratch directory"
            )
            raise SimulationError(msg)
        if dest is not None:
            norm = os.path.normpath(dest)
            if os.path.isabs(dest) or norm.startswith(os.pardir) or norm == os.curdir:
                msg = f"input destination {dest!r} must be a relative path inside the scratch dir"
                raise SimulationError(msg)
            dest = norm
        out.append((path, dest, given))
    return tuple(out)


def _parse_env(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        msg = f"env must be a mapping of variable name to value, got {env!r}"
        raise SimulationError(msg)
    out = {}
    for k, v in env.items():
        if not isinstance(k, str) or not k or "=" in k:
            msg = f"environment variable name {k!r} is invalid"
            raise SimulationError(msg)
        out[k] = str(v)
    return out


def _default_name(argv: Sequence[str]) -> str:
    words = [os.path.basename(argv[0]) or argv[0]]
    for arg in argv[1:3]:
        if arg.startswith("-") or "{" in arg:
            break
        words.append(os.path.basename(arg) or arg)
    return "command:" + " ".join(words)


def _callable_path(func: Any) -> str:
    module = getattr(func, "__module__", None) or "__main__"
    return f"{module}:{getattr(func, '__qualname__', repr(func))}"


def _outputs_to_dict(outputs: Any) -> dict[str, Any] | str:
    if callable(outputs):  # written by name; from_dict imports it
        return _callable_path(outputs)
    d = {}
    for name, out in outputs.items():
        if not isinstance(out, Output):
            out = Output(dims=out)
        entry: dict[str, Any] = {"dims": list(out.dims)}
        if out.shape is not None:
            entry["shape"] = list(out.shape)
        if out.dtype is not None:
            entry["dtype"] = out.dtype.name
        if out.attrs:
            entry["attrs"] = dict(out.attrs)
        d[str(name)] = entry
    return d


def _outputs_from_dict(d: Any) -> dict[str, Output]:
    if not isinstance(d, Mapping):
        msg = f"outputs must be a table of output name to {{dims, shape, dtype}}, got {d!r}"
        raise SpecError(msg)
    out = {}
    for name, entry in d.items():
        if isinstance(entry, (list, tuple, str)):
            out[str(name)] = Output(dims=entry)
            continue
        if not isinstance(entry, Mapping) or set(entry) - {"dims", "shape", "dtype", "attrs"}:
            msg = (
                f"output {name!r} must be a table with keys dims, shape, dtype, attrs, "
                f"got {entry!r}"
            )
            raise SpecError(msg)
        out[str(name)] = Output(
            dims=tuple(entry.get("dims", ())),
            shape=entry.get("shape"),
            dtype=entry.get("dtype"),
            attrs=entry.get("attrs", {}),
        )
    return out
