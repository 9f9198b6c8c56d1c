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


def _locked_if_unchanged(session: Session, user: User, verified_hash: str) -> User | None:
    """The user row, locked (SELECT ... FOR UPDATE) until the commit, when its hash is still
    the one just verified; else None, with the lock released."""
    locked = session.get(User, user.id, with_for_update=True, populate_existing=True)
    if locked is not None and locked.password_hash == verified_hash:
        return locked
    session.rollback()  # no lock is held across the next Argon2 verification
    return None


def _verify_and_lock(session: Session, email: str, password: str) -> tuple[User | None, bool]:
    """(the account, whether `password` is its password), the row locked when it is.

    Argon2 runs before the lock, so a login never holds the row for its ~50 ms. A password
    change that committed meanwhile is seen once the lock is taken: the password is checked
    again against the new hash, so neither a login with the old password nor a rehash of it
    survives the change. A change waiting on the lock sets its cutoff after this login
    commits, which ends the login's tokens.
    """
    user: User | None = None
    for _attempt in range(2):
        user = session.scalar(select(User).where(User.email == email))
        seen = user.password_hash if user is not None else None
        if not passwords.verify_password(seen, password) or user is None or seen is None:
            return user, False
        locked = _locked_if_unchanged(session, user, seen)
        if locked is not None:
            return locked, True
    return user, False  # changed twice while verifying: refuse rather than keep chasing it


def login(session: Session, email: str, password: str) -> tokens.TokenPair:
    """Check the credentials and start a refresh family; every failure looks the same."""
    user, verified = _verify_and_lock(session, normalise_email(email), password)
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
    verified_hash = user.password_hash
    if not passwords.verify_password(verified_hash, current_password):
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
    new_hash = passwords.hash_password(new_password)  # before the lock: Argon2 takes ~50 ms
    # Locked from here to the commit: a racing login waits, then sees the new hash. A change
    # that committed first made this one's current password wrong.
    locked = _locked_if_unchanged(session, user, verified_hash)
    if locked is None:
        raise Forbidden(WRONG_PASSWORD, slug="wrong-password")
    user = locked
    user.password_hash = new_hash
    tokens.end_all_sessions(session, user, "password_changed")
    audit_record(
        session,
        "auth.password_changed",
        actor_id=user.id,
        target_type="user",
        target_id=str(user.id),
    )
    session.commit()
