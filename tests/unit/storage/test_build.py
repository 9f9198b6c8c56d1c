"""STORAGE_URL parsing and the application's store."""

from __future__ import annotations

from pathlib import Path

import pytest
from apiflask import APIFlask

from app import create_app
from app.config import Settings
from app.storage import (
    LocalStorage,
    S3Storage,
    StorageConfigError,
    build_storage,
    get_storage,
)
from app.storage.s3 import CONNECT_TIMEOUT_SECONDS, MAX_ATTEMPTS, READ_TIMEOUT_SECONDS


def build(url: str) -> object:
    return build_storage(Settings(_env_file=None, storage_url=url))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Static credentials, so boto3 never asks an instance-metadata service for some."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def test_file_url_with_a_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    store = build("file://instance/storage")

    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path.resolve() / "instance" / "storage"


def test_file_url_with_an_absolute_path(tmp_path: Path) -> None:
    store = build(f"file://{tmp_path}/objects")

    assert isinstance(store, LocalStorage)
    assert store.root == tmp_path.resolve() / "objects"


@pytest.mark.usefixtures("aws_env")
def test_s3_url_with_bucket_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")

    store = build("s3://mastery-materials/prod/uploads/")

    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix) == ("mastery-materials", "prod/uploads")
    assert store.object_key("materials/a.md") == "prod/uploads/materials/a.md"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert store.client is store.client  # one client, created on first use
    # botocore sets a Config's options as instance attributes, which its stubs do not declare.
    config = vars(store.client.meta.config)
    assert (config["connect_timeout"], config["read_timeout"]) == (
        CONNECT_TIMEOUT_SECONDS,
        READ_TIMEOUT_SECONDS,
    )
    assert config["retries"] == {"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}
    assert repr(store) == "S3Storage(bucket='mastery-materials', prefix='prod/uploads')"


@pytest.mark.usefixtures("aws_env")
def test_s3_url_without_a_prefix_and_with_path_addressing() -> None:
    store = build("s3://mastery-materials?addressing_style=path")

    assert isinstance(store, S3Storage)
    assert store.prefix == ""
    assert store.object_key("a.md") == "a.md"
    assert vars(store.client.meta.config)["s3"] == {"addressing_style": "path"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("instance/storage", "not a value without a scheme"),
        ("ftp://host/dir", "not ftp://"),
        ("https://user:secret@example.com/bucket", "not https://"),
        ("file://", "needs a directory"),
        ("file://dir?x=1", "needs a directory"),
        ("s3://", "needs a bucket"),
        ("s3:///prefix", "needs a bucket"),
        ("s3://key:secret@bucket/prefix", "needs a bucket"),
        ("s3://bucket:9000/prefix", "needs a bucket"),
        ("s3://bucket/prefix#frag", "needs a bucket"),
        ("s3://bucket?region=eu-west-1", "addressing_style"),
        ("s3://bucket?addressing_style=sideways", "addressing_style"),
    ],
)
def test_a_storage_url_that_cannot_be_understood_is_refused(url: str, message: str) -> None:
    with pytest.raises(StorageConfigError, match=message) as raised:
        build(url)

    assert "secret" not in str(raised.value)


def test_create_app_refuses_a_bad_storage_url() -> None:
    settings = Settings(_env_file=None, database_url="sqlite://", storage_url="nfs://x")

    with pytest.raises(StorageConfigError, match="STORAGE_URL"):
        create_app(settings)


def test_the_application_store_is_built_from_its_settings(bare_app: APIFlask) -> None:
    store = get_storage(bare_app)

    assert isinstance(store, LocalStorage)
    assert store.root == Path("instance/storage").resolve()
    with bare_app.app_context():
        assert get_storage() is store


def test_building_an_s3_store_touches_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials configured: resolving them would query 169.254.169.254 (refused here)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    app = create_app(
        Settings(_env_file=None, database_url="sqlite://", storage_url="s3://mastery-materials")
    )

    assert isinstance(get_storage(app), S3Storage)
