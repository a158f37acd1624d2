"""Model classes as simulations: a generic adapter and one for Mesa agent-based models.

:class:`ModelClass` builds an instance from a member's parameters and seed, then either
calls its ``run()`` or steps it ``n`` times, recording outputs on a ``step`` dimension.
:class:`MesaModel` does the same for a `Mesa <https://mesa.readthedocs.io>`_ model and
reads its ``DataCollector`` model reporters. Mesa is optional and imported only when a
MesaModel is built (see :mod:`ensembles.simulations.mesa`); the helpers both classes share
live in :mod:`ensembles.simulations.model_support`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OutputMismatchError, SimulationError
from ..members.seeds import DEFAULT_SEED_BITS, check_seed_bits
from .contract import Output, Simulation, import_object
from .mesa import collected_rows, find_datacollector, import_mesa
from .model_support import (
    DATACOLLECTOR,
    Collect,
    class_path,
    collect_from_spec,
    collect_outputs,
    collect_to_spec,
    constructor_info,
    model_method,
    parse_collect,
    parse_method_name,
    parse_steps,
    spec_kwargs,
    stack_records,
)
from .model_support import STEP_DIM as STEP_DIM  # re-exported: documented here

__all__ = ["MesaModel", "ModelClass"]


class ModelClass(Simulation):
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
        outputs: Mapping[str, Output] | Callable[..., Mapping[str, Output]] | None = None,
        *,
        coords: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
        include_initial: bool = False,
        name: str | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        if not callable(cls):
            msg = f"ModelClass needs a class (or factory) to build models from, got {cls!r}"
            raise SimulationError(msg)
        self.cls = cls
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
        self.outputs = outputs
        self.coords = coords
        self.include_initial = bool(include_initial)
        self.releases_gil = False
        self.seed_bits = check_seed_bits(seed_bits)
        self._signature = None
        self._parameters, self._required, self._seed_arg = constructor_info(cls)
        self.name = name or f"model:{class_path(cls)}"

    # -- the Simulation contract ---------------------------------------------------------
    @property
    def func(self) -> Callable[..., Any]:
        """The member function: ``sim.func(seed=..., **params)`` runs one member."""
        return self.__call__

    @property
    def parameters(self) -> tuple[str, ...] | None:
        """Constructor parameters (besides seed/rng), or None if it takes ``**kwargs``."""
        return self._parameters

    @property
    def required(self) -> tuple[str, ...]:
        """Constructor parameters without a default (besides seed/rng)."""
        return self._required

    @property
    def seed_argument(self) -> str | None:
        """``"seed"`` or ``"rng"``: how the constructor takes the seed; None if it does not."""
        return self._seed_arg

    def __call__(self, *, seed: int, **params: Any) -> Any:
        """Run one member by hand: ``sim(seed=7, n=50)``."""
        return self.call(params, seed)

    def __ensembles_simulation__(self) -> ModelClass:
        return self

    def build(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the member's model from its parameters and seed, without running it."""
        kwargs = dict(params)
        if self._seed_arg == "rng":
            kwargs["rng"] = np.random.default_rng(seed)
        elif self._seed_arg == "seed":
            kwargs["seed"] = seed
        return self.cls(**kwargs)

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
        return stack_records(records, np.arange(first, self.steps + 1), self._dims_hint(params))

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification.

        Classes and functions are written as ``"module:qualname"``; :meth:`from_dict` can
        rebuild the simulation when they are defined at the top level of an importable
        module.
        """
        d: dict[str, Any] = {"model": class_path(self.cls)}
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
        if self.name != f"model:{class_path(self.cls)}":
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

    def __reduce__(self):
        return (_restore, (type(self), self.__dict__.copy()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({class_path(self.cls)}, steps={self.steps!r})"

    def _dims_hint(self, params: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        outs, _ = self.declared(params)
        return {k: o.dims for k, o in outs.items()}


class MesaModel(ModelClass):
    """A Mesa model run for ``steps`` steps, its DataCollector's model reporters as outputs.

    Each member builds ``model_cls(**params, seed=seed)`` (Mesa 3 seeds both
    ``model.random`` and ``model.rng`` from it; ``rng=seed`` when the constructor takes
    ``rng`` only), calls ``model.step()`` ``steps`` times and returns every model reporter
    of its ``DataCollector`` (what ``get_model_vars_dataframe()`` shows) as an output over
    the ``step`` dimension. The coordinate is the step after which each row was collected:
    ``0..steps`` when the model collects in ``__init__`` and in ``step()``, ``1..steps``
    when only in ``step()``. ``model.running`` is not consulted, so every member has the
    same number of steps.

    Parameters
    ----------
    model_cls : subclass of mesa.Model
        Its ``__init__`` must accept ``seed`` (or ``rng``) and pass it to
        ``super().__init__``.
    steps : int
        Number of steps per member.
    reporters : list of str or dict, optional
        A list picks some of the DataCollector's model reporters. A dict
        ``{name: function of the model or attribute name}`` collects those values itself
        (before the first step and after each), so the model needs no DataCollector.
    outputs, coords, name, seed_bits
        As for :class:`ModelClass`; the default name is ``"mesa:module:Class"``. Mesa
        takes any non-negative integer seed, so the default 63 bits suit it.

    Examples
    --------
    >>> import mesa
    >>> class Counter(mesa.Model):
    ...     def __init__(self, rate=0.5, seed=None):
    ...         super().__init__(seed=seed)
    ...         self.rate, self.count = rate, 0
    ...         self.datacollector = mesa.DataCollector(model_reporters={"count": "count"})
    ...         self.datacollector.collect(self)
    ...     def step(self):
    ...         self.count += int(self.random.random() < self.rate)
    ...         self.datacollector.collect(self)
    >>> ds = MesaModel(Counter, steps=10)(rate=0.3, seed=1)
    >>> ds["count"].dims, ds.sizes["step"]
    (('step',), 11)
    """

    def __init__(
        self,
        model_cls: type,
        steps: int,
        reporters: Sequence[str] | Mapping[str, Any] | None = None,
        *,
        outputs: Mapping[str, Output] | Callable[..., Mapping[str, Output]] | None = None,
        coords: Mapping[str, Any] | Callable[..., Mapping[str, Any]] | None = None,
        name: str | None = None,
        seed_bits: int = DEFAULT_SEED_BITS,
    ) -> None:
        mesa = import_mesa()
        if not (isinstance(model_cls, type) and issubclass(model_cls, mesa.Model)):
            msg = (
                f"MesaModel needs a subclass of mesa.Model, got {model_cls!r}; use "
                "ModelClass for other model classes"
            )
            raise SimulationError(msg)
        if steps is None:
            msg = "MesaModel needs steps=, the number of steps each member runs"
            raise SimulationError(msg)
        if isinstance(reporters, str):
            reporters = [reporters]
        if reporters is not None and not isinstance(reporters, Mapping):
            reporters = tuple(str(r) for r in reporters)
        collect = reporters if isinstance(reporters, Mapping) else None
        super().__init__(
            model_cls,
            steps=steps,
            collect=collect if collect is not None else DATACOLLECTOR,
            outputs=outputs,
            coords=coords,
            include_initial=collect is not None,
            name=name or f"mesa:{class_path(model_cls)}",
            seed_bits=seed_bits,
        )
        self.reporters = self.collect if collect is not None else reporters
        if self._seed_arg is None:
            msg = (
                f"{model_cls.__name__}.__init__ takes neither seed nor rng, so members "
                "cannot be seeded; add a `seed=None` argument and pass it on with "
                "super().__init__(seed=seed)"
            )
            raise SimulationError(msg)

    def build(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the member's Mesa model with its parameters and seed."""
        kwargs = dict(params)
        kwargs[self._seed_arg or "seed"] = int(seed)
        return self.cls(**kwargs)

    def call(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the model, step it ``steps`` times and return its reporters over ``step``."""
        if self.collect is not DATACOLLECTOR:
            return super().call(params, seed)
        model = self.build(params, seed)
        collector = find_datacollector(model, self.name)
        step = model_method(model, self.step, "step")
        labels = [0] * collected_rows(collector)
        for k in range(1, self.steps + 1):
            step()
            labels.extend([k] * (collected_rows(collector) - len(labels)))
        if not labels:
            msg = (
                f"{self.name}: the DataCollector recorded nothing in {self.steps} steps; call "
                "self.datacollector.collect(self) in __init__ and at the end of step()"
            )
            raise OutputMismatchError(msg)
        if len(set(labels)) != len(labels):
            msg = (
                f"{self.name}: the DataCollector collected {len(labels)} rows in "
                f"{self.steps} steps (more than once in one step); collect once per step"
            )
            raise OutputMismatchError(msg)
        names = list(collector.model_vars) if self.reporters is None else list(self.reporters)
        unknown = [n for n in names if n not in collector.model_vars]
        if unknown:
            msg = (
                f"{self.name}: reporters {unknown!r} are not model reporters of the "
                f"DataCollector, which has {sorted(collector.model_vars)!r}"
            )
            raise SimulationError(msg)
        records = [{n: collector.model_vars[n][i] for n in names} for i in range(len(labels))]
        return stack_records(records, np.asarray(labels), self._dims_hint(params))

    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification.

        Examples
        --------
        >>> MesaModel.from_dict({"mesa_model": "mesa.examples:BoltzmannWealth",
        ...                      "steps": 20}).to_dict()
        {'mesa_model': 'mesa.examples.basic.boltzmann_wealth_model.model:BoltzmannWealth', \
'steps': 20}
        """
        d: dict[str, Any] = {
            "mesa_model": class_path(self.cls),
            "steps": self.steps,
        }
        if self.reporters is not None:
            if isinstance(self.reporters, Mapping):
                d["reporters"] = collect_to_spec(self.reporters)
            else:
                d["reporters"] = list(self.reporters)
        if self.name != f"mesa:{class_path(self.cls)}":
            d["name"] = self.name
        if self.seed_bits != DEFAULT_SEED_BITS:
            d["seed_bits"] = self.seed_bits
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MesaModel:
        """Build from :meth:`to_dict`'s form, importing ``mesa_model`` (``"module:Class"``)."""
        allowed = {"mesa_model", "steps", "reporters", "name", "seed_bits"}
        kwargs = spec_kwargs(d, "mesa_model", allowed)
        model = import_object(kwargs.pop("mesa_model"))
        if isinstance(kwargs.get("reporters"), Mapping):
            kwargs["reporters"] = collect_from_spec(kwargs["reporters"])
        return cls(model, **kwargs)


def _restore(cls: type, state: dict[str, Any]) -> Any:
    """Rebuild a pickled model simulation from its attributes, without validating again."""
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj
