"""Smoke checks that need no account: probes, transport security, CORS and /metrics."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.smoke.client import Target, bearer, describe, expect, expect_problem
from tests.smoke.conftest import Options, needs

# One year: what the platform sends, and the minimum for browsers' HSTS preload lists.
HSTS_MIN_AGE = 31_536_000
FOREIGN_ORIGIN = "https://smoke-foreign-origin.invalid"
REDIRECTS = (301, 308)  # permanent; 308 keeps the method and body of a POST


@pytest.mark.check("health: /healthz answers 200 ok")
def test_healthz_says_the_process_is_alive(api: httpx.Client) -> None:
    assert expect(api.get("/healthz"), 200) == {"status": "ok"}


@pytest.mark.check("readiness: /readyz answers 200 with every dependency ok")
def test_readyz_says_every_dependency_answers(api: httpx.Client) -> None:
    body = expect(api.get("/readyz"), 200)
    assert body["status"] == "ok", body
    assert body["checks"]["database"] == "ok", body
    assert body["checks"]["storage"] == "ok", body
    # A hardened deployment always has Redis (broker and rate-limit counters).
    assert body["checks"]["redis"] == "ok", body


@pytest.mark.check("errors: an unknown route is a 404 problem+json")
def test_an_unknown_route_is_a_problem_document(api: httpx.Client) -> None:
    expect_problem(api.get("/smoke-no-such-route"), 404)


@pytest.mark.check("HTTPS: plain HTTP is redirected permanently to the same https URL")
def test_plain_http_is_redirected_to_https(target: Target, options: Options) -> None:
    needs(options, options.base_url.startswith("https://"), "the base URL is not https://")
    needs(options, options.http_url, "no plain-HTTP URL: give --http-url")
    assert options.http_url is not None
    path = "/courses?limit=1"
    with target.client(options.http_url) as plain:
        response = plain.get(path)
    assert response.status_code in REDIRECTS, f"expected a redirect, got {describe(response)}"
    assert response.headers.get("Location") == options.base_url + path, describe(response)


@pytest.mark.check("HSTS: HTTPS answers carry Strict-Transport-Security >= 1 year")
def test_https_answers_carry_hsts(api: httpx.Client, options: Options) -> None:
    needs(options, options.base_url.startswith("https://"), "the base URL is not https://")
    for response in (api.get("/healthz"), api.get("/auth/me")):  # a success and an error
        header = response.headers.get("Strict-Transport-Security", "")
        match = re.search(r"max-age=(\d+)", header)
        assert match, f"no HSTS max-age: {describe(response)} headers={dict(response.headers)}"
        assert int(match.group(1)) >= HSTS_MIN_AGE, header


def preflight(api: httpx.Client, origin: str) -> httpx.Response:
    return api.options(
        "/courses",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


@pytest.mark.check("CORS: an allowed origin gets its exact Access-Control headers")
def test_an_allowed_origin_may_call_the_api(api: httpx.Client, options: Options) -> None:
    needs(options, options.cors_origin, "no allowed origin: give --cors-origin")
    origin = options.cors_origin
    assert origin is not None
    response = preflight(api, origin)
    assert response.status_code in (200, 204), describe(response)
    assert response.headers.get("Access-Control-Allow-Origin") == origin, response.headers
    assert "POST" in response.headers.get("Access-Control-Allow-Methods", ""), response.headers
    allowed_headers = response.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "authorization" in allowed_headers, response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers  # bearer tokens, no cookies
    simple = api.get("/healthz", headers={"Origin": origin})
    assert simple.headers.get("Access-Control-Allow-Origin") == origin, simple.headers
    assert "origin" in simple.headers.get("Vary", "").lower(), simple.headers


@pytest.mark.check("CORS: a foreign origin gets no Access-Control headers")
def test_a_foreign_origin_gets_no_cors_headers(api: httpx.Client) -> None:
    for response in (
        preflight(api, FOREIGN_ORIGIN),
        api.get("/healthz", headers={"Origin": FOREIGN_ORIGIN}),
    ):
        granted = {
            k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")
        }
        assert not granted, f"{describe(response)} granted {granted}"


@pytest.mark.check("metrics: /metrics refuses a scrape without or with a wrong token")
def test_metrics_refuse_an_unauthorised_scrape(api: httpx.Client) -> None:
    for headers in ({}, bearer("smoke-not-the-metrics-token")):
        response = api.get("/metrics", headers=headers)
        assert response.status_code in (401, 403), describe(response)
        assert "mastery_http_requests_total" not in response.text


@pytest.mark.check("metrics: /metrics answers the Prometheus exposition with the token")
def test_metrics_answer_with_the_token(api: httpx.Client, options: Options) -> None:
    needs(options, options.metrics_token, "no metrics token: set SMOKE_METRICS_TOKEN")
    assert options.metrics_token is not None
    response = api.get("/metrics", headers=bearer(options.metrics_token))
    assert response.status_code == 200, describe(response)
    assert response.headers.get("Content-Type", "").startswith("text/plain"), response.headers
    assert "mastery_http_requests_total" in response.text
