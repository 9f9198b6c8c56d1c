"""Security headers on every response, error responses included.

An `after_request` hook runs for views, for the problem+json answers of `app.errors` (404 for an
unknown route, 405, 413, 415, 422, 500...) and for responses returned by `before_request` hooks
(the HTTPS redirect), so one place covers them all.

- `Content-Security-Policy`: the API serves JSON only, so nothing may load, run or frame it.
  The Swagger UI page at `/docs` is the one HTML document; its policy allows its own assets
  (`'self'`, served from `/docs/static`), exactly the inline `<script>` and `<style>` blocks of
  the page by their SHA-256 hashes (computed from the rendered page, so no `'unsafe-inline'`),
  `data:` images (icons inside swagger-ui.css) and `fetch` of `/openapi.json` (`connect-src
  'self'`, also what "Try it out" uses).
- `Strict-Transport-Security` (one year, subdomains) only in staging and production: browsers
  ignore it over plain HTTP anyway, and sent from a developer's `localhost` it would pin every
  local port to https for a year.
- `Cache-Control: no-store` unless the response set its own (the static assets of `/docs` do):
  API responses carry personal data and tokens and must not be kept by shared caches.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Flask, Response, request

from app.config import Settings

HSTS = "max-age=31536000; includeSubDomains"
API_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_INLINE_STYLE = re.compile(r"<style>(.*?)</style>", re.DOTALL)


def _hashes(pattern: re.Pattern[str], html: str) -> str:
    digests = (
        base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        for block in pattern.findall(html)
    )
    return "".join(f" 'sha256-{digest}'" for digest in digests)


def docs_csp(html: str) -> str:
    """The narrowest policy that renders the Swagger UI page `html`."""
    return (
        "default-src 'none'; "
        f"script-src 'self'{_hashes(_INLINE_SCRIPT, html)}; "
        f"style-src 'self'{_hashes(_INLINE_STYLE, html)}; "
        "img-src 'self' data:; "
        "connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def init_app(app: Flask, settings: Settings) -> None:
    docs_path = getattr(app, "docs_path", None)
    hardened = settings.is_hardened

    def add_security_headers(response: Response) -> Response:
        headers = response.headers
        headers.update(COMMON_HEADERS)
        if hardened:
            headers["Strict-Transport-Security"] = HSTS
        if (
            docs_path
            and request.path.rstrip("/") == docs_path
            and response.mimetype == "text/html"
            and not response.direct_passthrough
        ):
            headers["Content-Security-Policy"] = docs_csp(response.get_data(as_text=True))
        else:
            headers["Content-Security-Policy"] = API_CSP
        headers.setdefault("Cache-Control", "no-store")
        return response

    app.after_request(add_security_headers)
