"""The load-test data set: `flask --app app seed load` builds courses, skills, items, accounts
and learner history in bulk, so a Locust run starts from a realistic database.

Everything is written with multi-row INSERTs (no ORM unit of work, no per-row round trip), and
every load account shares one Argon2id hash computed once: hashing costs ~20 ms, which for
5,000 learners would be 100 s of seeding. Accounts are named by role and number
(`learner-00042@load.mastery.test`), so each simulated user of a Locust run logs in as a
distinct identity and no load user is created by register calls inside the measured window.

The history (enrolments, sessions, attempts, ability posteriors) is produced by the real
adaptive engine on simulated answers, so skill states are consistent with their attempts.
"""

from __future__ import annotations

import enum
import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import JSON, func, insert, select
from sqlalchemy.orm import Session

from app.adaptive.estimation import AbilityPosterior
from app.adaptive.irt import probability
from app.adaptive.mastery import MasteryRule
from app.auth import passwords
from app.auth.models import Role, User
from app.config import Settings
from app.content.models import (
    Course,
    CourseStatus,
    Item,
    ItemKind,
    ItemOrigin,
    ItemStatus,
    Skill,
)
from app.db import get_session, utcnow
from app.learning.models import Attempt, Enrollment, PracticeSession, SkillState

LOAD_DOMAIN = "load.mastery.test"
# The load accounts' known password: load-test data only (`seed load` refuses hardened
# environments unless told the database exists for load testing).
DEFAULT_PASSWORD = "mastery-load-shared-password"  # noqa: S105  # pragma: allowlist secret
SHORT_ANSWER_SHARE = 0.2
COURSES_PER_LEARNER = 2
MASTERY = MasteryRule()


@dataclass(frozen=True)
class LoadSizes:
    """How much to build; the defaults are the issue's "realistic" data set."""

    courses: int = 20
    skills_per_course: int = 10
    items_per_skill: int = 100
    learners: int = 5_000
    instructors: int = 0  # 0: one per course (each owns one course)
    admins: int = 2
    attempts_per_learner: int = 10
    seed: int = 7

    @property
    def instructor_count(self) -> int:
        return self.instructors or self.courses


@dataclass(frozen=True)
class LoadSummary:
    users: int
    courses: int
    skills: int
    items: int
    enrollments: int
    sessions: int
    attempts: int


def load_email(role: Role, number: int) -> str:
    """The e-mail of load account `number` of `role` (Locust scenarios use the same rule)."""
    width = 5 if role is Role.LEARNER else 3
    return f"{role.value}-{number:0{width}d}@{LOAD_DOMAIN}"


def already_seeded(session: Session) -> bool:
    count = session.scalar(
        select(func.count()).select_from(User).where(User.email.like(f"%@{LOAD_DOMAIN}"))
    )
    return bool(count)


def _insert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Rows into `model`'s table with Postgres COPY (one stream, no per-row statement); other
    databases (SQLite in development) get a plain executemany."""
    if not rows:
        return
    table = model.__table__
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    columns = list(rows[0])
    encode = [_encoder(table.c[name].type) for name in columns]
    driver = session.connection().connection.driver_connection
    assert driver is not None  # noqa: S101 - a live connection has its driver connection
    names = ", ".join(f'"{name}"' for name in columns)  # our own column names, not input
    statement = f'COPY "{table.name}" ({names}) FROM STDIN'
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row([fn(row[name]) for fn, name in zip(encode, columns, strict=True)])


def _encoder(column_type: Any) -> Callable[[Any], Any]:
    """How COPY's text format takes a value of `column_type`: JSON as its text, enums by value."""
    if isinstance(column_type, JSON):
        return lambda value: None if value is None else json.dumps(value)
    return lambda value: value.value if isinstance(value, enum.Enum) else value


def _users(sizes: LoadSizes, password_hash: str, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for role, count in (
        (Role.ADMIN, sizes.admins),
        (Role.INSTRUCTOR, sizes.instructor_count),
        (Role.LEARNER, sizes.learners),
    ):
        for n in range(count):
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "email": load_email(role, n),
                    "password_hash": password_hash,
                    "display_name": f"Load {role.value} {n}",
                    "role": role,
                    "is_active": True,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    return rows


def _item_row(rng: random.Random, skill_id: uuid.UUID, n: int, now: datetime) -> dict[str, Any]:
    created = now - timedelta(seconds=n)  # distinct timestamps: stable pagination order
    common = {
        "id": uuid.uuid4(),
        "skill_id": skill_id,
        "status": ItemStatus.PUBLISHED,
        "origin": ItemOrigin.HUMAN if rng.random() < 0.8 else ItemOrigin.AI,
        "a": round(rng.uniform(0.6, 2.0), 3),
        "b": round(min(3.0, max(-3.0, rng.gauss(0.0, 1.0))), 3),
        "calibration_attempts": 0,
        "version": 1,
        "previous_version_id": None,
        "source_job_id": None,
        "created_at": created,
        "updated_at": created,
    }
    if rng.random() < SHORT_ANSWER_SHARE:
        return {
            **common,
            "kind": ItemKind.SHORT_ANSWER,
            "prompt": f"Load question {n}: explain the idea behind step {n % 7 + 1}.",
            "choices": None,
            "reference_answer": f"Step {n % 7 + 1} keeps both sides equal.",
            "rubric": "names the invariant\nexplains why it holds",
        }
    correct = rng.randrange(4)
    return {
        **common,
        "kind": ItemKind.MCQ,
        "prompt": f"Load question {n}: which option is right?",
        "choices": [{"text": f"option {c}", "correct": c == correct} for c in range(4)],
        "reference_answer": None,
        "rubric": None,
    }


def seed_load(session: Session, sizes: LoadSizes, password: str = DEFAULT_PASSWORD) -> LoadSummary:
    """Build the data set in `session` and commit it. The caller checks `already_seeded`."""
    rng = random.Random(sizes.seed)  # noqa: S311 - reproducible test data, not secrets
    now = utcnow()
    password_hash = passwords.hash_password(password)  # once, shared by every load account
    users = _users(sizes, password_hash, now)
    _insert(session, User, users)
    instructors = [u["id"] for u in users if u["role"] is Role.INSTRUCTOR]
    learners = [u["id"] for u in users if u["role"] is Role.LEARNER]

    courses, skills, items = [], [], []
    skills_of: dict[uuid.UUID, list[uuid.UUID]] = {}
    items_of: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for c in range(sizes.courses):
        course_id = uuid.uuid4()
        courses.append(
            {
                "id": course_id,
                "owner_id": instructors[c % len(instructors)],
                "title": f"Load course {c:02d}",
                "description": "Generated for load testing.",
                "status": CourseStatus.PUBLISHED,
                "created_at": now - timedelta(minutes=c),
                "updated_at": now,
            }
        )
        skills_of[course_id] = []
        for s in range(sizes.skills_per_course):
            skill_id = uuid.uuid4()
            skills_of[course_id].append(skill_id)
            skills.append(
                {
                    "id": skill_id,
                    "course_id": course_id,
                    "name": f"Skill {c:02d}.{s:02d}",
                    "description": "",
                    "created_at": now - timedelta(minutes=c, seconds=s),
                    "updated_at": now,
                }
            )
            bank = [_item_row(rng, skill_id, n, now) for n in range(sizes.items_per_skill)]
            items_of[skill_id] = bank
            items.extend(bank)
    _insert(session, Course, courses)
    _insert(session, Skill, skills)
    _insert(session, Item, items)

    history = _history(rng, sizes, learners, skills_of, items_of, now)
    _insert(session, Enrollment, history["enrollments"])
    _insert(session, SkillState, history["states"])
    _insert(session, PracticeSession, history["sessions"])
    _insert(session, Attempt, history["attempts"])
    session.commit()
    return LoadSummary(
        users=len(users),
        courses=len(courses),
        skills=len(skills),
        items=len(items),
        enrollments=len(history["enrollments"]),
        sessions=len(history["sessions"]),
        attempts=len(history["attempts"]),
    )


def _history(
    rng: random.Random,
    sizes: LoadSizes,
    learners: list[uuid.UUID],
    skills_of: dict[uuid.UUID, list[uuid.UUID]],
    items_of: dict[uuid.UUID, list[dict[str, Any]]],
    now: datetime,
) -> dict[str, list[dict[str, Any]]]:
    """Each learner: enrolled in up to two courses, one past session per course, answers drawn
    from the 2PL model at a learner's own true ability, the posterior updated by the engine."""
    out: dict[str, list[dict[str, Any]]] = {
        "enrollments": [],
        "states": [],
        "sessions": [],
        "attempts": [],
    }
    course_ids = list(skills_of)
    start = AbilityPosterior.start()
    per_course = max(1, math.ceil(sizes.attempts_per_learner / COURSES_PER_LEARNER))
    for learner in learners:
        true_theta = rng.gauss(0.0, 1.0)
        chosen = rng.sample(course_ids, min(COURSES_PER_LEARNER, len(course_ids)))
        for course_id in chosen:
            out["enrollments"].append(
                {"id": uuid.uuid4(), "user_id": learner, "course_id": course_id, "created_at": now}
            )
            if sizes.attempts_per_learner == 0 or not skills_of[course_id]:
                continue
            skill_id = rng.choice(skills_of[course_id])
            session_id = uuid.uuid4()
            posterior = start
            bank = items_of[skill_id]
            answered = rng.sample(bank, min(per_course, len(bank)))
            began = now - timedelta(days=rng.randint(1, 60))
            for n, item in enumerate(answered):
                correct = rng.random() < float(probability(true_theta, item["a"], item["b"]))
                posterior = posterior.update(item["a"], item["b"], correct)
                out["attempts"].append(
                    {
                        "id": uuid.uuid4(),
                        "session_id": session_id,
                        "user_id": learner,
                        "item_id": item["id"],
                        "response": 0 if item["kind"] is ItemKind.MCQ else "an earlier answer",
                        "correct": correct,
                        "score": 1.0 if correct else 0.0,
                        "feedback": "Correct." if correct else "Not quite.",
                        "graded_by": "exact",
                        "theta_after": posterior.theta,
                        "se_after": posterior.se,
                        "mastered_after": MASTERY.is_mastered(posterior.theta, posterior.se),
                        "attempts_after": n + 1,
                        "idempotency_key": None,
                        "created_at": began + timedelta(seconds=30 * n),
                    }
                )
            out["sessions"].append(
                {
                    "id": session_id,
                    "user_id": learner,
                    "skill_id": skill_id,
                    "pending_item_id": None,
                    "served": len(answered),
                    "created_at": began,
                }
            )
            recent = out["attempts"][len(out["attempts"]) - len(answered) :]
            correct_count = sum(1 for attempt in recent if attempt["correct"])
            out["states"].append(
                {
                    "id": uuid.uuid4(),
                    "user_id": learner,
                    "skill_id": skill_id,
                    "posterior": posterior.to_state(),
                    "theta": posterior.theta,
                    "se": posterior.se,
                    "attempts": len(answered),
                    "correct": correct_count,
                    "mastered": MASTERY.is_mastered(posterior.theta, posterior.se),
                    "updated_at": now,
                }
            )
    return out


def _hardened() -> bool:
    settings: Settings = current_app.extensions["mastery.settings"]
    return settings.is_hardened


@click.command("load")
@with_appcontext
@click.option("--courses", default=20, show_default=True, type=click.IntRange(1))
@click.option("--skills-per-course", default=10, show_default=True, type=click.IntRange(1))
@click.option("--items-per-skill", default=100, show_default=True, type=click.IntRange(1))
@click.option("--learners", default=5000, show_default=True, type=click.IntRange(1))
@click.option("--attempts-per-learner", default=10, show_default=True, type=click.IntRange(0))
@click.option("--admins", default=2, show_default=True, type=click.IntRange(1))
@click.option("--seed", "random_seed", default=7, show_default=True, help="Random seed.")
@click.option(
    "--password",
    envvar="LOAD_PASSWORD",
    default=DEFAULT_PASSWORD,
    show_default=True,
    help="The password every load account shares (env LOAD_PASSWORD).",
)
@click.option(
    "--confirm-load-environment",
    is_flag=True,
    help="Required in staging/production: this database exists for load testing.",
)
def seed_load_command(
    courses: int,
    skills_per_course: int,
    items_per_skill: int,
    learners: int,
    attempts_per_learner: int,
    admins: int,
    random_seed: int,
    password: str,
    confirm_load_environment: bool,
) -> None:
    """Build the load-test data set (docs/load-testing.md): courses, skills, items, accounts
    `<role>-<n>@load.mastery.test` sharing one password, and learner history."""
    if _hardened() and not confirm_load_environment:
        raise click.ClickException(
            "load accounts share one known password: in staging/production pass "
            "--confirm-load-environment, and only for a database that exists for load testing"
        )
    session = get_session()
    if already_seeded(session):
        raise click.ClickException("this database already has load accounts; use a fresh one")
    sizes = LoadSizes(
        courses=courses,
        skills_per_course=skills_per_course,
        items_per_skill=items_per_skill,
        learners=learners,
        admins=admins,
        attempts_per_learner=attempts_per_learner,
        seed=random_seed,
    )
    started = time.perf_counter()
    summary = seed_load(session, sizes, password)
    click.echo(
        f"seeded in {time.perf_counter() - started:.1f} s: {summary.users} users, "
        f"{summary.courses} courses, {summary.skills} skills, {summary.items} items, "
        f"{summary.enrollments} enrolments, {summary.sessions} sessions, "
        f"{summary.attempts} attempts; accounts <role>-<n>@{LOAD_DOMAIN}"
    )
