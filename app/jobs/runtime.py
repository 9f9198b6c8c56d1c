"""What a job run needs from the application: the AI provider and the skill's material."""

from __future__ import annotations

import uuid

from flask import Flask
from sqlalchemy.orm import Session

from app.ai import Provider
from app.ai.runtime import ai_providers
from app.content.materials import material_context
from app.storage import get_storage

MATERIAL_BUDGET_CHARS = 12_000


def job_provider(app: Flask) -> Provider:
    """The provider for background work: full retries, no interactive time budget, and the
    circuit breaker it shares with grading and hints."""
    return ai_providers(app).background


def load_material(session: Session, skill_id: uuid.UUID) -> str:
    """The skill's uploaded material, newest first, within the generation context budget."""
    return material_context(session, get_storage(), skill_id, MATERIAL_BUDGET_CHARS)
