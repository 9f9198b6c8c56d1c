"""Every mapped table, imported in one place so Alembic and tests see the whole schema."""

from app.audit.models import AuditRecord
from app.auth.models import RefreshFamily, RefreshToken, SigningKey, User
from app.content.models import Course, Item, Skill
from app.db import Base
from app.learning.models import Attempt, Enrollment, PracticeSession, SkillState

__all__ = [
    "Attempt",
    "AuditRecord",
    "Base",
    "Course",
    "Enrollment",
    "Item",
    "PracticeSession",
    "RefreshFamily",
    "RefreshToken",
    "SigningKey",
    "Skill",
    "SkillState",
    "User",
]
