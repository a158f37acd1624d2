"""Failed members of an ensemble as a table: parameters, seed, error; and as a report.

:func:`failures` gives one row per failed member (``ds.ens.failures()``);
:func:`failure_report` the grouped text ``ensembles info`` prints, in the format of the
end-of-run report (:mod:`ensembles.report`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import AnalysisError
from ..layout import ATTEMPTS, ERROR, FAILED, MEMBER_SEED, SEED_DIM, STATUS
from ..report import format_failures, member_label, split_error
from .summary import parameter_names

__all__ = ["failure_report", "failures"]


def _status(obj: xr.Dataset | xr.DataArray) -> xr.DataArray:
    if STATUS not in obj.coords and not (isinstance(obj, xr.Dataset) and STATUS in obj):
        msg = (
            "this object has no 'status' coordinate, so it is not an ensemble's results; "
            "open a store with ensembles.open_ensemble(path) or run Ensemble.to_zarr/compute"
        )
        raise AnalysisError(msg)
    return obj[STATUS]


def failures(obj: xr.Dataset | xr.DataArray) -> pd.DataFrame:
    """One row per failed member: its parameters, seed index, member seed and error.

    Parameters
    ----------
    obj : Dataset or DataArray
        An ensemble's results (``ensembles.open_ensemble(path)``, or what
        ``Ensemble.to_zarr`` returns), with its ``status`` coordinate.

    Returns
    -------
    pandas.DataFrame
        Columns, in order: the index of each member dim that is not a parameter
        (``sample``), each design parameter (``T``), ``seed`` (the seed index),
        ``member_seed`` (the seed the member received), ``error`` (the exception type),
        ``message`` (the full message) and ``attempts`` when recorded. Rows in member
        order; no rows when nothing failed. Results gathered in memory by
        ``Ensemble.compute`` carry no messages: ``error`` and ``message`` are then empty.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(coords={
    ...     "T": [1.5, 2.0], "seed": [0, 1],
    ...     "status": (("T", "seed"), np.array([[1, 2], [1, 1]], "int8")),
    ...     "member_seed": (("T", "seed"), np.array([[11, 12], [21, 22]])),
    ...     "error": (("T", "seed"), np.array([["", "ValueError: bad T"], ["", ""]], object)),
    ... })
    >>> failures(ds)
         T  seed  member_seed       error message
    0  1.5     1           12  ValueError   bad T
    """
    status = _status(obj)
    dims = [str(d) for d in status.dims]
    failed = np.nonzero(np.asarray(status.values) == FAILED)

    def at_failed(name: str) -> np.ndarray:
        variable = obj[name].variable.set_dims(dict(status.sizes)).transpose(*dims)
        return np.asarray(variable.values)[failed]

    params = [str(p) for p in parameter_names(obj)]
    columns: dict[Hashable, Any] = {}
    for dim in dims:
        if dim != SEED_DIM and dim not in params and dim in obj.coords:
            columns[dim] = at_failed(dim)
    for name in [*params, SEED_DIM, MEMBER_SEED]:
        if name in obj.coords:
            columns[name] = at_failed(name)
    texts = at_failed(ERROR) if ERROR in obj.coords else np.full(len(failed[0]), "")
    split = [split_error(str(t)) for t in texts.tolist()]
    columns["error"] = [etype for etype, _ in split]
    columns["message"] = [message for _, message in split]
    if ATTEMPTS in obj.coords:
        columns[ATTEMPTS] = at_failed(ATTEMPTS)
    return pd.DataFrame(columns)


def failure_report(obj: xr.Dataset | xr.DataArray, *, groups: int = 5, per_group: int = 3) -> str:
    """Failed members grouped by error, each named by its parameters (the run report's form).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(coords={
    ...     "T": [1.5, 2.0], "seed": [0, 1],
    ...     "status": (("T", "seed"), np.array([[1, 2], [2, 1]], "int8")),
    ...     "error": (("T", "seed"), np.array(
    ...         [["", "ValueError: bad T"], ["ValueError: bad T", ""]], object)),
    ... })
    >>> print(failure_report(ds))
      ValueError: bad T (2 members)
        T=1.5, seed=1
        T=2.0, seed=0
    """
    table = failures(obj)
    params = [str(p) for p in parameter_names(obj)]
    records = (
        (
            member_label({p: row[p] for p in params}, row[SEED_DIM]),
            row["error"],
            row["message"],
        )
        for row in table.to_dict("records")
    )
    return format_failures(records, groups=groups, per_group=per_group)
