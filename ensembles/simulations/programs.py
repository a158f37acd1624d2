"""Running a :class:`~ensembles.simulations.command.Command`'s program for one member.

The member's scratch directory is named after it (and records its command line,
parameters and seed in ``member.json`` when kept), its inputs are copied there, the
program starts there
without a shell, in its own session (so a timeout kills everything it started), with its
standard output and error in files, and a failure is described by a report that carries
the command line, the exit code and the tail of standard error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "TAIL_LINES",
    "ProgramFailure",
    "copy_inputs",
    "describe_exit",
    "failure_report",
    "kill_process_group",
    "make_member_dir",
    "member_dir_name",
    "run_program",
    "tail",
    "write_member_record",
]

#: How many lines of stderr a :class:`~ensembles.simulations.command.CommandError` carries.
TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_NAME_LIMIT = 100  # characters of a scratch directory's name before its unique suffix
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


class ProgramFailure(Exception):
    """The program could not start or timed out; the caller turns it into its own error.

    Attributes
    ----------
    reason : str
        ``"not-started"`` or ``"timeout"``.
    summary : str
        One line saying what happened.
    """

    def __init__(self, reason: str, summary: str) -> None:
        super().__init__(summary)
        self.reason = reason
        self.summary = summary


def copy_inputs(inputs: Sequence[tuple[str, str | None, str]], workdir: str) -> None:
    """Copy a command's inputs into a member's working directory.

    Parameters
    ----------
    inputs : sequence of (source, destination, given) triples
        As normalized by :func:`.command_templates.parse_inputs`: a source without a
        destination keeps its name (a directory's contents are copied); otherwise it is
        copied to ``destination`` relative to ``workdir``.
    workdir : str
        The member's working directory.
    """
    for src, dest, _ in inputs:
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


def member_dir_name(
    member: Mapping[str, Any] | None, params: Mapping[str, Any], limit: int = _NAME_LIMIT
) -> str:
    """A scratch directory name that says which member it belongs to.

    ``member-<flat index>_<design parameters>_seed=<seed index>`` for a member of an
    ensemble (see :meth:`ensembles.members.Members.identity`), ``member_<parameters>`` for
    one run by hand; characters other than letters, digits and ``._+=-`` become ``_``
    and the name is cut at ``limit`` characters.

    Examples
    --------
    >>> member_dir_name({"member": 17, "position": {"sample": 4, "seed": 2},
    ...                  "params": {"T": 3.073921}}, {"T": 3.073921, "L": 32})
    'member-000017_T=3.07392_seed=2'
    >>> member_dir_name(None, {"model": "a b/c"})
    'member_model=a_b_c'
    """
    if member is None:
        head, shown, suffix = "member", params, ""
    else:
        head = f"member-{member['member']:06d}"
        shown = member["params"]
        seed_index = member["position"].get("seed")
        suffix = "" if seed_index is None else f"_seed={seed_index}"
    parts = [f"{k}={_name_value(v)}" for k, v in shown.items()]
    name = _UNSAFE.sub("_", "_".join([head, *parts])) + suffix
    return name if len(name) <= limit else name[: limit - len(suffix)] + suffix


def _name_value(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return format(value, ".6g")
    return str(value)


def make_member_dir(base: str | None, name: str) -> str:
    """Create a new scratch directory ``<name>-<random suffix>`` and return its path.

    It is made under ``base`` (default: the system's temporary directory); the random
    suffix keeps runs that share ``base``, and retries of a member, apart.
    """
    if base is not None:
        os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=name + "-", dir=base)


def write_member_record(member_dir: str, record: Mapping[str, Any]) -> None:
    """Write ``member.json`` into a member's scratch directory: what ran, with what."""
    with open(os.path.join(member_dir, "member.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, default=repr)
        f.write("\n")


def run_program(
    argv: Sequence[str],
    workdir: str,
    env: Mapping[str, str] | None,
    member_dir: str,
    timeout: float | None,
) -> int:
    """Run ``argv`` in ``workdir`` and wait for it; return its exit code.

    Standard output and error go to ``stdout.txt`` and ``stderr.txt`` in ``member_dir``;
    standard input is empty. On POSIX the program runs in a new session, so killing it
    (on timeout or when the caller is interrupted) kills every process it started.

    Parameters
    ----------
    argv : sequence of str
        The program and its arguments (no shell).
    workdir : str
        Its working directory.
    env : mapping, optional
        Its whole environment; None inherits this process's.
    member_dir : str
        Where ``stdout.txt`` and ``stderr.txt`` are written.
    timeout : float, optional
        Seconds to wait before killing it.

    Returns
    -------
    int
        The exit code; negative for a signal (POSIX).

    Raises
    ------
    ProgramFailure
        When the program cannot start (``"not-started"``) or runs longer than ``timeout``
        (``"timeout"``).
    """
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
            raise ProgramFailure("not-started", summary) from None
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_group(proc)
            proc.wait()
            summary = f"command timed out after {timeout:g} s and was killed"
            raise ProgramFailure("timeout", summary) from None
        except BaseException:
            kill_process_group(proc)
            proc.wait()
            raise


def kill_process_group(proc: subprocess.Popen) -> None:
    """Kill the member's process and everything it started (its process group on POSIX)."""
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:  # pragma: no cover - Windows
        proc.kill()


def describe_exit(returncode: int) -> str:
    """Describe an exit code, naming the signal that killed the program (POSIX).

    Examples
    --------
    >>> describe_exit(3)
    'exit code 3'
    >>> describe_exit(-9)
    'exit code -9 (killed by SIGKILL)'
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"exit code {returncode} (killed by {name})"
    return f"exit code {returncode}"


def tail(path: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file (read from its last 64 KiB); "" if unreadable."""
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


def failure_report(
    reason: str,
    summary: str,
    argv: Sequence[str],
    returncode: int | None,
    member_dir: str,
    params: Mapping[str, Any],
    seed: int,
    *,
    hints: Sequence[str] = (),
    keep_workdirs: bool = False,
) -> tuple[str, str]:
    """The message of a failed member's error, and the tail of its standard error.

    Parameters
    ----------
    reason : str
        ``"exit"``, ``"timeout"``, ``"missing-output"``, ``"garbled-output"`` or
        ``"not-started"``.
    summary : str
        The first line of the message.
    argv : sequence of str
        The command line as it was run.
    returncode : int or None
        The exit code, if the program exited.
    member_dir : str
        The member's scratch directory (holding ``stdout.txt`` and ``stderr.txt``).
    params : mapping
        The member's parameters.
    seed : int
        The member's seed.
    hints : sequence of str
        Shown when the program did not run as expected (reasons ``"exit"``,
        ``"not-started"`` and ``"missing-output"``).
    keep_workdirs : bool
        Whether the scratch directory is kept (the message says where, or how to keep it).

    Returns
    -------
    message : str
        The error message, one detail per line.
    stderr : str
        The last :data:`TAIL_LINES` lines of the program's standard error.
    """
    stderr = tail(os.path.join(member_dir, "stderr.txt"))
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
        stdout = tail(os.path.join(member_dir, "stdout.txt"))
        if stdout and reason != "garbled-output":
            lines.append(f"  stdout (last {TAIL_LINES} lines):")
            lines.extend("    " + line for line in stdout.splitlines())
    if reason in ("exit", "not-started", "missing-output"):
        lines.extend(f"  hint: {h}" for h in hints)
    if keep_workdirs:
        lines.append(f"  scratch directory kept at {member_dir}")
    else:
        lines.append("  rerun with keep_workdirs=True to keep the scratch directory")
    return "\n".join(lines), stderr


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
