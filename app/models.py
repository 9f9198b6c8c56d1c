"""Every mapped table, imported in one place so Alembic and tests see the whole schema."""

from app.audit.models import AuditRecord
from app.auth.models import RefreshFamily, RefreshToken, RevokedAccessToken, SigningKey, User
from app.content.models import Course, Item, Material, Skill
from app.db import Base
from app.jobs.models import Job
from app.learning.models import Attempt, Enrollment, PracticeSession, SkillState

__all__ = [
    "Attempt",
    "AuditRecord",
    "Base",
    "Course",
    "Enrollment",
    "Item",
    "Job",
    "Material",
    "PracticeSession",
    "RefreshFamily",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKey",
    "Skill",
    "SkillState",
    "User",
]
