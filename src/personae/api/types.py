"""Types shared by the schemas of both dialects."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from personae.character.fields import NotNull
from personae.conversation.fields import MessageText
from personae.ids import IdRef
from personae.models import MessageAlternative
from personae.numbers import JsonIntegers
from personae.pagination import MAX_PAGE
from personae.timestamps import format_timestamp

# The `page` query parameter of every list in both dialects.
PageNumber = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"Page number, from 1 to {MAX_PAGE:,}.")
]

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
class MessageEdit(JsonIntegers):
    """`PATCH …/messages/{id}`: exactly one of the two."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"minProperties": 1, "maxProperties": 1}
    )
    content: Annotated[MessageText | None, NotNull] = Field(
        default=None, description="The new text (of the selected version, if it has several)."
    )
    selected: Annotated[Annotated[int, Field(ge=0)] | None, NotNull] = Field(
        default=None, description="Show this version of the message (its index in `alternatives`)."
    )

    @model_validator(mode="after")
    def _one(self) -> MessageEdit:
        if len(self.model_fields_set) != 1:
            raise ValueError("give exactly one of `content` and `selected`")
        return self


class BranchCreate(BaseModel):
    """`POST …/conversations/{id}/branch`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    message_id: IdRef = Field(description="The last message (of this conversation) to copy.")
