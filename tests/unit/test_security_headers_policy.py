"""Security headers in the unit tier: the common headers on every response, errors included;
HSTS only where the environment is hardened; the deny-all CSP everywhere except the Swagger UI
page, whose policy names the page's own inline blocks by hash; `no-store` unless the response
chose its caching.

The app is a bare Flask app with `app.security.headers.init_app`, built in each test so that
mutation testing maps `init_app` to these tests; tests/integration/test_security_headers.py
checks the full hardened app and the real /docs page.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from flask import Flask, Response

from app.config import Settings
from app.security import headers
from app.security.headers import API_CSP, COMMON_HEADERS, HSTS, docs_csp

PAGE = (
    "<html><head><style>body { margin: 0 }</style><style>\n.x {}\n</style></head>"
    "<body><script>\nwindow.ui = SwaggerUIBundle({url: '/openapi.json'})\n</script></body></html>"
)


def sha256(block: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"


def settings(app_env: str) -> Settings:
    values: dict[str, Any] = {"app_env": app_env, "database_url": "sqlite://"}
    if app_env in ("staging", "production"):  # what a hardened environment refuses to lack
        values |= {
            "secret_key": "s" * 48,
            "database_url": "postgresql+psycopg://mastery@db/mastery",
            "redis_url": "redis://redis:6379/0",
        }
    return Settings(_env_file=None, **values)


def make_app(app_env: str = "test", docs_path: str | None = "/docs") -> Flask:
    app = Flask(__name__)
    if docs_path is not None:
        app.docs_path = docs_path  # type: ignore[attr-defined]  # APIFlask's attribute
    app.add_url_rule("/docs", "docs", lambda: Response(PAGE, mimetype="text/html"))
    app.add_url_rule("/docs/", "docs_slash", lambda: Response(PAGE, mimetype="text/html"))
    app.add_url_rule("/docs.json", "docs_json", lambda: {"html": PAGE})
    app.add_url_rule("/page", "page", lambda: Response(PAGE, mimetype="text/html"))
    app.add_url_rule("/items", "items", lambda: {"items": []})
    app.add_url_rule(
        "/cached", "cached", lambda: Response("x", headers={"Cache-Control": "max-age=60"})
    )
    app.add_url_rule(
        "/docs/stream",
        "stream",
        lambda: Response(iter([PAGE.encode()]), mimetype="text/html", direct_passthrough=True),
    )
    headers.init_app(app, settings(app_env))
    return app


def test_docs_csp_allows_exactly_the_pages_inline_blocks_by_hash() -> None:
    policy = docs_csp(PAGE)

    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives == {
        "default-src": "'none'",
        "script-src": "'self' " + sha256("\nwindow.ui = SwaggerUIBundle({url: '/openapi.json'})\n"),
        "style-src": f"'self' {sha256('body { margin: 0 }')} {sha256(chr(10) + '.x {}' + chr(10))}",
        "img-src": "'self' data:",
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    assert "unsafe-inline" not in policy


def test_docs_csp_of_a_page_without_inline_blocks_allows_only_its_own_assets() -> None:
    policy = docs_csp("<html><script src='/docs/static/ui.js'></script></html>")

    assert "script-src 'self'; " in policy
    assert "style-src 'self'; " in policy
    assert "sha256" not in policy


@pytest.mark.parametrize("path", ["/items", "/cached", "/page", "/missing", "/docs"])
def test_every_response_carries_the_common_headers(path: str) -> None:
    response = make_app().test_client().get(path)

    for name, value in COMMON_HEADERS.items():
        assert response.headers[name] == value, (path, name)


@pytest.mark.parametrize(("app_env", "hsts"), [("production", HSTS), ("staging", HSTS)])
def test_hardened_environments_send_hsts_everywhere(app_env: str, hsts: str) -> None:
    client = make_app(app_env).test_client()

    for path in ("/items", "/missing", "/docs"):
        assert client.get(path).headers.get("Strict-Transport-Security") == hsts, path


@pytest.mark.parametrize("app_env", ["development", "test"])
def test_local_environments_never_send_hsts(app_env: str) -> None:
    response = make_app(app_env).test_client().get("/items")

    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_the_swagger_page_gets_the_policy_of_its_own_html(path: str) -> None:
    response = make_app().test_client().get(path)

    assert response.headers["Content-Security-Policy"] == docs_csp(PAGE)
    assert response.get_data(as_text=True) == PAGE  # the body read for hashing is still sent


@pytest.mark.parametrize(
    ("path", "docs_path"),
    [
        ("/items", "/docs"),
        ("/page", "/docs"),  # HTML, but not the docs page
        ("/docs.json", "/docs"),  # the docs path's prefix, JSON
        ("/docs/stream", "/docs"),  # a streamed body is not read to hash it
        ("/docs", None),  # an app without a docs page
        ("/missing", "/docs"),
    ],
)
def test_everything_else_gets_the_deny_all_policy(path: str, docs_path: str | None) -> None:
    response = make_app(docs_path=docs_path).test_client().get(path)

    assert response.headers["Content-Security-Policy"] == API_CSP


def test_json_at_the_docs_path_gets_the_deny_all_policy() -> None:
    app = make_app(docs_path="/docs.json")

    response = app.test_client().get("/docs.json")

    assert response.headers["Content-Security-Policy"] == API_CSP


def test_responses_are_not_stored_unless_they_chose_their_caching() -> None:
    client = make_app().test_client()

    assert client.get("/items").headers.getlist("Cache-Control") == ["no-store"]
    assert client.get("/missing").headers.getlist("Cache-Control") == ["no-store"]
    assert client.get("/cached").headers.getlist("Cache-Control") == ["max-age=60"]
