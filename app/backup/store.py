"""Where backups live: a local directory or an S3-compatible bucket, one folder per backup.

`<id>/database.dump`, `<id>/objects.tar.gz` and, written last, `<id>/manifest.json`: a
backup without a manifest is incomplete (still being written, or its creation failed) and is
never listed, verified, restored or counted by retention.

URLs: a plain directory path, `file://<directory>` or `s3://bucket[/prefix]`. S3
credentials, region and endpoint come from boto3's standard configuration (`AWS_*`
environment variables, ~/.aws, an instance role), as for object storage.

Every object written to S3 asks for server-side encryption (BACKUP_S3_SSE): `AES256`
(SSE-S3, the default), `aws:kms` (SSE-KMS, with BACKUP_S3_KMS_KEY_ID or the account's
`aws/s3` key), or `none` for an S3-compatible store without SSE. A bucket policy that denies
unencrypted puts then never rejects a backup. This protects the bucket's disks; client-side
encryption (app/backup/crypto.py) also protects against whoever can read the bucket.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from app.backup.errors import BackupError
from app.storage.s3 import client_config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MANIFEST = "manifest.json"
SSE_MODES = ("AES256", "aws:kms", "none")


class BackupStore(Protocol):
    def upload(self, backup_id: str, name: str, source: Path) -> None:
        """Copy `source` to `<backup_id>/<name>`."""

    def download(self, backup_id: str, name: str, destination: Path) -> None:
        """Copy `<backup_id>/<name>` to `destination`; BackupError naming it when missing."""

    def ids(self) -> list[str]:
        """Every backup folder, complete or not, sorted."""

    def has(self, backup_id: str, name: str) -> bool: ...

    def delete(self, backup_id: str) -> None:
        """Remove the backup's folder and everything in it."""

    def describe(self) -> str: ...


class LocalBackupStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def describe(self) -> str:
        return str(self.root)

    def _path(self, backup_id: str, name: str = "") -> Path:
        path = (self.root / backup_id / name).resolve()
        if not path.is_relative_to(self.root) or "/" in backup_id or backup_id in ("", ".", ".."):
            raise BackupError(f"not a backup id: {backup_id!r}")
        return path

    def upload(self, backup_id: str, name: str, source: Path) -> None:
        destination = self._path(backup_id, name)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".tmp-")
            os.close(descriptor)
            try:
                shutil.copyfile(source, temporary)
                os.replace(temporary, destination)  # readers never see half a file
            except BaseException:
                with suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            raise BackupError(f"cannot write {backup_id}/{name}: {error.strerror}") from error

    def download(self, backup_id: str, name: str, destination: Path) -> None:
        source = self._path(backup_id, name)
        if not source.is_file():
            raise BackupError(f"{backup_id}/{name} is missing from {self.root}")
        try:
            shutil.copyfile(source, destination)
        except OSError as error:
            raise BackupError(f"cannot read {backup_id}/{name}: {error.strerror}") from error

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def has(self, backup_id: str, name: str) -> bool:
        return self._path(backup_id, name).is_file()

    def delete(self, backup_id: str) -> None:
        shutil.rmtree(self._path(backup_id), ignore_errors=True)


def sse_arguments(sse: str = "AES256", kms_key_id: str | None = None) -> dict[str, str]:
    """boto3 ExtraArgs asking S3 to encrypt an object at rest; BackupError on a bad setting."""
    if sse not in SSE_MODES:
        raise BackupError(
            f"BACKUP_S3_SSE must be one of {', '.join(SSE_MODES)}, not {sse!r} "
            "(docs/data-management.md)"
        )
    if kms_key_id and sse != "aws:kms":
        raise BackupError("BACKUP_S3_KMS_KEY_ID is set: it needs BACKUP_S3_SSE=aws:kms")
    if sse == "none":
        return {}
    arguments = {"ServerSideEncryption": sse}
    if kms_key_id:
        arguments["SSEKMSKeyId"] = kms_key_id
    return arguments


class S3BackupStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: S3Client | None = None,
        *,
        sse: str = "AES256",
        kms_key_id: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._lock = threading.Lock()
        self.extra_args = sse_arguments(sse, kms_key_id)

    @property
    def client(self) -> S3Client:
        with self._lock:
            if self._client is None:
                session = boto3.session.Session()
                self._client = session.client("s3", config=client_config())
            return self._client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, backup_id: str, name: str = "") -> str:
        if "/" in backup_id or backup_id in ("", ".", ".."):
            raise BackupError(f"not a backup id: {backup_id!r}")
        relative = f"{backup_id}/{name}"
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def upload(self, backup_id: str, name: str, source: Path) -> None:
        try:
            # upload_file switches to multipart for large dumps by itself; ExtraArgs applies
            # the server-side encryption to every part.
            self.client.upload_file(
                str(source),
                self.bucket,
                self._key(backup_id, name),
                ExtraArgs=dict(self.extra_args),
            )
        except (BotoCoreError, ClientError) as error:
            raise BackupError(
                f"cannot write {backup_id}/{name} to {self.describe()}: {error}"
            ) from error

    def download(self, backup_id: str, name: str, destination: Path) -> None:
        if not self.has(backup_id, name):
            raise BackupError(f"{backup_id}/{name} is missing from {self.describe()}")
        try:
            self.client.download_file(self.bucket, self._key(backup_id, name), str(destination))
        except (BotoCoreError, ClientError) as error:
            raise BackupError(f"cannot read {backup_id}/{name}: {error}") from error

    def ids(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    found.append(common["Prefix"][len(base) :].rstrip("/"))
        except (BotoCoreError, ClientError) as error:
            raise BackupError(f"cannot list {self.describe()}: {error}") from error
        return sorted(found)

    def has(self, backup_id: str, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(backup_id, name))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise BackupError(f"cannot look up {backup_id}/{name}: {error}") from error
        except BotoCoreError as error:
            raise BackupError(f"cannot look up {backup_id}/{name}: {error}") from error
        return True

    def delete(self, backup_id: str) -> None:
        prefix = self._key(backup_id)
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):  # three artifacts: no batching needed
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
        except (BotoCoreError, ClientError) as error:
            raise BackupError(f"cannot delete {backup_id}: {error}") from error


def open_store(url: str, *, sse: str = "AES256", kms_key_id: str | None = None) -> BackupStore:
    """The store a BACKUP_URL / --to / --from value names; `sse` and `kms_key_id` (the
    BACKUP_S3_* settings) apply to S3 only."""
    url = url.strip()
    if not url:
        raise BackupError("no backup location: set BACKUP_URL or pass --to/--from")
    scheme, separator, rest = url.partition("://")
    if not separator:
        return LocalBackupStore(url)
    if scheme.lower() == "file":
        if not rest:
            raise BackupError("file:// needs a directory, e.g. file://instance/backups")
        return LocalBackupStore(rest)
    if scheme.lower() == "s3":
        parts = urlsplit(url)
        if not parts.hostname or parts.username or parts.password or parts.port or parts.query:
            raise BackupError(
                "s3:// takes a bucket and an optional prefix only, e.g. s3://mastery-backups/prod;"
                " credentials and endpoint come from the AWS_* environment variables"
            )
        return S3BackupStore(parts.netloc, parts.path, sse=sse, kms_key_id=kms_key_id)
    raise BackupError(f"a backup location is a directory, file://… or s3://…, not {scheme}://")
