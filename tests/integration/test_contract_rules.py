"""Rules the fuzzer found undocumented: each is now in the OpenAPI document and enforced.

Schemathesis reported schema-valid requests that the API refused. The fix in each case was
to make the document say what the API does; these tests hold the two together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient

from app.auth.models import Role, User
from app.content.models import Course

AsUser = Callable[[User], dict[str, str]]


def component(app: APIFlask, name: str) -> dict[str, Any]:
    spec = app.spec
    assert isinstance(spec, dict)  # APIFlask's property may also give the YAML text
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def test_addresses_in_the_rfc_2606_test_domain_register_and_other_reserved_ones_do_not(
    client: FlaskClient,
) -> None:
    body = {"password": "a long enough passphrase 42", "display_name": "Smoke"}

    accepted = client.post("/auth/register", json={**body, "email": "smoke-1@mastery.test"})
    refused = client.post("/auth/register", json={**body, "email": "smoke-2@mastery.invalid"})

    assert accepted.status_code == 201, accepted.get_json()
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "email"


def test_patch_bodies_document_that_null_and_empty_bodies_are_refused(
    app: APIFlask,
    client: FlaskClient,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
    as_user: AsUser,
) -> None:
    owner = make_user(Role.INSTRUCTOR)
    course = make_course(owner)
    schema = component(app, "CoursePatch")

    assert schema["minProperties"] == 1
    assert all("null" not in str(prop) for prop in schema["properties"].values())
    for body in ({"title": None}, {}):
        response = client.patch(f"/courses/{course.id}", json=body, headers=as_user(owner))
        assert response.status_code == 422, body


@pytest.mark.parametrize("title", ["Algebra\x00", "   "])
def test_text_fields_document_and_enforce_no_nul_and_not_blank(
    app: APIFlask,
    client: FlaskClient,
    make_user: Callable[..., User],
    as_user: AsUser,
    title: str,
) -> None:
    pattern = component(app, "CourseIn")["properties"]["title"]["pattern"]

    response = client.post(
        "/courses", json={"title": title}, headers=as_user(make_user(Role.INSTRUCTOR))
    )

    assert re.search(pattern, title) is None  # the document says it is invalid...
    assert response.status_code == 422  # ...and the API refuses it
    assert re.search(pattern, "Algebra 1") is not None
