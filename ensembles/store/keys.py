"""Raw access to a store's keys: reads that decode nothing, exclusive creates, atomic replaces.

The writer lease and the codec guard work on the bytes of a few small JSON documents.
zarr's store classes expose keys only through coroutines, and offer no create that tells
whether it won, so these go directly to the storage: ``os`` for a local directory, fsspec's
public filesystem API for a URL (``s3://...``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["TMP_PREFIX", "Keys", "is_url"]

#: Names of the temporary files and folders this module writes (then renames or removes).
TMP_PREFIX = ".ensembles-tmp-"
_EXISTS = (errno.EEXIST, errno.ENOTEMPTY)


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def is_url(path: str) -> bool:
    """True for fsspec URLs (``s3://...``); ``file://`` paths count as local."""
    return "://" in path and not path.startswith("file://")


class Keys:
    """The keys of the store at ``path``, read and written as bytes.

    Parameters
    ----------
    path : str
        A local directory or an fsspec URL.
    storage_options : mapping, optional
        fsspec options for a URL.

    Examples
    --------
    >>> import tempfile
    >>> keys = Keys(tempfile.mkdtemp())
    >>> keys.create("a/doc.json", b"{}"), keys.create("a/doc.json", b"[]")
    (True, False)
    >>> keys.get("a/doc.json"), keys.list_dir(""), keys.get("missing")
    (b'{}', ['a'], None)
    """

    def __init__(self, path: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.path = path[len("file://") :] if path.startswith("file://") else path
        self.local = not is_url(self.path)
        self._fs: Any = None
        self._root = self.path.rstrip("/")
        if not self.local:
            import fsspec

            self._fs, self._root = fsspec.core.url_to_fs(self.path, **dict(storage_options or {}))
            self._root = self._root.rstrip("/")

    @property
    def protocol(self) -> str:
        """``"file"`` for a local directory, else the URL's first protocol (``"s3"``)."""
        if self.local:
            return "file"
        proto = self._fs.protocol
        return proto if isinstance(proto, str) else proto[0]

    def _full(self, key: str) -> str:
        return f"{self._root}/{key}" if key else self._root

    # -- reading -------------------------------------------------------------------------
    def kind(self) -> str:
        """What is at the path itself: ``"missing"``, ``"file"`` or ``"dir"``."""
        if self.local:
            try:  # os.stat, not os.path.isdir: errors other than absence are raised
                mode = os.stat(self.path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return "file" if os.path.islink(self.path) else "missing"
            return "dir" if stat.S_ISDIR(mode) else "file"
        self._fs.invalidate_cache(self._root)
        if self._fs.isfile(self._root):
            return "file"
        return "dir" if self._fs.isdir(self._root) else "missing"

    def get(self, key: str) -> bytes | None:
        """The bytes at ``key``, or None when there is no such key."""
        if self.local:
            try:
                with open(self._full(key), "rb") as f:
                    return f.read()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        try:
            return bytes(self._fs.cat_file(self._full(key)))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def exists(self, key: str) -> bool:
        """True when ``key`` holds bytes (a file; not a folder)."""
        if self.local:
            try:
                return stat.S_ISREG(os.stat(self._full(key)).st_mode)
            except (FileNotFoundError, NotADirectoryError):
                return False
        self._fs.invalidate_cache(self._full(key))
        return bool(self._fs.isfile(self._full(key)))

    def list_dir(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (files and folders), sorted; [] when none."""
        if self.local:
            try:
                return sorted(os.listdir(self._full(prefix)))
            except (FileNotFoundError, NotADirectoryError):
                return []
        full = self._full(prefix)
        self._fs.invalidate_cache(full)
        try:
            entries = self._fs.ls(full, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        paths = (str(e).rstrip("/") for e in entries)
        return sorted({p.rsplit("/", 1)[-1] for p in paths if p != full})

    # -- writing -------------------------------------------------------------------------
    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist; True when this call created it.

        Locally the document is written to a temporary file and hard-linked into place
        (``link`` fails when the name exists), so a reader never sees a half-written
        document; on S3 it is a PUT with ``If-None-Match: *``.
        """
        if self.local:
            return self._create_local(self._full(key), data)
        try:
            self._fs.pipe_file(self._full(key), data, mode="create")
        except FileExistsError:
            return False
        except OSError:
            # S3 answers a conditional PUT racing another one with 409 (retry later); the
            # key exists afterwards if the other one won
            if self.exists(key):
                return False
            raise
        return True

    @staticmethod
    def _create_local(path: str, data: bytes) -> bool:
        folder, name = os.path.split(path)
        parent = os.path.dirname(folder)
        os.makedirs(parent, exist_ok=True)
        if not os.path.isdir(folder):
            # the folder and the document appear together: a folder renamed into place
            # (rename fails when the name holds a non-empty folder: another writer's)
            tmp_dir = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}")
            os.mkdir(tmp_dir)
            try:
                _write_synced(os.path.join(tmp_dir, name), data)
                os.rename(tmp_dir, folder)
                return True
            except OSError as exc:
                if not os.path.isdir(folder) or exc.errno not in _EXISTS:
                    raise
            finally:
                shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        _write_synced(tmp, data)
        try:
            os.link(tmp, path)  # fails when the name exists
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links: an exclusive open instead
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return True

    def replace(self, key: str, data: bytes) -> None:
        """Write ``key`` whole, replacing what is there (readers see old or new, not a mix)."""
        if not self.local:
            self._fs.pipe_file(self._full(key), data)
            return
        path = self._full(key)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is gone), and locally its folder once empty."""
        if not self.local:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm_file(self._full(key))
            return
        path = self._full(key)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.remove_empty_dir(os.path.dirname(key))

    def remove_empty_dir(self, prefix: str) -> bool:
        """Remove the local folder ``prefix`` if it is empty (never its contents)."""
        if not self.local:
            return not self.list_dir(prefix)
        try:
            os.rmdir(self._full(prefix))
        except FileNotFoundError:
            return True
        except OSError:  # not empty: someone else's keys are there
            return False
        return True
