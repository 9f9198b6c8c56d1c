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
class Artifact:
    sha256: str
    bytes: int

    def as_json(self) -> dict[str, object]:
        return {"sha256": self.sha256, "bytes": self.bytes}


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

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "format": FORMAT,
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
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            document = json.loads(text)
            if document.get("format") != FORMAT:
                raise BackupError(
                    f"manifest format {document.get('format')!r} is not supported "
                    f"(this version reads format {FORMAT})"
                )
            return cls(
                id=str(document["id"]),
                created_at=datetime.fromisoformat(document["created_at"]),
                app_version=str(document["app_version"]),
                migration_revision=document["migration_revision"],
                server_version=str(document["server_version"]),
                artifacts={
                    name: Artifact(str(a["sha256"]), int(a["bytes"]))
                    for name, a in document["artifacts"].items()
                },
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
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise BackupError(f"manifest.json is damaged: {error!r}") from error

    @property
    def size(self) -> int:
        return sum(artifact.bytes for artifact in self.artifacts.values())
