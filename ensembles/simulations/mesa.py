"""Mesa agent-based models as simulations: :class:`MesaModel` and the Mesa specifics.

:class:`MesaModel` steps a `Mesa <https://mesa.readthedocs.io>`_ model, as Mesa's own
``batch_run`` does, and turns its model reporters into outputs over ``step`` and its agent
reporters into outputs over ``(step, agent)``. Mesa is imported (and its version checked)
only when a MesaModel is built.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import OutputMismatchError, SimulationError
from ..members.seeds import DEFAULT_SEED_BITS
from .contract import Coords, Outputs, import_object, object_path
from .model_class import (
    STEP_DIM,
    ModelSimulation,
    collect_from_spec,
    collect_outputs,
    collect_to_spec,
    model_method,
    parse_collect,
    spec_kwargs,
    stack_records,
)
from .model_class import ModelClass as ModelClass  # with MesaModel: the old ensembles.adapters
from .schema import Recorded

__all__ = [
    "AGENT_DIM",
    "MesaModel",
    "collected_rows",
    "find_datacollector",
    "import_mesa",
]

#: The dimension of agent-reporter outputs that holds the agents (by ``unique_id``).
AGENT_DIM = "agent"


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


def find_datacollector(model: Any, name: str, required: bool = True) -> Any:
    """The model's DataCollector: ``model.datacollector`` or any attribute holding one.

    Parameters
    ----------
    model : mesa.Model
        A built model.
    name : str
        The simulation's name, for the error message.
    required : bool
        Raise when there is none (else return None).

    Raises
    ------
    SimulationError
        If the model has no DataCollector and one is required.
    """
    from mesa import DataCollector

    found = getattr(model, "datacollector", None)
    if isinstance(found, DataCollector):
        return found
    for value in vars(model).values():
        if isinstance(value, DataCollector):
            return value
    if not required:
        return None
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


# -- what a member records, step by step ----------------------------------------------------
class _CollectorRows:
    """Model reporters of the model's DataCollector: which row each step collected."""

    def __init__(self, collector: Any, names: Sequence[str] | None, sim: str) -> None:
        unknown = [n for n in names or () if n not in collector.model_vars]
        if unknown:
            msg = (
                f"{sim}: reporters {unknown!r} are not model reporters of the "
                f"DataCollector, which has {sorted(collector.model_vars)!r}"
            )
            raise SimulationError(msg)
        self.collector, self.sim = collector, sim
        self.names = list(collector.model_vars) if names is None else list(names)
        self.rows: dict[int, int] = {}  # step -> row of model_vars
        self.seen = 0

    @property
    def steps(self) -> set[int]:
        return set(self.rows)

    def after(self, model: Any, step: int, kept: bool) -> None:
        n = collected_rows(self.collector)
        if n - self.seen > 1:
            msg = (
                f"{self.sim}: the DataCollector collected {n - self.seen} rows at step {step} "
                "(more than once in one step); collect once per step"
            )
            raise OutputMismatchError(msg)
        if n > self.seen:
            self.rows[step] = n - 1
        self.seen = n

    def finish(self) -> None:
        return None

    def record(self, step: int) -> dict[str, Any]:
        columns = self.collector.model_vars
        return {n: columns[n][self.rows[step]] for n in self.names}


class _OwnValues:
    """Model values MesaModel collects itself: ``{name: attribute or function of the model}``."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec, self.names = spec, list(spec)
        self.rows: dict[int, Mapping[str, Any]] = {}

    @property
    def steps(self) -> set[int]:
        return set(self.rows)

    def after(self, model: Any, step: int, kept: bool) -> None:
        if kept:
            self.rows[step] = collect_outputs(self.spec, model)

    def finish(self) -> None:
        return None

    def record(self, step: int) -> Mapping[str, Any]:
        return self.rows[step]


class _AgentRows:
    """Agent reporters in long form: a step, a ``unique_id`` and values per agent and step.

    Read from the DataCollector's agent records when the run ends (``names``), or
    collected here at the kept steps (``spec``: ``{name: attribute or function of an
    agent}``).
    """

    def __init__(self, collector: Any, names: Sequence[str], spec: Any, sim: str) -> None:
        if spec is None:
            unknown = [n for n in names if n not in collector.agent_reporters]
            if unknown:
                msg = (
                    f"{sim}: agent_reporters {unknown!r} are not agent reporters of the "
                    f"DataCollector, which has {sorted(collector.agent_reporters)!r}"
                )
                raise SimulationError(msg)
        self.collector = collector if spec is None else None
        self.names = list(names if spec is None else spec)
        self.getters = None if spec is None else [_agent_getter(v) for v in spec.values()]
        self.step_of: list[Any] = []
        self.ids: list[Any] = []
        self.values: list[list[Any]] = [[] for _ in self.names]

    @property
    def steps(self) -> set[int]:
        return set(np.unique(np.asarray(self.step_of, dtype=np.int64)).tolist())

    def after(self, model: Any, step: int, kept: bool) -> None:
        if kept and self.getters is not None:
            agents = list(model.agents)
            self.step_of.extend([step] * len(agents))
            self.ids.extend(a.unique_id for a in agents)
            for getter, out in zip(self.getters, self.values, strict=True):
                out.extend(getter(a) for a in agents)

    def finish(self) -> None:
        if self.collector is None:
            return
        frame = self.collector.get_agent_vars_dataframe()
        self.step_of = frame.index.get_level_values(0).to_numpy()
        self.ids = frame.index.get_level_values(1).to_numpy()
        self.values = [frame[n].to_numpy() for n in self.names]


def _agent_getter(reporter: Any) -> Callable[[Any], Any]:
    if isinstance(reporter, str):
        return lambda agent: getattr(agent, reporter)
    return reporter


def _numbers(values: Any, what: str) -> np.ndarray:
    """``values`` as a 1-d numeric array (None becomes NaN); ``what`` names them for errors."""
    array = np.asarray(values)
    if array.dtype == object:
        with contextlib.suppress(TypeError, ValueError):  # None is a missing value: NaN
            array = array.astype(np.float64)
    if array.ndim != 1 or array.dtype.kind not in "biufc":
        msg = f"{what} must give one number (or boolean) per agent and step"
        raise OutputMismatchError(msg)
    return array


def _positive(value: Any, what: str, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        msg = f"MesaModel needs {what}= a positive integer ({meaning}), got {value!r}"
        raise SimulationError(msg)
    return int(value)


def _reporters(reporters: Any, what: str) -> tuple[str, ...] | dict[str, Any] | None:
    """``reporters=``/``agent_reporters=``: None, names to pick, or a dict to collect."""
    if reporters is None or isinstance(reporters, Mapping):
        return reporters if reporters is None else parse_collect(reporters)
    if isinstance(reporters, str):
        return (reporters,)
    if isinstance(reporters, Sequence) and all(isinstance(r, str) for r in reporters):
        return tuple(reporters)
    msg = (
        f"{what}= must be a list of reporter names or a dict of name to attribute or "
        f"function, got {reporters!r}"
    )
    raise SimulationError(msg)


class MesaModel(ModelSimulation):
    """A Mesa model run for up to ``steps`` steps, its reporters as outputs over ``step``.

    Each member builds ``model_cls(**params, seed=seed)`` (Mesa 3 seeds both
    ``model.random`` and ``model.rng`` from it; ``rng=seed`` when the constructor takes
    ``rng`` only), calls ``model.step()`` ``steps`` times and returns the model reporters
    of its ``DataCollector`` (what ``get_model_vars_dataframe()`` shows) as outputs over
    the ``step`` dimension, and the agent reporters asked for over ``(step, agent)``. The
    ``step`` coordinate is the step after which each row was collected: ``0..steps`` when
    the model collects in ``__init__`` and in ``step()``, ``1..steps`` when only in
    ``step()``; ``collect_every`` thins it.

    Parameters
    ----------
    model_cls : subclass of mesa.Model
        Its ``__init__`` must accept ``seed`` (or ``rng``) and pass it to
        ``super().__init__``.
    steps : int
        Number of steps per member (Mesa's ``max_steps``).
    reporters : list of str or dict, optional
        Model reporters: by default all of the DataCollector's; a list picks some (``[]``:
        none). A dict ``{name: function of the model or attribute name}`` collects those
        values itself (before the first step and after each), so the model needs no
        DataCollector.
    agent_reporters : list of str or dict, optional
        Agent reporters, as outputs over ``(step, agent)``: a list picks some of the
        DataCollector's, a dict ``{name: function of an agent or attribute name}`` collects
        them itself. The ``agent`` coordinate is the agents' ``unique_id``.
    agents : int, optional
        With agents that come and go: the ``agent`` dimension holds ``unique_id``
        ``1..agents``, NaN where that agent does not exist (not yet created or removed),
        and every agent output is float64. By default the population must stay the one
        of the first collection (a change is an error that says so), and be the same size
        in every member.
    stop_early : bool
        Stop a member when ``model.running`` becomes False, as ``batch_run`` does; its
        remaining steps are NaN (every output is then float64), so statistics count them
        as missing. By default every member runs all ``steps`` steps.
    collect_every : int
        Keep every ``collect_every``-th step (and the last), like ``batch_run``'s
        ``data_collection_period``: ``0, k, 2k, ..., steps``.
    outputs, coords, name, seed_bits
        As for :class:`~.model_class.ModelClass`; the default name is
        ``"mesa:module:Class"``. Mesa takes any non-negative integer seed, so the default
        63 bits suit it.

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
    >>> MesaModel(Counter, steps=10, collect_every=4)(seed=1)["step"].values.tolist()
    [0, 4, 8, 10]
    """

    def __init__(
        self,
        model_cls: type,
        steps: int,
        reporters: Sequence[str] | Mapping[str, Any] | None = None,
        *,
        agent_reporters: Sequence[str] | Mapping[str, Any] | None = None,
        agents: int | None = None,
        stop_early: bool = False,
        collect_every: int = 1,
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
        super().__init__(
            model_cls,
            name=name or f"mesa:{object_path(model_cls)}",
            outputs=outputs,
            coords=coords,
            seed_bits=seed_bits,
        )
        if self.seed_argument is None:
            msg = (
                f"{model_cls.__name__}.__init__ takes neither seed nor rng, so members "
                "cannot be seeded; add a `seed=None` argument and pass it on with "
                "super().__init__(seed=seed)"
            )
            raise SimulationError(msg)
        self.steps = _positive(steps, "steps", "the number of steps each member runs")
        self.reporters = _reporters(reporters, "reporters")
        self.agent_reporters = _reporters(agent_reporters, "agent_reporters")
        self.agents = None if agents is None else _positive(agents, "agents", "agent ids kept")
        self.stop_early = bool(stop_early)
        self.collect_every = _positive(collect_every, "collect_every", "the steps kept")

    def build(self, params: Mapping[str, Any], seed: int) -> Any:
        """Build the member's Mesa model with its parameters and seed (an int)."""
        kwargs = dict(params)
        kwargs[self.seed_argument or "seed"] = int(seed)
        return self.cls(**kwargs)

    def call(self, params: Mapping[str, Any], seed: int) -> Recorded:
        """Build the model, step it, and return its reporters over ``step`` (and ``agent``)."""
        model = self.build(params, seed)
        model_rows, agent_rows = self._recorders(model)
        recorders = [r for r in (model_rows, agent_rows) if r is not None]
        step = model_method(model, "step", "step")
        for r in recorders:
            r.after(model, 0, True)
        for k in range(1, self.steps + 1):
            if self.stop_early and not model.running:
                break
            step()
            kept = k % self.collect_every == 0 or k == self.steps
            for r in recorders:
                r.after(model, k, kept)
        for r in recorders:
            r.finish()
        labels = self._labels(recorders)
        parts = [] if model_rows is None else [self._model_outputs(model_rows, labels, params)]
        if agent_rows is not None:
            parts.append(self._agent_outputs(agent_rows, labels))
        return Recorded(
            {k: v for p in parts for k, v in p.arrays.items()},
            {k: v for p in parts for k, v in p.dims.items()},
            {STEP_DIM: labels, **{k: v for p in parts for k, v in p.coords.items()}},
        )

    # -- recording -----------------------------------------------------------------------
    def _recorders(self, model: Any) -> tuple[Any, _AgentRows | None]:
        """What this member records: its model reporters and its agent reporters (or None).

        ``reporters=None`` reads every model reporter of the DataCollector (if the model
        has one and only agent reporters are collected here); ``[]`` or ``{}`` none.
        """
        reporters, agent_reporters = self.reporters, self.agent_reporters
        own_agents = isinstance(agent_reporters, Mapping)
        collector = None
        if reporters is None or (agent_reporters and not own_agents):
            required = not (reporters is None and own_agents)
            collector = find_datacollector(model, self.name, required=required)
        elif reporters and not isinstance(reporters, Mapping):
            collector = find_datacollector(model, self.name)
        model_rows: Any = None
        if reporters and isinstance(reporters, Mapping):
            model_rows = _OwnValues(reporters)
        elif reporters or (reporters is None and collector is not None and collector.model_vars):
            model_rows = _CollectorRows(collector, reporters, self.name)
        agent_rows = None
        if agent_reporters:
            spec = agent_reporters if own_agents else None
            agent_rows = _AgentRows(collector, agent_reporters, spec, self.name)
        if model_rows is None and agent_rows is None:
            msg = f"{self.name}: there is nothing to record; give reporters= or agent_reporters="
            raise SimulationError(msg)
        return model_rows, agent_rows

    def _labels(self, recorders: Sequence[Any]) -> np.ndarray:
        """The ``step`` coordinate: the kept steps at which members record.

        Without ``stop_early``, the steps the model collected at (every recorder at each).
        With it, every kept step from the first collection on, whether the member got
        there or not, so that the coordinate is the same for every member.
        """

        def kept(k: int) -> bool:
            return k % self.collect_every == 0 or k == self.steps

        steps = [r.steps for r in recorders]
        if self.stop_early:
            first = 0 if any(0 in s for s in steps) else 1
            return np.array([k for k in range(first, self.steps + 1) if kept(k)])
        labels = sorted({k for s in steps for k in s if kept(k)})
        if not labels:
            msg = (
                f"{self.name}: the DataCollector recorded nothing in {self.steps} steps; call "
                "self.datacollector.collect(self) in __init__ and at the end of step()"
            )
            raise OutputMismatchError(msg)
        for s in steps:
            missing = [k for k in labels if k not in s]
            if missing:
                msg = (
                    f"{self.name}: the model and agent reporters were collected at different "
                    f"steps (one has nothing at steps {missing[:5]!r}); collect them together"
                )
                raise OutputMismatchError(msg)
        return np.asarray(labels)

    def _model_outputs(self, rows: Any, labels: np.ndarray, params: Mapping[str, Any]) -> Recorded:
        """Model reporters over ``step``; with ``stop_early``, float64 and NaN past the stop."""
        present = [k for k in labels.tolist() if k in rows.steps]
        if not present:
            msg = f"{self.name}: the model stopped (model.running is False) before collecting"
            raise OutputMismatchError(msg)
        records = [rows.record(k) for k in present]
        rec = stack_records(records, np.asarray(present), self.dims_hint(params))
        if not self.stop_early:
            return rec
        at = np.searchsorted(labels, np.asarray(present))  # the collected steps among labels
        arrays = {}
        for name, values in rec.items():
            axis = rec.dims[name].index(STEP_DIM)
            moved = np.moveaxis(values.astype(np.float64), axis, 0)
            padded = np.full((labels.size, *moved.shape[1:]), np.nan)
            padded[at] = moved
            arrays[name] = np.moveaxis(padded, 0, axis)
        return Recorded(arrays, rec.dims, {STEP_DIM: labels})

    def _agent_outputs(self, rows: _AgentRows, labels: np.ndarray) -> Recorded:
        """Agent reporters over ``(step, agent)``, agents keyed by their ``unique_id``."""
        step_of = np.asarray(rows.step_of, dtype=np.int64)
        ids = np.asarray(rows.ids, dtype=np.int64)
        keep = np.isin(step_of, labels)
        step_of, ids = step_of[keep], ids[keep]
        row = np.searchsorted(labels, step_of)
        agent_ids = self._agent_ids(row, ids, labels)
        col = np.searchsorted(agent_ids, ids)
        padded = self.agents is not None or self.stop_early
        data: dict[str, Any] = {}
        for name, values in zip(rows.names, rows.values, strict=True):
            values = _numbers(np.asarray(values)[keep], f"{self.name}: agent reporter {name!r}")
            shape = (labels.size, agent_ids.size)
            array = np.full(shape, np.nan) if padded else np.empty(shape, values.dtype)
            array[row, col] = values
            data[name] = array
        dims = dict.fromkeys(data, (STEP_DIM, AGENT_DIM))
        return Recorded(data, dims, {STEP_DIM: labels, AGENT_DIM: agent_ids})

    def _agent_ids(self, row: np.ndarray, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The ``agent`` coordinate; raises if an agent falls outside it.

        ``1..agents`` with ``agents=``; else the population at the first collection, which
        must then be the population at every collection.
        """
        if self.agents is not None:
            outside = ids[(ids < 1) | (ids > self.agents)]
            if outside.size:
                msg = (
                    f"{self.name}: an agent with unique_id {int(outside[0])} exists, beyond "
                    f"agents={self.agents}; set agents= to the most agents a member creates"
                )
                raise OutputMismatchError(msg)
            return np.arange(1, self.agents + 1)
        first = np.unique(ids[row == row.min()]) if row.size else ids[:0]
        for r in np.unique(row).tolist():
            now = np.unique(ids[row == r])
            if now.size != first.size or (now != first).any():
                came = np.setdiff1d(now, first).tolist()[:5]
                left = np.setdiff1d(first, now).tolist()[:5]
                msg = (
                    f"{self.name}: the agents changed at step {labels[r]} (unique_id "
                    f"{came!r} appeared, {left!r} left); pass agents=N, the most agents a "
                    "member creates, to record agents by unique_id 1..N with NaN where one "
                    "does not exist"
                )
                raise OutputMismatchError(msg)
        return first

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The ``[simulation]`` table of a run specification.

        Examples
        --------
        >>> MesaModel.from_dict({"mesa_model": "mesa.examples:BoltzmannWealth",
        ...                      "steps": 20, "agent_reporters": ["Wealth"]}).to_dict()
        {'mesa_model': 'mesa.examples.basic.boltzmann_wealth_model.model:BoltzmannWealth', \
'steps': 20, 'agent_reporters': ['Wealth']}
        """
        d: dict[str, Any] = {"mesa_model": object_path(self.cls), "steps": self.steps}
        for key in ("reporters", "agent_reporters"):
            value = getattr(self, key)
            if isinstance(value, Mapping):
                d[key] = collect_to_spec(value)
            elif value is not None:
                d[key] = list(value)
        if self.agents is not None:
            d["agents"] = self.agents
        if self.stop_early:
            d["stop_early"] = True
        if self.collect_every != 1:
            d["collect_every"] = self.collect_every
        if self.name != f"mesa:{object_path(self.cls)}":
            d["name"] = self.name
        if self.seed_bits != DEFAULT_SEED_BITS:
            d["seed_bits"] = self.seed_bits
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MesaModel:
        """Build from :meth:`to_dict`'s form, importing ``mesa_model`` (``"module:Class"``)."""
        allowed = {
            "mesa_model",
            "steps",
            "reporters",
            "agent_reporters",
            "agents",
            "stop_early",
            "collect_every",
            "name",
            "seed_bits",
        }
        kwargs = spec_kwargs(d, "mesa_model", allowed)
        model = import_object(kwargs.pop("mesa_model"))
        for key in ("reporters", "agent_reporters"):
            if isinstance(kwargs.get(key), Mapping):
                kwargs[key] = collect_from_spec(kwargs[key])
        return cls(model, **kwargs)

    def __repr__(self) -> str:
        return f"MesaModel({object_path(self.cls)}, steps={self.steps!r})"
