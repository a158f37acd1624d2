"""Parameter values: validation and reprs shared by designs and distributions.

Every check raises :class:`~ensembles.errors.DesignError` with a message that starts with
``what`` (the caller's name for the value, e.g. ``"Grid parameter 'T'"``), so each design
and distribution names the parameter an error concerns.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import DesignError
from ..layout import RESERVED

__all__ = [
    "U_HIGH",
    "U_LOW",
    "about",
    "check_int",
    "check_keys",
    "check_finite",
    "check_name",
    "check_value",
    "column",
    "column_array",
    "finite_float",
    "first_nonfinite",
    "is_scalar",
    "kwargs_repr",
    "read_only",
    "value_array",
    "values_repr",
]

#: Distributions with unbounded support see their uniforms clipped to this closed interval
#: so that every value is finite. Generators' ``random()`` returns multiples of 2**-53 in
#: [0, 1), so only an exact 0 is affected (and the first point of an unscrambled Sobol').
U_LOW = 2.0**-53
U_HIGH = 1.0 - 2.0**-53

_INT64 = np.iinfo(np.int64)


# --------------------------------------------------------------------------------------------
# Names and keys
# --------------------------------------------------------------------------------------------


@contextmanager
def about(what: str | None) -> Iterator[None]:
    """Start the message of any DesignError raised inside with ``what`` (if given).

    Examples
    --------
    >>> with about("Sample parameter 'T'"):
    ...     finite_float("x", "Normal loc")
    Traceback (most recent call last):
    ...
    ensembles.errors.DesignError: Sample parameter 'T': Normal loc must be a finite number, got 'x'
    """
    try:
        yield
    except DesignError as exc:
        if what is None:
            raise
        msg = f"{what}: {exc}"
        raise DesignError(msg) from None


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it can name a parameter of ``what`` (a design kind), else raise."""
    if not isinstance(name, str):
        msg = f"{what} parameter names must be strings, got {name!r}"
        raise DesignError(msg) from None
    if not name:
        msg = f"{what} has a parameter with an empty name ''; give it a name"
        raise DesignError(msg) from None
    if name in RESERVED:
        msg = (
            f"{what} parameter name {name!r} is reserved (reserved names: "
            f"{sorted(RESERVED)!r}); rename the parameter"
        )
        raise DesignError(msg) from None
    return name


def check_keys(
    d: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...], what: str
) -> None:
    """Raise DesignError if ``d`` lacks a required key or has an unknown one."""
    missing = [k for k in required if k not in d]
    if missing:
        msg = f"{what} is missing {missing!r} in {dict(d)!r}; it needs {list(required)!r}"
        raise DesignError(msg) from None
    unknown = [k for k in d if k not in required and k not in optional]
    if unknown:
        valid = list(required + optional)
        msg = f"{what} has unknown keys {unknown!r} in {dict(d)!r}; valid keys are {valid!r}"
        raise DesignError(msg) from None


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def check_int(value: Any, what: str, *, minimum: int, example: str = "") -> int:
    """Return ``value`` as a python int if it is an integer >= ``minimum``, else raise.

    ``example`` (such as ``"n=64"``) is suggested in the message.
    """
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < minimum
    ):
        hint = f", e.g. {example}" if example else ""
        msg = f"{what} must be an integer >= {minimum}, got {value!r}{hint}"
        raise DesignError(msg) from None
    return int(value)


def finite_float(value: Any, what: str) -> float:
    """Return ``value`` as a finite python float, or raise DesignError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{what} must be a finite number, got {value!r}"
        raise DesignError(msg) from None
    number = float(value)
    if not math.isfinite(number):
        msg = f"{what} must be a finite number, got {value!r}"
        raise DesignError(msg) from None
    return number


#: Types whose values are always finite, and those plus float.
_FINITE_TYPES = frozenset({int, bool, str, type(None)})
_PLAIN_TYPES = _FINITE_TYPES | {float}


def first_nonfinite(value: Any, where: str = "") -> tuple[str, Any] | None:
    """The first NaN or infinite number in ``value`` and where it is, or None.

    ``value`` may nest lists, tuples, dicts and numpy arrays; the place is written as
    indexing (``"[1]['a']"``) after ``where``.

    Examples
    --------
    >>> first_nonfinite({"a": [1.0, float("nan")]})
    ("['a'][1]", nan)
    >>> first_nonfinite([1, "inf", 2.5]) is None
    True
    """
    kind = type(value)
    if kind is float:  # the common cases first, without abstract type checks
        return None if math.isfinite(value) else (where, value)
    if kind in _FINITE_TYPES:
        return None
    if kind is list:  # a flat list of plain values: one pass; else each item below
        types = set(map(type, value))
        if types <= _PLAIN_TYPES:
            floats = value if types == {float} else [v for v in value if type(v) is float]
            if all(map(math.isfinite, floats)):
                return None
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Integral):
        number = complex(value)
        finite = math.isfinite(number.real) and math.isfinite(number.imag)
        return None if finite else (where, value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        bad = np.argwhere(~np.isfinite(value))
        if not len(bad):
            return None
        index = tuple(int(i) for i in bad[0])
        return where + "".join(f"[{i}]" for i in index), value[index].item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = first_nonfinite(item, f"{where}[{key!r}]")
        if found is not None:
            return found
    return None


def check_finite(value: Any, what: str) -> None:
    """Raise DesignError if ``value`` holds NaN or infinity, anywhere (lists, dicts, arrays).

    Examples
    --------
    >>> check_finite({"tol": 1e-6, "limits": [0, 10]}, "fixed value 'opts'")
    >>> check_finite([0.0, float("inf")], "fixed value 'limits'")
    Traceback (most recent call last):
    ...
    ensembles.errors.DesignError: fixed value 'limits' has the value inf at [1]; values must \
be finite (no NaN or inf) to be stored as JSON and compared on resume: remove it or \
replace it by a number (or None)
    """
    found = first_nonfinite(value)
    if found is None:
        return
    where, bad = found
    at = f" at {where}" if where else ""
    msg = (
        f"{what} has the value {bad!r}{at}; values must be finite (no NaN or inf) to be "
        "stored as JSON and compared on resume: remove it or replace it by a number (or None)"
    )
    raise DesignError(msg) from None


# --------------------------------------------------------------------------------------------
# Values and lists of values
# --------------------------------------------------------------------------------------------


def check_value(value: Any, what: str) -> bool | int | float | str:
    """Return ``value`` as a python bool, int, finite float or str, or raise DesignError."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            msg = (
                f"{what} has the value {value!r}; values must be finite (no NaN or inf): "
                "remove it or replace it by a number"
            )
            raise DesignError(msg) from None
        return number
    if isinstance(value, str):
        if "\x00" in value:  # numpy string arrays drop trailing NULs
            msg = f"{what} has the string {value!r}; strings must not contain NUL characters"
            raise DesignError(msg) from None
        return str(value)
    msg = (
        f"{what} has the value {value!r} of type {type(value).__name__}; "
        "values must be numbers, bools or strings"
    )
    raise DesignError(msg) from None


def is_scalar(value: Any) -> bool:
    """True for a single value (a string, a 0-d array, anything not iterable)."""
    if isinstance(value, (str, bytes)):
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0
    return not isinstance(value, Iterable)


def value_array(values: Any, what: str, *, unique: bool) -> np.ndarray:
    """Validate a list of parameter values and return it as a 1-D numpy array.

    Values must be finite numbers, bools or strings, not mixed across those kinds except
    ints with floats (which become floats). The result's dtype is bool, int64, float64 or a
    numpy string type, so ints stay ints.
    """
    if is_scalar(values):
        msg = (
            f"{what} must be a list of values, got the scalar {values!r}; use a one-element "
            f"list [{values!r}] or pass it as a fixed parameter (fixed={{name: value}})"
        )
        raise DesignError(msg) from None
    if isinstance(values, Mapping):
        msg = f"{what} must be a list of values, got the mapping {values!r}"
        raise DesignError(msg) from None
    if isinstance(values, np.ndarray) and values.ndim != 1:
        msg = f"{what} must be one-dimensional, got an array of shape {values.shape!r}"
        raise DesignError(msg) from None
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if not items:
        msg = f"{what} is empty; give at least one value"
        raise DesignError(msg) from None
    items = [check_value(v, what) for v in items]
    kinds = {type(v) for v in items}
    if kinds == {bool}:
        array = np.array(items, dtype=bool)
    elif kinds == {int}:
        if not all(_INT64.min <= v <= _INT64.max for v in items):
            msg = f"{what} has integers {values!r} outside the 64-bit range"
            raise DesignError(msg) from None
        array = np.array(items, dtype=np.int64)
    elif kinds <= {int, float}:
        array = np.array(items, dtype=np.float64)
    elif kinds == {str}:
        array = np.array(items, dtype=np.str_)
    else:
        names = sorted(k.__name__ for k in kinds)
        msg = (
            f"{what} mixes values of types {names!r} in {values!r}; use all numbers, "
            "all bools or all strings"
        )
        raise DesignError(msg) from None
    if unique and len(set(items)) != len(items):
        duplicates = [v for v, count in Counter(items).items() if count > 1]
        msg = (
            f"{what} has the duplicate values {duplicates!r}; values must be unique: "
            "give each value once"
        )
        raise DesignError(msg) from None
    return array


def column(values: Any, what: str, *, unique: bool) -> tuple[str, tuple[Any, ...]]:
    """Validated values as ``(dtype kind, tuple of python scalars)``; kind keeps 1 != 1.0."""
    array = value_array(values, what, unique=unique)
    return array.dtype.kind, tuple(array.tolist())


def column_array(kind: str, values: tuple[Any, ...]) -> np.ndarray:
    """The numpy array of a :func:`column`: bool, int64, float64 or str by ``kind``."""
    dtype = {"b": bool, "i": np.int64, "f": np.float64}.get(kind, np.str_)
    return np.array(values, dtype=dtype)


def read_only(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mark every array of ``table`` read-only, and return it."""
    for array in table.values():
        array.flags.writeable = False
    return table


# --------------------------------------------------------------------------------------------
# Reprs
# --------------------------------------------------------------------------------------------


def kwargs_repr(items: list[tuple[str, str]], keywords: frozenset[str], extra: str) -> str:
    """``name=value`` for keyword-able names, the rest in ``extra={...}`` (``**{...}``)."""
    simple = [(n, v) for n, v in items if n.isidentifier() and n not in keywords]
    other = [(n, v) for n, v in items if not (n.isidentifier() and n not in keywords)]
    parts = [f"{n}={v}" for n, v in simple]
    if other:
        inner = ", ".join(f"{n!r}: {v}" for n, v in other)
        parts.append(f"{extra}{{{inner}}}")
    return ", ".join(parts)


def values_repr(values: tuple[Any, ...]) -> str:
    """A list of values as a repr, shortened to its ends when long."""
    if len(values) <= 6:
        return repr(list(values))
    head = ", ".join(repr(v) for v in values[:3])
    return f"[{head}, ..., {values[-1]!r}] ({len(values)} values)"
