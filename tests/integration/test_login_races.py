"""A login racing a password change (issue 17, finding 4): real commits, two threads.

The login checks the old password while the change commits; whatever order the database then
sees, the login's tokens never work after the change and the old password's hash never comes
back (a login rehashing a weak hash used to write the old password over the new one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from apiflask import APIFlask
from argon2 import PasswordHasher
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.auth import passwords
from app.auth.models import User
from tests.conftest import PASSWORD, bearer

NEW_PASSWORD = "a brand new passphrase for the race"  # pragma: allowlist secret (a test password)
WAIT = 10


def login(app: APIFlask, email: str, password: str = PASSWORD) -> Any:
    return app.test_client().post("/auth/login", json={"email": email, "password": password})


def still_works(app: APIFlask, pair: dict[str, str]) -> bool:
    client = app.test_client()
    me = client.get("/auth/me", headers=bearer(pair["access_token"])).status_code
    refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    return me == 200 or refreshed.status_code == 200


@pytest.mark.commits
@pytest.mark.parametrize("weak_hash", [False, True], ids=["current hash", "weak hash to rehash"])
def test_a_login_with_the_old_password_racing_a_change_never_outlives_it(
    app: APIFlask,
    engine: Engine,
    make_user: Callable[..., User],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
    weak_hash: bool,
) -> None:
    user = make_user()
    if weak_hash:
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024).hash(PASSWORD)
    db_session.commit()
    email = user.email
    token = login(app, email).get_json()["access_token"]

    verified, changed = threading.Event(), threading.Event()
    real_verify = passwords.verify_password

    def verify_then_wait_for_the_change(stored: str | None, password: str) -> bool:
        result = real_verify(stored, password)
        if threading.current_thread().name == "login" and not verified.is_set():
            verified.set()  # the old password checked out; now the change commits
            changed.wait(WAIT)
        return result

    monkeypatch.setattr(passwords, "verify_password", verify_then_wait_for_the_change)
    raced: list[Any] = []
    racer = threading.Thread(target=lambda: raced.append(login(app, email)), name="login")
    racer.start()
    try:
        assert verified.wait(WAIT)
        change = app.test_client().post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(token),
        )
        assert change.status_code == 204
    finally:
        changed.set()
        racer.join(WAIT)

    (answer,) = raced
    assert answer.status_code in (200, 401)
    if answer.status_code == 200:
        assert not still_works(app, answer.get_json())
    with Session(engine) as fresh:
        stored = fresh.get(User, user.id)
        assert stored is not None
        assert real_verify(stored.password_hash, NEW_PASSWORD)
        assert not real_verify(stored.password_hash, PASSWORD)
    assert login(app, email).status_code == 401
    assert login(app, email, NEW_PASSWORD).status_code == 200


@pytest.mark.commits
def test_a_login_racing_a_change_to_the_same_password_it_offers_succeeds(
    app: APIFlask,
    make_user: Callable[..., User],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hash changes under the login, but the offered password is the new one: the login
    checks it again against the new hash and is let in, with tokens that work."""
    user = make_user()
    db_session.commit()
    token = login(app, user.email).get_json()["access_token"]
    real_verify = passwords.verify_password
    calls: list[str | None] = []

    changes: list[int] = []

    def change() -> None:
        response = app.test_client().post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(token),
        )
        changes.append(response.status_code)

    def change_during_the_first_check(stored: str | None, password: str) -> bool:
        calls.append(stored)
        if len(calls) == 1:  # another thread: a request here would share this one's session
            changer = threading.Thread(target=change)
            changer.start()
            changer.join(WAIT)
            return real_verify(stored, PASSWORD)  # as if NEW_PASSWORD matched the old hash
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_password", change_during_the_first_check)

    answer = login(app, user.email, NEW_PASSWORD)

    assert changes == [204]
    assert answer.status_code == 200
    assert len(calls) == 3  # the change's check, the login's first check, then its second
    monkeypatch.undo()
    assert still_works(app, answer.get_json())


@pytest.mark.commits
def test_of_two_racing_password_changes_the_second_to_lock_is_refused(
    app: APIFlask,
    make_user: Callable[..., User],
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both changes check the same current password; the one that locks the row second finds
    a hash it did not check and answers 403 instead of overwriting the first change."""
    user = make_user()
    db_session.commit()
    token = login(app, user.email).get_json()["access_token"]
    real_verify = passwords.verify_password
    answers: dict[str, int] = {}

    def change(name: str, new_password: str) -> None:
        response = app.test_client().post(
            "/auth/password",
            json={"current_password": PASSWORD, "new_password": new_password},
            headers=bearer(token),
        )
        answers[name] = response.status_code

    def let_the_other_change_commit_first(stored: str | None, password: str) -> bool:
        if threading.current_thread().name == "slow" and "fast" not in answers:
            fast = threading.Thread(target=change, args=("fast", NEW_PASSWORD), name="fast")
            fast.start()
            fast.join(WAIT)
        return real_verify(stored, password)

    monkeypatch.setattr(passwords, "verify_password", let_the_other_change_commit_first)
    slow = threading.Thread(target=change, args=("slow", NEW_PASSWORD + " two"), name="slow")
    slow.start()
    slow.join(WAIT)

    assert answers == {"fast": 204, "slow": 403}
    monkeypatch.undo()
    assert login(app, user.email, NEW_PASSWORD).status_code == 200
