"""Model classes as simulations: a generic adapter and one for Mesa agent-based models.

:class:`ModelClass` builds an instance from a member's parameters and seed, then either
calls its ``run()`` or steps it ``n`` times, recording outputs on a ``step`` dimension.
:class:`MesaModel` does the same for a `Mesa <https://mesa.readthedocs.io>`_ model and
reads its ``DataCollector`` model reporters. Mesa is optional and imported only here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import OutputMismatchError, SimulationError, SpecError
from .simulation import Output, Simulation, import_object

__all__ = ["MesaModel", "ModelClass"]

#: The dimension along which stepped models record their outputs.
STEP_DIM = "step"

Collect = Callable[[Any], Mapping[str, Any]] | Sequence[str] | Mapping[str, Any] | str


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
    ) -> None:
        if not callable(cls):
            msg = f"ModelClass needs a class (or factory) to build models from, got {cls!r}"
            raise SimulationError(msg)
        self.cls = cls
        self.steps = _parse_steps(steps)
        self.run = _parse_method_name(run, "run")
        self.step = _parse_method_name(step, "step")
        self.collect = _parse_collect(collect)
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
        self._signature = None
        self._parameters, self._required, self._seed_arg = _constructor_info(cls)
        self.name = name or f"model:{_class_path(cls)}"

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
            result = _method(model, self.run, "run")()
            if self.collect is not None:
                return _collect(self.collect, model)
            if result is None:
                msg = (
                    f"{self.name}: {type(model).__name__}.{self.run}() returned None; return "
                    "a mapping of output name to value, or pass collect= to read them from "
                    "the model after it ran"
                )
                raise OutputMismatchError(msg)
            return result
        step = _method(model, self.step, "step")
        records = [_collect(self.collect, model)] if self.include_initial else []
        for _ in range(self.steps):
            step()
            records.append(_collect(self.collect, model))
        first = 0 if self.include_initial else 1
        return _stack(records, np.arange(first, self.steps + 1), self._dims_hint(params))

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification.

        Classes and functions are written as ``"module:qualname"``; :meth:`from_dict` can
        rebuild the simulation when they are defined at the top level of an importable
        module.
        """
        d: dict[str, Any] = {"model": _class_path(self.cls)}
        if self.steps is not None:
            d["steps"] = self.steps
        if self.run != "run":
            d["run"] = self.run
        if self.step != "step":
            d["step"] = self.step
        if self.collect is not None:
            d["collect"] = _collect_to_spec(self.collect)
        if self.include_initial:
            d["include_initial"] = True
        if self.name != f"model:{_class_path(self.cls)}":
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelClass:
        """Build from :meth:`to_dict`'s form, importing ``model`` (``"module:Class"``)."""
        allowed = {"model", "steps", "run", "step", "collect", "include_initial", "name"}
        kwargs = _spec_kwargs(d, "model", allowed)
        model = import_object(kwargs.pop("model"))
        if "collect" in kwargs:
            kwargs["collect"] = _collect_from_spec(kwargs["collect"])
        return cls(model, **kwargs)

    def __reduce__(self):
        return (_restore, (type(self), self.__dict__.copy()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_class_path(self.cls)}, steps={self.steps!r})"

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
    outputs, coords, name
        As for :class:`ModelClass`; the default name is ``"mesa:module:Class"``.

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
    ) -> None:
        mesa = _import_mesa()
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
            collect=collect if collect is not None else _DATACOLLECTOR,
            outputs=outputs,
            coords=coords,
            include_initial=collect is not None,
            name=name or f"mesa:{_class_path(model_cls)}",
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
        if self.collect is not _DATACOLLECTOR:
            return super().call(params, seed)
        model = self.build(params, seed)
        collector = _find_datacollector(model, self.name)
        step = _method(model, self.step, "step")
        labels = [0] * _rows(collector)
        for k in range(1, self.steps + 1):
            step()
            labels.extend([k] * (_rows(collector) - len(labels)))
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
        return _stack(records, np.asarray(labels), self._dims_hint(params))

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
            "mesa_model": _class_path(self.cls),
            "steps": self.steps,
        }
        if self.reporters is not None:
            if isinstance(self.reporters, Mapping):
                d["reporters"] = _collect_to_spec(self.reporters)
            else:
                d["reporters"] = list(self.reporters)
        if self.name != f"mesa:{_class_path(self.cls)}":
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MesaModel:
        """Build from :meth:`to_dict`'s form, importing ``mesa_model`` (``"module:Class"``)."""
        kwargs = _spec_kwargs(d, "mesa_model", {"mesa_model", "steps", "reporters", "name"})
        model = import_object(kwargs.pop("mesa_model"))
        if isinstance(kwargs.get("reporters"), Mapping):
            kwargs["reporters"] = _collect_from_spec(kwargs["reporters"])
        return cls(model, **kwargs)


# -- helpers -------------------------------------------------------------------------------
class _DataCollectorMarker:
    """Sentinel: read the model's own DataCollector (MesaModel without a reporter dict)."""

    def __reduce__(self) -> str:
        return "_DATACOLLECTOR"

    def __repr__(self) -> str:
        return "<the model's DataCollector>"


_DATACOLLECTOR = _DataCollectorMarker()


def _restore(cls: type, state: dict[str, Any]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _import_mesa() -> Any:
    try:
        mesa = importlib.import_module("mesa")
    except ImportError:
        msg = "MesaModel needs Mesa (version 3 or later); install it with `pip install mesa`"
        raise SimulationError(msg) from None
    major = str(getattr(mesa, "__version__", "3")).split(".")[0]
    if major.isdigit() and int(major) < 3:
        msg = (
            f"MesaModel needs Mesa 3 or later (seeded through Model.__init__(seed=...)); "
            f"found {mesa.__version__}. Upgrade with `pip install -U mesa`"
        )
        raise SimulationError(msg)
    return mesa


def _find_datacollector(model: Any, name: str) -> Any:
    from mesa import DataCollector

    found = getattr(model, "datacollector", None)
    if isinstance(found, DataCollector):
        return found
    for value in vars(model).values():
        if isinstance(value, DataCollector):
            return value
    msg = (
        f"{name}: the model has no DataCollector; give it one with model reporters "
        "(self.datacollector = mesa.DataCollector(model_reporters={...})), or pass "
        "reporters={'name': function_of_model} to MesaModel"
    )
    raise SimulationError(msg)


def _rows(collector: Any) -> int:
    columns = collector.model_vars
    if not columns:
        msg = "the model's DataCollector has no model reporters; add model_reporters={...}"
        raise SimulationError(msg)
    return len(next(iter(columns.values())))


def _constructor_info(
    cls: Callable[..., Any],
) -> tuple[tuple[str, ...] | None, tuple[str, ...], str | None]:
    """(accepted parameters or None, required parameters, seed argument) of a constructor."""
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


def _parse_steps(steps: Any) -> int | None:
    if steps is None:
        return None
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        msg = f"steps must be a positive integer (or None to call run()), got {steps!r}"
        raise SimulationError(msg)
    return int(steps)


def _parse_method_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        msg = f"{what}= must name a method of the model, got {name!r}"
        raise SimulationError(msg)
    return name


def _parse_collect(collect: Any) -> Any:
    if collect is None or callable(collect) or collect is _DATACOLLECTOR:
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


def _collect(spec: Any, model: Any) -> Mapping[str, Any]:
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


def _method(model: Any, name: str, what: str) -> Callable[[], Any]:
    method = getattr(model, name, None)
    if not callable(method):
        msg = f"{type(model).__name__} has no method {name!r}; pass {what}= to name the right one"
        raise SimulationError(msg)
    return method


def _stack(
    records: Sequence[Mapping[str, Any]],
    steps: np.ndarray,
    dims_hint: Mapping[str, tuple[str, ...]],
) -> xr.Dataset:
    """Stack per-step records into a Dataset with a leading ``step`` dimension."""
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


def _class_path(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "__main__"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    return f"{module}:{qualname}"


def _collect_to_spec(collect: Any) -> Any:
    if callable(collect):
        return _class_path(collect)
    if isinstance(collect, Mapping):
        return {k: v if isinstance(v, str) else _class_path(v) for k, v in collect.items()}
    return list(collect)


def _collect_from_spec(spec: Any) -> Any:
    if isinstance(spec, str) and ":" in spec:
        return import_object(spec)
    if isinstance(spec, Mapping):
        return {k: import_object(v) if ":" in v else v for k, v in spec.items()}
    return spec


def _spec_kwargs(d: Any, key: str, allowed: set[str]) -> dict[str, Any]:
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
