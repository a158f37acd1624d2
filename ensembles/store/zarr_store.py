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

Each task writes the chunks of its own block, outputs first and ``status`` last, so a
member marked ok always has its data on disk, whatever moment a crash strikes.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from ..errors import StoreError, StoreExistsError
from ..layout import MEMBER_ARRAYS, OK, PENDING, STATUS, BlockResult, fill_value
from .chunks import grown_regions

__all__ = ["SPEC_ATTR", "EnsembleStore", "compressors_for", "open_ensemble", "output_chunks"]

SPEC_ATTR = "ensembles"
_FORBIDDEN_CODECS = ("pickle", "object", "vlen-bytes-pickle")


def output_chunks(
    block: tuple[int, ...], out_shape: tuple[int, ...], itemsize: int
) -> tuple[int, ...]:
    """Chunk shape along an output's own dims: its first dim cut into about 4 slabs.

    A block's chunks then hold whole members for a slab of steps, so a reduction over
    members (a quantile) reads one slab of every member at a time: memory proportional to
    members x slab, not to the whole array. Chunks stay at least 1 MiB: zarr costs about
    a millisecond per chunk written, whatever its size.

    Examples
    --------
    >>> output_chunks((1000,), (1000,), 8)     # 10,000 x 1,000 float64: 2 MB chunks
    (250,)
    >>> output_chunks((1,), (900,), 8)         # one slow member per block: whole
    (900,)
    """
    if not out_shape:
        return ()
    members = max(int(np.prod(block)), 1)
    rest = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else 1
    first = out_shape[0]
    by_slabs = -(-first // 4)
    by_bytes = -(-(2**20) // (members * rest * itemsize))
    return (min(max(by_slabs, by_bytes, 1), max(first, 1)), *out_shape[1:])


def compressors_for(samples: list[np.ndarray] | None) -> tuple[Any, ...]:
    """The codecs for an output: blosc-lz4 with byte shuffle, unless it does not pay.

    ``samples`` are values of the output from members already run (the probe). When
    blosc-lz4 shrinks them by less than 10 %, as it does for noisy floating-point data,
    compressing would cost the writers about as much time as writing the bytes and save
    almost no space, so the output is stored raw. With no samples, compress.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> compressors_for([rng.standard_normal(5000)])     # noise: stored raw
    ()
    >>> compressors_for([np.round(rng.random(5000), 2)])  # two decimals: compressed
    (BloscCodec(...),)
    """
    lz4 = BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")
    values = [np.ascontiguousarray(v) for v in samples or [] if np.asarray(v).size]
    raw = sum(v.nbytes for v in values)
    if raw < 4096:  # too little to judge
        return (lz4,)
    import numcodecs

    packed = sum(
        len(numcodecs.Blosc("lz4", 1, numcodecs.Blosc.SHUFFLE, typesize=v.itemsize).encode(v))
        for v in values
    )
    return () if packed > 0.9 * raw else (lz4,)


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
    def create(
        self,
        template: xr.Dataset,
        block: tuple[int, ...],
        mode: str = "w-",
        samples: Mapping[str, list[np.ndarray]] | None = None,
    ) -> None:
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
        samples : mapping, optional
            Values of each output from members already run, to decide whether
            compressing it pays (:func:`compressors_for`).
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
        mdims = tuple(template["status"].dims)
        shape = tuple(template["status"].shape)
        member_coords = [  # non-index coordinates over the member dims, as xarray lists them
            str(k)
            for k, v in template.coords.items()
            if k not in template.dims and set(v.dims) <= set(mdims) and k != "status"
        ]
        # xarray writes the coordinates (small, in memory) with its own encoding; the big
        # arrays are only laid out, directly with zarr: no dask graph, no template data
        coords = xr.Dataset(
            coords={k: v.variable for k, v in template.coords.items() if k != "status"},
            attrs=template.attrs,
        )
        encoding = {"member_seed": {"chunks": block}} if "member_seed" in coords else {}
        bookkeeping: list[tuple[str, Any, Any, dict[str, Any]]] = [
            ("status", "i1", 0, dict(template["status"].attrs)),
            ("wall_time", "f4", np.nan, {"long_name": "seconds spent per member", "units": "s"}),
            ("error", str, "", {"long_name": "error of a failed member (type: message)"}),
            ("attempts", "u1", 0, {"long_name": "calls made for the member"}),
        ]
        try:
            coords.to_zarr(
                self.zarr_store(),
                mode="w",
                zarr_format=3,
                consolidated=False,
                encoding=encoding,
            )
            specs: list[dict[str, Any]] = []
            for name, var in template.data_vars.items():
                out_shape = var.shape[len(mdims) :]
                specs.append(
                    {
                        "name": str(name),
                        "shape": var.shape,
                        "chunks": (*block, *output_chunks(block, out_shape, var.dtype.itemsize)),
                        "dtype": var.dtype,
                        "fill_value": fill_value(var.dtype),
                        "compressors": compressors_for((samples or {}).get(str(name))),
                        "dimension_names": [str(d) for d in var.dims],
                        "attributes": {
                            **var.attrs,
                            "coordinates": " ".join(
                                sorted([*member_coords, "status", "wall_time"])
                            ),
                        },
                    }
                )
            for name, dtype, fill, attrs in bookkeeping:
                specs.append(
                    {
                        "name": name,
                        "shape": shape,
                        "chunks": block,
                        "dtype": dtype,
                        "fill_value": fill,
                        "dimension_names": [str(d) for d in mdims],
                        "attributes": attrs,
                    }
                )
            self._create_arrays(specs)
        except Exception as exc:
            msg = f"cannot create the store at {self.path!r}: {exc}"
            raise StoreError(msg) from exc
        self.consolidate()

    def _create_arrays(self, specs: list[dict[str, Any]]) -> None:
        """Create arrays in the root group, all at once (each costs a metadata write)."""
        from zarr.api.asynchronous import open_group
        from zarr.core.sync import sync

        store = self.zarr_store()

        async def create_all() -> None:
            group = await open_group(store, mode="r+", zarr_format=3, use_consolidated=False)
            await asyncio.gather(*(group.create_array(**spec) for spec in specs))

        sync(create_all())

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
        ``PENDING`` in ``result`` (not run by this task) are not touched.
        """
        from zarr.core.sync import sync

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

        names = [*result.outputs, "wall_time", "attempts", "error", "status"]
        arrays = {name: self._array(name).async_array for name in names}  # opened outside

        async def put(name: str, values: np.ndarray) -> None:
            arr = arrays[name]
            if not full:  # merge into what the chunk already holds (resume of a partial block)
                current = np.asarray(await arr.getitem(region))
                current[ran] = values[ran]
                values = current
            await arr.setitem(region, values)

        async def write_all() -> None:
            await asyncio.gather(*(put(n, v) for n, v in result.outputs.items()))
            await asyncio.gather(
                put("wall_time", result.wall_time),
                put("attempts", result.attempts),
                put("error", error),
            )
            await put("status", result.status)  # last: ok only once the data is there

        sync(write_all())

    def set_status(self, mask: np.ndarray, code: int) -> None:
        """Set the status of the members in ``mask`` to ``code`` (see :func:`.chunks.set_codes`).

        For the driver between runs: an adaptive run marks the members it did not need as
        skipped. Only the chunks ``mask`` touches are written, concurrently.
        """
        from zarr.core.sync import sync

        from .chunks import set_codes

        sync(set_codes(self._array(STATUS).async_array, mask, code))

    def _member_shape(self) -> tuple[int, ...]:
        if "status" not in self._arrays:
            self._array("status")
        return tuple(self._arrays["status"].shape)

    # -- growth (extend) ---------------------------------------------------------------
    def grow(
        self, template: xr.Dataset, attrs: Mapping[str, Any], member_coords: bool = True
    ) -> None:
        """Grow the member dims to the template's sizes, keeping every written member.

        Arrays over member dims are resized; coordinates are rewritten with the template's
        values (old values are a prefix of the new ones, checked by the caller; of those
        over every member dim, such as ``member_seed``, only the new members' are
        written, and none with ``member_coords=False``: an adaptive run writes them for
        the members it runs, :meth:`write_member_coords`); the new members read as
        pending. The spec attrs are written last.
        """
        group = zarr.open_group(
            self.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False
        )
        mdims = tuple(template["status"].dims)
        new_shape = tuple(template["status"].shape)
        old_shape = tuple(group["status"].shape)
        for name, arr in group.arrays():
            dims = tuple(arr.metadata.dimension_names or ())
            if dims[: len(mdims)] == mdims:
                arr.resize(new_shape + tuple(arr.shape[len(mdims) :]))
            elif dims and all(d in mdims for d in dims) and name in template.coords:
                arr.resize(template[name].shape)
        for name, var in template.coords.items():
            dims = tuple(var.dims)
            if name in ("status", "wall_time") or not dims or not set(dims) <= set(mdims):
                continue
            if dims != mdims:
                group[name][...] = np.asarray(var.values)
                continue
            if not member_coords:
                continue
            for region in grown_regions(old_shape, new_shape):
                group[name][region] = np.asarray(var.variable[region].values)
        status = group["status"]
        # members in grown edge chunks must read as pending (chunks beyond were never written)
        for region in grown_regions(old_shape, new_shape, status.chunks):
            status[region] = 0
        group.attrs.update(dict(attrs))
        self._arrays.clear()
        self.consolidate()

    def write_member_coords(self, template: xr.Dataset, mask: np.ndarray) -> None:
        """Write the per-member coordinates (``member_seed``) of the chunks holding the
        members in ``mask``, whole, from the template (the store's current member grid)."""
        from zarr.core.sync import sync

        from .chunks import write_chunks

        mdims = tuple(template[STATUS].dims)
        names = [n for n, v in template.coords.items() if tuple(v.dims) == mdims and n != STATUS]
        if not np.any(mask) or not names:
            return
        group = zarr.open_group(
            self.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False
        )
        for name in names:
            sync(write_chunks(group[name].async_array, np.asarray(template[name].values), mask))

    # -- reading ---------------------------------------------------------------------
    def group(self) -> Any:
        """The root group, read without the consolidated copy (always current)."""
        self._check_exists()
        return zarr.open_group(
            self.zarr_store(read_only=True), mode="r", zarr_format=3, use_consolidated=False
        )

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
        group = zarr.open_group(
            self.zarr_store(), mode="r+", zarr_format=3, use_consolidated=False
        )
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

    def coord(self, name: str) -> np.ndarray:
        """A coordinate (or any small array) of the store as numpy."""
        return np.asarray(zarr.open_array(self.zarr_store(read_only=True), path=name)[...])

    def status(self) -> np.ndarray:
        """Member status as a numpy array over the member dims."""
        return np.asarray(zarr.open_array(self.zarr_store(read_only=True), path="status")[...])

    def check_codecs(self) -> None:
        """Refuse stores whose arrays use codecs that would unpickle data.

        Reads the raw ``zarr.json`` documents (root and each child), so nothing is decoded
        before the check: not even zarr's own metadata parser runs on them.
        """
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        zs = self.zarr_store(read_only=True)

        async def documents() -> list[tuple[str, Any]]:
            proto = default_buffer_prototype()
            out = []
            root = await zs.get("zarr.json", prototype=proto)
            if root is not None:
                out.append(("/", json.loads(root.to_bytes())))
            async for name in zs.list_dir(""):
                if name == "zarr.json":
                    continue
                buf = await zs.get(f"{name}/zarr.json", prototype=proto)
                if buf is not None:
                    out.append((name, json.loads(buf.to_bytes())))
            return out

        def codecs_of(meta: Mapping[str, Any]) -> list[str]:
            names = [str(c.get("name", "")) for c in meta.get("codecs", []) or []]
            nested = (meta.get("consolidated_metadata") or {}).get("metadata") or {}
            for child in nested.values():
                names += codecs_of(child)
            return names

        for name, meta in sync(documents()):
            for cname in codecs_of(meta):
                if any(bad in cname.lower() for bad in _FORBIDDEN_CODECS):
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
        extra = [n for n in ("error", "attempts") if n in ds.data_vars]
        ds = ds.set_coords(extra)
        ok = ds[STATUS] == OK
        for name, var in ds.data_vars.items():
            if var.dtype.kind in "iub":  # no NaN to mark missing members: mask by status
                ds[name] = var.where(ok)
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
    store._check_exists()
    store.check_codecs()
    store.spec()  # raises a clear error when this is not an ensemble store
    return store.open_dataset(chunks=chunks)
