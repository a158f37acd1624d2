"""The results Dataset contract: member status codes, bookkeeping names, block results.

Execution writes this layout, the store keeps it and analysis reads it, so it is defined
here once and imported everywhere it is used; this module imports nothing else from
ensembles. An ensemble's Dataset has the design dims (one per grid parameter, or
``sample``), then ``seed``, then each output's own dims::

    M            (T, seed, sweep)   an output
    status       (T, seed)          int8 member status: PENDING, OK, FAILED or SKIPPED
    member_seed  (T, seed)          int64 seed each member received
    wall_time    (T, seed)          float32 seconds spent per member
    error        (T, seed)          str "Type: message" of a failed member
    attempts     (T, seed)          uint8 calls made per member
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ATTEMPTS",
    "BOOKKEEPING",
    "ERROR",
    "FAILED",
    "MEMBER_ARRAYS",
    "MEMBER_SEED",
    "OK",
    "PENDING",
    "RESERVED",
    "SAMPLE_DIM",
    "SEED_DIM",
    "SKIPPED",
    "STATUS",
    "STATUS_ATTRS",
    "STATUS_NAMES",
    "WALL_TIME",
    "BlockResult",
    "fill_value",
]

#: Member status codes, stored in ``status``: not run yet, ran, failed, and not run because
#: an adaptive run decided its design point needed no more members (never run on resume).
PENDING, OK, FAILED, SKIPPED = 0, 1, 2, 3
STATUS_NAMES = {PENDING: "pending", OK: "ok", FAILED: "failed", SKIPPED: "skipped"}

#: Dims every ensemble has: the seed index of a member, and a sampled design's point.
SEED_DIM = "seed"
SAMPLE_DIM = "sample"

#: Bookkeeping variables over the member dims.
STATUS = "status"
MEMBER_SEED = "member_seed"
WALL_TIME = "wall_time"
ERROR = "error"
ATTEMPTS = "attempts"
#: Per-member arrays a block task writes (``status`` last: see the store).
MEMBER_ARRAYS = (STATUS, WALL_TIME, ERROR, ATTEMPTS)
#: Every variable that describes members rather than results.
BOOKKEEPING = (STATUS, MEMBER_SEED, WALL_TIME, ERROR, ATTEMPTS)
#: Names a parameter cannot take: members receive ``seed`` or ``rng``, and ``sample`` is
#: the dim of sampled designs.
RESERVED = (SEED_DIM, "rng", SAMPLE_DIM)

STATUS_ATTRS = {
    "flag_values": [PENDING, OK, FAILED, SKIPPED],
    "flag_meanings": " ".join(STATUS_NAMES[c] for c in (PENDING, OK, FAILED, SKIPPED)),
    "long_name": "member status",
}


def fill_value(dtype: Any) -> Any:
    """The value that stands for a missing member in an output of ``dtype``.

    Examples
    --------
    >>> fill_value("float32"), fill_value("int64"), fill_value(bool)
    (nan, 0, False)
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "b":
        return False
    return 0


@dataclass
class BlockResult:
    """What one block of members produced.

    Attributes
    ----------
    block_id : tuple of int
    outputs : dict of str to numpy.ndarray
        Block-shaped output arrays (member block shape + output shape); empty when the
        task wrote them to a store itself.
    status : numpy.ndarray of int8
        ``OK``, ``FAILED`` or ``PENDING`` (not run in this task) per member.
    wall_time : numpy.ndarray of float32
        Seconds spent per member (NaN where not run).
    attempts : numpy.ndarray of uint8
        Calls made per member in this task.
    errors : list of (member, error type, message)
        One entry per failed member.
    """

    block_id: tuple[int, ...]
    outputs: dict[str, np.ndarray]
    status: np.ndarray
    wall_time: np.ndarray
    attempts: np.ndarray
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def n_ok(self) -> int:
        return int(np.count_nonzero(self.status == OK))

    @property
    def n_failed(self) -> int:
        return int(np.count_nonzero(self.status == FAILED))

    @property
    def n_run(self) -> int:
        return int(np.count_nonzero(self.status != PENDING))

    def without_outputs(self) -> BlockResult:
        """The same result without its output arrays (once they are in a store)."""
        return BlockResult(
            self.block_id, {}, self.status, self.wall_time, self.attempts, self.errors
        )
