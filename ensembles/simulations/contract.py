"""The simulation contract: how a function is called for one member, and what it returns.

A simulation is a plain function ``f(*, seed, **params)`` (or ``f(*, rng, **params)``)
returning a mapping of output name to scalar or numpy array, or an :class:`xarray.Dataset`.
Its outputs (dims, shape, dtype) are either declared with :func:`simulation` or learned
from one probe member, whose result is then reused.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import OutputMismatchError, SimulationError
from ..members.seeds import DEFAULT_SEED_BITS, check_seed_bits
from .schema import Output, Schema, normalize_result, storage_dtype

__all__ = ["Output", "Schema", "Simulation", "as_simulation", "simulation"]


class Simulation:
    """A simulation function together with its declared outputs.

    Use :func:`simulation` to build one; plain functions are wrapped automatically by
    :func:`as_simulation`. Calling a ``Simulation`` calls the wrapped function unchanged.

    Parameters
    ----------
    func : callable
        ``func(*, seed, **params)`` or ``func(*, rng, **params)``.
    outputs : dict or callable, optional
        ``{name: Output}`` or a callable ``outputs(**params) -> {name: Output}`` that
        derives shapes from the member parameters (e.g. the number of recorded steps).
    coords : dict or callable, optional
        Coordinate values of output dimensions, or a callable of the parameters.
    releases_gil : bool
        True when the function spends its time in code that releases the GIL (numba
        ``nogil``, numpy); the embedded default then runs members on threads.
    name : str, optional
        Name recorded in stores; defaults to ``module:qualname``.
    seed_bits : int
        Bits of each member's seed, 1 to 63: seeds are in ``[0, 2**seed_bits)``. The default
        63 suits numpy; 31 suits code that takes a 32-bit signed integer. The stored
        ``member_seed`` is the value the function received.
    """

    #: Bits of each member's seed (see the ``seed_bits`` parameter).
    seed_bits: int = DEFAULT_SEED_BITS
    #: True when ``call`` takes ``member=``, the member's identity (flat index, position,
    #: parameters), as :class:`~.command.Command` does to name its scratch dirs.
    takes_member: bool = False

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        outputs: Mapping[str, Output] | Callable[..., Mapping[str, Output]] | None = None,
        coords: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
        releases_gil: bool = False,
        name: str | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        if not callable(func):
            msg = f"a simulation must be callable, got {func!r}"
            raise SimulationError(msg)
        self.func = func
        self.outputs = outputs
        self.coords = coords
        self.releases_gil = bool(releases_gil)
        self.name = name or _qualified_name(func)
        self.seed_bits = check_seed_bits(seed_bits)
        functools.update_wrapper(self, func)
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):  # builtins, some C callables
            sig = None
        self._signature = sig
        self._seed_argument = self._find_seed_argument()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Simulation {self.name}>"

    def __reduce__(self):
        # a decorated function's module attribute is this object: pickle it by reference
        try:
            if import_object(self.name) is self:
                return (import_object, (self.name,))
        except Exception:  # not importable (a notebook, a closure): by value below
            pass
        return (
            _rebuild_simulation,
            (self.func, self.outputs, self.coords, self.releases_gil, self.name, self.seed_bits),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification: the function's import path.

        Examples
        --------
        >>> Simulation(len, name="builtins:len", seed_bits=31).to_dict()
        {'function': 'builtins:len', 'seed_bits': 31}
        """
        d: dict[str, Any] = {"function": self.name}
        if self.seed_bits != DEFAULT_SEED_BITS:
            d["seed_bits"] = self.seed_bits
        return d

    # -- signature -------------------------------------------------------------------
    @property
    def parameters(self) -> tuple[str, ...] | None:
        """Keyword parameters the function accepts, or None if it takes ``**kwargs``."""
        if self._signature is None:
            return None
        names = []
        for p in self._signature.parameters.values():
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                return None
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
        return tuple(n for n in names if n not in ("seed", "rng"))

    @property
    def required(self) -> tuple[str, ...]:
        """Parameters without a default value (besides ``seed``/``rng``)."""
        if self._signature is None:
            return ()
        return tuple(
            p.name
            for p in self._signature.parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in ("seed", "rng")
        )

    @property
    def seed_argument(self) -> str | None:
        """``"rng"`` if the function asks for a Generator, ``"seed"`` for an int, else None."""
        return self._seed_argument

    def _find_seed_argument(self) -> str | None:
        if self._signature is None:
            return "seed"
        params = self._signature.parameters
        if "rng" in params:
            return "rng"
        if "seed" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        ):
            return "seed"
        return None

    def check_parameters(self, names: Iterable[str]) -> None:
        """Raise :class:`SimulationError` if the function cannot take these parameters."""
        names = list(names)
        accepted = self.parameters
        if accepted is not None:
            unknown = [n for n in names if n not in accepted]
            if unknown:
                msg = (
                    f"simulation {self.name!r} does not accept parameter(s) {unknown!r}; "
                    f"it accepts {sorted(accepted)!r}. Rename the parameter in the design or "
                    "fixed values, or add it to the function's signature"
                )
                raise SimulationError(msg)
        missing = [n for n in self.required if n not in names]
        if missing:
            msg = (
                f"simulation {self.name!r} requires parameter(s) {missing!r}, which neither the "
                "design nor fixed= provides"
            )
            raise SimulationError(msg)

    # -- calling ---------------------------------------------------------------------
    def call(self, params: Mapping[str, Any], seed: int) -> Any:
        """Call the simulation for one member, passing ``seed`` or ``rng`` as it asks."""
        kwargs = dict(params)
        arg = self._seed_argument
        if arg == "rng":
            kwargs["rng"] = np.random.default_rng(seed)
        elif arg == "seed":
            kwargs["seed"] = seed
        return self.func(**kwargs)

    def declared(
        self, params: Mapping[str, Any]
    ) -> tuple[dict[str, Output], dict[str, np.ndarray]]:
        """Declared outputs and coordinates for members with these parameters."""
        outputs = self.outputs(**params) if callable(self.outputs) else (self.outputs or {})
        coords = self.coords(**params) if callable(self.coords) else (self.coords or {})
        outs = {}
        for k, v in dict(outputs).items():
            if isinstance(v, Output):
                outs[str(k)] = v
            elif isinstance(v, (tuple, list, str)):
                outs[str(k)] = Output(dims=v)
            else:
                msg = (
                    f"output declaration for {k!r} must be an Output or a tuple of dims, got {v!r}"
                )
                raise SimulationError(msg)
        return outs, {str(k): np.asarray(v) for k, v in dict(coords).items()}

    def declared_schema(self, params: Mapping[str, Any]) -> Schema | None:
        """The complete schema when outputs are fully declared, else None (probe needed)."""
        outs, coords = self.declared(params)
        if not outs or not all(o.complete for o in outs.values()):
            return None
        return Schema(outs, coords)

    def normalize(
        self, result: Any, params: Mapping[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
        """Normalize a raw result into (arrays, dims, coords) using declared dims."""
        outs, _ = self.declared(params)
        return normalize_result(result, {k: o.dims for k, o in outs.items()})

    def schema_from_result(self, result: Any, params: Mapping[str, Any]) -> Schema:
        """Learn the schema from one member's result, completing any partial declaration."""
        arrays, dims, coords = self.normalize(result, params)
        declared, declared_coords = self.declared(params)
        outputs = {}
        for name, value in arrays.items():
            d = declared.get(name, Output())
            dtype = d.dtype if d.dtype is not None else storage_dtype(value.dtype, name)
            outputs[name] = Output(dims=dims[name], shape=value.shape, dtype=dtype, attrs=d.attrs)
        missing = [k for k in declared if k not in arrays]
        if missing:
            msg = (
                f"simulation {self.name!r} declares output(s) {missing!r} but did not return them"
            )
            raise OutputMismatchError(msg)
        return Schema(outputs, {**coords, **declared_coords})


def _qualified_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "__main__"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    return f"{module}:{qualname}"


def _rebuild_simulation(
    func, outputs, coords, releases_gil, name, seed_bits=DEFAULT_SEED_BITS
) -> Simulation:
    return Simulation(
        func,
        outputs=outputs,
        coords=coords,
        releases_gil=releases_gil,
        name=name,
        seed_bits=seed_bits,
    )


def simulation(
    func: Callable[..., Any] | None = None,
    *,
    outputs: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    coords: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
    releases_gil: bool = False,
    name: str | None = None,
    seed_bits: int = DEFAULT_SEED_BITS,
) -> Any:
    """Declare a function as a simulation, optionally with its outputs.

    With outputs fully declared (dims, shape and dtype, possibly as a function of the
    parameters), :meth:`Ensemble.to_dataset` builds its lazy Dataset without running
    anything. Otherwise one probe member runs first and its result is reused.

    Parameters
    ----------
    func : callable, optional
        The simulation; when omitted, returns a decorator.
    outputs, coords, releases_gil, name, seed_bits
        See :class:`Simulation`.

    Examples
    --------
    >>> import numpy as np
    >>> @simulation(outputs={"x": Output(dims=("step",), shape=(3,), dtype="float64")})
    ... def walk(*, rng, drift=0.0):
    ...     return {"x": np.cumsum(drift + rng.standard_normal(3))}
    >>> walk.seed_argument
    'rng'
    """

    check_seed_bits(seed_bits)  # at decoration, not at the first call

    def wrap(f: Callable[..., Any]) -> Simulation:
        return Simulation(
            f,
            outputs=outputs,
            coords=coords,
            releases_gil=releases_gil,
            name=name,
            seed_bits=seed_bits,
        )

    return wrap if func is None else wrap(func)


def as_simulation(obj: Any) -> Simulation:
    """Return ``obj`` as a :class:`Simulation` (wrapping plain callables, importing paths).

    Parameters
    ----------
    obj : Simulation, callable or str
        A ``"module:function"`` string is imported.
    """
    if isinstance(obj, Simulation):
        return obj
    to_simulation = getattr(obj, "__ensembles_simulation__", None)
    if callable(to_simulation):  # adapters (commands, model classes) build their own
        return to_simulation()
    if isinstance(obj, str):
        return as_simulation(import_object(obj))
    if callable(obj):
        return Simulation(obj)
    msg = f"cannot use {obj!r} as a simulation; pass a function, a Simulation or 'module:function'"
    raise SimulationError(msg)


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        msg = (
            f"{path!r} is not of the form 'module:function' "
            "(e.g. 'ensembles.models.ising:simulate')"
        )
        raise SimulationError(msg)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        msg = f"cannot import module {module_name!r} named in {path!r}: {exc}"
        raise SimulationError(msg) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            msg = f"module {module_name!r} has no attribute {attr!r} (from {path!r})"
            raise SimulationError(msg) from None
    return obj
