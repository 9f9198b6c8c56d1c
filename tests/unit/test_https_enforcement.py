"""HTTPS behind a proxy, in the unit tier: how many forwarded hops are believed, and what a
plain-HTTP request gets (a 308 to the same URL over https, or a 403 problem).

The app here is a bare Flask app with `app.security.https.init_app` and three routes, not
`create_app`: a hardened `create_app` sends every request that passes this check on to the
rate limiter's Redis. tests/integration/test_security_headers.py checks the same behaviour on
the full hardened app; these build their app inside each test, so they are fast and mutation
testing maps `init_app` to them.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request

from app.config import Settings
from app.security import https
from app.security.https import EXEMPT_PATHS


def settings(app_env: str = "production", **changes: Any) -> Settings:
    # Only what init_app reads matters here (environment, hops, mode); the rest is the profile
    # a hardened environment would refuse to start without, so the combination is a real one.
    values: dict[str, Any] = {
        "app_env": app_env,
        "secret_key": "s" * 48,
        "database_url": "postgresql+psycopg://mastery@db/mastery",
        "redis_url": "redis://redis:6379/0",
    }
    return Settings(_env_file=None, **{**values, **changes})


def whoami() -> dict[str, Any]:
    return {"scheme": request.scheme, "remote_addr": request.remote_addr}


def make_app(config: Settings) -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/whoami", "whoami", whoami, methods=["GET", "POST"])
    for path in EXEMPT_PATHS:
        app.add_url_rule(path, path, lambda: "ok")
    https.init_app(app, config)
    return app


def test_plain_http_is_redirected_with_308_to_the_same_url_over_https() -> None:
    client = make_app(settings()).test_client()

    got = client.get("/whoami?limit=5&status=published", base_url="http://api.example")
    posted = client.post("/whoami", json={"title": "over http"}, base_url="http://api.example")

    assert got.status_code == 308
    assert got.headers["Location"] == "https://api.example/whoami?limit=5&status=published"
    assert posted.status_code == 308  # 308, unlike 301/302, keeps the method and body
    assert posted.headers["Location"] == "https://api.example/whoami"


@pytest.mark.parametrize(
    ("base_url", "location"),
    [
        ("http://api.example:80", "https://api.example/whoami"),  # http's port: wrong for https
        ("http://api.example:8080", "https://api.example:8080/whoami"),
        ("http://api.example:8000", "https://api.example:8000/whoami"),
    ],
)
def test_only_an_explicit_port_80_is_dropped_from_the_redirect(
    base_url: str, location: str
) -> None:
    response = make_app(settings()).test_client().get("/whoami", base_url=base_url)

    assert response.headers["Location"] == location


@pytest.mark.parametrize("reported", ["HTTP", "Http"])
def test_port_80_is_dropped_when_the_proxy_reports_plain_http_in_capitals(reported: str) -> None:
    # werkzeug drops ":80" from the URL of a scheme it knows as "http" (the cases above); a
    # scheme reported as "HTTP" keeps the port in request.url, so https_url must drop it.
    client = make_app(settings(proxy_hops=1)).test_client()

    response = client.get(
        "/whoami?page=2", base_url="http://api.example:80", headers={"X-Forwarded-Proto": reported}
    )

    assert response.status_code == 308
    assert response.headers["Location"] == "https://api.example/whoami?page=2"


@pytest.mark.parametrize("mode", ["redirect", "reject"])
@pytest.mark.parametrize("reported", ["HTTPS", "Https"])
def test_https_reported_in_capitals_is_https_and_served(mode: str, reported: str) -> None:
    # A redirect here would send the client to the very URL it used: a loop without end.
    client = make_app(settings(proxy_hops=1, https_mode=mode)).test_client()

    response = client.get("/whoami", headers={"X-Forwarded-Proto": reported})

    assert response.status_code == 200, response.headers.get("Location")
    assert response.get_json()["scheme"] == reported


@pytest.mark.parametrize("path", sorted(EXEMPT_PATHS))
def test_probes_are_answered_over_plain_http(path: str) -> None:
    for mode in ("redirect", "reject"):
        response = make_app(settings(https_mode=mode)).test_client().get(path)

        assert response.status_code == 200


def test_reject_mode_refuses_plain_http_with_a_403_problem_that_says_to_use_https() -> None:
    client = make_app(settings(https_mode="reject")).test_client()

    refused = client.get("/whoami")
    served = client.get("/whoami", headers={"X-Forwarded-Proto": "https"})

    assert refused.status_code == 403
    assert refused.mimetype == "application/problem+json"
    problem = refused.get_json()
    assert problem["type"].endswith("/https-required")
    assert problem["detail"] == (
        "This API is served over HTTPS only; repeat the request with https://."
    )
    assert "Location" not in refused.headers
    assert served.status_code == 200


def test_behind_one_trusted_proxy_its_hop_is_believed_and_the_clients_are_not() -> None:
    client = make_app(settings(proxy_hops=1)).test_client()

    # The client forged "https" and 6.6.6.6; the proxy appended what it really saw.
    forged = client.get(
        "/whoami",
        headers={"X-Forwarded-Proto": "https, http", "X-Forwarded-For": "6.6.6.6, 203.0.113.7"},
    )
    relayed = client.get(
        "/whoami", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    )

    assert forged.status_code == 308
    assert relayed.get_json() == {"scheme": "https", "remote_addr": "203.0.113.7"}


def test_behind_two_trusted_proxies_the_outer_ones_view_is_believed() -> None:
    # client -> TLS-terminating proxy -> internal proxy -> app: each proxy appends what it saw,
    # so the second value from the right is the client-facing proxy's.
    client = make_app(settings(proxy_hops=2)).test_client()

    response = client.get(
        "/whoami",
        headers={
            "X-Forwarded-Proto": "http, https, http",
            "X-Forwarded-For": "6.6.6.6, 198.51.100.2, 10.0.0.5",
        },
    )

    assert response.get_json() == {"scheme": "https", "remote_addr": "198.51.100.2"}


def test_without_a_trusted_proxy_forwarded_headers_are_ignored() -> None:
    # Hardened with PROXY_HOPS=0 (clients connect to the app itself), and development, which
    # trusts no proxy whatever PROXY_HOPS says: a client cannot claim https or an address.
    direct = settings(proxy_hops=0, no_reverse_proxy=True)
    development = settings("development", proxy_hops=1, https_mode="redirect")
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}

    for config in (direct, development):
        client = make_app(config).test_client()

        assert client.get("/whoami", headers=forged).status_code == 308
        over_tls = client.get("/whoami", headers=forged, base_url="https://localhost")
        assert over_tls.get_json() == {"scheme": "https", "remote_addr": "127.0.0.1"}


def test_development_serves_plain_http_by_default() -> None:
    response = make_app(settings("development")).test_client().get("/whoami")

    assert response.status_code == 200
    assert response.get_json() == {"scheme": "http", "remote_addr": "127.0.0.1"}
