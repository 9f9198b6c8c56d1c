"""Smoke checks of the platform's purpose: a learner logs in and practises a skill."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.smoke.client import bearer, expect, expect_problem
from tests.smoke.conftest import Account


@pytest.mark.check("login: a learner logs in (tokens, /auth/me); a wrong password is a 401")
def test_a_learner_logs_in_and_a_wrong_password_is_refused(
    api: httpx.Client, learner: Account
) -> None:
    me = expect(api.get("/auth/me", headers=learner.headers), 200)
    assert (me["id"], me["email"], me["role"]) == (learner.id, learner.email, "learner"), me
    wrong = api.post(
        "/auth/login", json={"email": learner.email, "password": learner.password + "-wrong"}
    )
    expect_problem(wrong, 401)
    assert "access_token" not in wrong.text
    expect_problem(api.get("/auth/me", headers=bearer("not-a-token")), 401)


@pytest.mark.check("practice: enrol, start a session, /next, answer, progress updated")
def test_a_learner_completes_a_practice_step(
    api: httpx.Client, learner: Account, course: dict[str, Any]
) -> None:
    headers = learner.headers
    skill, item = course["skill"], course["item"]
    expect(api.post(f"/courses/{course['course']['id']}/enrollments", headers=headers), 201)
    session = expect(api.post("/sessions", json={"skill_id": skill["id"]}, headers=headers), 201)

    served = expect(api.get(f"/sessions/{session['id']}/next", headers=headers), 200)
    assert served["item"]["id"] == item["id"], served  # the only published item
    leaked = {"correct", "answer_index", "reference_answer", "rubric"}
    for shown in (served["item"], *(served["item"].get("choices") or [])):
        assert not leaked & set(shown), f"the answer key reached the learner: {served}"

    attempt = expect(
        api.post(
            f"/sessions/{session['id']}/attempts",
            json={"item_id": item["id"], "response": course["correct_choice"]},
            headers=headers,
        ),
        201,
    )
    assert attempt["correct"] is True, attempt
    assert attempt["score"] == 1.0, attempt
    assert attempt["estimate"]["attempts"] == 1, attempt

    progress = expect(api.get("/me/progress", headers=headers), 200)
    (mine,) = [entry for entry in progress["skills"] if entry["skill_id"] == skill["id"]]
    assert (mine["attempts"], mine["correct"]) == (1, 1), mine
    assert mine["theta"] == attempt["estimate"]["theta"], (mine, attempt)
