"""Mesa agent-based models as simulations: :class:`MesaModel` and the Mesa specifics.

:class:`MesaModel` steps a `Mesa <https://mesa.readthedocs.io>`_ model and reads its
``DataCollector`` model reporters. Mesa is imported (and its version checked) only when
a MesaModel is built; a model's ``DataCollector`` is found among its attributes and its
model-reporter rows counted.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OutputMismatchError, SimulationError
from ..members.seeds import DEFAULT_SEED_BITS
from .contract import Coords, Outputs, import_object, object_path
from .model_class import (
    DATACOLLECTOR,
    ModelClass,
    collect_from_spec,
    collect_to_spec,
    model_method,
    spec_kwargs,
    stack_records,
)

__all__ = ["MesaModel", "collected_rows", "find_datacollector", "import_mesa"]


def import_mesa() -> Any:
    """Import Mesa, version 3 or later.

    Returns
    -------
    module
        The ``mesa`` package.

    Raises
    ------
    SimulationError
        If Mesa is not installed or older than version 3.
    """
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


def find_datacollector(model: Any, name: str) -> Any:
    """The model's DataCollector: ``model.datacollector`` or any attribute holding one.

    Parameters
    ----------
    model : mesa.Model
        A built model.
    name : str
        The simulation's name, for the error message.

    Raises
    ------
    SimulationError
        If the model has no DataCollector.
    """
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


def collected_rows(collector: Any) -> int:
    """How many rows of model reporters the DataCollector has collected so far.

    Raises
    ------
    SimulationError
        If the DataCollector has no model reporters.
    """
    columns = collector.model_vars
    if not columns:
        msg = "the model's DataCollector has no model reporters; add model_reporters={...}"
        raise SimulationError(msg)
    return len(next(iter(columns.values())))


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
        outputs: Outputs | None = None,
        coords: Coords | None = None,
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
            name=name or f"mesa:{object_path(model_cls)}",
            seed_bits=seed_bits,
        )
        self.reporters = self.collect if collect is not None else reporters
        if self.seed_argument is None:
            msg = (
                f"{model_cls.__name__}.__init__ takes neither seed nor rng, so members "
                "cannot be seeded; add a `seed=None` argument and pass it on with "
                "super().__init__(seed=seed)"
            )
            raise SimulationError(msg)

    def build(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the member's Mesa model with its parameters and seed."""
        kwargs = dict(params)
        kwargs[self.seed_argument or "seed"] = int(seed)
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
        return stack_records(records, np.asarray(labels), self.dims_hint(params))

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
            "mesa_model": object_path(self.cls),
            "steps": self.steps,
        }
        if self.reporters is not None:
            if isinstance(self.reporters, Mapping):
                d["reporters"] = collect_to_spec(self.reporters)
            else:
                d["reporters"] = list(self.reporters)
        if self.name != f"mesa:{object_path(self.cls)}":
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
