"""`/metrics` after real traffic: every contract metric is exposed with its labels, no label
value identifies a user or a raw path, and hardened environments require the bearer token.

The AI provider is faked at the HTTP layer with respx (strict): grading succeeds (with token
usage), hints fail so the fallback answers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import respx
from apiflask import APIFlask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.ai.runtime import AIProviders
from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Item, ItemKind, ItemStatus
from tests.ai_fakes import openai_providers
from tests.conftest import PASSWORD, MakeApp, bearer, start_practice

AI_BASE_URL = "https://ai.test/v1"
METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
ROUTE = re.compile(r"^(unmatched|(/[A-Za-z0-9_.{}-]*)+)$")

EXPECTED_METRICS = {
    "mastery_http_requests_total",
    "mastery_http_request_duration_seconds_bucket",
    "mastery_ai_calls_total",
    "mastery_ai_call_duration_seconds_bucket",
    "mastery_ai_circuit_state",
    "mastery_ai_tokens_total",
    "mastery_adaptive_selection_duration_seconds_bucket",
    "mastery_adaptive_estimate_se_bucket",
    "mastery_adaptive_predictions_total",
    "mastery_adaptive_brier_sum",
    "mastery_adaptive_log_loss_sum",
    "mastery_jobs_total",
    "mastery_jobs_queued",
    "mastery_jobs_oldest_queued_age_seconds",
    "mastery_jobs_overdue_running",
    "mastery_jobs_oldest_overdue_running_seconds",
    "mastery_jobs_swept_total",
    "mastery_auth_login_failures_total",
    "mastery_auth_refresh_reuse_total",
    "mastery_db_pool_connections",
    "mastery_ratelimit_storage_unavailable_total",
}


def scrape(client: FlaskClient, headers: dict[str, str] | None = None) -> list[Sample]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    matching = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert matching, f"no sample {name}{labels}"
    return sum(matching)


@pytest.fixture
def llm() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=AI_BASE_URL, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def openai_interactive(app: APIFlask) -> Iterator[AIProviders]:
    """Grading and hints through the OpenAI-compatible provider; jobs stay offline."""
    with openai_providers(app, "k", only_interactive=True) as built:
        yield built


def completion(content: dict[str, Any]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": json.dumps(content)}}
            ],
            "usage": {"prompt_tokens": 210, "completion_tokens": 40, "total_tokens": 250},
        },
    )


@pytest.fixture
def course(make_course: Callable[..., Course], db_session: Session) -> Course:
    course = make_course(status=CourseStatus.PUBLISHED)
    db_session.add(
        Item(
            skill_id=course.skills[0].id,
            kind=ItemKind.SHORT_ANSWER,
            prompt="What does chlorophyll do in photosynthesis?",
            reference_answer="Chlorophyll absorbs red and blue light",
            rubric="- mentions absorbing light",
            status=ItemStatus.PUBLISHED,
        )
    )
    db_session.commit()
    return course


def generate_traffic(
    client: FlaskClient,
    course: Course,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
    llm: respx.MockRouter,
) -> list[str]:
    """The traffic of the test; returns every path requested (none may become a label)."""
    paths: list[str] = []

    def call(method: str, path: str, **kwargs: Any) -> Any:
        paths.append(path)
        return client.open(path, method=method, **kwargs)

    learner = make_user(email="metrics.learner@example.com")
    failed = call("POST", "/auth/login", json={"email": learner.email, "password": "wrong-pass"})
    assert failed.status_code == 401

    pair = call("POST", "/auth/login", json={"email": learner.email, "password": PASSWORD})
    refresh = pair.get_json()["refresh_token"]
    assert call("POST", "/auth/refresh", json={"refresh_token": refresh}).status_code == 200
    reused = call("POST", "/auth/refresh", json={"refresh_token": refresh})
    assert reused.get_json()["type"].endswith("/refresh-token-reused")

    headers = as_user(learner)
    session_id = start_practice(client, course, headers)["id"]
    served = call("GET", f"/sessions/{session_id}/next", headers=headers).get_json()
    item_id = served["item"]["id"]

    llm.post("/chat/completions", headers={"X-Prompt-Template": "hint.v1"}).mock(
        return_value=httpx.Response(503)
    )
    llm.post("/chat/completions", headers={"X-Prompt-Template": "grade_short_answer.v1"}).mock(
        return_value=completion({"score": 0.9, "correct": True, "feedback": "Well put."})
    )
    hint = call("GET", f"/sessions/{session_id}/items/{item_id}/hint", headers=headers)
    assert hint.get_json()["hinted_by"] == "fallback"
    attempt = call(
        "POST",
        f"/sessions/{session_id}/attempts",
        json={"item_id": item_id, "response": "It absorbs red and blue light."},
        headers=headers,
    )
    assert attempt.status_code in (200, 201), attempt.get_json()

    owner = as_user(make_user(Role.ADMIN))
    job = call(
        "POST",
        f"/skills/{course.skills[0].id}/generation-jobs",
        json={"count": 2},
        headers=owner,
    )
    assert job.status_code == 202, job.get_json()
    assert call("GET", f"/no/such/{uuid.uuid4()}").status_code == 404
    return paths


def test_after_traffic_every_contract_metric_is_exposed_with_its_labels(
    client: FlaskClient,
    course: Course,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
    openai_interactive: AIProviders,
    llm: respx.MockRouter,
) -> None:
    before = scrape(client)
    generate_traffic(client, course, make_user, as_user, llm)

    samples = scrape(client)

    assert not EXPECTED_METRICS - {s.name for s in samples}
    assert value(
        samples, "mastery_http_requests_total", route="/sessions/{session_id}/next", status="200"
    )
    assert value(samples, "mastery_http_requests_total", route="/auth/login", status="401")
    assert value(samples, "mastery_http_requests_total", route="unmatched", status="404")
    assert value(
        samples,
        "mastery_http_request_duration_seconds_count",
        method="POST",
        route="/sessions/{session_id}/attempts",
    )
    for outcome in ("error", "fallback"):
        assert value(
            samples, "mastery_ai_calls_total", operation="hint", provider="openai", outcome=outcome
        )
    assert value(
        samples,
        "mastery_ai_calls_total",
        operation="grade_short_answer",
        provider="openai",
        outcome="success",
    )
    assert value(
        samples,
        "mastery_ai_calls_total",
        operation="generate_items",
        provider="offline",
        outcome="success",
    )
    assert value(samples, "mastery_ai_call_duration_seconds_count", operation="hint")
    assert value(samples, "mastery_ai_circuit_state", provider="openai") == 0  # one failure
    assert (
        value(samples, "mastery_ai_tokens_total", operation="grade_short_answer", kind="prompt")
        - _or_zero(before, "mastery_ai_tokens_total", operation="grade_short_answer", kind="prompt")
        == 210
    )
    assert value(samples, "mastery_ai_tokens_total", kind="completion") >= 40
    for name in (
        "mastery_adaptive_selection_duration_seconds_count",
        "mastery_adaptive_estimate_se_count",
        "mastery_adaptive_predictions_total",
        "mastery_adaptive_brier_sum",
        "mastery_adaptive_log_loss_sum",
    ):
        assert value(samples, name) > _or_zero(before, name), name
    for status in ("queued", "running", "succeeded"):
        assert value(samples, "mastery_jobs_total", kind="generate_items", status=status)
    assert value(samples, "mastery_jobs_queued", kind="generate_items") == 0
    assert value(samples, "mastery_jobs_oldest_queued_age_seconds", kind="generate_items") == 0
    assert value(samples, "mastery_jobs_overdue_running", kind="generate_items") == 0
    assert value(samples, "mastery_jobs_oldest_overdue_running_seconds", kind="generate_items") == 0
    for outcome in ("requeued", "dead"):
        value(samples, "mastery_jobs_swept_total", kind="generate_items", outcome=outcome)
    assert value(samples, "mastery_auth_login_failures_total", reason="bad_password") >= 1
    assert value(samples, "mastery_auth_refresh_reuse_total") > _or_zero(
        before, "mastery_auth_refresh_reuse_total"
    )
    for state in ("checked_out", "idle", "overflow"):
        value(samples, "mastery_db_pool_connections", state=state)
    for outcome in ("open", "closed"):
        value(samples, "mastery_ratelimit_storage_unavailable_total", outcome=outcome)


def _or_zero(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_no_label_value_is_an_id_an_email_or_a_raw_path(
    client: FlaskClient,
    course: Course,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
    openai_interactive: AIProviders,
    llm: respx.MockRouter,
) -> None:
    paths = generate_traffic(client, course, make_user, as_user, llm)

    samples = scrape(client)

    values = {v for s in samples for k, v in s.labels.items() if k != "le"}
    assert [path for path in paths if UUID.search(path)]  # the traffic did carry ids
    assert not [v for v in values if UUID.search(v) or EMAIL.search(v)]
    assert not values & {path for path in paths if UUID.search(path)}
    routes = {s.labels["route"] for s in samples if "route" in s.labels}
    assert "/sessions/{session_id}/items/{item_id}/hint" in routes
    assert all(ROUTE.fullmatch(route) for route in routes), routes


def test_a_queued_job_is_counted_with_its_age_from_the_job_rows(
    client: FlaskClient, app: APIFlask, course: Course, db_session: Session
) -> None:
    from datetime import timedelta

    from app.db import utcnow
    from app.jobs.models import Job, JobKind, JobStatus

    db_session.add(
        Job(
            kind=JobKind.GENERATE_ITEMS,
            status=JobStatus.QUEUED,
            skill_id=course.skills[0].id,
            created_by=course.owner_id,
            params={"count": 1},
            updated_at=utcnow() - timedelta(minutes=10),
        )
    )
    db_session.commit()

    samples = scrape(client)

    assert value(samples, "mastery_jobs_queued", kind="generate_items") == 1
    assert value(samples, "mastery_jobs_oldest_queued_age_seconds", kind="generate_items") >= 600


def test_running_jobs_past_their_deadline_are_counted_with_how_late_the_oldest_is(
    client: FlaskClient, course: Course, db_session: Session
) -> None:
    from datetime import timedelta

    from app.db import utcnow
    from app.jobs.models import Job, JobKind, JobStatus

    now = utcnow()
    for late in (timedelta(minutes=7), timedelta(seconds=30), -timedelta(minutes=3)):
        db_session.add(
            Job(
                kind=JobKind.GENERATE_ITEMS,
                status=JobStatus.RUNNING,
                skill_id=course.skills[0].id,
                created_by=course.owner_id,
                params={"count": 1},
                attempts=1,
                deadline_at=now - late,  # the last one is still within its deadline
            )
        )
    db_session.commit()

    samples = scrape(client)

    assert value(samples, "mastery_jobs_overdue_running", kind="generate_items") == 2
    oldest = value(samples, "mastery_jobs_oldest_overdue_running_seconds", kind="generate_items")
    assert 420 <= oldest < 480
    assert value(samples, "mastery_jobs_queued", kind="generate_items") == 0


@pytest.fixture
def production_client(make_app: MakeApp) -> FlaskClient:
    app = make_app(
        app_env="production",
        jobs_eager=False,
        ratelimit_enabled=True,
        metrics_token=SecretStr(METRICS_TOKEN),
    )
    return app.test_client()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token"),
        {"Authorization": METRICS_TOKEN},
        bearer(METRICS_TOKEN[:-1]),
    ],
    ids=["none", "wrong", "no-scheme", "prefix"],
)
def test_production_refuses_metrics_without_the_token(
    production_client: FlaskClient, headers: dict[str, str]
) -> None:
    response = production_client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert b"mastery_" not in response.data


def test_production_serves_metrics_over_plain_http_with_the_token(
    production_client: FlaskClient,
) -> None:
    samples = scrape(production_client, bearer(METRICS_TOKEN))

    assert any(s.name == "mastery_http_requests_total" for s in samples)


def test_metrics_is_not_in_the_api_description(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    assert "/metrics" not in spec["paths"]
