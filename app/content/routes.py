"""Content routes: thin wrappers over `service`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from apiflask import APIBlueprint
from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from app.auth.decorators import authenticated, current
from app.auth.models import Role
from app.content import items, materials, service
from app.content.schemas import (
    CourseIn,
    CourseOut,
    CoursePage,
    CoursePatch,
    CoursesQuery,
    ItemIn,
    ItemOut,
    ItemPage,
    ItemPatch,
    ItemsQuery,
    ItemView,
    SkillIn,
    SkillOut,
    SkillPage,
    SkillPatch,
)
from app.db import get_session
from app.pagination import PageQuery
from app.storage import get_storage

F = TypeVar("F", bound=Callable[..., Any])

bp = APIBlueprint("content", __name__, tag="Content")

BODY_ERRORS = {400: "Malformed JSON body", 415: "The body is not application/json"}
HIDDEN = {404: "No such resource, or the caller may not see it"}
EDIT_ERRORS = {**BODY_ERRORS, **HIDDEN, 403: "Only the owner or an admin may change it"}


@bp.get("/courses")
@authenticated()
@bp.input(CoursesQuery, location="query", arg_name="query")
@bp.output(CoursePage, description="Courses the caller may see, newest first")
def list_courses(query: CoursesQuery) -> Any:
    """List courses (learners: published only; instructors: also their own drafts)."""
    courses, next_cursor = service.list_courses(get_session(), current(), query)
    return {"items": courses, "next_cursor": next_cursor}


@bp.post("/courses")
@authenticated(Role.INSTRUCTOR)
@bp.input(CourseIn, arg_name="body")
@bp.output(CourseOut, status_code=201, description="The new draft course")
@bp.doc(responses=BODY_ERRORS)
def create_course(body: CourseIn) -> Any:
    """Create a draft course owned by the caller."""
    return service.create_course(get_session(), current(), body)


@bp.get("/courses/<uuid:course_id>")
@authenticated()
@bp.output(CourseOut, description="The course")
@bp.doc(responses=HIDDEN)
def get_course(course_id: uuid.UUID) -> Any:
    """Read a course."""
    return service.get_course(get_session(), current(), course_id)


@bp.patch("/courses/<uuid:course_id>")
@authenticated(Role.INSTRUCTOR)
@bp.input(CoursePatch, arg_name="body")
@bp.output(CourseOut, description="The updated course")
@bp.doc(responses=EDIT_ERRORS)
def update_course(course_id: uuid.UUID, body: CoursePatch) -> Any:
    """Edit or (un)publish a course."""
    return service.update_course(get_session(), current(), course_id, body)


@bp.delete("/courses/<uuid:course_id>")
@authenticated(Role.INSTRUCTOR)
@bp.output({}, status_code=204, description="The course and its skills are deleted")
@bp.doc(responses={**HIDDEN, 403: "Only the owner or an admin may delete it"})
def delete_course(course_id: uuid.UUID) -> Any:
    """Delete a course with its skills (audited)."""
    keys = service.delete_course(get_session(), current(), course_id)
    materials.discard_objects(get_storage(), keys)
    return ""


@bp.get("/courses/<uuid:course_id>/skills")
@authenticated()
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(SkillPage, description="The course's skills, newest first")
@bp.doc(responses=HIDDEN)
def list_skills(course_id: uuid.UUID, query: PageQuery) -> Any:
    """List a course's skills."""
    skills, next_cursor = service.list_skills(get_session(), current(), course_id, query)
    return {"items": skills, "next_cursor": next_cursor}


@bp.post("/courses/<uuid:course_id>/skills")
@authenticated(Role.INSTRUCTOR)
@bp.input(SkillIn, arg_name="body")
@bp.output(SkillOut, status_code=201, description="The new skill")
@bp.doc(responses=EDIT_ERRORS)
def create_skill(course_id: uuid.UUID, body: SkillIn) -> Any:
    """Add a skill to a course."""
    return service.create_skill(get_session(), current(), course_id, body)


@bp.get("/skills/<uuid:skill_id>")
@authenticated()
@bp.output(SkillOut, description="The skill")
@bp.doc(responses=HIDDEN)
def get_skill(skill_id: uuid.UUID) -> Any:
    """Read a skill."""
    return service.get_skill(get_session(), current(), skill_id)


@bp.patch("/skills/<uuid:skill_id>")
@authenticated(Role.INSTRUCTOR)
@bp.input(SkillPatch, arg_name="body")
@bp.output(SkillOut, description="The updated skill")
@bp.doc(responses=EDIT_ERRORS)
def update_skill(skill_id: uuid.UUID, body: SkillPatch) -> Any:
    """Edit a skill."""
    return service.update_skill(get_session(), current(), skill_id, body)


@bp.delete("/skills/<uuid:skill_id>")
@authenticated(Role.INSTRUCTOR)
@bp.output({}, status_code=204, description="The skill is deleted")
@bp.doc(responses={**HIDDEN, 403: "Only the owner or an admin may delete it"})
def delete_skill(skill_id: uuid.UUID) -> Any:
    """Delete a skill (audited)."""
    keys = service.delete_skill(get_session(), current(), skill_id)
    materials.discard_objects(get_storage(), keys)
    return ""


@bp.get("/skills/<uuid:skill_id>/items")
@authenticated()
@bp.input(ItemsQuery, location="query", arg_name="query")
@bp.output(ItemPage, description="Items, newest first; learners see published ones without keys")
@bp.doc(responses=HIDDEN)
def list_items(skill_id: uuid.UUID, query: ItemsQuery) -> Any:
    """List a skill's items, filtered by status and origin."""
    user = current()
    found, next_cursor = items.list_items(get_session(), user, skill_id, query)
    return {"items": [items.view(i, user) for i in found], "next_cursor": next_cursor}


@bp.post("/skills/<uuid:skill_id>/items")
@authenticated(Role.INSTRUCTOR)
@bp.input(ItemIn, arg_name="body")
@bp.output(ItemOut, status_code=201, description="The new draft item")
@bp.doc(responses=EDIT_ERRORS)
def create_item(skill_id: uuid.UUID, body: ItemIn) -> Any:
    """Author an item (mcq or short_answer) as a draft."""
    return items.create_item(get_session(), current(), skill_id, body)


def _multipart_upload(view: F) -> F:
    """Accept only multipart bodies, big enough for a MATERIAL_MAX_BYTES file and its framing.

    The app-wide MAX_CONTENT_LENGTH is sized for JSON; the exact file limit is enforced by
    `materials.upload_material`, and a body too large to parse gets the same 413.
    """

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("This operation accepts only multipart/form-data bodies.")
        max_bytes: int = current_app.extensions["mastery.settings"].material_max_bytes
        request.max_content_length = materials.request_limit(max_bytes)
        try:
            return view(*args, **kwargs)
        except RequestEntityTooLarge as error:
            raise materials.too_large(max_bytes) from error

    return cast(F, limited)


@bp.get("/skills/<uuid:skill_id>/materials")
@authenticated(Role.INSTRUCTOR)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(materials.MaterialPage, description="The skill's materials, newest first")
@bp.doc(responses={**HIDDEN, 403: "Only the course's owner or an admin"})
def list_materials(skill_id: uuid.UUID, query: PageQuery) -> Any:
    """List a skill's uploaded source material (course owner and admins)."""
    found, next_cursor = materials.list_materials(get_session(), current(), skill_id, query)
    return {"items": found, "next_cursor": next_cursor}


@bp.post("/skills/<uuid:skill_id>/materials")
@authenticated(Role.INSTRUCTOR)
@_multipart_upload
@bp.input(materials.MaterialUpload, location="files", arg_name="body")
@bp.output(materials.MaterialOut, status_code=201, description="The stored material")
@bp.doc(
    responses={
        **HIDDEN,
        403: "Only the course's owner or an admin may upload",
        413: "The file is larger than MATERIAL_MAX_BYTES",
        415: "Not multipart/form-data, or the file is not UTF-8 text/plain or text/markdown",
        503: "Object storage is unavailable; nothing was stored",
    }
)
def upload_material(skill_id: uuid.UUID, body: materials.MaterialUpload) -> Any:
    """Upload a text or markdown file (multipart field `file`) as source material (audited).

    Generation jobs use a skill's newest material as context for the items they draft.
    """
    max_bytes: int = current_app.extensions["mastery.settings"].material_max_bytes
    return materials.upload_material(
        get_session(), get_storage(), current(), skill_id, body.file, max_bytes
    )


@bp.get("/items/<uuid:item_id>")
@authenticated()
@bp.output(ItemView, description="The item; the answer key only for its author and admins")
@bp.doc(responses=HIDDEN)
def get_item(item_id: uuid.UUID) -> Any:
    """Read an item."""
    user = current()
    return items.view(items.get_item(get_session(), user, item_id), user)


@bp.patch("/items/<uuid:item_id>")
@authenticated(Role.INSTRUCTOR)
@bp.input(ItemPatch, arg_name="body")
@bp.output(ItemOut, description="The updated item")
@bp.doc(responses={**EDIT_ERRORS, 409: "Published items are frozen; retired items cannot change"})
def update_item(item_id: uuid.UUID, body: ItemPatch) -> Any:
    """Edit a draft item, or retire a published one (`{"status": "retired"}`)."""
    return items.update_item(get_session(), current(), item_id, body)


@bp.delete("/items/<uuid:item_id>")
@authenticated(Role.INSTRUCTOR)
@bp.output({}, status_code=204, description="The draft item is deleted")
@bp.doc(responses={**HIDDEN, 403: "Only the owner or an admin", 409: "Only drafts can be deleted"})
def delete_item(item_id: uuid.UUID) -> Any:
    """Delete a draft item."""
    items.delete_item(get_session(), current(), item_id)
    return ""


@bp.post("/items/<uuid:item_id>/publish")
@authenticated(Role.INSTRUCTOR)
@bp.output(ItemOut, description="The published item")
@bp.doc(responses={**HIDDEN, 403: "Only the owner or an admin", 409: "Only drafts are published"})
def publish_item(item_id: uuid.UUID) -> Any:
    """Publish a draft item (audited); its scoring is frozen from now on."""
    return items.publish_item(get_session(), current(), item_id)
