"""The simulation contract: what the engine needs of a simulation, and the plain-function case.

:class:`Simulation` is the contract every kind of simulation implements: a name, how it
takes a seed, the parameters it accepts, how one member is called, its declared outputs
and its run-specification form. :class:`FunctionSimulation` implements it for a plain
function ``f(*, seed, **params)`` (or ``f(*, rng, **params)``), which is what
``Simulation(func)``, :func:`simulation` and :func:`as_simulation` build;
:class:`~.command.Command`, :class:`~.model_class.ModelClass` and
:class:`~.mesa.MesaModel` are the others.
"""

from __future__ import annotations

import abc
import functools
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import OutputMismatchError, SimulationError
from ..members.seeds import DEFAULT_SEED_BITS, check_seed_bits
from .schema import Output, Recorded, Schema, normalize_result, storage_dtype

__all__ = [
    "Arguments",
    "FunctionSimulation",
    "Output",
    "Schema",
    "Simulation",
    "as_simulation",
    "import_object",
    "object_path",
    "simulation",
]

#: Declared outputs: ``{name: Output or dims}``, or a function of the member parameters.
Outputs = Mapping[str, Any] | Callable[..., Mapping[str, Any]]
#: Declared coordinates of output dims: ``{dim: values}``, or a function of the parameters.
Coords = Mapping[str, Any] | Callable[..., Mapping[str, Any]]


class Simulation(abc.ABC):
    """A simulation: what the engine needs to run it once per member.

    ``Simulation(func, ...)`` wraps a plain function (and returns a
    :class:`FunctionSimulation`, as ``pathlib.Path(...)`` returns a ``PosixPath``);
    :func:`simulation` does the same as a decorator, and plain functions passed to
    :class:`~ensembles.Ensemble` are wrapped automatically. Calling a simulation runs one
    member by hand: ``sim(seed=7, T=2.0)``.

    Every kind of simulation (functions, :class:`~ensembles.Command`,
    :class:`~ensembles.ModelClass`, :class:`~ensembles.MesaModel`) is a subclass that
    passes the settings below to ``Simulation.__init__`` and implements
    :attr:`seed_argument`, :attr:`parameters`, :attr:`required`, :meth:`call` and
    :meth:`to_dict`. The outputs it declares (:meth:`declared`) and how a raw result
    becomes arrays (:meth:`normalize`) are shared.

    Parameters
    ----------
    func : callable
        (``Simulation(func, ...)`` only) ``func(*, seed, **params)`` or
        ``func(*, rng, **params)``; see :class:`FunctionSimulation`.
    name : str
        Name recorded in stores.
    outputs : dict or callable, optional
        ``{name: Output}`` or a callable ``outputs(**params) -> {name: Output}`` that
        derives shapes from the member parameters (e.g. the number of recorded steps).
    coords : dict or callable, optional
        Coordinate values of output dimensions, or a callable of the parameters.
    seed_bits : int
        Bits of each member's seed, 1 to 63: seeds are in ``[0, 2**seed_bits)``. The default
        63 suits numpy; 31 suits code that takes a 32-bit signed integer. The stored
        ``member_seed`` is the value the simulation received.
    releases_gil : bool
        True when a member spends its time in code that releases the GIL (numba
        ``nogil``, numpy, waiting on a subprocess).

    Examples
    --------
    >>> sim = Simulation(lambda *, seed, a: {"y": a + seed})
    >>> isinstance(sim, Simulation), type(sim).__name__, sim.parameters
    (True, 'FunctionSimulation', ('a',))
    >>> sim.call({"a": 1.0}, seed=2)
    {'y': 3.0}
    """

    #: True when :meth:`call` takes ``member=``, the member's identity (flat index,
    #: position, parameters), as :class:`~.command.Command` does to name its scratch dirs.
    takes_member: ClassVar[bool] = False

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Simulation:  # Simulation(func, ...) wraps a plain function
            cls = FunctionSimulation
        return super().__new__(cls)

    def __init__(
        self,
        *,
        name: str,
        outputs: Outputs | None = None,
        coords: Coords | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
        releases_gil: bool = False,
    ) -> None:
        self.name = str(name)
        self.outputs = outputs
        self.coords = coords
        self.seed_bits = check_seed_bits(seed_bits)
        self.releases_gil = bool(releases_gil)

    # -- what each kind of simulation provides -----------------------------------------
    @property
    @abc.abstractmethod
    def seed_argument(self) -> str | None:
        """``"seed"`` (an int), ``"rng"`` (a numpy Generator) or None (takes no seed)."""

    @property
    @abc.abstractmethod
    def parameters(self) -> tuple[str, ...] | None:
        """Parameters a member accepts (besides the seed), or None when it takes any."""

    @property
    @abc.abstractmethod
    def required(self) -> tuple[str, ...]:
        """Parameters a member needs: the design and ``fixed=`` must provide them."""

    @abc.abstractmethod
    def call(self, params: Mapping[str, Any], seed: int) -> Any:
        """Run one member: its raw result (a mapping, a Dataset, :class:`~.schema.Recorded`,
        or a bare number or array).

        A subclass with :attr:`takes_member` also accepts ``member=``, the member's identity.
        """

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification."""

    # -- shared ------------------------------------------------------------------------
    def __call__(self, *, seed: int, **params: Any) -> Any:
        """Run one member by hand: ``sim(seed=7, T=2.0)``.

        What :meth:`call` returns, with an adapter's :class:`~.schema.Recorded` outputs as
        the :class:`xarray.Dataset` they stand for.
        """
        result = self.call(params, seed)
        return result.to_dataset() if isinstance(result, Recorded) else result

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def __reduce__(self) -> Any:
        return (_restore, (type(self), self.__dict__.copy()))

    def direct_call(self) -> Callable[[Mapping[str, Any], int], Any] | None:
        """A faster ``f(params, seed) -> raw result`` equal to :meth:`call`, or None.

        The engine's per-member loop uses it, when there is one, in place of
        :meth:`call`; it must behave exactly like it.
        """
        return None

    def check_parameters(self, names: Iterable[str]) -> None:
        """Raise :class:`SimulationError` unless members can take exactly these parameters.

        Called before anything runs, with every design and fixed parameter name.
        """
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

    def bare_output(self, declared: Mapping[str, Output]) -> str | None:
        """The output a bare result (a number or array, not a mapping) is stored as.

        The one declared output; None (bare results are refused) otherwise.
        """
        return next(iter(declared)) if len(declared) == 1 else None

    def normalize(
        self, result: Any, params: Mapping[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]], dict[str, np.ndarray]]:
        """Normalize a raw result into (arrays, dims, coords) using declared dims."""
        outs, _ = self.declared(params)
        dims = {k: o.dims for k, o in outs.items()}
        return normalize_result(result, dims, self.bare_output(outs))

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


def _restore(cls: type, state: dict[str, Any]) -> Any:
    """Rebuild a pickled simulation from its attributes, without validating them again."""
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


@dataclass(frozen=True)
class Arguments:
    """How a function or class takes its keyword arguments, read from its signature.

    Attributes
    ----------
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
    >>> Arguments.of(build)
    Arguments(parameters=('n', 'p'), required=('n',), seed_argument='rng')
    """

    parameters: tuple[str, ...] | None
    required: tuple[str, ...]
    seed_argument: str | None

    @classmethod
    def of(cls, func: Callable[..., Any], prefer: str = "rng") -> Arguments:
        """Read ``func``'s signature; ``prefer`` names the seed argument taken if it has both."""
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):  # some builtins and C callables
            return cls(None, (), "seed")
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        named = [
            p
            for p in params.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.name not in ("seed", "rng")
        ]
        accepts = {a for a in ("seed", "rng") if a in params} | ({"seed"} if var_kw else set())
        order = ("rng", "seed") if prefer == "rng" else ("seed", "rng")
        seed_argument = next((a for a in order if a in accepts), None)
        return cls(
            None if var_kw else tuple(p.name for p in named),
            tuple(p.name for p in named if p.default is inspect.Parameter.empty),
            seed_argument,
        )


class FunctionSimulation(Simulation):
    """A plain function as a simulation: ``func(*, seed, **params)`` once per member.

    Built by ``Simulation(func, ...)``, :func:`simulation` and :func:`as_simulation`.
    Calling it calls the wrapped function unchanged. The function returns a mapping of
    output name to scalar or array, an :class:`xarray.Dataset`, or one bare number or
    array: an output named after the function (or after its one declared output).

    Parameters
    ----------
    func : callable
        ``func(*, seed, **params)`` (an int seed) or ``func(*, rng, **params)`` (a numpy
        Generator seeded with it).
    outputs, coords, releases_gil, seed_bits
        See :class:`Simulation`.
    name : str, optional
        Name recorded in stores; defaults to ``module:qualname``.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        outputs: Outputs | None = None,
        coords: Coords | None = None,
        releases_gil: bool = False,
        name: str | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        if not callable(func):
            msg = f"a simulation must be callable, got {func!r}"
            raise SimulationError(msg)
        super().__init__(
            name=name or object_path(func),
            outputs=outputs,
            coords=coords,
            seed_bits=seed_bits,
            releases_gil=releases_gil,
        )
        self.func = func
        self.arguments = Arguments.of(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Simulation {self.name}>"

    def __reduce__(self) -> Any:
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

    @property
    def seed_argument(self) -> str | None:
        """``"rng"`` if the function asks for a Generator, ``"seed"`` for an int, else None."""
        return self.arguments.seed_argument

    @property
    def parameters(self) -> tuple[str, ...] | None:
        """Keyword parameters the function accepts, or None if it takes ``**kwargs``."""
        return self.arguments.parameters

    @property
    def required(self) -> tuple[str, ...]:
        """Parameters without a default value (besides ``seed``/``rng``)."""
        return self.arguments.required

    def call(self, params: Mapping[str, Any], seed: int) -> Any:
        """Call the function for one member, passing ``seed`` or ``rng`` as it asks."""
        return self.direct_call()(params, seed)

    def direct_call(self) -> Callable[[Mapping[str, Any], int], Any]:
        """``f(params, seed)``: the function called with the parameters and its seed argument.

        Examples
        --------
        >>> run = Simulation(lambda *, rng, a: a + rng.integers(10)).direct_call()
        >>> int(run({"a": 100}, 5)) == int(run({"a": 100}, 5))
        True
        """
        func, arg = self.func, self.seed_argument
        if arg == "seed":
            return lambda params, seed: func(**params, seed=seed)
        if arg == "rng":
            return lambda params, seed: func(**params, rng=np.random.default_rng(seed))
        return lambda params, seed: func(**params)

    def bare_output(self, declared: Mapping[str, Output]) -> str | None:
        """The one declared output, or the function's name when it declares none.

        Examples
        --------
        >>> def energy(*, seed, T):
        ...     return -2.0 * T
        >>> Simulation(energy).bare_output({})
        'energy'
        """
        if declared:
            return super().bare_output(declared)
        name = getattr(self.func, "__name__", "")
        return name if name.isidentifier() else None

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


def _rebuild_simulation(
    func, outputs, coords, releases_gil, name, seed_bits=DEFAULT_SEED_BITS
) -> FunctionSimulation:
    return FunctionSimulation(
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
    outputs: Outputs | None = None,
    coords: Coords | None = None,
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

    def wrap(f: Callable[..., Any]) -> FunctionSimulation:
        return FunctionSimulation(
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
        A ``"module:function"`` string is imported. An object with a
        ``__ensembles_simulation__()`` method gives its own simulation.

    Examples
    --------
    >>> as_simulation("ensembles.models.ising:simulate").name
    'ensembles.models.ising:simulate'
    """
    if isinstance(obj, Simulation):
        return obj
    to_simulation = getattr(obj, "__ensembles_simulation__", None)
    if callable(to_simulation):
        return to_simulation()
    if isinstance(obj, str):
        return as_simulation(import_object(obj))
    if callable(obj):
        return FunctionSimulation(obj)
    msg = f"cannot use {obj!r} as a simulation; pass a function, a Simulation or 'module:function'"
    raise SimulationError(msg)


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute.

    Examples
    --------
    >>> import_object("builtins:len")
    <built-in function len>
    """
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


def object_path(obj: Any) -> str:
    """``"module:qualname"`` of a class or function: how specs and stores name it.

    The inverse of :func:`import_object` for objects defined at the top level of an
    importable module.

    Examples
    --------
    >>> object_path(dict)
    'builtins:dict'
    """
    module = getattr(obj, "__module__", None) or "__main__"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{module}:{qualname}"
