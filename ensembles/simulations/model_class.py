"""Model classes as simulations: :class:`ModelClass` and how it builds, steps and records models.

:class:`ModelClass` builds an instance from a member's parameters and seed, then either
calls its ``run()`` or steps it ``n`` times, recording outputs on a ``step`` dimension.
:class:`ModelSimulation` is what it shares with :class:`~.mesa.MesaModel` (building the
member's model). The helpers validate ``collect=`` and apply it to a model, stack per-step
records into arrays over ``step`` (:class:`~.schema.Recorded`), and write classes and
functions to and from the ``"module:qualname"`` form of a run specification.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OutputMismatchError, SimulationError, SpecError
from ..members.seeds import DEFAULT_SEED_BITS
from .contract import Arguments, Coords, Outputs, Simulation, import_object, object_path
from .schema import Recorded

__all__ = [
    "STEP_DIM",
    "Collect",
    "ModelClass",
    "ModelSimulation",
    "collect_from_spec",
    "collect_outputs",
    "collect_to_spec",
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


class ModelSimulation(Simulation):
    """A simulation whose members each build a model from their parameters and seed.

    What :class:`ModelClass` and :class:`~.mesa.MesaModel` share: the model class (or
    factory) ``cls``, the parameters its constructor accepts and how it takes a seed.

    Parameters
    ----------
    cls : type or callable
        The model class (or any factory) taking the parameters as keyword arguments.
    name, outputs, coords, seed_bits
        See :class:`~.contract.Simulation`.
    """

    def __init__(
        self,
        cls: Callable[..., Any],
        *,
        name: str,
        outputs: Outputs | None = None,
        coords: Coords | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        if not callable(cls):
            msg = (
                f"{type(self).__name__} needs a class (or factory) to build models from, "
                f"got {cls!r}"
            )
            raise SimulationError(msg)
        super().__init__(name=name, outputs=outputs, coords=coords, seed_bits=seed_bits)
        self.cls = cls
        #: The constructor's parameters; ``seed`` is preferred when it takes both.
        self.arguments = Arguments.of(cls, prefer="seed")

    @property
    def func(self) -> Callable[..., Any]:
        """The member function: ``sim.func(seed=..., **params)`` runs one member."""
        return self.__call__

    @property
    def parameters(self) -> tuple[str, ...] | None:
        """Constructor parameters (besides seed/rng), or None if it takes ``**kwargs``."""
        return self.arguments.parameters

    @property
    def required(self) -> tuple[str, ...]:
        """Constructor parameters without a default (besides seed/rng)."""
        return self.arguments.required

    @property
    def seed_argument(self) -> str | None:
        """``"seed"`` or ``"rng"``: how the constructor takes the seed; None if it does not."""
        return self.arguments.seed_argument

    def build(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the member's model from its parameters and seed, without running it.

        The seed goes in as ``seed=`` (an int) or ``rng=`` (a numpy Generator seeded
        with it), as the constructor takes it.
        """
        kwargs = dict(params)
        if self.seed_argument == "rng":
            kwargs["rng"] = np.random.default_rng(seed)
        elif self.seed_argument == "seed":
            kwargs["seed"] = seed
        return self.cls(**kwargs)

    def dims_hint(self, params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """The declared dims of each output (for members with these parameters)."""
        outs, _ = self.declared(params)
        return {k: o.dims for k, o in outs.items()}


# -- settings ------------------------------------------------------------------------------
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

    A single attribute name becomes a 1-tuple.

    Raises
    ------
    SimulationError
        If ``collect`` is none of the accepted forms.

    Examples
    --------
    >>> parse_collect("wealth")
    ('wealth',)
    """
    if collect is None or callable(collect):
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
) -> Recorded:
    """Stack per-step records into arrays with a leading ``step`` dimension.

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
    Recorded
        The stacked outputs, their dims and the ``step`` coordinate.

    Raises
    ------
    OutputMismatchError
        If the records disagree in names or shapes, hold non-numbers, or do not match
        their declared dims.

    Examples
    --------
    >>> rec = stack_records([{"x": 1.0}, {"x": 2.5}], np.array([1, 2]), {})
    >>> rec.dims["x"], rec["x"].tolist(), rec.coords["step"].tolist()
    (('step',), [1.0, 2.5], [1, 2])
    """
    names = list(records[0])
    data, dims_of = {}, {}
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
        data[name] = stacked
        dims_of[name] = tuple(dims_hint.get(name) or (STEP_DIM, *extra))
    return Recorded(data, dims_of, {STEP_DIM: steps})  # checks each output's dims


# -- specification form --------------------------------------------------------------------
def collect_to_spec(collect: Any) -> Any:
    """A ``collect`` specification with its functions written as ``"module:qualname"``."""
    if callable(collect):
        return object_path(collect)
    if isinstance(collect, Mapping):
        return {k: v if isinstance(v, str) else object_path(v) for k, v in collect.items()}
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


class ModelClass(ModelSimulation):
    """A class whose instances are simulations: built per member, then run or stepped.

    Each member builds ``cls(**params, seed=seed)`` (or ``rng=numpy.random.default_rng(seed)``
    when the constructor takes ``rng`` and not ``seed``; nothing when it takes neither).
    Then either

    * ``steps=None``: ``model.run()`` is called and returns the member's outputs (a mapping
      of name to scalar or array, or an :class:`xarray.Dataset`); with ``collect`` given,
      ``collect(model)`` after ``run()`` gives them instead; or
    * ``steps=n``: ``model.step()`` is called ``n`` times and ``collect(model)`` after each
      step; every output gains a leading ``step`` dimension with coordinate ``1..n``
      (``0..n`` with ``include_initial=True``, which collects once before stepping).

    Parameters
    ----------
    cls : type or callable
        The model class (or any factory) taking the parameters as keyword arguments.
    steps : int, optional
        Number of steps; None calls ``run`` instead.
    run, step : str
        Names of the methods to call.
    collect : callable, list of str or dict, optional
        What to record: ``collect(model) -> {name: value}``, a list of attribute names, or a
        dict mapping output names to attribute names or functions of the model. Required
        when ``steps`` is given.
    outputs : dict of str to Output, optional
        Declared outputs (dims include ``"step"`` first when stepping).
    coords : dict, optional
        Coordinates of declared output dimensions.
    include_initial : bool
        With ``steps``: also record the state before the first step, as step 0.
    name : str, optional
        Name recorded in stores; default ``"model:module:Class"``.
    seed_bits : int
        Bits of the member's seed, 1 to 63 (default 63): the constructor receives an int
        in ``[0, 2**seed_bits)`` as ``seed`` (or a Generator seeded with it as ``rng``);
        31 suits code that keeps the seed in a 32-bit signed integer.

    Examples
    --------
    >>> class Walker:
    ...     def __init__(self, drift=0.0, seed=None):
    ...         self.rng = np.random.default_rng(seed)
    ...         self.drift, self.x = drift, 0.0
    ...     def step(self):
    ...         self.x += self.drift + self.rng.standard_normal()
    >>> sim = ModelClass(Walker, steps=5, collect=["x"])
    >>> sim(drift=1.0, seed=3)["x"].dims
    ('step',)
    """

    def __init__(
        self,
        cls: Callable[..., Any],
        steps: int | None = None,
        run: str = "run",
        step: str = "step",
        collect: Collect | None = None,
        outputs: Outputs | None = None,
        *,
        coords: Coords | None = None,
        include_initial: bool = False,
        name: str | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        super().__init__(
            cls,
            name=name or f"model:{object_path(cls)}",
            outputs=outputs,
            coords=coords,
            seed_bits=seed_bits,
        )
        self.steps = parse_steps(steps)
        self.run = parse_method_name(run, "run")
        self.step = parse_method_name(step, "step")
        self.collect = parse_collect(collect)
        if self.steps is not None and self.collect is None:
            msg = (
                f"steps={steps!r} needs collect= to say what to record after each step, e.g. "
                "collect=['wealth'] or collect=lambda model: {'wealth': model.total_wealth}"
            )
            raise SimulationError(msg)
        self.include_initial = bool(include_initial)

    # -- the Simulation contract ---------------------------------------------------------
    def call(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the member's model, run or step it, and return its outputs."""
        model = self.build(params, seed)
        if self.steps is None:
            result = model_method(model, self.run, "run")()
            if self.collect is not None:
                return collect_outputs(self.collect, model)
            if result is None:
                msg = (
                    f"{self.name}: {type(model).__name__}.{self.run}() returned None; return "
                    "a mapping of output name to value, or pass collect= to read them from "
                    "the model after it ran"
                )
                raise OutputMismatchError(msg)
            return result
        step = model_method(model, self.step, "step")
        records = [collect_outputs(self.collect, model)] if self.include_initial else []
        for _ in range(self.steps):
            step()
            records.append(collect_outputs(self.collect, model))
        first = 0 if self.include_initial else 1
        return stack_records(records, np.arange(first, self.steps + 1), self.dims_hint(params))

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification.

        Classes and functions are written as ``"module:qualname"``; :meth:`from_dict` can
        rebuild the simulation when they are defined at the top level of an importable
        module.
        """
        d: dict[str, Any] = {"model": object_path(self.cls)}
        if self.steps is not None:
            d["steps"] = self.steps
        if self.run != "run":
            d["run"] = self.run
        if self.step != "step":
            d["step"] = self.step
        if self.collect is not None:
            d["collect"] = collect_to_spec(self.collect)
        if self.include_initial:
            d["include_initial"] = True
        if self.name != f"model:{object_path(self.cls)}":
            d["name"] = self.name
        if self.seed_bits != DEFAULT_SEED_BITS:
            d["seed_bits"] = self.seed_bits
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelClass:
        """Build from :meth:`to_dict`'s form, importing ``model`` (``"module:Class"``)."""
        allowed = {
            "model",
            "steps",
            "run",
            "step",
            "collect",
            "include_initial",
            "name",
            "seed_bits",
        }
        kwargs = spec_kwargs(d, "model", allowed)
        model = import_object(kwargs.pop("model"))
        if "collect" in kwargs:
            kwargs["collect"] = collect_from_spec(kwargs["collect"])
        return cls(model, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({object_path(self.cls)}, steps={self.steps!r})"
