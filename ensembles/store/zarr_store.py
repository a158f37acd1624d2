"""Ensemble stores: the Zarr v3 layout, block writes, status, and opening saved runs.

Layout of a store (readable by plain ``xarray.open_zarr``)::

    OUT.zarr/
      zarr.json            root attrs: "ensembles" (the run spec, JSON), provenance
      M, E, ...            outputs, dims (design dims..., seed, output dims...),
                           chunked one block per chunk along member dims, in about 4
                           slabs along output dims, blosc-lz4 + shuffle (raw when
                           that does not pay: compressors_for), fill NaN
      status               int8 per member: 0 pending, 1 ok, 2 failed, 3 skipped (CF flags)
      wall_time            float32 seconds per member
      member_seed          int64 seed each member received
      T, sample, seed, ... coordinates
      _ensembles_lease     the writer lease (see ``lease``)

Each task writes the chunks of its own block, outputs first and ``status`` last, so a
member marked ok always has its data on disk, whatever moment a crash strikes; before
each of the two writes it checks that its run still holds the lease (the fence).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from ..errors import LeaseLostError, StoreError
from ..layout import MEMBER_ARRAYS, OK, PENDING, STATUS, BlockResult
from .arrays import array_specs, concurrently, output_chunks, stable_strings
from .chunks import chunk_writes
from .codecs import check_codecs, compressors_for
from .keys import Keys, is_url
from .lease import LEASE_GROUP, Fence
from .target import INCOMPLETE_ATTR, SPEC_ATTR, Found, inspect_path

if TYPE_CHECKING:  # xarray loads where a Dataset is built or opened (not to check a path)
    import xarray as xr

__all__ = ["SPEC_ATTR", "EnsembleStore", "compressors_for", "open_ensemble", "output_chunks"]

_INCOMPLETE_NOTE = (
    "the store's layout is being written; if this attribute stays, creation was "
    "interrupted before any member ran: resume the store to finish creating it"
)


@dataclass
class EnsembleStore:
    """A Zarr v3 store holding one ensemble, local or at any fsspec URL.

    Parameters
    ----------
    path : str or os.PathLike
        A directory (``run.zarr``) or a URL (``s3://bucket/run.zarr``).
    storage_options : dict, optional
        Passed to fsspec for URLs (credentials, ``endpoint_url``, ...).
    fence : Fence, optional
        The writer lease generation writes happen under: every write first checks it.
    """

    path: str
    storage_options: Mapping[str, Any] | None = None
    fence: Fence | None = None
    _arrays: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)
    _root: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _incomplete: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = os.fspath(self.path)
        if self.path.startswith("file://"):
            self.path = self.path[len("file://") :]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "storage_options": self.storage_options, "fence": self.fence}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["storage_options"], state.get("fence"))  # type: ignore[misc]

    def fenced(self, fence: Fence) -> EnsembleStore:
        """This store, written under ``fence`` (see :class:`~ensembles.store.lease.Fence`)."""
        return EnsembleStore(self.path, self.storage_options, fence)

    @property
    def is_remote(self) -> bool:
        return is_url(self.path)

    def keys(self) -> Keys:
        """Raw access to the store's keys (see :class:`~ensembles.store.keys.Keys`)."""
        return Keys(self.path, self.storage_options)

    def zarr_store(self, read_only: bool = False) -> Any:
        """The zarr-python store object for this location."""
        if self.is_remote:
            return zarr.storage.FsspecStore.from_url(
                self.path, storage_options=dict(self.storage_options or {}), read_only=read_only
            )
        return zarr.storage.LocalStore(self.path, read_only=read_only)

    def found(self) -> Found:
        """What is at the path (see :func:`~ensembles.store.target.inspect_path`)."""
        return inspect_path(self.path, self.storage_options)

    def exists(self) -> bool:
        """True when an ensembles store (whole or half-created) is at this location.

        Raises :class:`StoreError` when that cannot be told (permissions, network).
        """
        return self.found().kind in ("ensemble", "incomplete")

    def _check_fence(self) -> None:
        if self.fence is not None:
            self.fence.check()

    def clear(self) -> None:
        """Delete everything at the path but the writer lease (which the caller holds)."""
        self._check_fence()
        keys = self.keys()
        for name in keys.list_dir(""):
            if name == LEASE_GROUP:
                continue
            if self.is_remote:
                import fsspec

                fs, root = fsspec.core.url_to_fs(self.path, **dict(self.storage_options or {}))
                fs.rm(f"{root.rstrip('/')}/{name}", recursive=True)
            else:
                import shutil

                target = os.path.join(self.path, name)
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                else:
                    os.remove(target)
        self._forget()

    def _forget(self) -> None:
        self._arrays.clear()
        self._root = None

    # -- creation --------------------------------------------------------------------
    def create(
        self,
        template: xr.Dataset,
        block: tuple[int, ...],
        *,
        replace: bool = False,
        samples: Mapping[str, list[np.ndarray]] | None = None,
    ) -> None:
        """Write the layout (metadata and coordinates) of an empty ensemble.

        The root group is written first, with the run's attributes and a marker
        (``ensembles_incomplete``) that is removed last, once every array exists and the
        metadata is consolidated: a store whose creation was interrupted (a full disk, a
        killed process) is recognised as half-created, and resuming it creates it again.

        Parameters
        ----------
        template : xarray.Dataset
            The ensemble's Dataset; data variables and ``status`` are not written (read
            back as missing/pending until blocks arrive), coordinates are.
        block : tuple of int
            Chunk shape along the member dims.
        replace : bool
            Delete what is at the path first (the caller checked that it may).
        samples : mapping, optional
            Values of each output from members already run, to decide whether
            compressing it pays (:func:`compressors_for`).
        """
        self._check_fence()
        attrs = {**template.attrs, INCOMPLETE_ATTR: _INCOMPLETE_NOTE}
        try:
            if replace:
                self.clear()
            self._forget()
            zarr.create_group(self.zarr_store(), zarr_format=3, attributes=attrs)
            self._write_coords(template, block, attrs)
            specs = array_specs(template, block, samples or {})
            group = zarr.open_group(self.zarr_store(), mode="r+", use_consolidated=False)
            concurrently([lambda spec=spec: group.create_array(**spec) for spec in specs])
            self.consolidate()
            self._set_attrs({}, remove=(INCOMPLETE_ATTR,))  # the store is complete
        except LeaseLostError:
            raise
        except Exception as exc:
            msg = (
                f"cannot create the store at {self.path!r}: {type(exc).__name__}: {exc}. No "
                "member has run; once the cause is fixed, resume the store (mode='resume', "
                f"CLI: ensembles resume {self.path}) to create it again, or replace it "
                "(mode='w', CLI: --overwrite)"
            )
            raise StoreError(msg) from exc

    def _write_coords(
        self, template: xr.Dataset, block: tuple[int, ...], attrs: Mapping[str, Any]
    ) -> None:
        """The coordinates (small, in memory), written by xarray with its own encoding."""
        import xarray as xr

        coords = xr.Dataset(
            coords={
                k: v.variable.copy(data=stable_strings(v.values))
                for k, v in template.coords.items()
                if k != "status"
            },
            attrs=dict(attrs),  # xarray rewrites the root attributes: keep them
        )
        encoding = {"member_seed": {"chunks": block}} if "member_seed" in coords else {}
        coords.to_zarr(
            self.zarr_store(), mode="a", zarr_format=3, consolidated=False, encoding=encoding
        )

    # -- block writes (run on workers) -------------------------------------------------
    def _array(self, name: str) -> Any:
        with self._lock:
            if name not in self._arrays:
                arr = zarr.open_array(self.zarr_store(), path=name, mode="r+")
                if name not in MEMBER_ARRAYS:
                    # outputs hold results, never all-fill chunks worth skipping: do not
                    # scan every chunk for the fill value before writing it
                    arr = arr.with_config({"write_empty_chunks": True})
                self._arrays[name] = arr
            return self._arrays[name]

    def write_block(self, result: BlockResult, region: tuple[slice, ...]) -> None:
        """Write one block's outputs, then its status: the order that makes crashes safe.

        Outputs are written together (their chunks concurrently), then ``wall_time``,
        ``attempts`` and ``error`` together, and ``status`` alone, last. Members left
        ``PENDING`` in ``result`` (not run by this task) are not touched. With a fence,
        the lease is checked before the outputs and again right before ``status``.
        """
        ran = result.status != PENDING
        if not ran.any():
            return
        full = bool(ran.all())
        error = np.full(result.status.shape, "", dtype=object)
        if result.errors:
            shape = self._member_shape()
            for member, etype, message in result.errors:
                where = np.unravel_index(member, shape)
                local = tuple(int(w) - (r.start or 0) for w, r in zip(where, region, strict=True))
                error[local] = f"{etype}: {message}"

        def put(name: str, values: np.ndarray) -> Callable[[], None]:
            arr = self._array(name)  # opened here, in the calling thread

            def write() -> None:
                data = values
                if not full:  # merge into the chunk's members (resume of a partial block)
                    data = np.asarray(arr[region])
                    data[ran] = values[ran]
                arr[region] = data

            return write

        self._check_fence()
        concurrently([put(n, v) for n, v in result.outputs.items()])
        concurrently(
            [
                put("wall_time", result.wall_time),
                put("attempts", result.attempts),
                put("error", error),
            ]
        )
        self._check_fence()  # a newer writer may have taken over while the data was written
        put("status", result.status)()  # last: ok only once the data is there

    def set_status(self, mask: np.ndarray, code: int) -> None:
        """Set the status of the members in ``mask`` to ``code`` (see :func:`.chunks.code_writes`).

        For the driver between runs: an adaptive run marks the members it did not need as
        skipped. Only the chunks ``mask`` touches are written, concurrently; those covered
        whole are encoded once and copied.
        """
        from .chunks import code_writes

        self._check_fence()
        concurrently(code_writes(self._array(STATUS), mask, code, keys=self.keys()))

    def _member_shape(self) -> tuple[int, ...]:
        return tuple(self._array("status").shape)

    # -- growth (extend) ---------------------------------------------------------------
    def grow(
        self,
        template: xr.Dataset,
        attrs: Mapping[str, Any],
        member_coords: bool | np.ndarray = True,
        consolidate: bool = True,
        grown: Sequence[str] | None = None,
    ) -> None:
        """Grow the member dims to the template's sizes, keeping every written member.

        Arrays over member dims are resized; coordinates are rewritten with the template's
        values (old values are a prefix of the new ones, checked by the caller; those over
        every member dim, such as ``member_seed``, are not written with
        ``member_coords=False``, and only in the chunks of the members of a mask given as
        ``member_coords``: an adaptive run writes them for the members it runs, see
        :meth:`write_member_coords`); the new members read as pending. The arrays are
        resized at once, then the coordinates and the consolidated metadata are written
        at once. Repeating it after an interruption is harmless: the
        spec attrs are written last, once everything else is.

        ``grown`` names the dims that grow when the caller knows (an adaptive run grows
        one): coordinates over none of them are left as they are.

        With ``consolidate=False`` the consolidated copy is dropped with that last write
        (readers list the store meanwhile, and see its current layout): the caller
        consolidates later, off its critical path (an adaptive run does it while the
        round's members run).
        """
        self._check_fence()
        group = zarr.open_group(
            self.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False
        )
        mdims = tuple(template["status"].dims)
        new_shape = tuple(template["status"].shape)
        old_shape = tuple(group["status"].shape)  # the new one if a grow is repeated
        resizes: list[Callable[[], None]] = []
        for name, arr in group.arrays():
            dims = tuple(arr.metadata.dimension_names or ())
            if dims[: len(mdims)] == mdims:
                resizes.append(partial(arr.resize, new_shape + tuple(arr.shape[len(mdims) :])))
            elif dims and all(d in mdims for d in dims) and name in template.coords:
                resizes.append(partial(arr.resize, template[name].shape))
        concurrently(resizes)  # each rewrites one array's metadata document
        self._forget()
        writes: list[Callable[[], None]] = [self.consolidate] if consolidate else []
        for name, var in template.coords.items():
            dims = tuple(var.dims)
            if name in ("status", "wall_time") or not dims or not set(dims) <= set(mdims):
                continue
            if grown is not None and not set(dims) & set(grown):
                continue  # over dims that keep their size: already written
            values = stable_strings(var.values)
            if dims == mdims and isinstance(member_coords, np.ndarray):
                writes += chunk_writes(group[name], values, member_coords)
            elif dims != mdims and grown is not None and old_shape != new_shape:
                sizes = [old_shape[mdims.index(d)] for d in dims]  # the chunks of new values
                writes += chunk_writes(group[name], values, _beyond(var.shape, sizes))
            elif dims != mdims or member_coords:  # whole: a repeated grow writes them too
                writes.append(partial(_put, group[name], values))
        # The new members read as pending (status 0, the fill value) without a write, also
        # those in the old edge chunks: zarr writes every chunk whole, its part beyond the
        # array's edge with the fill value, and member dims only grow, so that part was
        # never inside the array (tests/test_store.py, extending by seeds and grid values).
        concurrently(writes)  # (the consolidated copy is metadata only: beside the data)
        # last: a grow interrupted before this is done again
        self._set_attrs(attrs, drop_consolidated=not consolidate)

    def write_member_coords(self, template: xr.Dataset, mask: np.ndarray) -> None:
        """Write the per-member coordinates (``member_seed``) of the chunks holding the
        members in ``mask``, whole, from the template (the store's current member grid)."""
        mdims = tuple(template[STATUS].dims)
        names = [n for n, v in template.coords.items() if tuple(v.dims) == mdims and n != STATUS]
        if not np.any(mask) or not names:
            return
        self._check_fence()
        group = zarr.open_group(
            self.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False
        )
        values = {name: np.asarray(template[name].values) for name in names}
        concurrently([w for n in names for w in chunk_writes(group[n], values[n], mask)])

    # -- attributes --------------------------------------------------------------------
    def update_attrs(self, **attrs: Any) -> None:
        """Set root attributes (one write of the root metadata, consolidated copy kept)."""
        self._check_fence()
        self._set_attrs(attrs)

    def _set_attrs(
        self, attrs: Mapping[str, Any], remove: Sequence[str] = (), drop_consolidated: bool = False
    ) -> None:
        """Set and remove root attributes; nothing is written when nothing changes.

        The consolidated copy is kept, or with ``drop_consolidated`` written without it
        (always written then).
        """
        group = zarr.open_group(
            self.zarr_store(),
            mode="r+",
            zarr_format=3,
            use_consolidated=False if drop_consolidated else None,
        )
        old = group.attrs.asdict()
        new = {**{k: v for k, v in old.items() if k not in remove}, **attrs}
        if new != old or drop_consolidated:
            group.attrs.put(new)
        self._root = None

    def consolidate(self) -> None:
        """Write consolidated metadata, so readers open the store with one request.

        Array metadata never changes while blocks are written (only chunks do), so the
        consolidated copy stays valid during a run; it is rewritten after any change.
        """
        import warnings

        with warnings.catch_warnings():
            # zarr notes that consolidated metadata is an extension of the v3 spec; both
            # zarr-python and xarray read it, and without it every open lists the store
            warnings.simplefilter("ignore", category=UserWarning)
            zarr.consolidate_metadata(self.zarr_store(), zarr_format=3)

    # -- reading ---------------------------------------------------------------------
    def check_codecs(self) -> dict[str, Any]:
        """Refuse stores whose codecs would unpickle data; the root metadata, as read.

        Run once per object before anything of the store is read through zarr (see
        :func:`~ensembles.store.codecs.check_codecs`); a path holding no ensembles store
        raises a :class:`StoreError` saying what is there instead.
        """
        if self._root is None:
            found = self.found()
            if found.kind in ("nothing", "empty"):
                msg = f"no ensemble store at {self.path!r}; create one with Ensemble.to_zarr(path)"
                raise StoreError(msg)
            if found.kind in ("folder", "file"):
                msg = f"{self.path!r} is {found.detail}, not an ensembles store"
                raise StoreError(msg)
            root = check_codecs(self.keys()) or {}
            if found.kind == "zarr":
                msg = (
                    f"{self.path!r} is {found.detail}, not an ensembles store; read it with "
                    "xarray.open_zarr"
                )
                raise StoreError(msg)
            self._root, self._incomplete = root, found.kind == "incomplete"
        return self._root

    def group(self) -> Any:
        """The root group, read without the consolidated copy (always current)."""
        self.check_codecs()
        return zarr.open_group(
            self.zarr_store(read_only=True), mode="r", zarr_format=3, use_consolidated=False
        )

    def spec_text(self) -> str:
        """The run specification recorded in the store, as the JSON text stored."""
        attrs = self.attrs()
        if SPEC_ATTR not in attrs:
            msg = f"{self.path!r} is a Zarr store but not an ensemble (no {SPEC_ATTR!r} attribute)"
            raise StoreError(msg)
        return str(attrs[SPEC_ATTR])

    def spec(self) -> dict[str, Any]:
        """The run specification recorded in the store."""
        try:
            return json.loads(self.spec_text())
        except ValueError as exc:
            msg = f"the run spec recorded in {self.path!r} is not valid JSON ({exc})"
            raise StoreError(msg) from None

    def attrs(self) -> dict[str, Any]:
        return dict(self.group().attrs)

    def coord(self, name: str) -> np.ndarray:
        """A coordinate (or any small array) of the store as numpy."""
        return np.asarray(self.group()[name][...])

    def status(self) -> np.ndarray:
        """Member status as a numpy array over the member dims."""
        return self.coord("status")

    def open_dataset(self, chunks: Any = None) -> xr.Dataset:
        """The store as a lazy Dataset (dask arrays over the Zarr chunks)."""
        root = self.check_codecs()
        if self._incomplete:
            msg = (
                f"{self.path!r} is a half-created ensembles store (its creation was "
                "interrupted before any member ran); resume it to create it again "
                f"(ensembles resume {self.path}), or replace it"
            )
            raise StoreError(msg)
        import xarray as xr

        ds = xr.open_zarr(
            self.zarr_store(read_only=True),
            consolidated=bool(root.get("consolidated_metadata")),
            zarr_format=3,
            chunks=chunks if chunks is not None else {},
        )
        extra = [n for n in ("error", "attempts") if n in ds.data_vars]
        ds = ds.set_coords(extra)
        ok = ds[STATUS] == OK
        for name, var in ds.data_vars.items():
            if var.dtype.kind in "iub":  # no NaN to mark missing members: mask by status
                ds[name] = var.where(ok)
        return ds


def _beyond(shape: tuple[int, ...], sizes: Sequence[int]) -> np.ndarray:
    """A mask over ``shape``: the positions at or beyond ``sizes`` along some axis.

    Examples
    --------
    >>> _beyond((2, 3), [2, 2]).astype(int).tolist()
    [[0, 0, 1], [0, 0, 1]]
    """
    mask = np.zeros(shape, dtype=bool)
    for axis, size in enumerate(sizes):
        index = [slice(None)] * len(shape)
        index[axis] = slice(size, None)
        mask[tuple(index)] = True
    return mask


def _put(arr: Any, values: np.ndarray) -> None:
    """Write ``values`` into the whole of the zarr Array ``arr``."""
    arr[...] = values


def open_ensemble(
    path: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    chunks: Any = None,
) -> xr.Dataset:
    """Open a saved ensemble as a lazy :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str or path-like
        A local directory or any fsspec URL (``s3://bucket/run.zarr``).
    storage_options : dict, optional
        fsspec options for URLs (``{"endpoint_url": ..., "key": ..., "secret": ...}``).
    chunks : optional
        Dask chunks; default: the store's chunks.

    Returns
    -------
    xarray.Dataset
        Outputs over (design dims, ``seed``, output dims), with coordinates ``status``,
        ``member_seed`` and ``wall_time`` over the member dims. Members not yet run read
        as NaN with status 0 (pending).

    Examples
    --------
    >>> ds = open_ensemble("ising.zarr")  # doctest: +SKIP
    >>> ds["M"].ens.envelope(over=("sample", "seed"))  # doctest: +SKIP
    """
    store = EnsembleStore(os.fspath(path), storage_options)
    store.spec()  # raises a clear error when this is not an ensemble store
    return store.open_dataset(chunks=chunks)
