"""Codecs of a store: the ones outputs are written with, and the ones a store may not use.

:func:`compressors_for` picks an output's compression. :func:`check_codecs` reads every
node's raw metadata (Zarr v3 ``zarr.json``, v2 ``.zarray``/``.zgroup``/``.zmetadata``, and
the consolidated copies inside them) and refuses a store whose codec chain anywhere
(nested codecs such as sharding's included) names a codec that unpickles data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from zarr.codecs import BloscCodec

from ..errors import StoreError
from .keys import Keys
from .lease import LEASE_GROUP

__all__ = ["FORBIDDEN_CODECS", "check_codecs", "codec_names", "compressors_for"]

#: Parts of codec names refused: decoding them can run arbitrary code (pickle) or
#: yields Python objects of any kind.
FORBIDDEN_CODECS = ("pickle", "object")
_V2_DOCS = (".zarray", ".zgroup", ".zmetadata")
_LIST_KEYS = ("codecs", "index_codecs", "filters", "compressors", "storage_transformers")
_ONE_KEYS = ("compressor", "serializer", "object_codec")


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


def codec_names(meta: Any) -> Iterator[tuple[str, str]]:
    """``(node, codec name)`` for every codec a metadata document names, nested ones too.

    Reads v3 array metadata (``codecs``, and a codec's own ``configuration``, as in
    sharding), v2 array metadata (``compressor``, ``filters``), and consolidated copies
    (v3 ``consolidated_metadata``, v2 ``.zmetadata``).

    Examples
    --------
    >>> meta = {"codecs": [{"name": "sharding_indexed", "configuration": {
    ...     "codecs": [{"name": "bytes"}, {"name": "numcodecs.pickle"}]}}]}
    >>> [name for _, name in codec_names(meta)]
    ['sharding_indexed', 'bytes', 'numcodecs.pickle']
    """
    yield from _names("", meta)


def _names(node: str, meta: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(meta, dict):
        return
    for key in _LIST_KEYS + _ONE_KEYS:
        value = meta.get(key)
        if value is None:
            continue
        for entry in value if isinstance(value, list) else [value]:
            yield from _codec(node, entry)
    consolidated = meta.get("consolidated_metadata")
    children = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    if "zarr_consolidated_format" in meta:  # a v2 .zmetadata document
        children = meta.get("metadata")
    for child, child_meta in (children or {}).items() if isinstance(children, dict) else ():
        yield from _names(str(child), child_meta)


def _codec(node: str, entry: Any) -> Iterator[tuple[str, str]]:
    if isinstance(entry, dict):
        yield node, str(entry.get("name", entry.get("id", "")))
        yield from _names(node, entry.get("configuration"))
    else:  # a bare name (v3 allows a string), or something malformed: judged by its text
        yield node, str(entry)


def _documents(keys: Keys) -> Iterator[tuple[str, str, Any]]:
    """``(node, key, parsed document)`` for every metadata document of the hierarchy."""
    pending = [""]
    while pending:
        prefix = pending.pop()
        names = keys.list_dir(prefix)
        group = prefix == ""
        for doc_name in ("zarr.json", *_V2_DOCS):
            if doc_name not in names:
                continue
            key = f"{prefix}/{doc_name}" if prefix else doc_name
            data = keys.get(key)
            if data is None:
                continue
            try:
                doc = json.loads(data)
            except ValueError as exc:
                msg = f"the metadata {key!r} of {keys.path!r} is not valid JSON ({exc})"
                raise StoreError(msg) from None
            is_group = isinstance(doc, dict) and doc.get("node_type") == "group"
            group |= doc_name == ".zgroup" or (doc_name == "zarr.json" and is_group)
            yield prefix or "/", key, doc
        if group:  # arrays hold chunks, not nodes: only groups are walked into
            pending += [
                f"{prefix}/{n}" if prefix else n
                for n in names
                if n not in ("zarr.json", ".zattrs", *_V2_DOCS)
                and not (prefix == "" and n == LEASE_GROUP)  # records, read by the lease
            ]


def check_codecs(keys: Keys) -> dict[str, Any] | None:
    """Refuse a store whose metadata names a codec that unpickles; return its root document.

    Every node's raw metadata is read as JSON, so nothing is decoded (not even by zarr's
    metadata parser) before the check.

    Returns
    -------
    dict or None
        The root ``zarr.json`` as parsed, or None when there is none.

    Raises
    ------
    StoreError
        Naming the array, the metadata document and the codec.
    """
    root = None
    for node, key, doc in _documents(keys):
        if key == "zarr.json":
            root = doc if isinstance(doc, dict) else None
        for array, name in _names(node, doc):
            if any(bad in name.lower() for bad in FORBIDDEN_CODECS):
                where = key if array == node else f"{key}, consolidated copy of {array!r}"
                msg = (
                    f"array {array!r} in {keys.path!r} uses codec {name!r} ({where}), which "
                    "can run arbitrary code when decoded; ensembles refuses to read this "
                    "store. Ask its author for a store without it, or delete it"
                )
                raise StoreError(msg)
    return root
