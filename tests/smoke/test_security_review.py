"""Smoke checks of two findings of the second security review (docs/security.md, section 8),
seen from outside as an attacker would try them.

* Failed logins from one address must not lock the account's owner out of another address.
  This needs a second client address: `--second-source-address` (a local stack on loopback has
  the whole 127.0.0.0/8; `nox -s staging` passes 127.0.0.2). Elsewhere the check is skipped
  and says why, unless --require-all makes it fail.
* A wrong short answer's feedback names no word of the reference answer or rubric that the
  learner did not write (the grader is no answer-key oracle).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.smoke.client import PROBLEM_JSON, Target, describe, expect
from tests.smoke.conftest import Account, Options, log_out, needs

# Distinctive words, so that generic feedback ("Not yet: ...") cannot contain them by chance.
REFERENCE = "Photosynthesis converts sunlight into chemical energy stored in glucose."
RUBRIC = "sunlight as the source\nglucose as the product"
WRONG_ANSWER = "Plants drink water through their roots at night."
FAILED_LOGINS = 20


def content_words(text: str) -> set[str]:
    """Lower-cased words of five letters or more, a trailing plural `s` dropped."""
    return {
        word.removesuffix("s") for word in re.findall(r"[^\W\d_]+", text.lower()) if len(word) >= 5
    }


@pytest.fixture(scope="session")
def short_answer_item(api: httpx.Client, admin: Account, course: dict[str, Any]) -> dict[str, Any]:
    """A second skill of the smoke course with one published short-answer item (the course,
    and so the skill, is deleted at the end of the run)."""
    skill = expect(
        api.post(
            f"/courses/{course['course']['id']}/skills",
            json={"name": "Smoke biology"},
            headers=admin.headers,
        ),
        201,
    )
    item = expect(
        api.post(
            f"/skills/{skill['id']}/items",
            json={
                "kind": "short_answer",
                "prompt": "What does photosynthesis do?",
                "reference_answer": REFERENCE,
                "rubric": RUBRIC,
            },
            headers=admin.headers,
        ),
        201,
    )
    expect(api.post(f"/items/{item['id']}/publish", headers=admin.headers), 200)
    return {"skill": skill, "item": item, "course": course["course"]}


@pytest.mark.check("grading: a wrong short answer's feedback names no word of the answer key")
def test_a_wrong_short_answers_feedback_names_no_word_of_the_answer_key(
    api: httpx.Client, learner: Account, short_answer_item: dict[str, Any]
) -> None:
    headers = learner.headers
    enrolled = api.post(
        f"/courses/{short_answer_item['course']['id']}/enrollments", headers=headers
    )
    assert enrolled.status_code in (200, 201), describe(enrolled)  # 200: already enrolled
    session = expect(
        api.post("/sessions", json={"skill_id": short_answer_item["skill"]["id"]}, headers=headers),
        201,
    )
    served = expect(api.get(f"/sessions/{session['id']}/next", headers=headers), 200)
    assert served["item"]["id"] == short_answer_item["item"]["id"], served

    attempt = expect(
        api.post(
            f"/sessions/{session['id']}/attempts",
            json={"item_id": served["item"]["id"], "response": WRONG_ANSWER},
            headers=headers,
        ),
        201,
    )
    assert attempt["correct"] is False, attempt
    feedback = str(attempt.get("feedback") or "")
    unwritten = content_words(REFERENCE + "\n" + RUBRIC) - content_words(WRONG_ANSWER)
    assert not content_words(feedback) & unwritten, f"the feedback gives the key away: {attempt}"


@pytest.mark.check("logins: failures from one address do not lock the owner out of another")
def test_failed_logins_from_one_address_do_not_lock_the_owner_out_of_another(
    api: httpx.Client, target: Target, options: Options, learner: Account
) -> None:
    needs(
        options,
        options.second_source_address,
        "a second client address (--second-source-address) to log in from",
    )
    transport = httpx.HTTPTransport(
        local_address=options.second_source_address, verify=target.verify
    )
    with httpx.Client(
        base_url=target.base_url, transport=transport, timeout=15.0, follow_redirects=False
    ) as attacker:
        statuses = []
        for attempt in range(FAILED_LOGINS):
            wrong = attacker.post(
                "/auth/login",
                json={"email": learner.email, "password": f"not-the-password-{attempt}"},
            )
            statuses.append(wrong.status_code)
            assert wrong.status_code in (401, 429), describe(wrong)
            assert wrong.headers.get("Content-Type", "").startswith(PROBLEM_JSON), describe(wrong)
    assert statuses[0] == 401, statuses

    owner = api.post("/auth/login", json={"email": learner.email, "password": learner.password})
    tokens = expect(owner, 200)  # from the suite's own address: the owner is not locked out
    log_out(api, tokens["access_token"], tokens["refresh_token"])
