"""Ensemble stores: the Zarr v3 layout, block writes, status, and opening saved runs.

Layout of a store (readable by plain ``xarray.open_zarr``)::

    OUT.zarr/
      zarr.json            root attrs: "ensembles" (the run spec, JSON), provenance
      M, E, ...            outputs, dims (design dims..., seed, output dims...),
                           chunked one block per chunk along member dims, whole along
                           output dims, blosc-lz4 + shuffle, fill NaN (missing = NaN)
      status               int8 per member: 0 pending, 1 ok, 2 failed (CF flag attrs)
      wall_time            float32 seconds per member
      member_seed          int64 seed each member received
      T, sample, seed, ... coordinates

Each task writes the chunks of its own block, outputs first and ``status`` last, so a
member marked ok always has its data on disk, whatever moment a crash strikes.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from .batch import BlockResult, fill_value
from .errors import StoreError, StoreExistsError

__all__ = ["SPEC_ATTR", "EnsembleStore", "open_ensemble"]

SPEC_ATTR = "ensembles"
_BOOKKEEPING = ("status", "wall_time")
_FORBIDDEN_CODECS = ("pickle", "object", "vlen-bytes-pickle")


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


@dataclass
class EnsembleStore:
    """A Zarr v3 store holding one ensemble, local or at any fsspec URL.

    Parameters
    ----------
    path : str or os.PathLike
        A directory (``run.zarr``) or a URL (``s3://bucket/run.zarr``).
    storage_options : dict, optional
        Passed to fsspec for URLs (credentials, ``endpoint_url``, ...).
    """

    path: str
    storage_options: Mapping[str, Any] | None = None
    _arrays: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.path = os.fspath(self.path)
        if self.path.startswith("file://"):
            self.path = self.path[len("file://") :]

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["storage_options"])  # type: ignore[misc]

    @property
    def is_remote(self) -> bool:
        return _is_url(self.path)

    def zarr_store(self, read_only: bool = False) -> Any:
        """The zarr-python store object for this location."""
        if self.is_remote:
            return zarr.storage.FsspecStore.from_url(
                self.path, storage_options=dict(self.storage_options or {}), read_only=read_only
            )
        return zarr.storage.LocalStore(self.path, read_only=read_only)

    def exists(self) -> bool:
        """True when a Zarr group exists at this location."""
        try:
            zarr.open_group(self.zarr_store(read_only=True), mode="r", zarr_format=3)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError, KeyError):
            return False
        except Exception:  # a non-Zarr file or a v2 store at the path
            return True
        return True

    def remove(self) -> None:
        """Delete the store's contents."""
        if self.is_remote:
            import fsspec

            fs, root = fsspec.core.url_to_fs(self.path, **dict(self.storage_options or {}))
            if fs.exists(root):
                fs.rm(root, recursive=True)
        else:
            import shutil

            if os.path.isdir(self.path):
                shutil.rmtree(self.path)
            elif os.path.exists(self.path):
                os.remove(self.path)

    # -- creation --------------------------------------------------------------------
    def create(self, template: xr.Dataset, block: tuple[int, ...], mode: str = "w-") -> None:
        """Write the layout (metadata and coordinates) of an empty ensemble.

        Parameters
        ----------
        template : xarray.Dataset
            The ensemble's Dataset; data variables and ``status`` are not written (read
            back as missing/pending until blocks arrive), coordinates are.
        block : tuple of int
            Chunk shape along the member dims.
        mode : {"w-", "w"}
            ``"w-"`` refuses an existing store; ``"w"`` replaces it.
        """
        if mode not in ("w-", "w"):
            msg = f"mode must be 'w-' or 'w' to create a store, got {mode!r}"
            raise ValueError(msg)
        if self.exists():
            if mode == "w-":
                msg = (
                    f"a store already exists at {self.path!r}; pass mode='w' (CLI: --overwrite) "
                    "to replace it, or mode='resume' to finish or extend it"
                )
                raise StoreExistsError(msg)
            self.remove()
        mdims = template["status"].dims
        nmember = len(mdims)
        encoding: dict[str, dict[str, Any]] = {}
        ds = template.copy()
        for name, var in template.data_vars.items():
            out_shape = var.shape[nmember:]
            chunks = tuple(block) + tuple(out_shape)
            ds[name] = var.copy(data=da.zeros(var.shape, dtype=var.dtype, chunks=chunks))
            encoding[str(name)] = {
                "chunks": chunks,
                "compressors": (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),),
                "fill_value": fill_value(var.dtype),
            }
        shape = template["status"].shape
        ds = ds.assign_coords(
            status=(mdims, da.zeros(shape, dtype="i1", chunks=block), template["status"].attrs),
            wall_time=(
                mdims,
                da.full(shape, np.nan, dtype="f4", chunks=block),
                {"long_name": "seconds spent per member", "units": "s"},
            ),
        )
        encoding["status"] = {"chunks": block, "fill_value": 0}
        encoding["wall_time"] = {"chunks": block, "fill_value": np.nan}
        encoding["member_seed"] = {"chunks": block}
        try:
            ds.to_zarr(
                self.zarr_store(),
                mode="w",
                compute=False,
                zarr_format=3,
                consolidated=False,
                encoding=encoding,
            )
        except Exception as exc:
            msg = f"cannot create the store at {self.path!r}: {exc}"
            raise StoreError(msg) from exc
        self.consolidate()

    # -- block writes (run on workers) -------------------------------------------------
    def _array(self, name: str) -> Any:
        with self._lock:
            if name not in self._arrays:
                self._arrays[name] = zarr.open_array(self.zarr_store(), path=name, mode="r+")
            return self._arrays[name]

    def write_block(self, result: BlockResult, region: tuple[slice, ...]) -> None:
        """Write one block's outputs, then its status: the order that makes crashes safe.

        Members left ``PENDING`` in ``result`` (not run by this task) are not touched.
        """
        ran = result.status != 0
        if not ran.any():
            return
        full = bool(ran.all())
        for name, values in result.outputs.items():
            arr = self._array(name)
            if full:
                arr[region] = values
            else:  # merge into what the chunk already holds (resume of a partial block)
                current = arr[region]
                current[ran] = values[ran]
                arr[region] = current
        for name, values in (("wall_time", result.wall_time), ("status", result.status)):
            arr = self._array(name)
            if full:
                arr[region] = values
            else:
                current = arr[region]
                current[ran] = values[ran]
                arr[region] = current

    # -- reading ---------------------------------------------------------------------
    def group(self) -> Any:
        self._check_exists()
        return zarr.open_group(self.zarr_store(read_only=True), mode="r", zarr_format=3)

    def _check_exists(self) -> None:
        if not self.exists():
            msg = f"no ensemble store at {self.path!r}; create one with Ensemble.to_zarr(path)"
            raise StoreError(msg)

    def spec(self) -> dict[str, Any]:
        """The run specification recorded in the store."""
        attrs = dict(self.group().attrs)
        if SPEC_ATTR not in attrs:
            msg = f"{self.path!r} is a Zarr store but not an ensemble (no {SPEC_ATTR!r} attribute)"
            raise StoreError(msg)
        return json.loads(attrs[SPEC_ATTR])

    def attrs(self) -> dict[str, Any]:
        return dict(self.group().attrs)

    def update_attrs(self, **attrs: Any) -> None:
        group = zarr.open_group(self.zarr_store(), mode="r+", zarr_format=3)
        group.attrs.update(attrs)
        self.consolidate()

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

    def status(self) -> np.ndarray:
        """Member status as a numpy array over the member dims."""
        return np.asarray(zarr.open_array(self.zarr_store(read_only=True), path="status")[...])

    def check_codecs(self) -> None:
        """Refuse stores whose arrays use codecs that would unpickle data."""
        group = self.group()
        for name, arr in group.arrays():
            meta = arr.metadata.to_dict()
            for codec in meta.get("codecs", []):
                cname = str(codec.get("name", "")).lower()
                if any(bad in cname for bad in _FORBIDDEN_CODECS):
                    msg = (
                        f"array {name!r} in {self.path!r} uses codec {cname!r}, which can run "
                        "arbitrary code when decoded; ensembles refuses to open it"
                    )
                    raise StoreError(msg)

    def open_dataset(self, chunks: Any = None) -> xr.Dataset:
        """The store as a lazy Dataset (dask arrays over the Zarr chunks)."""
        self._check_exists()
        self.check_codecs()
        ds = xr.open_zarr(
            self.zarr_store(read_only=True),
            consolidated=True,
            zarr_format=3,
            chunks=chunks if chunks is not None else {},
        )
        return ds


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
