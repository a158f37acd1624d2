"""Progress of a run: members done / total, rate, ETA, and the dashboard link."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

__all__ = ["Progress", "dashboard_link", "serves_dashboard"]


def dashboard_link(client: Any) -> str | None:
    """The dashboard URL of the client's scheduler, or None when it serves none.

    A scheduler runs an HTTP server (``/health``, ``/metrics``) even when it shows no
    dashboard: started with ``--no-dashboard`` (its ``/status`` is a 404), or without
    ``bokeh`` installed (a page saying to install it). The link is given only when the
    dashboard is there (see :func:`serves_dashboard`).
    """
    try:
        info = client.scheduler_info(n_workers=0)
    except TypeError:  # older distributed
        info = client.scheduler_info()
    except Exception:
        return None
    if "dashboard" not in info.get("services", {}):
        return None
    if getattr(client, "cluster", None) is not None and importlib.util.find_spec("bokeh") is None:
        return None  # an in-process scheduler: no bokeh here, no dashboard
    try:
        link = client.dashboard_link
    except Exception:
        return None
    if not link or not serves_dashboard(str(link)):
        return None
    return str(link)


def serves_dashboard(link: str, timeout: float = 3.0) -> bool:
    """Whether the scheduler whose dashboard ``link`` names draws its dashboard.

    Asks the HTTP server beside the link for ``individual-plots.json``: a dashboard lists
    its plots there, a server without one answers ``{}`` or 404. A server that does not
    answer in ``timeout`` seconds (busy) is given the benefit of the doubt; a refused
    connection is not.

    Examples
    --------
    >>> serves_dashboard("http://127.0.0.1:1/status")  # nothing listens on port 1
    False
    """
    import urllib.error
    import urllib.request

    if not link.startswith(("http://", "https://")):
        return False
    url = link.split("?", 1)[0].rsplit("/", 1)[0] + "/individual-plots.json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            plots = json.loads(response.read() or b"{}")
    except TimeoutError:
        return True
    except urllib.error.HTTPError:  # 404: no such page, no dashboard
        return False
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, TimeoutError)
    except (OSError, ValueError):
        return False
    return isinstance(plots, dict) and bool(plots)


# -- progress --------------------------------------------------------------------------


def _notebook_display() -> Callable[..., Any] | None:
    """IPython's ``display`` when running inside a Jupyter kernel, else None."""
    if "ipykernel" not in sys.modules or "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return None
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return None
    return display


class Progress:
    """A progress line: members done / total, rate, ETA; for terminals and notebooks.

    In a terminal the line is redrawn in place (``\\r``); when the stream is not a
    terminal (logs, CI) a line is written every 5 s. In a Jupyter notebook the line is a
    display that updates in place. The dashboard link of ``client`` is shown once.

    Parameters
    ----------
    total : int
        Members to run.
    label : str
    enabled : bool
        False turns all output off (``--quiet``).
    stream : file, optional
        Default ``sys.stderr`` (or the notebook's output area).
    client : distributed.Client, optional
        The run's client: its dashboard link is printed when it has one.
    interval : float, optional
        Seconds between redraws; default 0.2 in terminals and notebooks, 5 in logs.

    Examples
    --------
    >>> import io
    >>> bar = Progress(10, stream=io.StringIO())
    >>> bar.update(4)
    >>> bar.line().startswith("members: 4/10 ( 40.0%)")
    True
    """

    def __init__(
        self,
        total: int,
        label: str = "members",
        enabled: bool = True,
        stream: TextIO | None = None,
        client: Any = None,
        interval: float | None = None,
    ) -> None:
        self.total = int(total)
        self.done = 0
        self.failed = 0
        self.label = label
        self.enabled = enabled and total > 0
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self._last = 0.0
        self._display = _notebook_display() if stream is None else None
        self._handle: Any = None
        self._interactive = self._display is not None or bool(
            getattr(self.stream, "isatty", lambda: False)()
        )
        self._interval = interval or (0.2 if self._interactive else 5.0)
        self._lock = threading.RLock()
        self.in_flight = 0
        if self.enabled and client is not None:
            link = dashboard_link(client)
            if link:
                self._link(link)

    def update(self, n: int, failed: int = 0) -> None:
        """Count ``n`` more members done, ``failed`` of them failed."""
        with self._lock:
            self.done += n
            self.failed += failed
            now = time.perf_counter()
            if self.enabled and self.done < self.total and now - self._last >= self._interval:
                self._last = now
                self._render(final=False)

    def running(self, tasks: int) -> None:
        """Tell how many tasks (blocks of members) are in flight now."""
        self.in_flight = tasks

    @contextlib.contextmanager
    def ticking(self) -> Iterator[Progress]:
        """Redraw the line while the body runs, even when no member finishes for a while.

        A run of slow members would otherwise show nothing between finishes; the line's
        elapsed time and blocks in flight keep it honest.
        """
        if not self.enabled:
            yield self
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(self._interval):
                with self._lock:
                    if self.done < self.total:
                        self._last = time.perf_counter()
                        self._render(final=False)

        thread = threading.Thread(target=tick, name="ensembles-progress", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def line(self) -> str:
        """The current progress line."""
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_txt = _fmt_seconds(eta) if eta == eta else "?"
        failed = f", {self.failed} failed" if self.failed else ""
        flight = f" {self.in_flight} blocks in flight" if self.in_flight else ""
        return (
            f"{self.label}: {self.done}/{self.total} ({pct:5.1f}%{failed}){flight} "
            f"{_fmt_rate(rate)} elapsed {_fmt_seconds(elapsed)} eta {eta_txt}"
        )

    def _render(self, final: bool) -> None:
        if self._display is not None:
            data = {"text/plain": self.line()}
            if self._handle is None:
                self._handle = self._display(data, raw=True, display_id=True)
            else:
                self._handle.update(data, raw=True)
            return
        end = "\n" if final or not self._interactive else ""
        prefix = "\r" if self._interactive else ""
        self.stream.write(prefix + self.line() + end)
        self.stream.flush()

    def close(self) -> None:
        """Draw the final line."""
        if self.enabled:
            with self._lock:
                self.in_flight = 0
                self._render(final=True)

    def message(self, text: str) -> None:
        """Write a line of text (below the progress line)."""
        if not self.enabled:
            return
        if self._display is not None:
            self._display({"text/plain": text}, raw=True)
            return
        if self._interactive and self._last:
            text = "\n" + text  # leave the progress line intact
        self.stream.write(text + "\n")
        self.stream.flush()

    def _link(self, link: str) -> None:
        if self._display is not None:
            self._display(
                {
                    "text/plain": f"dask dashboard: {link}",
                    "text/html": f'dask dashboard: <a href="{link}" target="_blank">{link}</a>',
                },
                raw=True,
            )
            return
        self.message(f"dask dashboard: {link}")


def _fmt_seconds(s: float) -> str:
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"


def _fmt_rate(rate: float) -> str:
    if 0 < rate < 1:
        return f"{1 / rate:,.1f} s/member"
    return f"{rate:,.1f}/s"
