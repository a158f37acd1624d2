"""One writer per store: a heartbeat lease kept in the store itself.

Works on any store zarr can write (a directory, S3), with no lock server: the lease is a
record in the attributes of a small group, refreshed by a background thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import zarr

from ..errors import StoreError

if TYPE_CHECKING:
    from .zarr_store import EnsembleStore

__all__ = ["LEASE_GROUP", "LEASE_TIMEOUT", "Lease"]

LEASE_GROUP = "_ensembles_lease"
LEASE_TIMEOUT = 60.0


class Lease:
    """One writer at a time: a heartbeat record in the store that other writers respect.

    The lease lives in the attributes of a small Zarr group (``_ensembles_lease``) so the
    store stays a valid Zarr hierarchy. The holder refreshes it every few seconds; another
    writer is refused while it is fresh. A lease left by a crashed process is broken at
    once when its process is known dead (same host), or after ``LEASE_TIMEOUT`` seconds.
    """

    def __init__(self, store: EnsembleStore, token: str, force: bool = False) -> None:
        import socket
        import uuid

        self.store = store
        self.force = force
        self.record = {
            "id": uuid.uuid4().hex,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "token": token,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _group(self) -> Any:
        root = zarr.open_group(
            self.store.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False
        )
        try:
            return root[LEASE_GROUP]
        except KeyError:
            return root.create_group(LEASE_GROUP)

    def _holder(self) -> dict[str, Any] | None:
        try:  # read-only: checking a lease never writes
            root = zarr.open_group(
                self.store.zarr_store(read_only=True),
                mode="r",
                zarr_format=3,
                use_consolidated=False,
            )
            attrs = dict(root[LEASE_GROUP].attrs)
        except Exception:
            return None
        return attrs.get("lease") or None

    @staticmethod
    def _alive(holder: Mapping[str, Any]) -> bool:
        import socket
        import time

        if time.time() - float(holder.get("heartbeat", 0)) > LEASE_TIMEOUT:
            return False
        if holder.get("host") == socket.gethostname():
            try:
                os.kill(int(holder["pid"]), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
        return True

    def _write(self) -> None:
        import time

        self._group().attrs["lease"] = {**self.record, "heartbeat": time.time()}

    def check(self) -> None:
        """Raise :class:`StoreError` if another live process holds the lease."""
        holder = self._holder()
        if (
            holder
            and holder.get("id") != self.record["id"]
            and self._alive(holder)
            and not (self.force)
        ):
            msg = (
                f"another process is writing to {self.store.path!r} (host {holder.get('host')!r},"
                f" pid {holder.get('pid')}); two writers would corrupt it. Wait for it to finish, "
                f"or, if it is dead, retry after {LEASE_TIMEOUT:.0f} s or pass force=True "
                "(CLI: --force)"
            )
            raise StoreError(msg)

    def __enter__(self) -> Lease:
        self.check()
        self._write()
        self._thread = threading.Thread(target=self._beat, name="ensembles-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_TIMEOUT / 6):
            try:
                self._write()
            except Exception:  # a transient storage error; the next beat retries
                continue

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            group = self._group()
            if (group.attrs.get("lease") or {}).get("id") == self.record["id"]:
                group.attrs["lease"] = {}
        except Exception:
            pass
