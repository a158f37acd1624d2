"""A small HTTP server on 127.0.0.1 that answers like a scheduler's HTTP server.

``individual-plots.json`` is how ``ensembles.execution.progress.serves_dashboard`` tells a
dashboard (a non-empty list of plots) from a scheduler without one (``{}`` without
``bokeh``, 404 with ``--no-dashboard``). bokeh is not a test dependency, so tests of the
positive case serve the list themselves.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

__all__ = ["PLOTS", "plot_list_server"]

#: What a scheduler with a dashboard lists (abridged).
PLOTS = b'{"Task Stream": "/individual-task-stream", "Progress": "/individual-progress"}'


class _PlotList(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        if body is None or not self.path.endswith("/individual-plots.json"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def plot_list_server(body: bytes | None = PLOTS) -> Iterator[str]:
    """Serve ``body`` as ``individual-plots.json`` (None: 404); yield the dashboard link."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _PlotList)
    server.body = body  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/status"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
