"""Cursor pagination shared by every list endpoint.

Lists are ordered newest first by `(timestamp, id)`; the cursor is an opaque, URL-safe encoding
of the last row's pair, so pages stay stable while rows are inserted and ids never need to be
sequential. A cursor that does not decode is a 422 naming the `cursor` field.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import Field
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.errors import ProblemError, validation_problem
from app.validation import InputModel

MAX_LIMIT = 100
T = TypeVar("T")


class PageQuery(InputModel):
    """Query parameters every list accepts."""

    limit: int = Field(20, ge=1, le=MAX_LIMIT, description=f"Page size (1-{MAX_LIMIT}).")
    cursor: str | None = Field(
        None, max_length=200, description="`next_cursor` of the previous page."
    )


def encode_cursor(moment: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([moment.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment_text, row_text = json.loads(raw)
        moment, row_id = datetime.fromisoformat(moment_text), uuid.UUID(row_text)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise invalid_cursor() from error
    if moment.tzinfo is None:  # the API only issues UTC cursors
        raise invalid_cursor()
    return moment, row_id


def invalid_cursor() -> ProblemError:
    return validation_problem("query", "cursor", "not a cursor this API issued")


def paginate(
    session: Session,
    statement: Select[T],
    moment_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    query: PageQuery,
) -> tuple[Sequence[T], str | None]:
    """One page of `statement`, newest first, and the cursor of the next page (or None)."""
    if query.cursor:
        moment, row_id = decode_cursor(query.cursor)
        statement = statement.where(
            or_(moment_column < moment, and_(moment_column == moment, id_column < row_id))
        )
    statement = statement.order_by(moment_column.desc(), id_column.desc()).limit(query.limit + 1)
    rows = session.scalars(statement).all()
    if len(rows) <= query.limit:
        return rows, None
    last: Any = rows[query.limit - 1]
    next_cursor = encode_cursor(getattr(last, moment_column.key), getattr(last, id_column.key))
    return rows[: query.limit], next_cursor
