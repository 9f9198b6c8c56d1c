"""S3Storage against a real S3 API (moto's server on loopback), configured the way production
is: a `s3://bucket/prefix` STORAGE_URL and boto3's standard AWS_* environment variables."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import boto3
import pytest
from apiflask import APIFlask
from botocore.config import Config
from botocore.stub import Stubber
from flask.testing import FlaskClient

from app.auth.models import Role, User
from app.config import Settings
from app.content.models import Course
from app.storage import ObjectNotFound, S3Storage, StorageError, build_storage
from tools.processes import free_port

BUCKET = "mastery-test"


@pytest.fixture
def bucket(aws_env: str) -> str:
    """A fresh bucket per test (moto keeps state for the server's life)."""
    name = f"{BUCKET}-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(bucket: str) -> S3Storage:
    built = build_storage(Settings(_env_file=None, storage_url=f"s3://{bucket}/mastery/prod"))
    assert isinstance(built, S3Storage)
    return built


def test_round_trip_under_the_prefix_with_the_content_type(store: S3Storage, bucket: str) -> None:
    store.put("materials/s/a.md", b"# Notes\n", "text/markdown")

    assert store.exists("materials/s/a.md")
    assert store.get("materials/s/a.md") == b"# Notes\n"
    raw = boto3.client("s3").get_object(Bucket=bucket, Key="mastery/prod/materials/s/a.md")
    assert raw["ContentType"] == "text/markdown"

    store.delete("materials/s/a.md")

    assert not store.exists("materials/s/a.md")
    with pytest.raises(ObjectNotFound):
        store.get("materials/s/a.md")
    store.delete("materials/s/a.md")  # deleting again is fine


def test_check_passes_for_the_bucket_and_fails_for_a_missing_one(
    store: S3Storage, aws_env: str
) -> None:
    store.check()

    with pytest.raises(StorageError, match="not reachable"):
        S3Storage("no-such-bucket-here").check()


def test_reading_from_a_missing_bucket_is_a_storage_error(aws_env: str) -> None:
    with pytest.raises(StorageError) as raised:
        S3Storage("no-such-bucket-here").get("a.md")

    assert not isinstance(raised.value, ObjectNotFound)


def test_an_unreachable_store_fails_fast_with_storage_errors(aws_env: str) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=1, retries={"total_max_attempts": 1}),
    )
    dead = S3Storage(BUCKET, client=client)

    for operation in (
        lambda: dead.put("a.md", b"x", "text/markdown"),
        lambda: dead.get("a.md"),
        lambda: dead.exists("a.md"),
        lambda: dead.delete("a.md"),
        dead.check,
    ):
        with pytest.raises(StorageError):
            operation()


def test_a_refused_lookup_is_an_error_not_a_missing_object(aws_env: str) -> None:
    client = boto3.client("s3")
    store = S3Storage(BUCKET, client=client)
    with Stubber(client) as stub:
        stub.add_client_error("head_object", "AccessDenied", http_status_code=403)
        with pytest.raises(StorageError, match="AccessDenied"):
            store.exists("a.md")


def test_an_upload_through_the_api_lands_in_the_bucket(
    app: APIFlask,
    client: FlaskClient,
    store: S3Storage,
    make_course: Callable[..., Course],
    make_user: Callable[..., User],
    as_user: Callable[[User], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.extensions, "mastery.storage", store)
    author = make_user(Role.INSTRUCTOR)
    skill = make_course(owner=author).skills[0]

    response = client.post(
        f"/skills/{skill.id}/materials",
        data={"file": (io.BytesIO(b"Fractions."), "notes.txt", "text/plain")},
        headers=as_user(author),
        content_type="multipart/form-data",
    )

    assert response.status_code == 201, response.get_json()
    key = f"materials/{skill.id}/{response.get_json()['id']}.txt"
    assert store.get(key) == b"Fractions."
    assert client.get("/readyz").get_json()["checks"]["storage"] == "ok"
