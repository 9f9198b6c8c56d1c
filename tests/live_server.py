"""Serve a WSGI application over real HTTP on loopback, in a thread of the test process.

For tests whose client is another process or a browser (runbook commands run by bash, headless
Chromium): they need a real socket, but not a separate server process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No werkzeug access line per request: the app's own `http.request` event is enough."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port (threaded) and yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
