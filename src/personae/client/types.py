"""The API's resources as typed objects, and the typed keyword arguments the client takes.

Each model names the fields the API documents (its OpenAPI document, `/openapi.json`;
`tests/test_client_types.py` holds these to it). Fields a newer server adds are kept and
readable as attributes, so an older client keeps working.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

from personae.client._response import APIObject

__all__ = [
    "Agent",
    "AgentFields",
    "CardFile",
    "Character",
    "CharacterBrief",
    "CharacterFields",
    "CharacterStats",
    "CharacterSummary",
    "ChatConversation",
    "ChatMessage",
    "ChatRequests",
    "Conversation",
    "Creator",
    "Deleted",
    "Delta",
    "Favorite",
    "FavoriteAdded",
    "Image",
    "ImageOptions",
    "InputMessage",
    "LastMessage",
    "LikeState",
    "Lorebook",
    "Message",
    "MessageVersion",
    "Model",
    "Subscription",
    "TurnOptions",
    "User",
    "UserStats",
    "Webhook",
    "WebhookDelivery",
]


class _Nested(BaseModel):
    """A part of a resource (no HTTP answer of its own)."""

    model_config = ConfigDict(extra="allow")


# the characters API (/v1)


class Creator(_Nested):
    id: str
    username: str


class CharacterStats(_Nested):
    likes: int
    chat_count: int
    followers: int


class Character(APIObject):
    """A character as the characters API shows it (`GET /v1/characters/{id}`)."""

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
    created_at: datetime
    updated_at: datetime
    visibility: Literal["public", "private"]
    age: int | None
    appearance_prompt: str
    creator: Creator
    stats: CharacterStats


class CharacterSummary(APIObject):
    """A character in the catalogue (`GET /v1/characters`)."""

    id: str
    name: str
    description: str
    tags: list[str]
    image_url: str | None
    created_at: datetime
    likes: int
    chat_count: int


class Lorebook(APIObject):
    """A character's lorebook (`character_book` of a Character Card), or None when it has
    none; only its owner reads it."""

    character_id: str
    lorebook: dict[str, Any] | None
    updated_at: datetime | None


class CardFile(APIObject):
    """A character exported as a Character Card file (`png`, `json` or `charx`)."""

    content: bytes
    media_type: str
    filename: str | None = None


class LikeState(APIObject):
    """A character's likes after liking it or taking the like back."""

    character_id: str
    liked: bool
    likes: int


class MessageVersion(_Nested):
    """One version of a character's message: a regenerated answer, an alternate greeting."""

    index: int
    content: str
    created_at: datetime


class _MessageParts(APIObject):
    """What a message shows in both dialects besides who spoke: its image, whether it went
    unanswered, `verbose`'s thought process, and its versions."""

    image_url: str | None = None
    unanswered: bool = False
    thought_process: dict[str, Any] | None = None
    alternatives: list[MessageVersion] = []
    selected: int | None = None


class ChatMessage(_MessageParts):
    """A message as the characters API shows it: `is_character` tells who spoke."""

    id: str
    conversation_id: str
    character_id: str | None
    content: str
    created_at: datetime
    is_character: bool


class CharacterBrief(_Nested):
    id: str
    name: str
    image_url: str | None


class LastMessage(_Nested):
    content: str
    created_at: datetime
    is_character: bool


class ChatConversation(APIObject):
    """A conversation as the characters API lists it (`GET /v1/chat/conversations`)."""

    id: str
    title: str
    character: CharacterBrief | None
    last_message: LastMessage | None
    created_at: datetime
    updated_at: datetime
    message_count: int


class Favorite(APIObject):
    """A favorited character (`GET /v1/user/favorites`)."""

    id: str
    name: str
    description: str
    tags: list[str]
    image_url: str | None
    created_at: datetime
    favorited_at: datetime


class FavoriteAdded(APIObject):
    """The answer to adding a favorite: when it was first favorited."""

    character_id: str
    favorited_at: datetime


class ChatRequests(_Nested):
    used: int
    limit: int
    reset_date: datetime


class Subscription(_Nested):
    plan: str
    status: str
    chat_requests: ChatRequests


class UserStats(_Nested):
    characters_created: int
    conversations: int
    favorites: int


class User(APIObject):
    """The calling account (`GET /v1/user/me`): plan, monthly usage, balance."""

    id: str
    username: str
    email: str | None
    created_at: datetime
    balance: float
    subscription: Subscription
    stats: UserStats


class Webhook(APIObject):
    """A webhook endpoint. `secret` (`whsec_…`) is there only when created or rotated."""

    id: str
    url: str
    events: list[str]
    description: str
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None


class WebhookDelivery(APIObject):
    """One event's delivery to a webhook, with its attempts."""

    id: str
    event_id: str
    event: str
    status: Literal["pending", "delivering", "succeeded", "failed"]
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


# the agents API (/api/v1)


class Model(APIObject):
    """A model the operator enabled: `llm` (chat) or `sd` (images)."""

    id: str
    name: str
    type: str
    max_context: int | None = None
    sampling: dict[str, float] | None = None
    cost_per_1k_tokens: float | None = None
    cost_per_image: float | None = None
    placeholder: bool | None = None


class Agent(APIObject):
    """A character as the agents API shows it: the same row as a `Character`, same id."""

    id: str
    name: str
    appearance_prompt: str
    personality_prompt: str
    description: str
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
    avatar_url: str | None
    age: int | None
    tags: list[str]
    visibility: Literal["public", "private"]
    sd_model_id: str | None
    created_at: datetime


class Conversation(APIObject):
    """A conversation as the agents API shows it."""

    id: str
    title: str
    system_prompt: str
    llm_id: str | None
    agent_id: str | None
    created_at: datetime
    last_message_at: datetime | None
    message_count: int


class Message(_MessageParts):
    """A message as the agents API shows it: `role` is `user`, `agent` or `system`."""

    id: str
    content: str
    role: Literal["user", "agent", "system"]
    created_at: datetime


class Image(APIObject):
    """An image job: `pending`, `running`, `completed` (with `url`), `failed` or `deleted`."""

    id: str
    prompt: str
    url: str | None
    status: Literal["pending", "running", "completed", "failed", "deleted"]
    error: str | None
    attempts: int
    sd_model_id: str
    conversation_id: str | None
    message_id: str | None
    width: int
    height: int
    seed: int
    created_at: datetime
    completed_at: datetime | None

    @property
    def done(self) -> bool:
        """Whether the job has ended (completed, failed or deleted)."""
        return self.status not in ("pending", "running")


# made by the client


class Deleted(APIObject):
    """What a delete answered: the id that is gone."""

    id: str


class Delta(BaseModel):
    """A piece of a streamed answer."""

    content: str


# keyword arguments


class CharacterFields(TypedDict, total=False):
    """A character's fields besides its name, as the characters API names them."""

    description: str
    personality: str
    background: str
    scenario: str
    greeting: str
    alternate_greetings: list[str]
    example_dialogue: str
    system_prompt: str
    post_history_instructions: str
    creator_notes: str
    card_creator: str
    card_version: str
    tags: list[str]
    appearance_prompt: str
    age: int | None
    visibility: Literal["public", "private"]


class AgentFields(TypedDict, total=False):
    """An agent's fields besides its name, as the agents API names them."""

    description: str
    personality_prompt: str
    appearance_prompt: str
    background: str
    scenario: str
    greeting: str
    alternate_greetings: list[str]
    example_dialogue: str
    system_prompt: str
    post_history_instructions: str
    creator_notes: str
    card_creator: str
    card_version: str
    sd_model_id: str | None
    age: int | None
    tags: list[str]
    visibility: Literal["public", "private"]


class TurnOptions(TypedDict, total=False):
    """What every generating request takes besides its text (docs/api.md, *Chat*)."""

    verbose: bool
    max_tokens: int
    seed: int
    temperature: float
    top_p: float
    min_p: float
    top_k: int
    repeat_penalty: float
    frequency_penalty: float
    presence_penalty: float
    dry_multiplier: float
    dry_base: float
    dry_allowed_length: int
    dry_penalty_last_n: int


class ImageOptions(TypedDict, total=False):
    """An image's settings besides its prompt (docs/api.md, *Images*)."""

    sd_model_id: str
    conversation_id: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance: float
    seed: int


class InputMessage(TypedDict):
    """A message given to a completion or a new conversation."""

    role: Literal["user", "agent", "system"]
    content: str
