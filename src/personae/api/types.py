"""Types shared by the schemas of both dialects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from personae.character.fields import NotNull
from personae.conversation.fields import MessageText
from personae.models import MessageAlternative


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, e.g. ``2023-09-01T12:00:00.000Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


Timestamp = Annotated[
    datetime, PlainSerializer(format_timestamp, return_type=str, when_used="json")
]


class MessageVersion(BaseModel):
    """One version of an agent message (a regenerated answer, an alternate greeting), as
    both dialects render it in `alternatives`."""

    index: int = Field(description="Its number, from 0 in the order made; `selected` names one.")
    content: str
    created_at: Timestamp

    @classmethod
    def list_of(cls, versions: Sequence[MessageAlternative]) -> list[MessageVersion]:
        return [cls(index=v.position, content=v.content, created_at=v.created_at) for v in versions]


# Request bodies that read the same in both dialects.
class MessageEdit(BaseModel):
    """`PATCH …/messages/{id}`: exactly one of the two."""

    model_config = ConfigDict(extra="forbid")
    content: Annotated[MessageText | None, NotNull] = Field(
        default=None, description="The new text (of the selected version, if it has several)."
    )
    selected: Annotated[Annotated[int, Field(ge=0)] | None, NotNull] = Field(
        default=None, description="Show this version of the message (its index in `alternatives`)."
    )


class BranchCreate(BaseModel):
    """`POST …/conversations/{id}/branch`."""

    model_config = ConfigDict(extra="forbid")
    message_id: str = Field(
        max_length=40, description="The last message (of this conversation) to copy."
    )
