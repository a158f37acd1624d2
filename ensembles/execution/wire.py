"""The safe-mode wire format: task results as plain msgpack data, decoded without pickle."""

from __future__ import annotations

import builtins
import traceback
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import numpy as np

from ..errors import MemberError, RunnerError
from ..layout import BlockResult

__all__ = ["decode", "decode_error", "encode", "encode_error", "safe_task", "unwrap_safe"]


_SAFE_KINDS = "biufcSUmM"  # bool, ints, floats, complex, bytes, str, timedelta, datetime
_INT_LIMIT = 2**63


def encode(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, float, str, bytes)):
        return obj
    if isinstance(obj, int):
        return obj if -_INT_LIMIT <= obj < _INT_LIMIT else ["I", str(obj)]
    if isinstance(obj, np.generic) and obj.dtype.kind in _SAFE_KINDS:
        return encode(obj.item()) if obj.dtype.kind in "biuf" else encode(np.asarray(obj))
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _SAFE_KINDS:
            msg = f"safe mode cannot send numpy arrays of dtype {obj.dtype} (only plain dtypes)"
            raise TypeError(msg)
        return ["a", obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]
    if isinstance(obj, BlockResult):
        return ["B", encode({f.name: getattr(obj, f.name) for f in fields(BlockResult)})]
    if isinstance(obj, tuple):
        return ["t", [encode(v) for v in obj]]
    if isinstance(obj, list):
        return ["l", [encode(v) for v in obj]]
    if isinstance(obj, dict):
        return ["d", [[encode(k), encode(v)] for k, v in obj.items()]]
    msg = (
        f"safe mode can only send None, bool, int, float, str, bytes, numpy arrays of plain "
        f"dtypes, tuples, lists, dicts and BlockResult, not {type(obj).__name__}"
    )
    raise TypeError(msg)


def decode(node: Any) -> Any:
    if node is None or isinstance(node, (bool, int, float, str, bytes)):
        return node
    if not isinstance(node, (list, tuple)) or not node:
        msg = f"unexpected value in a safe-mode result: {type(node).__name__}"
        raise RunnerError(msg)
    tag = node[0]
    if tag == "I":
        return int(node[1])
    if tag == "a":
        _, dtype_str, shape, data = node
        dtype = np.dtype(str(dtype_str))
        if dtype.kind not in _SAFE_KINDS:
            msg = f"refusing a safe-mode array of dtype {dtype_str!r}"
            raise RunnerError(msg)
        return np.frombuffer(bytes(data), dtype=dtype).reshape(tuple(shape)).copy()
    if tag == "t":
        return tuple(decode(v) for v in node[1])
    if tag == "l":
        return [decode(v) for v in node[1]]
    if tag == "d":
        return {decode(k): decode(v) for k, v in node[1]}
    if tag == "B":
        values = decode(node[1])
        names = {f.name for f in fields(BlockResult)}
        if not isinstance(values, dict) or set(values) != names:
            msg = "malformed BlockResult in a safe-mode result"
            raise RunnerError(msg)
        values["block_id"] = tuple(values["block_id"])
        values["errors"] = [tuple(e) for e in values["errors"]]
        return BlockResult(**values)
    msg = f"unknown tag {tag!r} in a safe-mode result"
    raise RunnerError(msg)


def encode_error(exc: BaseException) -> list[Any]:
    record: dict[str, Any] = {
        "module": type(exc).__module__,
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    if isinstance(exc, MemberError):
        try:
            record["params"] = encode(dict(exc.params))
        except TypeError:
            record["params"] = encode({k: repr(v) for k, v in exc.params.items()})
        record["seed"] = encode(exc.seed)
    return ["E", record]


def decode_error(record: Any) -> BaseException:
    if not isinstance(record, (dict, list, tuple)):
        return RunnerError("malformed error record in a safe-mode result")
    info = dict(record) if isinstance(record, dict) else {}
    module, name = str(info.get("module", "")), str(info.get("type", "Exception"))
    message = str(info.get("message", ""))
    if name == "MemberError" and module.startswith("ensembles"):
        params = decode(info.get("params")) or {}
        return MemberError(message, params=params, seed=decode(info.get("seed")))
    cls = getattr(builtins, name, None) if module == "builtins" else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # builtins with other constructor signatures
            pass
    err = RunnerError(
        f"a task raised {module}.{name}: {message}\n--- worker traceback ---\n"
        f"{info.get('traceback', '')}"
    )
    err.remote_type = f"{module}.{name}"  # type: ignore[attr-defined]
    return err


def safe_task(func: Callable[[Any, Any], Any], shared: Any, item: Any) -> list[Any]:
    """Run ``func(shared, item)`` on a worker; return its result or error as plain data."""
    try:
        return ["R", encode(func(shared, item))]
    except Exception as exc:
        return encode_error(exc)


def unwrap_safe(payload: Any) -> tuple[Any, BaseException | None]:
    if not isinstance(payload, (list, tuple)) or len(payload) != 2:
        return None, RunnerError("malformed safe-mode result")
    tag, body = payload
    if tag == "R":
        return decode(body), None
    if tag == "E":
        return None, decode_error(body)
    return None, RunnerError(f"unknown safe-mode result tag {tag!r}")


# -- running tasks ---------------------------------------------------------------------
