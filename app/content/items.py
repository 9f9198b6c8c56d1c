"""Item rules: authoring, the draft → published → retired life cycle, and who sees the key.

Authors (the course's owner) and admins see every item with its answer key; everyone else sees
only published items of courses they can see, through `ItemPublicOut`, which has no key,
reference answer or rubric. A published item's scoring never changes: it can only be retired,
and a corrected question is a new item.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.audit.service import record as audit_record
from app.auth.models import Role, User
from app.content.models import Course, Item, ItemOrigin, ItemStatus
from app.content.schemas import (
    ChoiceIn,
    ItemIn,
    ItemOut,
    ItemPatch,
    ItemPublicOut,
    ItemsQuery,
    check_item_fields,
)
from app.content.service import get_skill, require_editor
from app.errors import Conflict, NotFound, validation_problem
from app.pagination import paginate


def is_author(course: Course, user: User) -> bool:
    return user.role is Role.ADMIN or course.owner_id == user.id


def view(item: Item, user: User) -> BaseModel:
    """The item as this user may see it."""
    if is_author(item.skill.course, user):
        return ItemOut.model_validate(item)
    return ItemPublicOut.model_validate(item)


def list_items(
    session: Session, user: User, skill_id: uuid.UUID, query: ItemsQuery
) -> tuple[Sequence[Item], str | None]:
    skill = get_skill(session, user, skill_id)
    statement = select(Item).where(Item.skill_id == skill.id)
    if not is_author(skill.course, user):
        statement = statement.where(Item.status == ItemStatus.PUBLISHED)
    if query.status is not None:
        statement = statement.where(Item.status == query.status)
    if query.origin is not None:
        statement = statement.where(Item.origin == query.origin)
    rows, next_cursor = paginate(session, statement, Item.created_at, Item.id, query)
    for item in rows:  # `view` reads item.skill.course: no lazy load per page
        set_committed_value(item, "skill", skill)
    return rows, next_cursor


def get_item(session: Session, user: User, item_id: uuid.UUID) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise NotFound("No such item.")
    get_skill(session, user, item.skill_id)  # 404 unless the course is visible
    if item.status is not ItemStatus.PUBLISHED and not is_author(item.skill.course, user):
        raise NotFound("No such item.")
    return item


def create_item(session: Session, user: User, skill_id: uuid.UUID, data: ItemIn) -> Item:
    skill = get_skill(session, user, skill_id)
    require_editor(skill.course, user)
    item = Item(
        skill_id=skill.id,
        kind=data.kind,
        origin=ItemOrigin.HUMAN,
        prompt=data.prompt.strip(),
        choices=[c.model_dump() for c in data.choices] if data.choices else None,
        reference_answer=data.reference_answer,
        rubric=data.rubric,
        a=data.a,
        b=data.b,
    )
    session.add(item)
    session.commit()
    return item


def _editable(session: Session, user: User, item_id: uuid.UUID) -> Item:
    item = get_item(session, user, item_id)
    require_editor(item.skill.course, user)
    return item


def update_item(session: Session, user: User, item_id: uuid.UUID, data: ItemPatch) -> Item:
    item = _editable(session, user, item_id)
    changes = data.model_dump(exclude_unset=True)
    if item.status is ItemStatus.RETIRED:
        raise Conflict("A retired item cannot change.", slug="item-retired")
    if item.status is ItemStatus.PUBLISHED:
        if set(changes) != {"status"} or data.status is not ItemStatus.RETIRED:
            raise Conflict(
                "A published item's content and scoring are frozen; retire it and create a "
                "corrected item instead.",
                slug="item-published",
            )
        item.status = ItemStatus.RETIRED
        audit_record(
            session, "item.retired", actor_id=user.id, target_type="item", target_id=str(item.id)
        )
        session.commit()
        return item
    if "status" in changes:
        raise Conflict("Only a published item can be retired.", slug="item-not-published")
    choices = data.choices if "choices" in changes else _stored_choices(item)
    reference = changes.get("reference_answer", item.reference_answer)
    rubric = changes.get("rubric", item.rubric)
    try:
        check_item_fields(item.kind, choices, reference, rubric)
    except ValueError as error:
        raise validation_problem("json", "_schema", str(error)) from error
    if "prompt" in changes and data.prompt is not None:
        item.prompt = data.prompt.strip()
    if "choices" in changes:
        item.choices = [c.model_dump() for c in data.choices] if data.choices else None
    item.reference_answer, item.rubric = reference, rubric
    item.a = data.a if data.a is not None else item.a
    item.b = data.b if data.b is not None else item.b
    session.commit()
    return item


def _stored_choices(item: Item) -> list[ChoiceIn] | None:
    return [ChoiceIn.model_validate(c) for c in item.choices] if item.choices else None


def publish_item(session: Session, user: User, item_id: uuid.UUID) -> Item:
    item = _editable(session, user, item_id)
    if item.status is not ItemStatus.DRAFT:
        raise Conflict(
            f"The item is {item.status.value}; only drafts are published.", slug="item-not-draft"
        )
    item.status = ItemStatus.PUBLISHED
    audit_record(
        session, "item.published", actor_id=user.id, target_type="item", target_id=str(item.id)
    )
    session.commit()
    return item


def delete_item(session: Session, user: User, item_id: uuid.UUID) -> None:
    item = _editable(session, user, item_id)
    if item.status is not ItemStatus.DRAFT:
        raise Conflict(
            "Only drafts can be deleted; retire a published item instead.", slug="item-not-draft"
        )
    session.delete(item)
    session.commit()
