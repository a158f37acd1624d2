"""Failed members named by their parameters and grouped by error, for people to read.

One format for the end-of-run report (``Ensemble.to_zarr``/``compute``, ``ensembles run``)
and for ``ensembles info``: each failed member is named by its design parameters and seed
index (``T=3.0739, seed=0``), and members are grouped by error type and the first line of
the message. This module imports nothing else from ensembles but :mod:`ensembles.layout`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .layout import SEED_DIM

__all__ = ["format_failures", "format_value", "member_label", "split_error"]

_ERROR = re.compile(r"([A-Za-z_][\w.]*): (.*)", re.DOTALL)

#: Longest first line of an error message shown in a grouped report.
MESSAGE_WIDTH = 200


def split_error(text: str) -> tuple[str, str]:
    """The error type and message of a stored ``error`` text (``"Type: message"``).

    Examples
    --------
    >>> split_error("ValueError: a must be non-negative, got -2.0")
    ('ValueError', 'a must be non-negative, got -2.0')
    >>> split_error("no type here")
    ('', 'no type here')
    """
    match = _ERROR.fullmatch(str(text))
    if match is None:
        return "", str(text)
    return match.group(1), match.group(2)


def format_value(value: Any, digits: int = 5) -> str:
    """A parameter value, short: floats to ``digits`` significant digits, strings quoted.

    Examples
    --------
    >>> format_value(3.073912), format_value(3.0), format_value(12), format_value("high")
    ('3.0739', '3.0', '12', "'high'")
    """
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value):
        text = f"{value:.{digits}g}"
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, (str, bytes)):
        return repr(value)
    return str(value)


def member_label(params: Mapping[str, Any], seed: int) -> str:
    """A member named by its design parameters and seed index.

    Examples
    --------
    >>> member_label({"T": 3.0739123, "h": 0.5}, 0)
    'T=3.0739, h=0.5, seed=0'
    """
    parts = [f"{name}={format_value(value)}" for name, value in params.items()]
    return ", ".join([*parts, f"{SEED_DIM}={int(seed)}"])


def _first_line(message: str) -> str:
    lines = str(message).strip().splitlines()
    line = lines[0].strip() if lines else "(no message)"
    if len(line) > MESSAGE_WIDTH:
        line = line[: MESSAGE_WIDTH - 3] + "..."
    return line


def format_failures(
    failures: Iterable[tuple[str, str, str]], *, groups: int = 5, per_group: int = 3
) -> str:
    """Failed members grouped by error type and first line of message, largest group first.

    Parameters
    ----------
    failures : iterable of (label, error type, message)
        One entry per failed member; ``label`` as :func:`member_label` makes it.
    groups : int
        Groups shown; the rest are counted on a last line.
    per_group : int
        Members named per group; the rest are counted.

    Returns
    -------
    str
        Indented lines (no trailing newline); empty when nothing failed.

    Examples
    --------
    >>> print(format_failures([
    ...     ("a=-1.5, seed=0", "ValueError", "a must be non-negative\\nmore detail"),
    ...     ("a=-1.5, seed=1", "ValueError", "a must be non-negative"),
    ...     ("a=7.0, seed=0", "OSError", "disk full"),
    ... ]))
      ValueError: a must be non-negative (2 members)
        a=-1.5, seed=0
        a=-1.5, seed=1
      OSError: disk full (1 member)
        a=7.0, seed=0
    """
    grouped: dict[tuple[str, str], list[str]] = {}
    for label, etype, message in failures:
        grouped.setdefault((str(etype), _first_line(message)), []).append(str(label))
    ordered = sorted(grouped.items(), key=lambda kv: -len(kv[1]))  # stable: first seen first
    lines = []
    for (etype, message), labels in ordered[:groups]:
        head = f"{etype}: {message}" if etype else message
        count = f"{len(labels)} member{'s' if len(labels) != 1 else ''}"
        lines.append(f"  {head} ({count})")
        lines.extend(f"    {label}" for label in labels[:per_group])
        if len(labels) > per_group:
            lines.append(f"    ... and {len(labels) - per_group} more")
    if len(ordered) > groups:
        rest = sum(len(labels) for _, labels in ordered[groups:])
        kinds = len(ordered) - groups
        lines.append(
            f"  ... and {rest} more member{'s' if rest != 1 else ''} with {kinds} other "
            f"error{'s' if kinds != 1 else ''}"
        )
    return "\n".join(lines)
