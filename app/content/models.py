"""Tables owned by content: courses, skills, items and the source material of skills."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, Float, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, new_id, utcnow


class CourseStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class ItemKind(enum.StrEnum):
    MCQ = "mcq"
    SHORT_ANSWER = "short_answer"


class ItemStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    RETIRED = "retired"


class ItemOrigin(enum.StrEnum):
    HUMAN = "human"
    AI = "ai"


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    return Enum(kind, name=name, values_callable=lambda members: [m.value for m in members])


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[CourseStatus] = mapped_column(
        _enum(CourseStatus, "course_status"), default=CourseStatus.DRAFT, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    skills: Mapped[list[Skill]] = relationship(
        back_populates="course", cascade="all, delete-orphan", passive_deletes=True
    )


class Skill(Base):
    __tablename__ = "skills"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    course: Mapped[Course] = relationship(back_populates="skills")
    items: Mapped[list[Item]] = relationship(
        back_populates="skill", cascade="all, delete-orphan", passive_deletes=True
    )


class Item(Base):
    """A question. Once published its scoring fields never change; a fix is a new version."""

    __tablename__ = "items"
    # The hot queries (migration 0007, docs/load-testing.md "Indexes"): a skill's items newest
    # first (item lists, an index scan with no sort) and a skill's bank for every /next. It
    # leads with skill_id, so it serves every lookup by skill alone too.
    __table_args__ = (Index("ix_items_skill_id_created_at_id", "skill_id", "created_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    skill_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"))
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind, "item_kind"))
    status: Mapped[ItemStatus] = mapped_column(
        _enum(ItemStatus, "item_status"), default=ItemStatus.DRAFT, index=True
    )
    origin: Mapped[ItemOrigin] = mapped_column(
        _enum(ItemOrigin, "item_origin"), default=ItemOrigin.HUMAN, index=True
    )
    prompt: Mapped[str] = mapped_column(Text)
    # mcq: [{"text": ..., "correct": bool}, ...]; short_answer: None
    choices: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    reference_answer: Mapped[str | None] = mapped_column(Text)
    rubric: Mapped[str | None] = mapped_column(Text)
    a: Mapped[float] = mapped_column(Float, default=1.0)  # IRT discrimination
    b: Mapped[float] = mapped_column(Float, default=0.0)  # IRT difficulty, updated by calibration
    calibration_attempts: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    previous_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("items.id", ondelete="SET NULL")
    )
    # The generation job that created an AI item: a redelivered job finds its items by it.
    source_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    skill: Mapped[Skill] = relationship(back_populates="items")


class Material(Base):
    """An uploaded text or markdown file about a skill; its bytes live in object storage."""

    __tablename__ = "materials"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    skill_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), index=True
    )
    storage_key: Mapped[str] = mapped_column(String(300), unique=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
