"""The functions dask workers run, kept in a module with light imports.

A worker imports the module of every function it is sent. These functions live apart
from the graph builders and the :class:`~ensembles.Ensemble` (which pull in dask.array,
xarray's analysis stack and scipy) so that a worker process loads only what running and
storing members needs: numpy, zarr and the simulation's own imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ..store.zarr_store import EnsembleStore
    from .worker import BatchRunner, BlockResult

__all__ = ["get_output", "get_status", "run_block", "run_item", "run_item_and_store"]


def run_block(runner: BatchRunner, block_id: tuple[int, ...]) -> BlockResult:
    """Run every member of one block (a task of the lazy graph)."""
    return runner.run_block(block_id)


def get_output(result: BlockResult, name: str) -> np.ndarray:
    """One output's block of values from a block result."""
    return result.outputs[name]


def get_status(result: BlockResult) -> np.ndarray:
    """The member status of a block result."""
    return result.status


def run_item(runner: BatchRunner, item: tuple[tuple[int, ...], Any]) -> BlockResult:
    """Run the members ``todo`` of one block; ``item`` is ``(block_id, todo)``."""
    block_id, todo = item
    return runner.run_block(block_id, todo)


def run_item_and_store(
    shared: tuple[BatchRunner, EnsembleStore], item: tuple[tuple[int, ...], Any]
) -> BlockResult:
    """Run one block's members and write them into the store, from the worker itself.

    Returns the result without its outputs: the data is in the store, only status,
    errors and timings travel back to the client.
    """
    runner, store = shared
    block_id, todo = item
    result = runner.run_block(block_id, todo)
    store.write_block(result, runner.members.block_slices(block_id))
    result.outputs = {}
    return result
