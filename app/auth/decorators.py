"""The one decorator that guards routes: a valid access token and, optionally, a role."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from apiflask.scaffold import _annotate
from flask_jwt_extended import current_user

from app.auth.models import Role, User
from app.auth.tokens import verify_access_token
from app.errors import Forbidden

F = TypeVar("F", bound=Callable[..., Any])

SECURITY_SCHEME = "BearerAuth"


def authenticated(*roles: Role) -> Callable[[F], F]:
    """Require an access token of an active user, with one of `roles` when any are given.

    Admins pass every role check. Place it directly under the route decorator so that
    authentication is decided before the body is validated.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            verify_access_token()
            user = cast(User, current_user)
            if roles and user.role is not Role.ADMIN and user.role not in roles:
                raise Forbidden("Your role does not allow this operation.", slug="forbidden")
            return view(*args, **kwargs)

        responses: dict[int, str] = {401: "Missing, invalid or expired access token"}
        if roles:
            responses[403] = "The caller's role does not allow this operation"
        # Keep what the view's own @doc documents (its 400/404/409/415...): merge, not replace.
        documented = getattr(view, "_spec", {}).get("responses") or {}
        if isinstance(documented, dict):
            responses.update(documented)
        else:  # @doc(responses=[404, 409]) lists bare status codes
            responses.update({int(code): "" for code in documented})
        _annotate(guarded, security=SECURITY_SCHEME, responses=responses)
        return cast(F, guarded)

    return decorator


def current() -> User:
    """The authenticated user of the request (only inside an `authenticated` view)."""
    return cast(User, current_user)
