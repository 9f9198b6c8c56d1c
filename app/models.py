"""Every mapped table, imported in one place so Alembic and tests see the whole schema."""

from app.audit.models import AuditRecord
from app.auth.models import RefreshFamily, RefreshToken, SigningKey, User
from app.content.models import Course, Skill
from app.db import Base

__all__ = [
    "AuditRecord",
    "Base",
    "Course",
    "RefreshFamily",
    "RefreshToken",
    "SigningKey",
    "Skill",
    "User",
]
