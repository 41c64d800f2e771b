"""The shapes of events' `data`: each resource as the characters API renders it (the
contract's choice). They live here, beside the events, so that the domains that emit events
need no dialect; the characters API answers its routes with these same models
(`dialects/characters/render.py`), and the agents API shows message versions in
`MessageVersion` too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from personae.models import MessageAlternative
from personae.models.character import Visibility
from personae.timestamps import Timestamp


class Creator(BaseModel):
    id: str
    username: str


class CharacterStats(BaseModel):
    likes: int
    chat_count: int
    followers: int


class CharacterDetail(BaseModel):
    id: str
    name: str
    description: str
    personality: str
    background: str
    scenario: str
    greeting: str
    alternate_greetings: list[str]
    example_dialogue: str
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator_notes: str = ""
    card_creator: str = ""
    card_version: str = ""
    tags: list[str]
    image_url: str | None
    created_at: Timestamp
    updated_at: Timestamp
    visibility: Visibility
    age: int | None
    appearance_prompt: str
    creator: Creator
    stats: CharacterStats


class MessageVersion(BaseModel):
    """One version of an agent message (a regenerated answer, an alternate greeting), as
    both dialects render it in `alternatives`."""

    index: int = Field(description="Its number, from 0 in the order made; `selected` names one.")
    content: str
    created_at: Timestamp

    @classmethod
    def list_of(cls, versions: Sequence[MessageAlternative]) -> list[MessageVersion]:
        return [cls(index=v.position, content=v.content, created_at=v.created_at) for v in versions]


class ChatMessageOut(BaseModel):
    id: str
    conversation_id: str
    character_id: str | None
    content: str
    created_at: Timestamp
    is_character: bool
    image_url: str | None = None
    unanswered: bool = Field(
        default=False,
        exclude_if=lambda v: not v,
        description="Only on a user's message whose turn ended without an answer (the engine "
        "failed, the client went away, the server stopped): retry it, or delete it.",
    )
    thought_process: dict[str, Any] | None = Field(
        default=None, exclude_if=lambda v: v is None, description="Only with `verbose`."
    )
    alternatives: list[MessageVersion] = Field(
        default=[],
        exclude_if=lambda v: not v,
        description="Only on a character's message with versions (regenerated, or a greeting "
        "with alternates): every version; `content` is the selected one's.",
    )
    selected: int | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="With `alternatives`: the index of the version shown as `content`.",
    )


class CharacterBrief(BaseModel):
    id: str
    name: str
    image_url: str | None


class LastMessage(BaseModel):
    content: str
    created_at: Timestamp
    is_character: bool


class ConversationData(BaseModel):
    """A conversation in webhook events: the summary's fields, where a conversation may
    not have a character (one started through the agents API) or a message yet."""

    id: str
    title: str
    character: CharacterBrief | None
    last_message: LastMessage | None
    created_at: Timestamp
    updated_at: Timestamp
    message_count: int


class ImageData(BaseModel):
    """An image in `image.created`. The characters API has no image resource: these are
    the agents API's image fields, without the job's (`error`, `attempts`)."""

    id: str
    prompt: str
    url: str | None
    status: str
    sd_model_id: str
    conversation_id: str | None
    message_id: str | None
    character_id: str | None
    width: int
    height: int
    seed: int
    created_at: Timestamp
    completed_at: Timestamp | None
