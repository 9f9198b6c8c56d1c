"""CORS: browsers on the origins listed in `CORS_ORIGINS` may call the API; nobody else.

- Only exact origins (`scheme://host[:port]`) are honoured, each matched whole and without
  regard to case. Anything else is dropped with a warning: `null` (sent by sandboxed iframes,
  `file:` pages and some redirects, so "allowing null" allows any attacker page that puts
  itself in a sandbox), `*` (staging and production refuse it at start-up anyway) and
  entries with a path or a pattern (flask-cors would treat `*`, `[`... as a regular expression
  matched by prefix, so `https://a.example` could also admit `https://a.example.evil`).
- A matching origin gets `Access-Control-Allow-Origin` with that exact origin, never `*`, and
  never `Access-Control-Allow-Credentials`: the API authenticates with bearer tokens, not
  cookies. Any other origin gets no CORS header at all, so the browser withholds the response.
- Preflights are cached for `MAX_AGE` seconds and name the methods and request headers the API
  uses; the headers a client needs to read (request id, rate-limit state, `Location` of a
  created resource) are exposed.
- `Vary: Origin` is on every response while an allow-list is configured, so a shared cache never
  hands one origin's answer to another.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response
from flask_cors import CORS

from app.config import Settings

logger = logging.getLogger(__name__)

MAX_AGE = 600
METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE"]
ALLOW_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"]
EXPOSE_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Location",
]

_ORIGIN = re.compile(r"^https?://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$")


def allowed_origins(configured: list[str]) -> list[str]:
    """The usable entries of `CORS_ORIGINS`, lower-cased; the rest are logged and dropped."""
    origins: list[str] = []
    for entry in configured:
        origin = entry.strip().rstrip("/").lower()
        if _ORIGIN.fullmatch(origin):
            origins.append(origin)
        else:
            logger.warning(
                "CORS_ORIGINS entry %r ignored: only exact origins like https://app.example "
                "are allowed (never 'null' or '*')",
                entry,
            )
    return origins


def _exact(origin: str) -> re.Pattern[str]:
    # flask-cors matches patterns with re.match (a prefix match); anchoring the escaped origin
    # makes the comparison exact whatever characters the origin contains.
    return re.compile(re.escape(origin) + r"\Z", re.IGNORECASE)


def init_app(app: Flask, settings: Settings) -> None:
    origins = allowed_origins(settings.cors_origins)
    if not origins:
        return  # no allow-list: no browser origin other than our own may read responses
    CORS(
        app,
        origins=[_exact(origin) for origin in origins],
        methods=METHODS,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        supports_credentials=False,
        send_wildcard=False,
        always_send=False,
        max_age=MAX_AGE,
        vary_header=False,  # added below on every response, not only on allowed ones
    )

    def vary_on_origin(response: Response) -> Response:
        response.vary.add("Origin")
        return response

    app.after_request(vary_on_origin)
