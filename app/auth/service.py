"""Registration and login: plain functions over a session."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record as audit_record
from app.auth import passwords, tokens
from app.auth.models import Role, User
from app.errors import Conflict, Unauthorized

logger = logging.getLogger(__name__)

LOGIN_FAILED = "The e-mail address or password is incorrect."


def normalise_email(email: str) -> str:
    return email.strip().lower()


def register(
    session: Session, email: str, password: str, display_name: str, role: Role = Role.LEARNER
) -> User:
    """Create an account; a taken e-mail address is a 409 and leaves nothing behind."""
    email = normalise_email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict("An account with this e-mail address already exists.", slug="email-taken")
    user = User(
        email=email,
        password_hash=passwords.hash_password(password),
        display_name=display_name.strip(),
        role=role,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as error:  # a concurrent registration won the race
        session.rollback()
        raise Conflict(
            "An account with this e-mail address already exists.", slug="email-taken"
        ) from error
    audit_record(
        session, "user.registered", actor_id=user.id, target_type="user", target_id=str(user.id)
    )
    session.commit()
    return user


def login(session: Session, email: str, password: str) -> tokens.TokenPair:
    """Check the credentials and start a refresh family; every failure looks the same."""
    user = session.scalar(select(User).where(User.email == normalise_email(email)))
    verified = passwords.verify_password(user.password_hash if user else None, password)
    if user is None or not verified or not user.is_active:
        reason = "unknown_email" if user is None else "inactive" if verified else "bad_password"
        # The audit record names the account (when there is one) and the reason, never the
        # e-mail address or password that were offered.
        audit_record(
            session,
            "auth.login_failed",
            actor_id=user.id if user else None,
            target_type="user" if user else None,
            target_id=str(user.id) if user else None,
            details={"reason": reason},
        )
        session.commit()
        logger.info("login failed: %s", reason)
        raise Unauthorized(LOGIN_FAILED, slug="login-failed")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    pair = tokens.start_family(session, user)
    session.commit()
    return pair
