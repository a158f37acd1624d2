"""The lazy graph: blocks of members -> dask arrays (stacked by :mod:`.assemble`).

The graph has one task per block (``run``), plus one cheap getter per output and block.
Task count grows with blocks, not members, and keys are deterministic (``tokenize``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from .worker import BlockRunner, get_output, get_status, run_block

__all__ = ["lazy_arrays"]


def lazy_arrays(runner: BlockRunner, token: str) -> tuple[dict[str, da.Array], da.Array]:
    """Dask arrays of every output and of the member status, computing nothing.

    Parameters
    ----------
    runner : BlockRunner
        Shipped once (one graph key) and used by every block task.
    token : str
        Deterministic identity of the run; task names derive from it.

    Returns
    -------
    outputs : dict of str to dask.array.Array
        Shaped (member dims..., output dims...), chunked by block along member dims.
    status : dask.array.Array of int8
        Member status (``OK``/``FAILED``) shaped like the member grid.
    """
    members, schema = runner.members, runner.schema
    runner_key = f"ensemble-runner-{token}"
    run_name = f"ensemble-run-{token}"
    run_layer: dict[Any, Any] = {runner_key: runner}
    block_ids = list(members.block_ids())
    for bid in block_ids:
        run_layer[(run_name, *bid)] = (run_block, runner_key, bid)
    layers: dict[str, Mapping[Any, Any]] = {run_name: run_layer}

    def getter(name: str, func: Any, extra: tuple, ndim_out: int) -> str:
        layer_name = f"{name}-{token}"
        zeros = (0,) * ndim_out
        layers[layer_name] = {
            (layer_name, *bid, *zeros): (func, (run_name, *bid), *extra) for bid in block_ids
        }
        return layer_name

    names = {
        out_name: getter(f"ensemble-out-{out_name}", get_output, (out_name,), len(out.shape))
        for out_name, out in schema.outputs.items()
    }
    status_name = getter("ensemble-status", get_status, (), 0)

    def graph(name: str) -> HighLevelGraph:  # each array carries only its own layers
        return HighLevelGraph(
            {run_name: layers[run_name], name: layers[name]}, {run_name: set(), name: {run_name}}
        )

    outputs = {}
    for out_name, out in schema.outputs.items():
        chunks = members.chunks + tuple((s,) for s in out.shape)
        meta = np.empty((0,) * len(chunks), dtype=out.dtype)
        outputs[out_name] = da.Array(graph(names[out_name]), names[out_name], chunks, meta=meta)
    status = da.Array(
        graph(status_name),
        status_name,
        chunks=members.chunks,
        meta=np.empty((0,) * len(members.shape), "i1"),
    )
    return outputs, status
