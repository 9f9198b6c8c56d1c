"""Course and skill rules as plain functions over a session.

Visibility: learners see published courses; instructors see published courses and their own
drafts; admins see everything. What a caller cannot see answers 404, so ids do not leak; what
they can see but not change answers 403 (only the owner and admins change a course).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session, contains_eager

from app.audit.service import record as audit_record
from app.auth.models import Role, User
from app.content.models import Course, CourseStatus, Material, Skill
from app.content.schemas import CourseIn, CoursePatch, CoursesQuery, SkillIn, SkillPatch
from app.errors import Forbidden, NotFound
from app.pagination import PageQuery, paginate


def _visible(user: User) -> ColumnElement[bool]:
    if user.role is Role.ADMIN:
        return true()
    published = Course.status == CourseStatus.PUBLISHED
    if user.role is Role.INSTRUCTOR:
        return or_(published, Course.owner_id == user.id)
    return published


def require_editor(course: Course, user: User) -> None:
    if user.role is not Role.ADMIN and course.owner_id != user.id:
        raise Forbidden("Only the course's owner or an admin may change it.", slug="not-owner")


def list_courses(
    session: Session, user: User, query: CoursesQuery
) -> tuple[Sequence[Course], str | None]:
    statement = select(Course).where(_visible(user))
    if query.status is not None:
        statement = statement.where(Course.status == query.status)
    if query.mine:
        statement = statement.where(Course.owner_id == user.id)
    return paginate(session, statement, Course.created_at, Course.id, query)


def get_course(session: Session, user: User, course_id: uuid.UUID) -> Course:
    course = session.scalar(select(Course).where(Course.id == course_id, _visible(user)))
    if course is None:
        raise NotFound("No such course.")
    return course


def create_course(session: Session, user: User, data: CourseIn) -> Course:
    course = Course(owner_id=user.id, title=data.title.strip(), description=data.description)
    session.add(course)
    session.commit()
    return course


def update_course(session: Session, user: User, course_id: uuid.UUID, data: CoursePatch) -> Course:
    course = get_course(session, user, course_id)
    require_editor(course, user)
    if data.title is not None:
        course.title = data.title.strip()
    if data.description is not None:
        course.description = data.description
    if data.status is not None and data.status is not course.status:
        audit_record(
            session,
            f"course.{'published' if data.status is CourseStatus.PUBLISHED else 'unpublished'}",
            actor_id=user.id,
            target_type="course",
            target_id=str(course.id),
        )
        course.status = data.status
    session.commit()
    return course


def delete_course(session: Session, user: User, course_id: uuid.UUID) -> list[str]:
    """Delete a course with its skills, items and materials; returns the storage keys of the
    deleted materials, for the caller to remove once the deletion is committed."""
    course = get_course(session, user, course_id)
    require_editor(course, user)
    keys = _material_keys(session, Skill.course_id == course.id)
    audit_record(
        session,
        "course.deleted",
        actor_id=user.id,
        target_type="course",
        target_id=str(course.id),
        details={"title": course.title},
    )
    session.delete(course)
    session.commit()
    return keys


def list_skills(
    session: Session, user: User, course_id: uuid.UUID, query: PageQuery
) -> tuple[Sequence[Skill], str | None]:
    course = get_course(session, user, course_id)
    statement = select(Skill).where(Skill.course_id == course.id)
    return paginate(session, statement, Skill.created_at, Skill.id, query)


def get_skill(session: Session, user: User, skill_id: uuid.UUID) -> Skill:
    # The joined course fills `skill.course` too: callers check its status and owner.
    skill = session.scalar(
        select(Skill)
        .join(Course)
        .options(contains_eager(Skill.course))
        .where(Skill.id == skill_id, _visible(user))
    )
    if skill is None:
        raise NotFound("No such skill.")
    return skill


def create_skill(session: Session, user: User, course_id: uuid.UUID, data: SkillIn) -> Skill:
    course = get_course(session, user, course_id)
    require_editor(course, user)
    skill = Skill(course_id=course.id, name=data.name.strip(), description=data.description)
    session.add(skill)
    session.commit()
    return skill


def update_skill(session: Session, user: User, skill_id: uuid.UUID, data: SkillPatch) -> Skill:
    skill = get_skill(session, user, skill_id)
    require_editor(skill.course, user)
    if data.name is not None:
        skill.name = data.name.strip()
    if data.description is not None:
        skill.description = data.description
    session.commit()
    return skill


def delete_skill(session: Session, user: User, skill_id: uuid.UUID) -> list[str]:
    """Delete a skill with its items and materials; returns the deleted materials' storage keys."""
    skill = get_skill(session, user, skill_id)
    require_editor(skill.course, user)
    keys = _material_keys(session, Skill.id == skill.id)
    audit_record(
        session, "skill.deleted", actor_id=user.id, target_type="skill", target_id=str(skill.id)
    )
    session.delete(skill)
    session.commit()
    return keys


def _material_keys(session: Session, skills: ColumnElement[bool]) -> list[str]:
    statement = select(Material.storage_key).join(Skill, Material.skill_id == Skill.id)
    return list(session.scalars(statement.where(skills)))
