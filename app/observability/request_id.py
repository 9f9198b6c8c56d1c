"""Request ids: accept a well-formed `X-Request-ID`, otherwise mint one; echo it back."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    if not has_request_context():
        return None
    request_id: str | None = g.get("request_id")
    return request_id


def _assign_request_id() -> None:
    offered = request.headers.get(HEADER, "")
    # A client-chosen id lands in logs and error bodies, so only a tame shape is trusted.
    g.request_id = offered if _WELL_FORMED.fullmatch(offered) else uuid.uuid4().hex


def _echo_request_id(response: Response) -> Response:
    request_id = current_request_id()
    if request_id:
        response.headers[HEADER] = request_id
    return response


def init_app(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
