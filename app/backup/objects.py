"""Object storage in a backup: every object in one tar.gz, and back into a store.

Members are the storage keys, sorted, with the content type in a PAX header. A restore
never extracts to the file system: each member is read and `put` through the target store,
whose key rules refuse anything that could escape its root.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from app.backup.errors import BackupError
from app.storage import InvalidKey, LocalStorage, S3Storage, Storage, StorageError, check_key

CONTENT_TYPE_HEADER = "MASTERY.content_type"
DEFAULT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ObjectsSummary:
    """How many objects, how many bytes, and a hash over every key and its content."""

    count: int
    bytes: int
    sha256: str

    def as_json(self) -> dict[str, object]:
        return {"count": self.count, "bytes": self.bytes, "sha256": self.sha256}


class _Digest:
    """sha256 over sorted `key<TAB>sha256(content)` lines: independent of archive layout."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0

    def add(self, key: str, data: bytes) -> None:
        self.lines.append(f"{key}\t{hashlib.sha256(data).hexdigest()}\n")
        self.size += len(data)

    def summary(self) -> ObjectsSummary:
        digest = hashlib.sha256("".join(sorted(self.lines)).encode())
        return ObjectsSummary(len(self.lines), self.size, digest.hexdigest())


def iter_objects(storage: Storage, exclude: Path | None = None) -> Iterator[tuple[str, bytes, str]]:
    """(key, bytes, content type) of every object in `storage`, in key order."""
    if isinstance(storage, LocalStorage):
        yield from _local_objects(storage, exclude)
    elif isinstance(storage, S3Storage):
        yield from _s3_objects(storage)
    else:
        raise BackupError(f"cannot list objects of {storage!r}")


def _local_objects(storage: LocalStorage, exclude: Path | None) -> Iterator[tuple[str, bytes, str]]:
    root = storage.root
    if not root.is_dir():
        return
    paths = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-"))
    for path in paths:
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue  # backups kept inside the storage root are not backed up again
        key = path.relative_to(root).as_posix()
        content_type = mimetypes.guess_type(path.name)[0] or DEFAULT_TYPE
        try:
            yield key, path.read_bytes(), content_type
        except OSError as error:
            raise BackupError(f"cannot read object {key!r}: {error.strerror}") from error


def _s3_objects(storage: S3Storage) -> Iterator[tuple[str, bytes, str]]:
    base = f"{storage.prefix}/" if storage.prefix else ""
    client = storage.client
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=storage.bucket, Prefix=base):
            for item in page.get("Contents", []):
                response = client.get_object(Bucket=storage.bucket, Key=item["Key"])
                yield (
                    item["Key"][len(base) :],
                    response["Body"].read(),
                    response.get("ContentType") or DEFAULT_TYPE,
                )
    except (BotoCoreError, ClientError) as error:
        raise BackupError(f"cannot read object storage {storage!r}: {error}") from error


def archive_objects(storage: Storage, path: Path, exclude: Path | None = None) -> ObjectsSummary:
    """Write every object of `storage` into the tar.gz at `path`."""
    digest = _Digest()
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        for key, data, content_type in iter_objects(storage, exclude):
            member = tarfile.TarInfo(key)
            member.size = len(data)
            member.mode = 0o644
            member.pax_headers = {CONTENT_TYPE_HEADER: content_type}
            archive.addfile(member, io.BytesIO(data))
            digest.add(key, data)
    return digest.summary()


def restore_objects(path: Path, storage: Storage) -> list[str]:
    """Put every archived object into `storage`; returns the keys written."""
    keys: list[str] = []
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                if not member.isfile():
                    raise BackupError(f"objects archive holds a non-file entry {member.name!r}")
                key = check_key(member.name)
                extracted = archive.extractfile(member)
                assert extracted is not None  # noqa: S101 - regular files always extract
                content_type = member.pax_headers.get(CONTENT_TYPE_HEADER, DEFAULT_TYPE)
                storage.put(key, extracted.read(), content_type)
                keys.append(key)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BackupError(f"objects archive is unreadable: {error}") from error
    except InvalidKey as error:
        raise BackupError(f"objects archive holds an unsafe key: {error}") from error
    except StorageError as error:
        raise BackupError(f"cannot write restored objects: {error}") from error
    return keys


def summarize(storage: Storage, keys: list[str]) -> ObjectsSummary:
    """Read `keys` back from `storage` and summarise them (the post-restore check)."""
    digest = _Digest()
    try:
        for key in keys:
            digest.add(key, storage.get(key))
    except StorageError as error:
        raise BackupError(f"cannot read restored object: {error}") from error
    return digest.summary()
