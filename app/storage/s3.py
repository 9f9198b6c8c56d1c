"""Any S3-compatible object store through boto3 (AWS S3, MinIO, Ceph, R2, moto...).

Credentials, region and endpoint come from boto3's standard configuration: environment
variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`,
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`), `~/.aws/config`, or an instance role. Nothing
secret ever passes through STORAGE_URL.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import ObjectNotFound, StorageError, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["auto", "virtual", "path"]

# A request that cannot connect in 3 s or stalls for 10 s is retried, at most 3 attempts in
# all (standard mode: exponential backoff with jitter), so an upload or a readiness probe
# against a dead store fails within seconds instead of hanging a worker.
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 3
NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


def client_config(addressing_style: AddressingStyle = "auto") -> Config:
    return Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": addressing_style},
    )


def _not_found(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


class S3Storage:
    """Objects in one bucket, under an optional key prefix (`s3://bucket/prefix`)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: S3Client | None = None,
        addressing_style: AddressingStyle = "auto",
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.addressing_style: AddressingStyle = addressing_style
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> S3Client:
        """Created on first use: resolving credentials may query an instance-metadata service,
        which application start-up (and every CLI command) should not wait for."""
        with self._lock:
            if self._client is None:
                # A session of our own: boto3's default session is not safe to share between
                # threads while clients are being created.
                session = boto3.session.Session()
                self._client = session.client("s3", config=client_config(self.addressing_style))
            return self._client

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=self.object_key(key), Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"could not write {key!r}: {error}") from error

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))
            return response["Body"].read()
        except ClientError as error:
            if _not_found(error):
                raise ObjectNotFound(key) from error
            raise StorageError(f"could not read {key!r}: {error}") from error
        except BotoCoreError as error:
            raise StorageError(f"could not read {key!r}: {error}") from error

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"could not delete {key!r}: {error}") from error

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as error:
            if _not_found(error):
                return False
            raise StorageError(f"could not look up {key!r}: {error}") from error
        except BotoCoreError as error:
            raise StorageError(f"could not look up {key!r}: {error}") from error
        return True

    def check(self) -> None:
        """The bucket exists and the credentials may use it (HeadBucket)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"bucket {self.bucket!r} is not reachable: {error}") from error
