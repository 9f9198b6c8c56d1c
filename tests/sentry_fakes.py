"""A local HTTP server standing in for Sentry: it receives envelopes over real HTTP."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Envelopes:
    """What the fake Sentry endpoint received; `url` is the DSN pointing at it."""

    url: str = ""
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def events(self) -> list[dict[str, Any]]:
        """The `event` items of every envelope received."""
        found = []
        for _path, body in list(self.bodies):
            lines = body.split(b"\n")
            index = 1  # line 0 is the envelope header
            while index < len(lines) - 1:
                header = json.loads(lines[index])
                payload = lines[index + 1]
                if header.get("type") == "event":
                    found.append(json.loads(payload))
                index += 2
        return found

    def text(self) -> str:
        return b"\n".join(body for _path, body in list(self.bodies)).decode(errors="replace")


def decode(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only when sentry-sdk found it installed and chose it

        decoded: bytes = brotli.decompress(body)
        return decoded
    return body


@contextmanager
def serve_envelopes() -> Iterator[Envelopes]:
    received = Envelopes()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server hook name
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.bodies.append((self.path, decode(raw, self.headers.get("Content-Encoding"))))
            received.arrived.set()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.url = f"http://public@127.0.0.1:{server.server_address[1]}/1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
