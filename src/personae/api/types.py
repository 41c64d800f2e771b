"""Types shared by the schemas of both dialects."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from personae.character.fields import NotNull
from personae.conversation.fields import MessageText
from personae.ids import IdRef
from personae.numbers import JsonIntegers
from personae.pagination import MAX_PAGE

# The `page` query parameter of every list in both dialects.
PageNumber = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"Page number, from 1 to {MAX_PAGE:,}.")
]


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
