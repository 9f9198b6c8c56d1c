"""Schemathesis fuzzes every operation of the published OpenAPI document, as every role.

The document is the committed `contracts/openapi/openapi.json` (the drift test keeps it equal
to what the code serves). Requests go in process to the WSGI application on real Postgres and
Redis, or, with `FUZZ_BASE_URL`, to a live deployment. Every check is on. Credentials come
through schemathesis' auth hook, so the `ignored_auth` check can still send bad ones. Runs are
seeded (`FUZZ_SEED` replays one); a failure prints a curl command that reproduces it.

Profiles (`FUZZ_PROFILE`): `gate` (bounded, part of `nox`) and `full` (>= 200 examples per
operation): `nox -s fuzz -- --profile full`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import schemathesis
from apiflask import APIFlask
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from schemathesis import Case as GenericCase
from schemathesis.auths import AuthContext
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.pagination import encode_cursor
from contracts.fuzz.conftest import BASE_URL, CALLS, Caller, live_login

Case = GenericCase[Any]  # the checks read the case's request, never its operation's type

DOCUMENT = Path(__file__).parents[1] / "openapi" / "openapi.json"
PROFILES = {"gate": 50, "full": 200}
PROFILE = os.environ.get("FUZZ_PROFILE", "gate")
MAX_EXAMPLES = PROFILES[PROFILE]
SEED = int(os.environ.get("FUZZ_SEED", "20261125"))


POLICY_CHECKED_PASSWORDS = {("POST", "/auth/register"), ("POST", "/auth/password")}


def excluded_checks(case: Case) -> list[Any]:
    """Every check runs, except one where a documented rule cannot be expressed in a schema.

    The password policy (common, predictable, e-mail-like passwords) is a semantic rule no JSON
    schema can state, so a schema-valid password may rightly get 422 on the two operations
    that set one. tests/integration/test_token_policies.py and tests/unit/test_password_policy.py
    prove the policy itself.
    """
    if (case.method.upper(), case.path) in POLICY_CHECKED_PASSWORDS:
        return [positive_data_acceptance]
    return []


class Target:
    """What this test talks to: its caller's credentials and, in process, its application."""

    app: APIFlask | None = None
    caller: Caller | None = None
    token: str | None = None
    live_tokens: ClassVar[dict[str, str]] = {}  # live targets: one login per role for the whole run

    @classmethod
    def access_token(cls) -> str | None:
        """Log the caller in (through the API, like any client) once per test, or per run."""
        caller = cls.caller
        if caller is None or caller.email is None:
            return None
        if cls.app is None:
            if caller.email not in cls.live_tokens:
                cls.live_tokens[caller.email] = live_login(caller)
            return cls.live_tokens[caller.email]
        if cls.token is None:
            body = {"email": caller.email, "password": caller.password}
            cls.token = (
                cls.app.test_client().post("/auth/login", json=body).get_json()["access_token"]
            )
        return cls.token


def dispatch(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The WSGI entry point schemathesis calls: the current test's application."""
    assert Target.app is not None, "no application bound for this test"
    return Target.app(environ, start_response)


# A cursor is opaque: any string the API did not issue is rightly refused (422), which the
# positive-data check would report. The fuzzer pages with a real one (from the far future: the
# first page); tests/integration covers forged cursors.
FIRST_PAGE = encode_cursor(datetime(9999, 1, 1, tzinfo=UTC), uuid.UUID(int=0))

# Uploaded material is UTF-8 text without NUL characters (app/content/materials.py).
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1
).map(str.encode)
schemathesis.openapi.media_type("text/plain", _TEXT)
schemathesis.openapi.media_type("text/markdown", _TEXT)

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.seed = SEED


@schema.hook
def after_call(context: Any, case: Case, response: Any) -> None:
    CALLS[case.operation.label] += 1


@schema.hook
def map_query(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    if query and isinstance(query.get("cursor"), str):
        return {**query, "cursor": FIRST_PAGE}
    return query


if BASE_URL:
    schema.config.update(base_url=BASE_URL)
else:
    schema.app = dispatch


@schema.auth(refresh_interval=None)
class RoleAuth:
    """The bearer token of the test's caller; anonymous callers send none."""

    def get(self, case: Case, context: AuthContext) -> str | None:
        return Target.access_token()

    def set(self, case: Case, data: str | None, context: AuthContext) -> None:
        if data is not None:
            case.headers["Authorization"] = f"Bearer {data}"


@pytest.fixture(autouse=True)
def target(fuzz_app: APIFlask | None, caller: Caller) -> Iterator[None]:
    Target.app = fuzz_app
    Target.caller, Target.token = caller, None
    yield
    Target.app = Target.caller = Target.token = None


@schema.parametrize()
@seed(SEED)
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_every_operation_as_every_role(case: Case) -> None:
    case.call_and_validate(excluded_checks=excluded_checks(case))


STATEFUL = {"gate": (25, 10), "full": (100, 20)}  # (examples, steps per example)


@pytest.mark.parametrize("caller", ["learner", "instructor", "admin"], indirect=True)
def test_stateful_sequences_follow_the_links(
    caller: Caller, request: pytest.FixtureRequest
) -> None:
    """Chains operations along the document's links: course → skill → item → publish →
    session → next → attempt, with every check on each response.

    In process, each sequence starts from the same database (a savepoint rolled back after
    it), so Hypothesis can replay and shrink a failing sequence faithfully.
    """
    examples, steps = STATEFUL[PROFILE]
    base = schema.as_state_machine()
    connection = None if BASE_URL else request.getfixturevalue("db_connection")

    class Machine(base):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            self.savepoint = connection.begin_nested() if connection is not None else None
            super().setup()

        def teardown(self) -> None:
            super().teardown()
            if self.savepoint is not None and self.savepoint.is_active:
                self.savepoint.rollback()

        def validate_response(
            self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            __tracebackhide__ = True
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=excluded_checks(case),
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Machine.run(
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
    )
