"""Run specifications: TOML/JSON files that map one-to-one onto an :class:`Ensemble`.

A spec has four tables::

    [simulation]                # function = "module:function", or command = [...]
    function = "ensembles.models.ising:simulate"
    [design.grid]               # any Design.to_dict() form: grid, sample, points, ...
    T = [1.5, 2.0, 2.5]
    [fixed]                     # values every member receives
    L = 32
    [run]                       # seeds, root_seed and run options
    seeds = 4
    root_seed = 42

An adaptive run gives its growth rule as ``seeds`` (or ``samples``) and its target as
``until`` (one table, or a list of them)::

    [run]
    seeds = {initial = 16, max = 1024}
    until = {var = "M", stat = "mean", halfwidth = 0.005, reduce = "mean"}
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from .errors import EnsembleError, SpecError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ensemble_arguments",
    "load_spec",
    "run_options",
    "simulation_from_spec",
    "validate_spec",
]

_TOP = ("simulation", "design", "fixed", "run")
_RUN_KEYS = (
    "seeds",
    "samples",
    "root_seed",
    "batch_size",
    "on_error",
    "retries",
    "timeout",
    "until",
)


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML (``.toml``) or JSON (``.json``) run specification.

    Raises
    ------
    SpecError
        When the file is missing, unparsable, or has unknown tables.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        msg = f"cannot read spec file {path!r}: {exc.strerror or exc}"
        raise SpecError(msg) from None
    try:
        spec = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"{path!r} is not valid {'JSON' if path.endswith('.json') else 'TOML'}: {exc}"
        raise SpecError(msg) from None
    validate_spec(spec, source=path)
    return spec


def validate_spec(spec: Mapping[str, Any], source: str = "spec") -> None:
    """Check the tables of a spec; raise :class:`SpecError` naming what is wrong."""
    if not isinstance(spec, Mapping):
        msg = f"{source}: a spec must be a table/object, got {type(spec).__name__}"
        raise SpecError(msg)
    unknown = sorted(set(spec) - set(_TOP) - {"block", "schema", "format"})
    if unknown:
        msg = f"{source}: unknown table(s) {unknown!r}; a spec has {list(_TOP)!r}"
        raise SpecError(msg)
    for required in ("simulation", "design"):
        if required not in spec:
            msg = f"{source}: missing the [{required}] table"
            raise SpecError(msg)
    run = spec.get("run", {})
    bad = sorted(set(run) - set(_RUN_KEYS))
    if bad:
        msg = f"{source}: unknown key(s) {bad!r} in [run]; valid keys are {list(_RUN_KEYS)!r}"
        raise SpecError(msg)


def simulation_from_spec(table: Mapping[str, Any]) -> Any:
    """Build the simulation named by a ``[simulation]`` table."""
    from .simulations.contract import import_object

    if "function" in table:
        extra = sorted(set(table) - {"function", "seed_bits"})
        if extra:
            msg = f"[simulation] with 'function' takes only 'seed_bits' besides it, got {extra!r}"
            raise SpecError(msg)
        sim = import_object(str(table["function"]))
        if "seed_bits" in table:
            return _with_seed_bits(sim, table["seed_bits"], str(table["function"]))
        return sim
    if "command" in table:
        from .simulations.command import Command

        return Command.from_dict(dict(table))
    if "model" in table:
        from .simulations.model_class import ModelClass

        return ModelClass.from_dict(dict(table))
    if "mesa_model" in table:
        from .simulations.mesa import MesaModel

        return MesaModel.from_dict(dict(table))
    msg = (
        "[simulation] needs function = 'module:function', command = [argv...], "
        f"model = 'module:Class' or mesa_model = 'module:Class'; got keys {sorted(table)!r}"
    )
    raise SpecError(msg)


def _with_seed_bits(func: Any, bits: Any, path: str) -> Any:
    """The function ``path`` names, run with seeds of ``bits`` bits."""
    from .members.seeds import check_seed_bits
    from .simulations.contract import Simulation, as_simulation

    bits = check_seed_bits(bits)
    if isinstance(func, Simulation) or hasattr(func, "__ensembles_simulation__"):
        sim = as_simulation(func)
        if sim.seed_bits != bits:
            msg = (
                f"[simulation] sets seed_bits = {bits} but {path!r} declares "
                f"seed_bits={sim.seed_bits}; make them agree (a stored run keeps the "
                "seed_bits it was run with)"
            )
            raise SpecError(msg)
        return sim
    return Simulation(func, seed_bits=bits)


def ensemble_arguments(spec: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """The :class:`~ensembles.Ensemble` arguments a spec describes (``Ensemble(**args)``).

    ``Ensemble.from_spec(spec)`` is ``Ensemble(**ensemble_arguments(spec))``.

    Examples
    --------
    >>> spec = {"simulation": {"function": "ensembles.models.ising:simulate"},
    ...         "design": {"grid": {"T": [1.5, 2.0]}}, "fixed": {"L": 16},
    ...         "run": {"seeds": 2, "root_seed": 42}}
    >>> args = ensemble_arguments(spec)
    >>> args["design"], args["seeds"], args["fixed"]
    (Grid(T=[1.5, 2.0]), 2, {'L': 16})
    >>> spec["run"]["seeds"] = {"initial": 16, "max": 256}
    >>> ensemble_arguments(spec)["seeds"]
    Adaptive(initial=16, max=256, grow='seed', safety=1.2, growth=4.0, pow2=False)
    """
    from .sweep import design_from_dict

    validate_spec(spec)
    run = dict(spec.get("run", {}))
    try:
        args = {
            "simulation": simulation_from_spec(spec["simulation"]),
            "design": design_from_dict(spec["design"]),
            "seeds": _rule(run.get("seeds", 1)),
            "root_seed": _root_seed(run.get("root_seed")),
            "fixed": dict(spec.get("fixed", {})),
            "batch_size": run.get("batch_size"),
        }
        if "samples" in run:
            args["samples"] = _rule(run["samples"])
    except EnsembleError:
        raise
    except (TypeError, KeyError) as exc:
        msg = f"invalid spec: {type(exc).__name__}: {exc}"
        raise SpecError(msg) from None
    args.update(overrides)
    return args


def _rule(value: Any) -> Any:
    """An adaptive rule given as a table (``{initial = 16, max = 1024}``), else the value."""
    if isinstance(value, Mapping):
        from .adaptive.rules import Adaptive

        return Adaptive.from_dict(value)
    return value


def _root_seed(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():  # stores keep huge roots as strings
        return int(value)
    return value


def run_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Options of the ``[run]`` table that go to ``to_zarr`` (on_error, retries, timeout,
    until)."""
    run = spec.get("run", {})
    return {k: run[k] for k in ("on_error", "retries", "timeout", "until") if k in run}
