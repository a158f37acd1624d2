"""How :class:`~ensembles.simulations.model_class.ModelClass` builds, steps and records models.

Constructors are inspected for their parameters and how they take a seed; ``collect=``
specifications are validated and applied to a model; per-step records are stacked into
a Dataset over the ``step`` dimension; and classes and functions are written to and read
from the ``"module:qualname"`` form of a run specification.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import OutputMismatchError, SimulationError, SpecError
from .contract import import_object

__all__ = [
    "DATACOLLECTOR",
    "STEP_DIM",
    "Collect",
    "class_path",
    "collect_from_spec",
    "collect_outputs",
    "collect_to_spec",
    "constructor_info",
    "model_method",
    "parse_collect",
    "parse_method_name",
    "parse_steps",
    "spec_kwargs",
    "stack_records",
]

#: The dimension along which stepped models record their outputs.
STEP_DIM = "step"

#: What ``collect=`` accepts: a function of the model, attribute names, or a dict of both.
Collect = Callable[[Any], Mapping[str, Any]] | Sequence[str] | Mapping[str, Any] | str


class _DataCollectorMarker:
    """Sentinel: read the model's own DataCollector (MesaModel without a reporter dict)."""

    def __reduce__(self) -> str:
        return "DATACOLLECTOR"

    def __repr__(self) -> str:
        return "<the model's DataCollector>"


#: The ``collect`` of a MesaModel that reads its model's own DataCollector.
DATACOLLECTOR = _DataCollectorMarker()


# -- constructors and settings -------------------------------------------------------------
def constructor_info(
    cls: Callable[..., Any],
) -> tuple[tuple[str, ...] | None, tuple[str, ...], str | None]:
    """(accepted parameters or None, required parameters, seed argument) of a constructor.

    Parameters
    ----------
    cls : type or callable
        The model class or factory.

    Returns
    -------
    parameters : tuple of str or None
        Keyword parameters besides ``seed``/``rng``; None when it takes ``**kwargs``.
    required : tuple of str
        Those without a default.
    seed_argument : {"seed", "rng", None}
        How it takes the member's seed; ``"seed"`` also when it takes ``**kwargs`` or its
        signature cannot be read.

    Examples
    --------
    >>> def build(n, p=0.5, *, rng=None): ...
    >>> constructor_info(build)
    (('n', 'p'), ('n',), 'rng')
    """
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):  # some builtins and C classes
        return None, (), "seed"
    params = sig.parameters
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    names = tuple(
        p.name
        for p in params.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("seed", "rng")
    )
    required = tuple(
        p.name
        for p in params.values()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.name not in ("seed", "rng")
    )
    if "seed" in params or var_kw:
        seed_arg: str | None = "seed"
    elif "rng" in params:
        seed_arg = "rng"
    else:
        seed_arg = None
    return (None if var_kw else names), required, seed_arg


def parse_steps(steps: Any) -> int | None:
    """Validate ``steps``: a positive integer, or None (call ``run()`` instead).

    Raises
    ------
    SimulationError
        If ``steps`` is not a positive integer.
    """
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        msg = f"steps must be a positive integer (or None to call run()), got {steps!r}"
        raise SimulationError(msg)
    return int(steps)


def parse_method_name(name: Any, what: str) -> str:
    """Validate the name of a model method (``what`` is the keyword, for the message).

    Raises
    ------
    SimulationError
        If ``name`` is not an identifier.
    """
    if not isinstance(name, str) or not name.isidentifier():
        msg = f"{what}= must name a method of the model, got {name!r}"
        raise SimulationError(msg)
    return name


def parse_collect(collect: Any) -> Any:
    """Normalize ``collect=``: a function, a tuple of attribute names, a dict, or None.

    A single attribute name becomes a 1-tuple; :data:`DATACOLLECTOR` passes through.

    Raises
    ------
    SimulationError
        If ``collect`` is none of the accepted forms.

    Examples
    --------
    >>> parse_collect("wealth")
    ('wealth',)
    """
    if collect is None or callable(collect) or collect is DATACOLLECTOR:
        return collect
    if isinstance(collect, str):
        return (collect,)
    if isinstance(collect, Mapping):
        for k, v in collect.items():
            if not (callable(v) or isinstance(v, str)):
                msg = (
                    f"collect[{k!r}] must be a function of the model or an attribute name, "
                    f"got {v!r}"
                )
                raise SimulationError(msg)
        return dict(collect)
    if isinstance(collect, Sequence) and all(isinstance(c, str) for c in collect):
        return tuple(collect)
    msg = (
        f"collect must be a function of the model, a list of attribute names or a dict of "
        f"name to function or attribute, got {collect!r}"
    )
    raise SimulationError(msg)


# -- recording -----------------------------------------------------------------------------
def collect_outputs(spec: Any, model: Any) -> Mapping[str, Any]:
    """Apply a normalized ``collect`` specification to a model: ``{name: value}``.

    Raises
    ------
    OutputMismatchError
        If a ``collect`` function does not return a mapping.
    """
    if callable(spec):
        out = spec(model)
        if not isinstance(out, Mapping):
            msg = f"collect(model) must return a mapping of output name to value, got {out!r}"
            raise OutputMismatchError(msg)
        return out
    if isinstance(spec, Mapping):
        return {
            k: (getattr(model, v) if isinstance(v, str) else v(model)) for k, v in spec.items()
        }
    return {k: getattr(model, k) for k in spec}


def model_method(model: Any, name: str, what: str) -> Callable[[], Any]:
    """The model's method ``name`` (``what`` is the keyword that names it, for the message).

    Raises
    ------
    SimulationError
        If the model has no such method.
    """
    method = getattr(model, name, None)
    if not callable(method):
        msg = f"{type(model).__name__} has no method {name!r}; pass {what}= to name the right one"
        raise SimulationError(msg)
    return method


def stack_records(
    records: Sequence[Mapping[str, Any]],
    steps: np.ndarray,
    dims_hint: Mapping[str, tuple[str, ...]],
) -> xr.Dataset:
    """Stack per-step records into a Dataset with a leading ``step`` dimension.

    Parameters
    ----------
    records : sequence of mapping
        One ``{name: value}`` per recorded step, with the same names and shapes.
    steps : numpy.ndarray
        The ``step`` coordinate, one label per record.
    dims_hint : mapping
        Declared dims of some outputs; others get ``step`` then ``<name>_dim_<i>``.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    OutputMismatchError
        If the records disagree in names or shapes, hold non-numbers, or do not match
        their declared dims.

    Examples
    --------
    >>> ds = stack_records([{"x": 1.0}, {"x": 2.5}], np.array([1, 2]), {})
    >>> ds["x"].dims, ds["x"].values.tolist()
    (('step',), [1.0, 2.5])
    """
    names = list(records[0])
    data = {}
    for name in names:
        values = []
        for i, rec in enumerate(records):
            if name not in rec or set(rec) != set(names):
                msg = (
                    f"step {steps[i]} recorded outputs {sorted(rec)!r} but the first recorded "
                    f"step has {sorted(names)!r}; record the same outputs at every step"
                )
                raise OutputMismatchError(msg)
            values.append(np.asarray(rec[name]))
        try:
            stacked = np.stack(values)
        except ValueError:
            shapes = sorted({v.shape for v in values})
            msg = f"output {name!r} changes shape across steps ({shapes}); keep it fixed"
            raise OutputMismatchError(msg) from None
        if stacked.dtype == object:  # None (a missing value) becomes NaN
            try:
                stacked = stacked.astype(np.float64)
            except (TypeError, ValueError):
                stacked = stacked.astype(str)
        if stacked.dtype.kind not in "biufc":
            msg = (
                f"output {name!r} holds values that are not numbers (first: {values[0]!r}); "
                "record numbers or booleans"
            )
            raise OutputMismatchError(msg)
        extra = tuple(f"{name}_dim_{i}" for i in range(stacked.ndim - 1))
        dims = dims_hint.get(name) or (STEP_DIM, *extra)
        if len(dims) != stacked.ndim:
            msg = f"output {name!r} has shape {stacked.shape} but is declared with dims {dims!r}"
            raise OutputMismatchError(msg)
        data[name] = (tuple(dims), stacked)
    return xr.Dataset(data, coords={STEP_DIM: steps})


# -- specification form --------------------------------------------------------------------
def class_path(obj: Any) -> str:
    """``"module:qualname"`` of a class or function, as written in a specification.

    Examples
    --------
    >>> class_path(dict)
    'builtins:dict'
    """
    module = getattr(obj, "__module__", None) or "__main__"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{module}:{qualname}"


def collect_to_spec(collect: Any) -> Any:
    """A ``collect`` specification with its functions written as ``"module:qualname"``."""
    if callable(collect):
        return class_path(collect)
    if isinstance(collect, Mapping):
        return {k: v if isinstance(v, str) else class_path(v) for k, v in collect.items()}
    return list(collect)


def collect_from_spec(spec: Any) -> Any:
    """The inverse of :func:`collect_to_spec`: import the ``"module:qualname"`` functions."""
    if isinstance(spec, str) and ":" in spec:
        return import_object(spec)
    if isinstance(spec, Mapping):
        return {k: import_object(v) if ":" in v else v for k, v in spec.items()}
    return spec


def spec_kwargs(d: Any, key: str, allowed: set[str]) -> dict[str, Any]:
    """Check a model's ``[simulation]`` table: only ``allowed`` keys, ``key`` present.

    Raises
    ------
    SpecError
        If ``d`` is not a table, has unknown keys or lacks ``key``.
    """
    if not isinstance(d, Mapping):
        msg = f"a model specification must be a table, got {d!r}"
        raise SpecError(msg)
    unknown = sorted(set(d) - allowed)
    if unknown:
        msg = (
            f"unknown key(s) {unknown!r} in the model specification; valid keys are "
            f"{sorted(allowed)!r}"
        )
        raise SpecError(msg)
    if key not in d:
        msg = f"the model specification needs {key!r} = 'module:Class'"
        raise SpecError(msg)
    return dict(d)
