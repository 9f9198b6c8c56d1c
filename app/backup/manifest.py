"""The manifest: what a backup holds and the numbers that prove a restore of it.

```json
{
  "format": 1,
  "id": "20261126T041548.123456Z-3f9a",
  "created_at": "2026-11-26T04:15:48.123456+00:00",
  "app_version": "0.1.0",
  "migration_revision": "0006",
  "server_version": "15.20",
  "consistency": "pg_dump --snapshot of the transaction that counted and hashed the tables",
  "artifacts": {"database.dump": {"sha256": "…", "bytes": 12345}, "objects.tar.gz": {…}},
  "tables": {"users": {"rows": 3, "sha256": "…"}, …},
  "objects": {"count": 2, "bytes": 345, "sha256": "…"},
  "seconds": {"database": 0.4, "objects": 0.1}
}
```

Format 2 is an encrypted backup (app/backup/crypto.py): the same document plus
`"encryption": {"algorithm": "AES-256-GCM", "key_id": "…"}`, and each artifact also names
the object actually stored, `"stored": {"name": "database.dump.enc", "sha256": "…",
"bytes": …}`. `sha256` and `bytes` stay those of the plaintext, so a restore checks the
decrypted file against them; `stored` lets `verify` name a damaged object before decrypting.
A version that reads only format 1 refuses an encrypted backup instead of misreading it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.backup.errors import BackupError
from app.backup.objects import ObjectsSummary
from app.backup.tables import TableStats

FORMAT = 1
ENCRYPTED_FORMAT = 2
ENCRYPTED_SUFFIX = ".enc"
DATABASE_ARTIFACT = "database.dump"
OBJECTS_ARTIFACT = "objects.tar.gz"
ID_PATTERN = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}$")
CHUNK = 1024 * 1024


def new_backup_id(now: datetime | None = None) -> str:
    """UTC time to the microsecond first, so ids sort by age (retention relies on it) even
    for backups made in the same second; a random tail keeps concurrent ones apart."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(2)}"


def is_backup_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


@dataclass(frozen=True)
class Stored:
    """The object an encrypted artifact is kept as: its name in the backup folder, checksum
    and size."""

    name: str
    sha256: str
    bytes: int

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class Artifact:
    sha256: str  # of the plaintext
    bytes: int
    stored: Stored | None = None  # set when the artifact is kept encrypted

    def as_json(self) -> dict[str, object]:
        document: dict[str, object] = {"sha256": self.sha256, "bytes": self.bytes}
        if self.stored is not None:
            document["stored"] = self.stored.as_json()
        return document

    @property
    def stored_name(self) -> str | None:
        return self.stored.name if self.stored is not None else None


@dataclass(frozen=True)
class Encryption:
    algorithm: str
    key_id: str

    def as_json(self) -> dict[str, object]:
        return {"algorithm": self.algorithm, "key_id": self.key_id}


def _artifact(document: dict[str, Any]) -> Artifact:
    stored = document.get("stored")
    return Artifact(
        str(document["sha256"]),
        int(document["bytes"]),
        (
            Stored(str(stored["name"]), str(stored["sha256"]), int(stored["bytes"]))
            if stored is not None
            else None
        ),
    )


def file_artifact(path: Path) -> Artifact:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Artifact(digest.hexdigest(), size)


@dataclass(frozen=True)
class Manifest:
    id: str
    created_at: datetime
    app_version: str
    migration_revision: str | None
    server_version: str
    artifacts: dict[str, Artifact]
    tables: dict[str, TableStats]
    objects: ObjectsSummary
    seconds: dict[str, float] = field(default_factory=dict)
    consistency: str = "pg_dump --snapshot of the transaction that counted and hashed the tables"
    encryption: Encryption | None = None

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "format": FORMAT if self.encryption is None else ENCRYPTED_FORMAT,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "app_version": self.app_version,
            "migration_revision": self.migration_revision,
            "server_version": self.server_version,
            "consistency": self.consistency,
            "artifacts": {name: a.as_json() for name, a in sorted(self.artifacts.items())},
            "tables": {name: t.as_json() for name, t in sorted(self.tables.items())},
            "objects": self.objects.as_json(),
            "seconds": self.seconds,
        }
        if self.encryption is not None:
            document["encryption"] = self.encryption.as_json()
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            document = json.loads(text)
            version = document.get("format")
            if version not in (FORMAT, ENCRYPTED_FORMAT):
                raise BackupError(
                    f"manifest format {version!r} is not supported "
                    f"(this version reads formats {FORMAT} and {ENCRYPTED_FORMAT})"
                )
            encryption = document.get("encryption")
            manifest = cls(
                id=str(document["id"]),
                created_at=datetime.fromisoformat(document["created_at"]),
                app_version=str(document["app_version"]),
                migration_revision=document["migration_revision"],
                server_version=str(document["server_version"]),
                artifacts={name: _artifact(a) for name, a in document["artifacts"].items()},
                tables={
                    name: TableStats(int(t["rows"]), str(t["sha256"]))
                    for name, t in document["tables"].items()
                },
                objects=ObjectsSummary(
                    int(document["objects"]["count"]),
                    int(document["objects"]["bytes"]),
                    str(document["objects"]["sha256"]),
                ),
                seconds={str(k): float(v) for k, v in document.get("seconds", {}).items()},
                consistency=str(document.get("consistency", "")),
                encryption=(
                    Encryption(str(encryption["algorithm"]), str(encryption["key_id"]))
                    if encryption is not None
                    else None
                ),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise BackupError(f"manifest.json is damaged: {error!r}") from error
        encrypted = version == ENCRYPTED_FORMAT
        if encrypted != (manifest.encryption is not None) or any(
            (artifact.stored is not None) != encrypted for artifact in manifest.artifacts.values()
        ):
            raise BackupError(
                "manifest.json is damaged: its format, encryption block and stored artifacts "
                "disagree"
            )
        return manifest

    @property
    def size(self) -> int:
        """Bytes kept in the store (the encrypted objects when the backup is encrypted)."""
        return sum(
            artifact.stored.bytes if artifact.stored is not None else artifact.bytes
            for artifact in self.artifacts.values()
        )
