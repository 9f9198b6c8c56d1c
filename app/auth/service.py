"""Registration, login and password change: plain functions over a session."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record as audit_record
from app.auth import passwords, security_log, tokens
from app.auth.models import Role, User
from app.errors import Conflict, Forbidden, Unauthorized, validation_problem
from app.observability import metrics

logger = logging.getLogger(__name__)

LOGIN_FAILED = "The e-mail address or password is incorrect."
WRONG_PASSWORD = "The current password is incorrect."  # noqa: S105 - a message, not a secret


def check_password_policy(password: str, email: str, field: str = "password") -> None:
    """Raise a 422 naming `field` when `password` breaks the policy (see `passwords`)."""
    problem = passwords.policy_violation(password, email)
    if problem is not None:
        raise validation_problem("json", field, f"The password {problem}.")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def register(
    session: Session, email: str, password: str, display_name: str, role: Role = Role.LEARNER
) -> User:
    """Create an account; a taken e-mail address is a 409 and leaves nothing behind."""
    email = normalise_email(email)
    check_password_policy(password, email)
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
        # The account id when there is one; nothing identifying (no e-mail) when there is not.
        security_log.failure("auth.login_failed", reason, user_id=user.id if user else None)
        metrics.record_login_failure(reason)
        raise Unauthorized(LOGIN_FAILED, slug="login-failed")
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    pair = tokens.start_family(session, user)
    session.commit()
    return pair


def change_password(session: Session, user: User, current_password: str, new_password: str) -> None:
    """Replace the password and end every session of the account, this one included.

    The new password is checked first (a 422 needs no Argon2 work and reveals nothing about
    the current one); a wrong current password is a 403 — not a 401, which clients read as
    "your token is bad" — and is audited like a failed login.
    """
    check_password_policy(new_password, user.email, "new_password")
    if new_password == current_password:
        raise validation_problem(
            "json", "new_password", "The new password must differ from the current one."
        )
    if not passwords.verify_password(user.password_hash, current_password):
        audit_record(
            session,
            "auth.password_change_failed",
            actor_id=user.id,
            target_type="user",
            target_id=str(user.id),
            details={"reason": "wrong_current_password"},
        )
        session.commit()
        raise Forbidden(WRONG_PASSWORD, slug="wrong-password")
    user.password_hash = passwords.hash_password(new_password)
    tokens.end_all_sessions(session, user, "password_changed")
    audit_record(
        session,
        "auth.password_changed",
        actor_id=user.id,
        target_type="user",
        target_id=str(user.id),
    )
    session.commit()
