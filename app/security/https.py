"""HTTPS behind a reverse proxy: trust a configured number of proxy hops, then redirect (or
refuse) plain-HTTP requests.

In staging and production the app runs behind `PROXY_HOPS` proxies that terminate TLS and say
so in `X-Forwarded-Proto`; `ProxyFix` trusts exactly that many hops of `X-Forwarded-For` and
`X-Forwarded-Proto`, so a client cannot claim HTTPS or spoof its address by adding headers of
its own. The `Host` header is used as sent (proxies pass it through): `X-Forwarded-Host` is not
trusted, so a client cannot steer the redirect's `Location` to another host.

`HTTPS_MODE`:
- `redirect` (default when hardened): a plain-HTTP request gets `308 Permanent Redirect` to the
  same URL over https; 308 (not 301) keeps the method and body of a POST.
- `reject`: a plain-HTTP request gets a `403` problem+json (`https-required`): the request was
  understood but is refused over this transport; nothing is processed.
- `off` (default in development and test; refused when hardened).

`/healthz`, `/readyz` and `/metrics` are exempt: load balancers, kubelets and Prometheus probe
the pod directly over plain HTTP, without a proxy in front to set `X-Forwarded-Proto`, and a
redirect would read as "unhealthy". They return no user data.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Settings
from app.errors import problem_response

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def https_url() -> str:
    """The URL of the current request with its scheme switched to https."""
    parts = urlsplit(request.url)
    host = parts.netloc
    if host.endswith(":80"):  # an explicit http port would be wrong for https
        host = host[: -len(":80")]
    return urlunsplit(("https", host, parts.path, parts.query, ""))


def _enforce_https(mode: str) -> Response | None:
    # Schemes are case-insensitive (RFC 3986): a proxy reporting "HTTPS" must not get a
    # redirect to the URL it already serves, over and over.
    if request.scheme.lower() == "https" or request.path in EXEMPT_PATHS:
        return None
    if mode == "reject":
        return problem_response(
            403,
            "This API is served over HTTPS only; repeat the request with https://.",
            slug="https-required",
        )
    return Response(status=308, headers={"Location": https_url()})


def init_app(app: Flask, settings: Settings) -> None:
    if settings.is_hardened and settings.proxy_hops > 0:
        hops = settings.proxy_hops
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]  # Flask's documented middleware hook
    mode = settings.effective_https_mode
    if mode != "off":
        app.before_request(lambda: _enforce_https(mode))
