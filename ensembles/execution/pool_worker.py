"""The worker side of the local process pool: its main loop, its wire format, and
:func:`report_member`, which tells the pool which member a worker is running.

Imports the standard library only; cloudpickle and whatever a task needs load on demand.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_MEMBER",
    "NO_PAYLOAD",
    "PREFIX",
    "SLOT_BYTES",
    "SharedRef",
    "dumps",
    "encode_message",
    "end_member",
    "main",
    "member_slot",
    "read_message",
    "report_member",
    "write_message",
]

#: Bytes of a worker's status slot: int64 member index, float64 start time (monotonic).
SLOT_BYTES = 64
#: The member index of a slot when no member runs.
NO_MEMBER = -1

#: The prefix of a message: head length, payload length (or NO_PAYLOAD).
PREFIX = struct.Struct("<IQ")
#: The payload length of a message without payload.
NO_PAYLOAD = 2**64 - 1
_NAN = float("nan")

# The slot of this process when it is a pool worker, else None (report_member is a no-op)
_member_view: Any = None  # memoryview cast to int64: [0] is the member index
_clock_view: Any = None  # memoryview cast to float64: [1] is when the member started
_clock = time.monotonic  # CLOCK_MONOTONIC is system-wide: the driver reads the same clock


@dataclass(frozen=True)
class SharedRef:
    """Stands for an object shared with the pool (see ``LocalPool.share``).

    Passed as a task argument, it is replaced on the worker by the object, which each
    worker receives once and keeps until the object is released.
    """

    key: str


def report_member(index: int) -> None:
    """Record that this worker now runs member ``index`` (a few hundred nanoseconds).

    The pool reads it to name the member a dying worker was running, and to stop a
    member that runs longer than the task's ``member_timeout``. Outside a pool worker
    it does nothing.

    Parameters
    ----------
    index : int
        The member about to run (0 or more).

    Examples
    --------
    >>> report_member(3)  # a no-op here: this process is not a pool worker
    """
    if _clock_view is not None:
        _clock_view[1] = _clock()  # the time first: a reader that sees the index sees it
        _member_view[0] = index


def end_member() -> None:
    """Record that no member runs now (work between or after members is not timed).

    Examples
    --------
    >>> end_member()  # a no-op outside a pool worker
    """
    if _clock_view is not None:
        _clock_view[1] = _NAN
        _member_view[0] = NO_MEMBER


def member_slot() -> tuple[Any, Any] | None:
    """This worker's status slot as ``(member, clock)`` views, or None outside a pool worker.

    For a per-member loop that reports members itself, as :func:`report_member` does but
    without a call per member: store the start (``time.monotonic()``) in ``clock[1]``
    first, then the member index in ``member[0]``.

    Examples
    --------
    >>> member_slot() is None  # this process is not a pool worker
    True
    """
    if _clock_view is None:
        return None
    return _member_view, _clock_view


def _start_task_clock() -> None:
    """A task that reports no member is timed as a whole, from here."""
    if _clock_view is not None:
        _clock_view[1] = _clock()
        _member_view[0] = NO_MEMBER


def _attach_slot(fd: int, offset: int) -> None:
    global _member_view, _clock_view
    mapping = mmap.mmap(fd, offset + SLOT_BYTES)
    view = memoryview(mapping)[offset : offset + 16]
    _member_view, _clock_view = view.cast("q"), view.cast("d")
    end_member()


def _forget_slot() -> None:  # in a process forked by a task: it is not the worker
    global _member_view, _clock_view
    _member_view = _clock_view = None


# -- wire format ------------------------------------------------------------------------


def encode_message(head: tuple, payload: Any = None) -> list[memoryview]:
    """The buffers of one message: a tuple of plain values, and optional bytes.

    The wire format is ``[u32 head length][u64 payload length] head payload``, the head a
    pickled tuple; the payload length is ``2**64 - 1`` when there is no payload.
    """
    head_bytes = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
    size = NO_PAYLOAD if payload is None else len(payload)
    parts = [memoryview(PREFIX.pack(len(head_bytes), size)), memoryview(head_bytes)]
    if payload is not None and len(payload):
        parts.append(memoryview(payload).cast("B"))
    return parts


def write_message(fd: int, head: tuple, payload: Any = None) -> None:
    """Write one message to a blocking pipe (see :func:`encode_message`).

    Examples
    --------
    >>> r, w = os.pipe()
    >>> write_message(w, ("hello", 1), b"data")
    >>> read_message(r)
    (('hello', 1), bytearray(b'data'))
    >>> os.close(r); os.close(w)
    """
    parts = encode_message(head, payload)
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= len(parts[0]):
            written -= len(parts.pop(0))
        if written:
            parts[0] = parts[0][written:]


def read_message(fd: int) -> tuple[tuple, bytearray | None]:
    """Read one message written by :func:`write_message`; EOFError when the pipe closed."""
    hlen, plen = PREFIX.unpack(_read_exact(fd, PREFIX.size))
    head = pickle.loads(_read_exact(fd, hlen))
    return head, (None if plen == NO_PAYLOAD else _read_exact(fd, plen))


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = os.readv(fd, [view[pos:]])
        if got == 0:
            raise EOFError("the other end of the pool's pipe closed")
        pos += got
    return buf


def dumps(obj: Any) -> bytes:
    """Pickle ``obj``: plain pickle when it can, cloudpickle (imported then) when not.

    Examples
    --------
    >>> pickle.loads(dumps(lambda x: x + 1))(1)
    2
    """
    try:
        return pickle.dumps(obj, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle

        return cloudpickle.dumps(obj, protocol=5)


# -- the main loop ------------------------------------------------------------------------


class _Packed:
    """A shared object as received: unpickled on its first use by a task."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytearray) -> None:
        self.blob = blob


def _resolve(value: Any, cache: dict[str, Any]) -> Any:
    if type(value) is not SharedRef:
        return value
    try:
        found = cache[value.key]
    except KeyError:
        raise RuntimeError(f"shared object {value.key!r} is not on this worker") from None
    if type(found) is _Packed:
        found = cache[value.key] = pickle.loads(found.blob)
    return found


def _run_task(result_fd: int, task_id: int, payload: bytearray, cache: dict[str, Any]) -> None:
    try:
        fn, args, kwargs = pickle.loads(payload)
        args = [_resolve(a, cache) for a in args]
        kwargs = {k: _resolve(v, cache) for k, v in kwargs.items()}
        _start_task_clock()
        result = fn(*args, **kwargs)
    except BaseException as exc:  # every failure travels back, KeyboardInterrupt included
        end_member()
        _flush()
        _send_error(result_fd, task_id, exc)
        return
    end_member()
    _flush()
    try:
        blob = dumps(result)
    except Exception as exc:
        what = f"the task's result ({type(result).__name__}) cannot be pickled"
        write_message(result_fd, ("unpicklable", task_id, what, f"{type(exc).__name__}: {exc}"))
        return
    write_message(result_fd, ("done", task_id), blob)


def _send_error(result_fd: int, task_id: int, exc: BaseException) -> None:
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob = dumps((exc, text))
    except Exception:
        what = f"the task raised {type(exc).__qualname__}: {exc}"
        write_message(result_fd, ("unpicklable", task_id, what, text))
        return
    write_message(result_fd, ("error", task_id), blob)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()


def _watch_lifeline(fd: int) -> None:
    """Kill this worker's process group once the driver is gone (the pipe's EOF)."""

    def wait() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=wait, name="ensembles-pool-lifeline", daemon=True).start()


def main(argv: list[str]) -> None:
    """Serve tasks until the driver says stop or goes away.

    ``argv`` is the task pipe, result pipe, slot file and lifeline descriptors, then the
    slot's offset. The driver sends ``("hello", sys_path)`` first.
    """
    task_fd, result_fd, slot_fd, lifeline_fd, offset = (int(a) for a in argv)
    try:
        head, _ = read_message(task_fd)
        sys.path[:] = head[1]
        _attach_slot(slot_fd, offset)
        os.close(slot_fd)
        os.register_at_fork(after_in_child=_forget_slot)
        _watch_lifeline(lifeline_fd)
        write_message(result_fd, ("ready", os.getpid()))
        cache: dict[str, Any] = {}
        while _serve_one(task_fd, result_fd, cache):
            pass
    except (EOFError, BrokenPipeError):  # the driver is gone: nobody to serve
        pass
    _flush()


def _serve_one(task_fd: int, result_fd: int, cache: dict[str, Any]) -> bool:
    """Handle one message from the driver (its payload is freed on return); False: stop."""
    head, payload = read_message(task_fd)
    kind = head[0]
    if kind == "task":
        _run_task(result_fd, head[1], payload, cache)
    elif kind == "share":
        cache[head[1]] = _Packed(payload)
    elif kind == "release":
        cache.pop(head[1], None)
    return kind != "stop"
