"""The helpers of the smoke suite (tests/smoke) and of local staging (ops/staging): what they
decide without a deployment. The suite itself is exercised end to end by `nox -s staging`."""

from __future__ import annotations

import ipaddress
import re
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from typing import Literal

import httpx
import pytest
from cryptography import x509

from ops.staging.certs import self_signed
from ops.staging.staging import nginx_config
from tests.smoke.client import Ledger, expect, expect_problem, tls_verification
from tests.smoke.conftest import Options, check_states, derived_http_url, needs

ROOT = Path(__file__).resolve().parents[2]


def options(**overrides: object) -> Options:
    values: dict[str, object] = {
        "base_url": "https://staging.example.org",
        "http_url": None,
        "metrics_token": None,
        "cors_origin": None,
        "email_domain": "example.com",
        "job_timeout": 60.0,
        "require_all": False,
    }
    return Options(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://staging.example.org", "http://staging.example.org"),
        ("https://staging.example.org/api", "http://staging.example.org/api"),
        ("https://127.0.0.1:8443", None),  # which plain port goes with it cannot be guessed
        ("http://127.0.0.1:5000", None),
    ],
)
def test_the_plain_http_url_is_derived_only_for_a_default_https_port(
    base_url: str, expected: str | None
) -> None:
    assert derived_http_url(base_url) == expected


def test_a_missing_input_skips_a_check_unless_every_check_is_required() -> None:
    needs(options(), "given", "unused")  # available: nothing happens
    with pytest.raises(pytest.skip.Exception, match="no token"):
        needs(options(), None, "no token")
    with pytest.raises(pytest.fail.Exception, match=r"no token \(required by --require-all\)"):
        needs(options(require_all=True), None, "no token")


def test_the_ledger_undoes_in_reverse_order_and_goes_on_after_a_failure() -> None:
    undone: list[str] = []
    ledger = Ledger()
    ledger.add("first", lambda: undone.append("first"))

    def broken() -> None:
        raise RuntimeError("the deployment said 500")

    ledger.add("second", broken)
    ledger.add("third", lambda: undone.append("third"))
    ledger.run()
    assert undone == ["third", "first"]
    assert ledger.done == ["third", "first"]
    assert ledger.failed == ["second: the deployment said 500"]
    assert not ledger.steps


def test_expect_names_the_request_when_the_status_is_wrong() -> None:
    request = httpx.Request("GET", "https://staging.example.org/readyz")
    response = httpx.Response(503, json={"status": "down"}, request=request)
    with pytest.raises(AssertionError, match=r"expected 200, got GET https://.*/readyz -> 503"):
        expect(response, 200)
    assert expect(httpx.Response(200, json={"a": 1}, request=request), 200) == {"a": 1}


def test_a_problem_document_needs_its_media_type_and_every_promised_field() -> None:
    request = httpx.Request("GET", "https://staging.example.org/nowhere")
    fields = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No."}
    problem = {**fields, "request_id": "abc"}
    as_problem = {"Content-Type": "application/problem+json"}
    good = httpx.Response(404, json=problem, headers=as_problem, request=request)
    assert expect_problem(good, 404) == problem
    plain_json = httpx.Response(404, json=problem, request=request)
    with pytest.raises(AssertionError, match=r"not problem\+json"):
        expect_problem(plain_json, 404)
    incomplete = httpx.Response(404, json=fields, headers=as_problem, request=request)
    with pytest.raises(AssertionError, match=r"lacks \['request_id'\]"):
        expect_problem(incomplete, 404)


Phase = Literal["setup", "call", "teardown"]
PHASES: tuple[Phase, ...] = ("setup", "call", "teardown")


def report(
    when: Phase,
    outcome: Literal["passed", "failed", "skipped"],
    longrepr: tuple[str, int, str] | None = None,
) -> pytest.TestReport:
    return pytest.TestReport(
        "tests/smoke/test_x.py::test_x", ("test_x.py", 1, "test_x"), {}, outcome, longrepr, when
    )


def test_a_check_state_comes_from_all_three_phases() -> None:
    passed = [report(phase, "passed") for phase in PHASES]
    assert check_states(passed) == ("PASSED", "")
    skipped = [
        report("setup", "skipped", ("f", 1, "Skipped: no token")),
        report("teardown", "passed"),
    ]
    assert check_states(skipped) == ("SKIPPED", "no token")
    assert check_states([report("setup", "failed"), report("teardown", "passed")]) == (
        "ERROR",
        "in setup",
    )
    failed = [report("setup", "passed"), report("call", "failed"), report("teardown", "passed")]
    assert check_states(failed) == ("FAILED", "")
    cleanup = [*passed[:2], report("teardown", "failed")]
    assert check_states(cleanup) == ("PASSED", "but the cleanup after it failed")


def test_tls_verification_uses_the_given_ca_or_none_at_all(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    assert tls_verification(None, insecure=True) is False
    assert tls_verification(None, insecure=False) is True
    context = tls_verification(str(cert), insecure=False)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_the_staging_certificate_is_its_own_ca_for_loopback_with_a_private_key(
    tmp_path: Path,
) -> None:
    cert_path, key_path = self_signed(tmp_path / "tls")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert certificate.issuer == certificate.subject
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_the_nginx_config_has_every_placeholder_filled(tmp_path: Path) -> None:
    ports = {"app": 40001, "https": 40002, "http": 40003, "redis": 40004}
    config = nginx_config(tmp_path, ports, tmp_path / "cert.pem", tmp_path / "key.pem")
    text = config.read_text()
    assert not re.findall(r"@[A-Z_]+@", text)
    assert "server 127.0.0.1:40001;" in text
    assert "listen 127.0.0.1:40002 ssl;" in text
    assert "proxy_redirect https://127.0.0.1:40003/ https://127.0.0.1:40002/;" in text
    assert f"ssl_certificate_key {tmp_path / 'key.pem'};" in text


def test_the_smoke_suite_is_its_own_rootdir_and_spends_the_rate_limit_last() -> None:
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke", "--collect-only", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    tests = [line for line in collected if "::" in line]
    assert len(tests) > 5
    assert tests[-1].startswith("test_rate_limits.py::"), tests
    without_url = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert without_url.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--base-url" in without_url.stderr
