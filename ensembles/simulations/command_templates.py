"""The arguments of a :class:`~.command.Command`: templates, settings, spec form.

Each element of ``argv`` (and each ``env`` value) is compiled once into ``str.format``
parts and rendered per member; the constructor's other settings are validated and
normalized here; and declared outputs and callables are converted to and from the plain
values of a TOML/JSON ``[simulation]`` table.
"""

from __future__ import annotations

import os
import shlex
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import SimulationError, SpecError
from .contract import Output, import_object, object_path

__all__ = [
    "FIELDS",
    "STDOUT",
    "Part",
    "compile_template",
    "default_name",
    "outputs_from_dict",
    "outputs_to_dict",
    "parse_argv",
    "parse_env",
    "parse_index",
    "parse_inputs",
    "parse_output",
    "parse_timeout",
    "placeholder_sites",
    "relative_path_hints",
    "render_template",
    "spec_arguments",
]

#: Placeholders that :class:`~ensembles.simulations.command.Command` fills itself for every member.
FIELDS: tuple[str, ...] = ("seed", "output", "workdir")

#: The ``output`` that reads the program's standard output instead of a file.
STDOUT = "-"

#: One compiled piece of a template: literal, field, conversion, format spec.
Part = tuple[str, str | None, str | None, str]

_CONVERSIONS: dict[str, Callable[[Any], str]] = {"r": repr, "s": str, "a": ascii}


# -- templates -----------------------------------------------------------------------------
def compile_template(template: str, where: str) -> tuple[Part, ...]:
    """Parse one template into (literal, field, conversion, spec) parts, validating it.

    Parameters
    ----------
    template : str
        An ``argv`` element or ``env`` value, e.g. ``"--temp={T:.3f}"``.
    where : str
        Where the template comes from (``"argv[2]"``), for error messages.

    Returns
    -------
    tuple of Part
        The parts :func:`render_template` fills.

    Raises
    ------
    SimulationError
        If the template is malformed or a placeholder is not a plain name.

    Examples
    --------
    >>> compile_template("--t={T:.2f}", "argv[1]")
    (('--t=', 'T', None, '.2f'),)
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        msg = (
            f"{where} = {template!r} is not a valid template ({exc}); placeholders look like "
            "'{T}', and literal braces are written '{{' and '}}'"
        )
        raise SimulationError(msg) from None
    parts: list[Part] = []
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


def placeholder_sites(
    templates: Sequence[tuple[Part, ...]], env_templates: Sequence[tuple[str, tuple[Part, ...]]]
) -> dict[str, str]:
    """Every placeholder of ``argv`` and ``env``, in order, with where it first appears.

    Examples
    --------
    >>> argv = [compile_template(a, "") for a in ["prog", "{T}", "{output}"]]
    >>> placeholder_sites(argv, [("SEED", compile_template("{seed}", ""))])
    {'T': 'argv[1]', 'output': 'argv[2]', 'seed': "env['SEED']"}
    """
    sites = [(f"argv[{i}]", t) for i, t in enumerate(templates)]
    sites += [(f"env[{k!r}]", t) for k, t in env_templates]
    fields: dict[str, str] = {}
    for where, parts in sites:
        for _, field, _, _ in parts:
            if field is not None:
                fields.setdefault(field, where)
    return fields


def render_template(parts: tuple[Part, ...], values: Mapping[str, Any], name: str) -> str:
    """Fill compiled template ``parts`` with ``values``.

    Parameters
    ----------
    parts : tuple of Part
        From :func:`compile_template`.
    values : mapping
        Placeholder values: the member's parameters, ``seed``, ``output`` and ``workdir``.
    name : str
        The command's name, for error messages.

    Returns
    -------
    str
        The filled argument.

    Raises
    ------
    SimulationError
        If a placeholder has no value or its value does not take the format spec.

    Examples
    --------
    >>> render_template(compile_template("--t={T:.2f}", "argv[1]"), {"T": 2.5}, "prog")
    '--t=2.50'
    """
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


def relative_path_hints(
    argv: Sequence[str],
    templates: Sequence[tuple[Part, ...]],
    inputs: Sequence[tuple[str, str | None, str]],
) -> tuple[str, ...]:
    """Hints for arguments that look like files relative to the caller's directory.

    Parameters
    ----------
    argv : sequence of str
        The command's arguments as given.
    templates : sequence of tuple of Part
        ``argv`` compiled by :func:`compile_template`.
    inputs : sequence of (source, destination, given) triples
        From :func:`parse_inputs`; files copied into the scratch directory need no hint.

    Returns
    -------
    tuple of str
        One hint per argument that names an existing relative path not copied as input.
    """
    copied = {os.path.basename(src) for src, dest, _ in inputs if dest is None}
    copied |= {dest for _, dest, _ in inputs if dest is not None}
    hints = []
    for i, (arg, parts) in enumerate(zip(argv, templates, strict=True)):
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


# -- settings ------------------------------------------------------------------------------
def parse_argv(argv: Any) -> tuple[str, ...]:
    """Validate ``argv`` as a non-empty list of text arguments (paths and numbers become text).

    Raises
    ------
    SimulationError
        If ``argv`` is a string, empty, or holds something that is not an argument.
    """
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


def parse_output(output: Any) -> str:
    """Validate ``output``: :data:`STDOUT` or a relative path inside the scratch directory.

    Raises
    ------
    SimulationError
        If ``output`` is empty, absolute or leaves the scratch directory.
    """
    if isinstance(output, os.PathLike):
        output = os.fspath(output)
    if not isinstance(output, str) or not output:
        msg = f"output must be a file name such as 'results.csv', got {output!r}"
        raise SimulationError(msg)
    if output == STDOUT:
        return output
    norm = os.path.normpath(output)
    if os.path.isabs(output) or norm.startswith(os.pardir):
        msg = (
            f"output {output!r} must be a relative path inside the member's scratch directory "
            "(e.g. 'results.csv'); the program gets its absolute path through '{output}'"
        )
        raise SimulationError(msg)
    return norm


def parse_index(index: Any) -> tuple[str, ...]:
    """Normalize ``index`` (None, a column name or a list of names) to a tuple of names.

    Raises
    ------
    SimulationError
        If the names are empty, not strings or repeated.
    """
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


def parse_timeout(timeout: Any) -> float | None:
    """Validate ``timeout`` as a positive, finite number of seconds (or None).

    Raises
    ------
    SimulationError
        If ``timeout`` is not a positive finite number.
    """
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


def parse_inputs(inputs: Any) -> tuple[tuple[str, str | None, str], ...]:
    """Normalize inputs to (absolute source, destination or None, as given) triples.

    Raises
    ------
    SimulationError
        If a source does not exist or a destination leaves the scratch directory.
    """
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


def parse_env(env: Any) -> dict[str, str]:
    """Validate ``env`` as a mapping of variable name to (text) value.

    Raises
    ------
    SimulationError
        If ``env`` is not a mapping or a variable name is invalid.
    """
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


def default_name(argv: Sequence[str]) -> str:
    """The default name of a command: ``"command:"`` and the program's first words.

    Examples
    --------
    >>> default_name(["/usr/bin/Rscript", "model.R", "--seed", "{seed}"])
    'command:Rscript model.R'
    """
    words = [os.path.basename(argv[0]) or argv[0]]
    for arg in argv[1:3]:
        if arg.startswith("-") or "{" in arg:
            break
        words.append(os.path.basename(arg) or arg)
    return "command:" + " ".join(words)


# -- specification form --------------------------------------------------------------------
def outputs_to_dict(outputs: Any) -> dict[str, Any] | str:
    """Declared outputs as a table of name to ``{dims, shape, dtype, attrs}``.

    A callable is written by name (see :func:`~.contract.object_path`); reading the
    specification imports it.
    """
    if callable(outputs):  # written by name; from_dict imports it
        return object_path(outputs)
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


def outputs_from_dict(d: Any) -> dict[str, Output]:
    """Declared outputs from the table :func:`outputs_to_dict` writes.

    Raises
    ------
    SpecError
        If the table or one of its entries is malformed.
    """
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


def spec_arguments(d: Any) -> tuple[list[str], dict[str, Any]]:
    """The arguments of a Command from its ``[simulation]`` table: ``argv`` and keywords.

    Declared outputs are rebuilt, and ``outputs`` or ``coords`` given as
    ``"module:function"`` are imported.

    Raises
    ------
    SpecError
        If the table has unknown keys, lacks ``command`` or ``output``, or ``command``
        is not a list of arguments.

    Examples
    --------
    >>> spec_arguments({"command": ["prog", "{output}"], "output": "r.csv"})
    (['prog', '{output}'], {'output': 'r.csv'})
    """
    if not isinstance(d, Mapping):
        msg = f"a command specification must be a table, got {d!r}"
        raise SpecError(msg)
    allowed = {
        "command", "output", "index", "format", "timeout", "inputs", "keep_workdirs",
        "env", "outputs", "coords", "variables", "scratch_dir", "name", "seed_bits",
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
        kwargs["outputs"] = outputs_from_dict(kwargs["outputs"])
    if isinstance(kwargs.get("coords"), str):
        kwargs["coords"] = import_object(kwargs["coords"])
    return list(command), kwargs
