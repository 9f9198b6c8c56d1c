"""Admin routes: thin wrappers over `service`."""

from __future__ import annotations

import uuid
from typing import Any

from apiflask import APIBlueprint

from app.admin import service
from app.admin.schemas import UserPatchIn
from app.auth.decorators import authenticated, current
from app.auth.models import Role
from app.auth.schemas import UserOut
from app.db import get_session

bp = APIBlueprint("admin", __name__, url_prefix="/admin", tag="Admin")


@bp.patch("/users/<uuid:user_id>")
@authenticated(Role.ADMIN)
@bp.input(UserPatchIn, arg_name="body")
@bp.output(UserOut, description="The updated account")
@bp.doc(
    responses={
        400: "Malformed JSON body",
        404: "No such user",
        409: "An administrator cannot change their own account",
        415: "The body is not application/json",
    }
)
def update_user(user_id: uuid.UUID, body: UserPatchIn) -> Any:
    """Change a user's role or deactivate them (their tokens stop working at once)."""
    return service.update_user(get_session(), current(), user_id, body.role, body.is_active)
