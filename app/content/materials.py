"""Skill source material: text and markdown files that instructors upload for item generation.

The bytes live in object storage (`app.storage`) under `materials/<skill_id>/<material_id>.<ext>`;
the `materials` row holds what the API shows (name, type, size, SHA-256). Only the course's
owner and admins upload or list material; whoever cannot see the course gets 404.

What is accepted, and the answer otherwise:

- `text/plain` or `text/markdown` (also `application/octet-stream` or no type when the file
  name ends in `.txt`, `.md` or `.markdown`); anything else is 415.
- UTF-8 text only: bytes that do not decode, or that contain NUL, are not text in a media type
  this API supports, so they are 415 too (RFC 9110 lets 415 follow from inspecting the data).
- An empty file is 422; a file over `MATERIAL_MAX_BYTES` is 413 and nothing is stored.

The object is written first and the row committed second: a failed write leaves no row, and a
failed commit deletes the object, so storage holds no orphan of a request that failed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Sequence
from datetime import datetime

from apiflask.fields import UploadFile
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from app.audit.service import record as audit_record
from app.auth.models import User
from app.content.models import Material
from app.content.service import get_skill, require_editor
from app.db import new_id
from app.errors import ProblemError, validation_problem
from app.pagination import PageQuery, paginate
from app.storage import ObjectNotFound, Storage, StorageError
from app.validation import InputModel

logger = logging.getLogger(__name__)

# Canonical media type -> file extension of the stored object.
MEDIA_TYPES = {"text/plain": "txt", "text/markdown": "md"}
ALIASES = {"text/x-markdown": "text/markdown"}
BY_EXTENSION = {".txt": "text/plain", ".md": "text/markdown", ".markdown": "text/markdown"}
UNTYPED = {"", "application/octet-stream"}
TEXT_CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii"}
MAX_FILENAME = 255
# Multipart framing (boundaries, part headers, a long file name) on top of the file itself.
MULTIPART_OVERHEAD_BYTES = 16 * 1024
# The generation context reads at most this many of the newest materials.
CONTEXT_MATERIALS = 50


class MaterialUpload(InputModel):
    """`multipart/form-data` with one file part named `file`."""

    file: UploadFile


class MaterialOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    skill_id: uuid.UUID
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    created_at: datetime


class MaterialPage(BaseModel):
    items: list[MaterialOut]
    next_cursor: str | None


def request_limit(max_bytes: int) -> int:
    """The body limit of an upload request: the largest file plus multipart framing."""
    return max_bytes + MULTIPART_OVERHEAD_BYTES


def too_large(max_bytes: int) -> ProblemError:
    return ProblemError(
        f"The file is larger than the {max_bytes}-byte limit for material.",
        status=413,
        slug="material-too-large",
        extra={"max_bytes": max_bytes},
    )


def _unsupported(detail: str) -> ProblemError:
    return ProblemError(detail, status=415, slug="unsupported-material")


def safe_filename(raw: str | None) -> str:
    """The base name a client sent, without directories or control characters, ≤ 255 chars."""
    name = re.split(r"[/\\]", raw or "")[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    if len(name) > MAX_FILENAME:
        stem, extension = os.path.splitext(name)
        extension = extension[:16]
        name = stem[: MAX_FILENAME - len(extension)] + extension
    return name


def media_type(file: FileStorage, filename: str) -> str:
    """The accepted media type of the upload, from its part's Content-Type or its extension."""
    declared = ALIASES.get(file.mimetype, file.mimetype)
    charset = file.mimetype_params.get("charset", "utf-8").lower()
    if declared in MEDIA_TYPES:
        if charset not in TEXT_CHARSETS:
            raise _unsupported(f"Material must be UTF-8 text, not charset {charset!r}.")
        return declared
    if declared in UNTYPED:
        extension = "." + filename.rpartition(".")[2].lower() if "." in filename else ""
        if extension in BY_EXTENSION:
            return BY_EXTENSION[extension]
    raise _unsupported(
        "Material must be text/plain or text/markdown (or a .txt, .md or .markdown file); "
        f"got {declared or 'no type'}."
    )


def _read_text(file: FileStorage, max_bytes: int) -> bytes:
    data = file.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data:
        raise validation_problem("files", "file", "the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _unsupported("Material must be UTF-8 text; the file is not.") from error
    if "\x00" in text:
        raise _unsupported("Material must be text; the file contains NUL bytes.")
    return data


def upload_material(
    session: Session,
    storage: Storage,
    user: User,
    skill_id: uuid.UUID,
    file: FileStorage,
    max_bytes: int,
) -> Material:
    """Store an uploaded file for a skill and record it (audited)."""
    skill = get_skill(session, user, skill_id)
    require_editor(skill.course, user)
    filename = safe_filename(file.filename)
    content_type = media_type(file, filename)
    data = _read_text(file, max_bytes)
    material_id = new_id()
    material = Material(
        id=material_id,
        skill_id=skill.id,
        storage_key=f"materials/{skill.id}/{material_id}.{MEDIA_TYPES[content_type]}",
        filename=filename or f"material.{MEDIA_TYPES[content_type]}",
        content_type=content_type,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=user.id,
    )
    try:
        storage.put(material.storage_key, data, content_type)
    except StorageError as error:
        logger.warning("material upload: storage failed: %s", error)
        raise ProblemError(
            "The file could not be stored; try again later.",
            status=503,
            slug="storage-unavailable",
            headers={"Retry-After": "30"},
        ) from error
    session.add(material)
    audit_record(
        session,
        "material.uploaded",
        actor_id=user.id,
        target_type="material",
        target_id=str(material_id),
        details={
            "skill_id": str(skill.id),
            "filename": material.filename,
            "size_bytes": material.size_bytes,
            "sha256": material.sha256,
        },
    )
    try:
        session.commit()
    except Exception:
        session.rollback()
        discard_objects(storage, [material.storage_key])
        raise
    return material


def discard_objects(storage: Storage, keys: list[str]) -> None:
    """Remove objects no row refers to any more (an upload whose row failed, deleted skills).

    Nothing refers to them, so a failure is only logged with the key for an operator.
    """
    for key in keys:
        try:
            storage.delete(key)
        except StorageError as error:
            logger.error("material: orphaned object %s left in storage: %s", key, error)


def list_materials(
    session: Session, user: User, skill_id: uuid.UUID, query: PageQuery
) -> tuple[Sequence[Material], str | None]:
    """A page of a skill's materials, newest first (course owner and admins only)."""
    skill = get_skill(session, user, skill_id)
    require_editor(skill.course, user)
    statement = select(Material).where(Material.skill_id == skill.id)
    return paginate(session, statement, Material.created_at, Material.id, query)


def material_context(
    session: Session, storage: Storage, skill_id: uuid.UUID, budget_chars: int
) -> str:
    """The skill's newest materials as one text of at most `budget_chars` characters.

    Materials are taken newest first, each headed by its file name and separated by a blank
    line; the one that crosses the budget is cut at it and older ones are left out. An object
    missing from storage is skipped (and logged); a store that fails raises `StorageError`, so
    the caller (a job) can retry rather than generate without its context.
    """
    if budget_chars <= 0:
        return ""
    statement = (
        select(Material)
        .where(Material.skill_id == skill_id)
        .order_by(Material.created_at.desc(), Material.id.desc())
        .limit(CONTEXT_MATERIALS)
    )
    parts: list[str] = []
    remaining = budget_chars
    for material in session.scalars(statement):
        try:
            data = storage.get(material.storage_key)
        except ObjectNotFound:
            logger.warning("material %s is missing from storage; skipped", material.id)
            continue
        separator = "\n\n" if parts else ""
        text = data.decode("utf-8-sig", errors="replace").strip()
        part = f"{separator}# {material.filename}\n{text}"[:remaining]
        parts.append(part)
        remaining -= len(part)
        if remaining <= 0:
            break
    return "".join(parts)
