"""Object storage: a local directory or any S3-compatible store, behind one interface.

`STORAGE_URL` picks the backend: `file://instance/storage` (relative to the working
directory), `file:///srv/mastery/storage` (absolute), or `s3://bucket/optional/prefix`
(optionally `?addressing_style=path` for stores such as MinIO that do not serve
virtual-hosted buckets). The application's store is `get_storage()`.
"""

from __future__ import annotations

from typing import cast, get_args
from urllib.parse import parse_qsl, urlsplit

from flask import Flask, current_app

from app.config import Settings
from app.storage.base import (
    InvalidKey,
    ObjectNotFound,
    Storage,
    StorageConfigError,
    StorageError,
    check_key,
)
from app.storage.local import LocalStorage
from app.storage.s3 import AddressingStyle, S3Storage

__all__ = [
    "InvalidKey",
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "build_storage",
    "check_key",
    "get_storage",
    "init_app",
]

EXTENSION_KEY = "mastery.storage"


def build_storage(settings: Settings) -> Storage:
    """The backend `settings.storage_url` names; `StorageConfigError` says what is wrong."""
    url = settings.storage_url.strip()
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("file", "s3"):
        # Only the scheme is echoed: a mistyped URL could carry credentials.
        shown = f"{scheme.lower()}://" if separator else "a value without a scheme"
        raise StorageConfigError(
            f"STORAGE_URL must be file://<directory> or s3://<bucket>[/<prefix>], not {shown}"
        )
    if scheme.lower() == "file":
        if not rest or "?" in rest or "#" in rest:
            raise StorageConfigError(
                "STORAGE_URL file:// needs a directory, e.g. file://instance/storage"
            )
        return LocalStorage(rest)
    return _s3_storage(url)


def _s3_storage(url: str) -> S3Storage:
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password or parts.port or parts.fragment:
        raise StorageConfigError(
            "STORAGE_URL s3:// needs a bucket name and nothing else before the path, e.g. "
            "s3://mastery-materials/prod; credentials and endpoint come from the AWS_* "
            "environment variables"
        )
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    style = options.pop("addressing_style", "auto")
    if options or style not in get_args(AddressingStyle):
        raise StorageConfigError(
            "STORAGE_URL s3:// accepts one option, addressing_style=auto|virtual|path"
        )
    return S3Storage(parts.netloc, parts.path, addressing_style=cast(AddressingStyle, style))


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION_KEY] = build_storage(settings)


def get_storage(app: Flask | None = None) -> Storage:
    """The store of `app` (default: the current application)."""
    storage: Storage = (app or current_app).extensions[EXTENSION_KEY]
    return storage
