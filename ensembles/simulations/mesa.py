"""Mesa specifics of :class:`~ensembles.MesaModel`: Mesa and its DataCollector.

Mesa is imported (and its version checked) only when a MesaModel is built; a model's
``DataCollector`` is found among its attributes and its model-reporter rows counted.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import SimulationError

__all__ = ["collected_rows", "find_datacollector", "import_mesa"]


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
