"""Request and response bodies of the learning routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from app.auth.schemas import StrictInput
from app.content.schemas import ItemPublicOut
from app.validation import JSONInt


class EnrollmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    course_id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime


class SessionIn(StrictInput):
    EXAMPLES = ({"skill_id": "3f1c2b9e-8d4a-4f6b-9c1e-2a7d5b8e0f13"},)

    skill_id: uuid.UUID


class EstimateOut(BaseModel):
    theta: float = Field(description="Ability estimate (EAP, logits)")
    se: float = Field(description="Standard error of theta (posterior SD)")
    attempts: int
    mastered: bool


class SessionOut(BaseModel):
    id: uuid.UUID
    skill_id: uuid.UUID
    created_at: datetime
    served: int
    pending_item_id: uuid.UUID | None
    estimate: EstimateOut


# The longest answer text accepted (the same bound as the service's MAX_ANSWER_CHARS): refused
# here, before the service, the database or an AI grader sees it.
MAX_RESPONSE_CHARS = 2000


class AttemptIn(StrictInput):
    EXAMPLES = ({"item_id": "9b2e4c1a-7f3d-4e8b-a6c5-1d0f2e3a4b5c", "response": 0},)

    item_id: uuid.UUID
    response: JSONInt | Annotated[StrictStr, Field(max_length=MAX_RESPONSE_CHARS)] = Field(
        description="mcq: the index of the chosen choice (0-based); short_answer: the text"
    )

    @field_validator("response", mode="before")
    @classmethod
    def _answer_not_too_long(cls, value: object) -> object:
        # Checked before the union so the error names `response`, not one member of the union;
        # the max_length above is what the OpenAPI document shows.
        if isinstance(value, str) and len(value) > MAX_RESPONSE_CHARS:
            raise ValueError(f"at most {MAX_RESPONSE_CHARS} characters")
        return value


class AttemptOut(BaseModel):
    id: uuid.UUID
    item_id: uuid.UUID
    correct: bool
    score: float
    feedback: str
    graded_by: str = Field(
        description="`exact` (mcq), the AI provider that graded a short answer (`offline`, "
        "`openai`), or `fallback` when it could not and the rule-based scorer did"
    )
    estimate: EstimateOut


class HintOut(BaseModel):
    item_id: uuid.UUID
    hint: str = Field(description="A nudge towards the answer, never the answer itself")
    hinted_by: str = Field(
        description="The AI provider that wrote the hint (`offline`, `openai`), or `fallback` "
        "when it could not and the built-in offline hint was given instead"
    )


class NextItemOut(BaseModel):
    item: ItemPublicOut
    estimate: EstimateOut


class SkillProgressOut(BaseModel):
    skill_id: uuid.UUID
    course_id: uuid.UUID
    skill_name: str
    theta: float
    se: float
    attempts: int
    correct: int
    mastered: bool


class ProgressOut(BaseModel):
    skills: list[SkillProgressOut]
