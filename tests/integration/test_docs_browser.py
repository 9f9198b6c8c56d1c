"""`/docs` (Swagger UI) in a real browser: headless Chromium from the Debian `chromium` package.

The platform is served over HTTP on loopback; the page must load with no console error and no
request leaving loopback (the assets are local: docs/decisions/0002), list exactly the
operations of the committed OpenAPI document, and "Try it out" → "Execute" on `GET /healthz`
must show the 200 answer. Playwright drives the installed Chromium; it never downloads one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from apiflask import APIFlask
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from tests.live_server import serving

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "contracts" / "openapi" / "openapi.json"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium is not installed (looked for {CHROMIUM}): `apt-get install chromium` "
            "(Debian/Ubuntu), or set CHROMIUM_PATH. The /docs browser test never downloads one."
        )
    with sync_playwright() as playwright:
        # --no-sandbox: the gate may run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


class PageWatch:
    """What the page did that it must not: console errors, uncaught errors, foreign requests."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.origin = urlsplit(base_url).netloc
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.route("**/*", self._route)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} ({message.location})")

    def _route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == self.origin or url.startswith("data:"):
            route.continue_()
            return
        self.foreign.append(url)
        route.abort()


@pytest.fixture
def docs_page(app: APIFlask, browser: Browser) -> Iterator[tuple[Page, PageWatch]]:
    # The document is built once per process and cached. Someone else (an internal health
    # check, a proxy, another test) may have asked for it first under another host name: the
    # page must still call the host it was loaded from.
    assert (
        app.test_client().get("/openapi.json", base_url="http://internal.invalid").status_code
        == 200
    )
    with serving(app) as base_url:
        context = browser.new_context(base_url=base_url)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        watch = PageWatch(page, base_url)
        response = page.goto("/docs", wait_until="load")
        assert response is not None
        assert response.status == 200
        page.locator(".opblock").first.wait_for()
        yield page, watch
        context.close()


def committed_operations() -> set[tuple[str, str]]:
    spec = json.loads(SPEC.read_text())
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_docs_page_loads_from_loopback_only_without_errors(
    docs_page: tuple[Page, PageWatch],
) -> None:
    page, watch = docs_page

    page.wait_for_load_state("networkidle")

    assert page.locator(".swagger-ui .info .title").inner_text().strip()
    assert not watch.foreign, f"requests left loopback: {watch.foreign}"
    assert not watch.errors, watch.errors


def test_docs_page_lists_every_operation_of_the_committed_openapi_document(
    docs_page: tuple[Page, PageWatch],
) -> None:
    page, _watch = docs_page
    expected = committed_operations()
    assert len(expected) > 20, "the committed document lists suspiciously few operations"

    blocks = page.locator(".opblock")
    shown = {
        (
            blocks.nth(n).locator(".opblock-summary-method").inner_text().strip().upper(),
            blocks.nth(n).locator(".opblock-summary-path").get_attribute("data-path") or "",
        )
        for n in range(blocks.count())
    }

    assert shown == expected, {"missing": expected - shown, "unexpected": shown - expected}


def test_try_it_out_on_healthz_executes_and_shows_200(docs_page: tuple[Page, PageWatch]) -> None:
    page, watch = docs_page
    operation = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/healthz"]')
    )

    operation.locator(".opblock-summary").first.click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()

    answer = operation.locator(".live-responses-table .response").first
    answer.wait_for()
    status = answer.locator(".response-col_status").inner_text().strip()
    description = answer.locator(".response-col_description").inner_text()
    assert status.startswith(
        "200"
    ), f"status {status!r}: {description} {watch.foreign} {watch.errors}"
    body = answer.locator(".response-col_description pre").first
    assert json.loads(body.inner_text())["status"] == "ok"
    assert not watch.errors, watch.errors
