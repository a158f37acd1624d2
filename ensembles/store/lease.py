"""One writer per store: a lease taken by an exclusive create, kept by a heartbeat, fenced.

The lease is a numbered record in the store itself (no lock server): taking it creates the
next generation's record with a conditional write that exactly one writer can win. The
holder refreshes its record's heartbeat; every write of the run first checks that no
newer generation exists (the fence), so a writer that lost the lease stops writing.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import LeaseLostError, StoreError
from .keys import Keys

__all__ = ["LEASE_GROUP", "LEASE_TIMEOUT", "TIMEOUT_ENV", "Fence", "Lease", "lease_timeout"]

#: The Zarr group holding the lease: one child group per generation, its record in the
#: child's attributes (``_ensembles_lease/g000000000007/zarr.json``).
LEASE_GROUP = "_ensembles_lease"
#: Seconds without a heartbeat after which a holder counts as gone.
LEASE_TIMEOUT = 60.0
#: Environment variable that overrides :data:`LEASE_TIMEOUT` (seconds), e.g. for tests.
TIMEOUT_ENV = "ENSEMBLES_LEASE_TIMEOUT"

_GENERATION = re.compile(r"^g(\d{12})$")
_GROUP_KEY = f"{LEASE_GROUP}/zarr.json"
#: Ids of the leases this process holds (a record of this process not among them is stale:
#: its release could not be written, on a full disk for example).
_HELD: set[str] = set()


class _Located(Protocol):
    path: str
    storage_options: Mapping[str, Any] | None


def lease_timeout() -> float:
    """The lease timeout in seconds: ``$ENSEMBLES_LEASE_TIMEOUT``, else 60.

    Examples
    --------
    >>> lease_timeout() > 0
    True
    """
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return LEASE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        msg = f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}"
        raise StoreError(msg)
    return value


def _key(generation: int) -> str:
    return f"{LEASE_GROUP}/g{generation:012d}/zarr.json"


def _document(record: Mapping[str, Any]) -> bytes:
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {"lease": dict(record)}}
    return json.dumps(doc, sort_keys=True).encode()


def _unreadable(path: str, what: str, why: Any) -> StoreError:
    msg = (
        f"the writer lease of {path!r} is unreadable ({what}: {why}), so ensembles cannot "
        "tell whether another process is writing to the store. If none is, pass force=True "
        "(CLI: --force) to take the lease"
    )
    return StoreError(msg)


def _record(keys: Keys, generation: int, path: str) -> dict[str, Any] | None:
    """The record of a generation, None when it is gone; unreadable ones raise."""
    data = keys.get(_key(generation))
    if data is None:
        return None
    try:
        record = json.loads(data)["attributes"]["lease"]
        if not isinstance(record.get("id"), str) or not isinstance(
            record.get("heartbeat"), (int, float)
        ):
            raise TypeError("no id or heartbeat")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _unreadable(path, _key(generation), exc) from None
    return record


def _generations(keys: Keys) -> list[int]:
    names = keys.list_dir(LEASE_GROUP)
    return sorted(int(m.group(1)) for n in names if (m := _GENERATION.match(n)))


def _who(record: Mapping[str, Any]) -> str:
    """``pid 12 on host 'a', last heartbeat 3 s ago``: whom a record names, and how fresh."""
    age = time.time() - float(record.get("heartbeat", 0))
    host = record.get("host")
    if host == socket.gethostname():
        return f"pid {record.get('pid')} on this host ({host!r}), last heartbeat {age:.0f} s ago"
    return (
        f"pid {record.get('pid')} on host {host!r}, last heartbeat {age:.0f} s ago "
        "(by that host's clock)"
    )


def _alive(record: Mapping[str, Any] | None, timeout: float) -> bool:
    """Whether a record's holder may still be writing (released, stale or dead: not)."""
    if not record or record.get("released"):
        return False
    if time.time() - float(record.get("heartbeat", 0)) > timeout:
        return False
    if record.get("host") == socket.gethostname():
        if record.get("pid") == os.getpid():  # this process knows which leases it holds
            return record.get("id") in _HELD
        try:
            os.kill(int(record["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, TypeError, ValueError):
            return True
    return True


@dataclass(frozen=True)
class Fence:
    """The generation a writer writes under; :meth:`check` it before every write.

    Shipped with the store to the tasks that write blocks, so a task of a writer that has
    lost the lease (paused past the timeout, then continued) writes nothing.
    """

    path: str
    storage_options: Mapping[str, Any] | None
    generation: int
    timeout: float = field(default=LEASE_TIMEOUT, compare=False)

    def check(self) -> None:
        """Raise :class:`~ensembles.errors.LeaseLostError` unless this is the newest holder."""
        keys = Keys(self.path, self.storage_options)
        try:
            newest = max(_generations(keys), default=0)
            if newest == self.generation:  # one listing: generations are never reused
                return
            other = _record(keys, newest, self.path) if newest > self.generation else None
        except OSError as exc:
            msg = f"cannot check the writer lease of {self.path!r} before writing: {exc}"
            raise StoreError(msg) from exc
        if other is not None:
            cause = f"another writer took the lease ({_who(other)})"
        else:
            cause = "its lease record is gone (the store was replaced or deleted)"
        msg = (
            f"this process lost the writer lease of {self.path!r}: {cause}. That happens "
            f"when its heartbeat stops for more than {self.timeout:g} s (a paused process, "
            "a suspended machine) or another writer is started with force=True (--force). "
            "It stopped before writing, so it marked no member ok; when the other writer "
            f"is done, resume the store (ensembles resume {self.path})"
        )
        raise LeaseLostError(msg)


class Lease:
    """One writer at a time: take the next generation of the store's lease, keep it fresh.

    Taking the lease fails when the newest record's holder is alive (fresh heartbeat;
    on the same host, a live process), or when another process takes the same generation
    at the same moment. A record left by a crashed process is free once its process is
    known dead (same host) or its heartbeat is older than :func:`lease_timeout`;
    ``force=True`` takes the lease regardless (the old holder, if alive, is fenced).

    Parameters
    ----------
    store : EnsembleStore or any object with ``path`` and ``storage_options``
    force : bool
        Take the lease even from a holder that looks alive.

    Examples
    --------
    >>> import tempfile
    >>> from ensembles.store.zarr_store import EnsembleStore
    >>> store = EnsembleStore(tempfile.mkdtemp())
    >>> with Lease(store) as lease:
    ...     lease.fence.check()  # holds: no newer generation
    """

    def __init__(self, store: _Located, *, force: bool = False) -> None:
        self.path = store.path
        self.keys = Keys(store.path, store.storage_options)
        self.storage_options = store.storage_options
        self.force = force
        self.timeout = lease_timeout()
        self.record: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self.generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def fence(self) -> Fence:
        """What this holder's writes check (see :class:`Fence`)."""
        if not self.generation:
            msg = f"the writer lease of {self.path!r} is not held"
            raise StoreError(msg)
        return Fence(self.path, self.storage_options, self.generation, self.timeout)

    # -- taking --------------------------------------------------------------------------
    def acquire(self) -> Fence:
        """Take the lease (see the class docstring); raise :class:`StoreError` if held."""
        try:
            epoch, legacy = self._group()
            newest, holder = self._newest()
            if not self.force:
                self._refuse_if_alive(holder)
                self._refuse_if_alive(legacy)
            generation = max(newest, epoch) + 1
            record = {**self.record, "generation": generation, "heartbeat": time.time()}
            if not self.keys.create(_key(generation), _document(record)):
                other = _record(self.keys, generation, self.path) or {}
                msg = (
                    f"another process took the writer lease of {self.path!r} at the same "
                    f"moment ({_who(other)}); two writers would corrupt the store. Wait for "
                    "it to finish, then resume the store"
                )
                raise StoreError(msg)
            self.generation = generation
            _HELD.add(self.record["id"])
            for old in _generations(self.keys):
                if old < newest:  # keep the record this writer follows, for diagnosis
                    self.keys.delete(_key(old))
        except OSError as exc:
            msg = f"cannot take the writer lease of {self.path!r}: {exc}"
            raise StoreError(msg) from exc
        self._thread = threading.Thread(target=self._beat, name="ensembles-lease", daemon=True)
        self._thread.start()
        return self.fence

    def _group(self) -> tuple[int, dict[str, Any] | None]:
        """The lease group's epoch (created at random if the group is new) and the record an
        ensembles version before lease generations kept in its attributes.

        Generations count from the epoch: a writer of a store that was deleted and created
        again cannot mistake the new store's lease for its own, since the fence compares
        generation numbers only. Racing writers create the group with their own epoch;
        exactly one create wins and all read the winner's.
        """
        for _ in range(5):  # the group can vanish when a writer discards its lease
            epoch = secrets.randbelow(10**11)
            attrs = {"description": "writer lease of ensembles (docs/storage.md)", "epoch": epoch}
            doc = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
            self.keys.create(_GROUP_KEY, json.dumps(doc).encode())
            group = self._read_group()
            if group is not None:
                return group
        raise _unreadable(self.path, _GROUP_KEY, "it keeps disappearing")

    def _read_group(self) -> tuple[int, dict[str, Any] | None] | None:
        data = self.keys.get(_GROUP_KEY)
        if data is None:
            return None
        try:
            attrs = json.loads(data).get("attributes") or {}
            epoch = int(attrs.get("epoch", 0))  # 0: a group from an earlier version
            legacy = attrs.get("lease")
        except (ValueError, TypeError, AttributeError) as exc:
            if not self.force:
                raise _unreadable(self.path, _GROUP_KEY, exc) from None
            return 0, None
        return epoch, legacy if isinstance(legacy, dict) and legacy else None

    def check_free(self) -> None:
        """Raise :class:`StoreError` if a live process holds the lease; writes nothing."""
        try:
            _, legacy = self._read_group() or (0, None)
            _, holder = self._newest()
        except OSError as exc:
            msg = f"cannot read the writer lease of {self.path!r}: {exc}"
            raise StoreError(msg) from exc
        if not self.force:
            self._refuse_if_alive(holder)
            self._refuse_if_alive(legacy)

    def _newest(self) -> tuple[int, dict[str, Any] | None]:
        """The newest generation, and the newest record (a record's folder appears with it,
        so a folder without one is a leftover of a discarded lease: skipped)."""
        generations = _generations(self.keys)
        for generation in reversed(generations):
            try:
                record = _record(self.keys, generation, self.path)
            except StoreError:
                if not self.force:  # unreadable is not free, unless told to take it
                    raise
                record = {}
            if record is not None:
                return generations[-1], record
        return (generations[-1] if generations else 0), None

    def _refuse_if_alive(self, holder: Mapping[str, Any] | None) -> None:
        if not _alive(holder, self.timeout):
            return
        assert holder is not None
        msg = (
            f"another process is writing to {self.path!r}: {_who(holder)}; two writers "
            "would corrupt the store. Wait for it to finish. If it is dead, retry once its "
            f"heartbeat is {self.timeout:g} s old, or pass force=True (CLI: --force) to "
            "take the lease now (a writer that is alive after all then stops before its "
            "next write)"
        )
        raise StoreError(msg)

    # -- keeping -------------------------------------------------------------------------
    def still_held(self) -> bool:
        """True while no newer generation than this lease's exists."""
        try:
            self.fence.check()
        except LeaseLostError:
            return False
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.timeout / 6):
            try:
                if not self.still_held():  # lost: stop refreshing (the fence stops the rest)
                    return
                record = {**self.record, "generation": self.generation}
                self.keys.replace(_key(self.generation), _document(record | _now()))
            except (OSError, StoreError):  # a transient storage error; the next beat retries
                continue

    def release(self) -> None:
        """Stop the heartbeat and mark the record released (if it is still this one's)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _HELD.discard(self.record["id"])
        if not self.generation:
            return
        try:
            if self.still_held():
                record = {**self.record, "generation": self.generation, "released": True}
                self.keys.replace(_key(self.generation), _document(record | _now()))
        except (OSError, StoreError):
            pass  # the record expires after the timeout

    def discard(self, *, remove_root: bool) -> None:
        """Remove this writer's record, and the lease group (and root) if nothing is left.

        For a run that stopped before it laid out a store: the path looks as before.
        """
        self.release()
        try:
            self.keys.delete(_key(self.generation))
            if _generations(self.keys):
                return
            self.keys.delete(_GROUP_KEY)
            if remove_root and not self.keys.list_dir(""):
                self.keys.remove_empty_dir("")
        except OSError:
            pass

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _now() -> dict[str, float]:
    return {"heartbeat": time.time()}
