"""Skill material uploads: what is accepted, the size limit, storage and rows kept in step,
who may upload and list, the audit trail, and the context handed to item generation."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import TestResponse, encode_multipart

from app.audit.models import AuditRecord
from app.auth.models import Role, User
from app.content import materials
from app.content.models import Course, CourseStatus, Material
from app.storage import LocalStorage, StorageError

MAX = 1024 * 1024  # the test profile's MATERIAL_MAX_BYTES (the default)
NOTES = "# Fractions\n\nA fraction names parts of a whole: ½ is one of two equal parts.\n"


@pytest.fixture
def author(make_user: Callable[..., User]) -> User:
    return make_user(Role.INSTRUCTOR)


@pytest.fixture
def course(make_course: Callable[..., Course], author: User) -> Course:
    return make_course(owner=author, status=CourseStatus.PUBLISHED)


@pytest.fixture
def storage(app: APIFlask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    """A store of this test's own, so "nothing was stored" can be checked exactly."""
    store = LocalStorage(tmp_path / "storage")
    monkeypatch.setitem(app.extensions, "mastery.storage", store)
    return store


@pytest.fixture
def headers(author: User, as_user: Callable[[User], dict[str, str]]) -> dict[str, str]:
    return as_user(author)


def upload(
    client: FlaskClient,
    skill_id: uuid.UUID,
    headers: dict[str, str],
    content: bytes = NOTES.encode(),
    filename: str = "notes.md",
    content_type: str = "text/markdown",
) -> TestResponse:
    # Encoded in memory: the test client spools bodies over 500 kB to a file it never closes.
    boundary, body = encode_multipart(
        MultiDict({"file": FileStorage(io.BytesIO(content), filename, content_type=content_type)})
    )
    return client.post(
        f"/skills/{skill_id}/materials",
        data=body,
        headers=headers,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def stored_files(storage: LocalStorage) -> list[Path]:
    return [p for p in storage.root.rglob("*") if p.is_file()] if storage.root.exists() else []


def material_rows(db_session: Session, course: Course) -> list[Material]:
    statement = select(Material).where(Material.skill_id == course.skills[0].id)
    return list(db_session.scalars(statement))


def test_author_uploads_markdown_and_row_object_and_hash_agree(
    client: FlaskClient,
    course: Course,
    author: User,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
) -> None:
    skill_id = course.skills[0].id
    content = NOTES.encode()

    response = upload(client, skill_id, headers, content)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {
        "id",
        "skill_id",
        "filename",
        "content_type",
        "size_bytes",
        "sha256",
        "created_at",
    }
    assert body["skill_id"] == str(skill_id)
    assert body["filename"] == "notes.md"
    assert body["content_type"] == "text/markdown"
    assert body["size_bytes"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    row = db_session.get(Material, uuid.UUID(body["id"]))
    assert row is not None
    assert row.uploaded_by == author.id
    assert row.storage_key == f"materials/{skill_id}/{body['id']}.md"
    assert storage.get(row.storage_key) == content
    assert stored_files(storage) == [storage.path(row.storage_key)]


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("notes.md", "application/octet-stream", "text/markdown"),
        ("notes.MARKDOWN", "application/octet-stream", "text/markdown"),
        ("notes.txt", "application/octet-stream", "text/plain"),
        ("notes", "text/plain; charset=utf-8", "text/plain"),
        ("notes.txt", "text/x-markdown", "text/markdown"),
    ],
)
def test_type_comes_from_the_part_or_from_the_extension_when_untyped(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    filename: str,
    content_type: str,
    expected: str,
) -> None:
    response = upload(
        client, course.skills[0].id, headers, filename=filename, content_type=content_type
    )

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["content_type"] == expected
    extension = "md" if expected == "text/markdown" else "txt"
    assert [p.suffix for p in stored_files(storage)] == [f".{extension}"]


def test_client_paths_are_stripped_from_the_file_name(
    client: FlaskClient, course: Course, headers: dict[str, str], storage: LocalStorage
) -> None:
    response = upload(client, course.skills[0].id, headers, filename="../../etc/evil.txt")

    assert response.status_code == 201
    assert response.get_json()["filename"] == "evil.txt"
    assert all(p.is_relative_to(storage.root) for p in stored_files(storage))


def test_a_file_of_exactly_the_limit_is_accepted(
    client: FlaskClient, course: Course, headers: dict[str, str], storage: LocalStorage
) -> None:
    """MAX_CONTENT_LENGTH is also 1 MiB: the route lifts it for the multipart framing."""
    response = upload(client, course.skills[0].id, headers, b"a" * MAX, "big.txt", "text/plain")

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["size_bytes"] == MAX


@pytest.mark.parametrize("size", [MAX + 1, 2 * MAX], ids=["one byte over", "body over"])
def test_a_file_over_the_limit_is_413_and_nothing_is_stored(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
    size: int,
) -> None:
    response = upload(client, course.skills[0].id, headers, b"a" * size, "big.txt", "text/plain")

    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"].endswith("/material-too-large")
    assert problem["max_bytes"] == MAX
    assert material_rows(db_session, course) == []
    assert stored_files(storage) == []


@pytest.mark.parametrize(
    ("content", "filename", "content_type"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "diagram.png", "image/png"),
        (b"\x7fELF\x02\x01\x01\x00", "tool.bin", "application/octet-stream"),
        (b"plain words", "notes", "application/octet-stream"),
        (b"plain words", "notes.pdf", "application/pdf"),
        (b"caf\xe9 au lait", "latin1.txt", "text/plain"),
        (b"text\x00with a NUL", "nul.txt", "text/plain"),
        (b"caf\xe9", "latin1.txt", "text/plain; charset=iso-8859-1"),
    ],
    ids=["png", "binary", "untyped-no-extension", "pdf", "not-utf8", "nul", "latin1-charset"],
)
def test_anything_but_utf8_text_or_markdown_is_415_and_nothing_is_stored(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
    content: bytes,
    filename: str,
    content_type: str,
) -> None:
    response = upload(client, course.skills[0].id, headers, content, filename, content_type)

    assert response.status_code == 415, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/unsupported-material")
    assert material_rows(db_session, course) == []
    assert stored_files(storage) == []


def test_a_json_body_is_415(client: FlaskClient, course: Course, headers: dict[str, str]) -> None:
    response = client.post(
        f"/skills/{course.skills[0].id}/materials", json={"file": NOTES}, headers=headers
    )

    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


# Bodies are built per run: the client closes a file it sent, and a parameter is built once per
# process, so a second pytest run in it (mutation testing's) would send a closed file.
@pytest.mark.parametrize(
    "body",
    [
        dict,
        lambda: {"upload": (io.BytesIO(b"notes"), "notes.txt", "text/plain")},
        lambda: {"file": "not a file part"},
        lambda: {"file": (io.BytesIO(b"notes"), "", "text/plain")},
    ],
    ids=["no parts", "wrong field", "text field", "no file name"],
)
def test_a_missing_file_part_is_422(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    body: Callable[[], dict[str, Any]],
) -> None:
    response = client.post(
        f"/skills/{course.skills[0].id}/materials",
        data=body(),
        headers=headers,
        content_type="multipart/form-data",
    )

    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert "file" in {error["field"] for error in response.get_json()["errors"]}
    assert stored_files(storage) == []


def test_an_empty_file_is_422(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
) -> None:
    response = upload(client, course.skills[0].id, headers, b"", "empty.txt", "text/plain")

    assert response.status_code == 422
    assert response.get_json()["errors"] == [
        {"location": "files", "field": "file", "messages": ["the file is empty"]}
    ]
    assert material_rows(db_session, course) == []
    assert stored_files(storage) == []


def test_an_unknown_skill_is_404(
    client: FlaskClient, headers: dict[str, str], storage: LocalStorage
) -> None:
    response = upload(client, uuid.uuid4(), headers)

    assert response.status_code == 404
    assert stored_files(storage) == []


@pytest.mark.parametrize(
    ("role", "status", "course_status"),
    [
        (Role.INSTRUCTOR, 403, CourseStatus.PUBLISHED),
        (Role.INSTRUCTOR, 404, CourseStatus.DRAFT),
        (Role.LEARNER, 403, CourseStatus.PUBLISHED),
        (Role.ADMIN, 201, CourseStatus.DRAFT),
    ],
    ids=["other instructor", "other instructor, draft", "learner", "admin"],
)
def test_only_the_owner_or_an_admin_may_upload(
    client: FlaskClient,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
    storage: LocalStorage,
    role: Role,
    status: int,
    course_status: CourseStatus,
) -> None:
    course = make_course(status=course_status)

    response = upload(client, course.skills[0].id, as_user(make_user(role)))

    assert response.status_code == status, response.get_json()
    assert len(stored_files(storage)) == (1 if status == 201 else 0)


def test_anonymous_upload_is_401(
    client: FlaskClient, course: Course, storage: LocalStorage
) -> None:
    response = upload(client, course.skills[0].id, {})

    assert response.status_code == 401
    assert stored_files(storage) == []


def test_an_upload_is_audited(
    client: FlaskClient,
    course: Course,
    author: User,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
) -> None:
    body = upload(client, course.skills[0].id, headers).get_json()

    record = db_session.scalars(
        select(AuditRecord).where(AuditRecord.action == "material.uploaded")
    ).one()
    assert record.actor_id == author.id
    assert (record.target_type, record.target_id) == ("material", body["id"])
    assert record.request_id
    assert record.details == {
        "skill_id": str(course.skills[0].id),
        "filename": "notes.md",
        "size_bytes": body["size_bytes"],
        "sha256": body["sha256"],
    }


class BrokenStore(LocalStorage):
    """A store whose writes (and optionally deletes) fail, as a full disk or dead S3 would."""

    def __init__(self, root: Path, *, fail_put: bool = True, fail_delete: bool = False) -> None:
        super().__init__(root)
        self.fail_put, self.fail_delete = fail_put, fail_delete

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.fail_put:
            raise StorageError("disk full")
        super().put(key, data, content_type)

    def delete(self, key: str) -> None:
        if self.fail_delete:
            raise StorageError("delete refused")
        super().delete(key)


def test_a_storage_failure_is_503_and_writes_no_row(
    client: FlaskClient,
    app: APIFlask,
    course: Course,
    headers: dict[str, str],
    db_session: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.extensions, "mastery.storage", BrokenStore(tmp_path))

    response = upload(client, course.skills[0].id, headers)

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"].endswith("/storage-unavailable")
    assert response.headers["Retry-After"] == "30"
    assert material_rows(db_session, course) == []
    assert (
        db_session.scalars(
            select(AuditRecord).where(AuditRecord.action == "material.uploaded")
        ).all()
        == []
    )


def test_a_failed_commit_deletes_the_stored_object(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = upload(client, course.skills[0].id, headers).get_json()
    # A second upload reusing the first one's id fails on the real primary key at commit.
    monkeypatch.setattr(materials, "new_id", lambda: uuid.UUID(first["id"]))

    response = upload(client, course.skills[0].id, headers, b"second", "second.txt", "text/plain")

    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert [row.id for row in material_rows(db_session, course)] == [uuid.UUID(first["id"])]
    assert [p.suffix for p in stored_files(storage)] == [".md"]  # the .txt object is gone


def test_an_object_that_cannot_be_cleaned_up_is_logged(
    client: FlaskClient,
    app: APIFlask,
    course: Course,
    headers: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BrokenStore(tmp_path, fail_put=False, fail_delete=True)
    monkeypatch.setitem(app.extensions, "mastery.storage", store)
    first = upload(client, course.skills[0].id, headers).get_json()
    monkeypatch.setattr(materials, "new_id", lambda: uuid.UUID(first["id"]))

    with caplog.at_level(logging.ERROR, logger="app.content.materials"):
        response = upload(client, course.skills[0].id, headers, b"x", "x.txt", "text/plain")

    assert response.status_code == 500
    assert "orphaned object materials/" in caplog.text


def test_author_lists_materials_newest_first_in_pages(
    client: FlaskClient, course: Course, headers: dict[str, str], storage: LocalStorage
) -> None:
    skill_id = course.skills[0].id
    ids = [
        upload(
            client, skill_id, headers, f"part {n}".encode(), f"p{n}.txt", "text/plain"
        ).get_json()["id"]
        for n in range(3)
    ]

    first = client.get(f"/skills/{skill_id}/materials?limit=2", headers=headers).get_json()
    rest = client.get(
        f"/skills/{skill_id}/materials",
        query_string={"limit": 2, "cursor": first["next_cursor"]},
        headers=headers,
    ).get_json()

    assert [m["id"] for m in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None
    assert first["items"][0]["filename"] == "p2.txt"


@pytest.mark.parametrize(
    ("role", "status"), [(Role.LEARNER, 403), (Role.INSTRUCTOR, 403), (Role.ADMIN, 200)]
)
def test_only_the_owner_or_an_admin_lists_materials(
    client: FlaskClient,
    course: Course,
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
    role: Role,
    status: int,
) -> None:
    response = client.get(
        f"/skills/{course.skills[0].id}/materials", headers=as_user(make_user(role))
    )

    assert response.status_code == status


def test_the_upload_is_documented_as_multipart(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    operation = spec["paths"]["/skills/{skill_id}/materials"]

    body = operation["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body == {"$ref": "#/components/schemas/MaterialUpload"}
    upload_schema = spec["components"]["schemas"]["MaterialUpload"]
    assert upload_schema["required"] == ["file"]
    assert upload_schema["properties"]["file"]["format"] == "binary"


class TestMaterialContext:
    """What item generation receives: the newest materials first, within a character budget."""

    @pytest.fixture
    def skill_id(
        self,
        client: FlaskClient,
        course: Course,
        headers: dict[str, str],
        storage: LocalStorage,
    ) -> uuid.UUID:
        skill_id = course.skills[0].id
        for name, text in [("old.md", "Oldest notes."), ("new.txt", "\ufeffNewest notes.\n")]:
            response = upload(client, skill_id, headers, text.encode(), name, "text/plain")
            assert response.status_code == 201
        return skill_id

    def test_newest_first_with_file_names(
        self, db_session: Session, storage: LocalStorage, skill_id: uuid.UUID
    ) -> None:
        text = materials.material_context(db_session, storage, skill_id, 10_000)

        assert text == "# new.txt\nNewest notes.\n\n# old.md\nOldest notes."

    @pytest.mark.parametrize("budget", [0, 1, 12, 25, 30])
    def test_never_exceeds_the_budget(
        self, db_session: Session, storage: LocalStorage, skill_id: uuid.UUID, budget: int
    ) -> None:
        full = materials.material_context(db_session, storage, skill_id, 10_000)

        text = materials.material_context(db_session, storage, skill_id, budget)

        assert text == full[:budget]

    def test_a_missing_object_is_skipped(
        self,
        db_session: Session,
        storage: LocalStorage,
        skill_id: uuid.UUID,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        newest = db_session.scalars(
            select(Material)
            .where(Material.skill_id == skill_id)
            .order_by(Material.created_at.desc())
        ).first()
        assert newest is not None
        storage.delete(newest.storage_key)

        text = materials.material_context(db_session, storage, skill_id, 10_000)

        assert text == "# old.md\nOldest notes."
        assert "missing from storage" in caplog.text

    def test_a_skill_without_material_has_no_context(
        self, db_session: Session, storage: LocalStorage
    ) -> None:
        assert materials.material_context(db_session, storage, uuid.uuid4(), 1000) == ""


@pytest.mark.parametrize("deleted", ["skill", "course"])
def test_deleting_a_skill_or_course_removes_its_materials_from_storage(
    client: FlaskClient,
    course: Course,
    headers: dict[str, str],
    storage: LocalStorage,
    db_session: Session,
    deleted: str,
) -> None:
    skill_id = course.skills[0].id
    for name in ("a.md", "b.txt"):
        assert upload(client, skill_id, headers, filename=name).status_code == 201
    assert len(stored_files(storage)) == 2

    path = f"/skills/{skill_id}" if deleted == "skill" else f"/courses/{course.id}"
    assert client.delete(path, headers=headers).status_code == 204

    assert stored_files(storage) == []
    assert db_session.scalars(select(Material)).all() == []
