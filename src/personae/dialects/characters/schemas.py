"""Request and response bodies of the characters API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from personae.api.types import MessageVersion, Timestamp
from personae.character.fields import (
    Age,
    AlternateGreetings,
    Appearance,
    Background,
    Description,
    ExampleDialogue,
    Greeting,
    Name,
    NotNull,
    Personality,
    Scenario,
    Tags,
    Visibility,
)
from personae.conversation.fields import ChatOptions, MessageText, Title
from personae.pagination import Page
from personae.webhook.events import EVENT_TYPES


class CharactersErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    status: int
    details: dict[str, Any] = Field(default_factory=dict)


class CharactersError(BaseModel):
    error: CharactersErrorDetail


class Pagination(BaseModel):
    total: int
    page: int
    limit: int
    pages: int

    @classmethod
    def of(cls, page: Page[Any]) -> Pagination:
        return cls(
            total=page.total, page=page.request.page, limit=page.request.size, pages=page.pages
        )


class ChatRequests(BaseModel):
    used: int
    limit: int
    reset_date: Timestamp


class Subscription(BaseModel):
    plan: str
    status: Literal["active"] = "active"
    chat_requests: ChatRequests


class UserStats(BaseModel):
    characters_created: int
    conversations: int
    favorites: int


class UserMe(BaseModel):
    id: str
    username: str
    email: str | None
    created_at: Timestamp
    balance: float = Field(description="Prepaid balance, charged by priced models.")
    subscription: Subscription
    stats: UserStats


# characters
class CharacterCreate(BaseModel):
    """`POST /v1/characters` as JSON; a multipart form carries the same fields plus `image`."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Description
    personality: Personality
    background: Background
    scenario: Scenario = ""
    greeting: Greeting = ""
    alternate_greetings: AlternateGreetings = []
    example_dialogue: ExampleDialogue = ""
    tags: Tags = []
    appearance_prompt: Appearance = ""
    age: Age | None = None
    visibility: Visibility = Visibility.PUBLIC


class CharacterUpdate(BaseModel):
    """`PATCH /v1/characters/{id}`: only the fields given change."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[Name | None, NotNull] = None
    description: Annotated[Description | None, NotNull] = None
    personality: Annotated[Personality | None, NotNull] = None
    background: Annotated[Background | None, NotNull] = None
    scenario: Annotated[Scenario | None, NotNull] = None
    greeting: Annotated[Greeting | None, NotNull] = None
    alternate_greetings: Annotated[AlternateGreetings | None, NotNull] = None
    example_dialogue: Annotated[ExampleDialogue | None, NotNull] = None
    tags: Annotated[Tags | None, NotNull] = None
    appearance_prompt: Annotated[Appearance | None, NotNull] = None
    age: Age | None = Field(default=None, description="null clears it.")
    visibility: Annotated[Visibility | None, NotNull] = None


class Creator(BaseModel):
    id: str
    username: str


class CharacterStats(BaseModel):
    likes: int
    chat_count: int
    followers: int


class CharacterSummary(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    image_url: str | None
    created_at: Timestamp
    likes: int
    chat_count: int


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
    tags: list[str]
    image_url: str | None
    created_at: Timestamp
    updated_at: Timestamp
    visibility: Visibility
    age: int | None
    appearance_prompt: str
    creator: Creator
    stats: CharacterStats


class CharacterPage(BaseModel):
    data: list[CharacterSummary]
    pagination: Pagination


class FavoriteItem(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    image_url: str | None
    created_at: Timestamp
    favorited_at: Timestamp


class FavoritePage(BaseModel):
    data: list[FavoriteItem]
    pagination: Pagination


class FavoriteAdded(BaseModel):
    success: Literal[True] = True
    message: str = "Character added to favorites"
    character_id: str
    favorited_at: Timestamp


class Done(BaseModel):
    """The characters API's acknowledgement of a removal."""

    success: Literal[True] = True
    message: str
    character_id: str


class LikeState(BaseModel):
    success: Literal[True] = True
    character_id: str
    liked: bool
    likes: int


# chat
class ChatMessageCreate(ChatOptions):
    model_config = ConfigDict(extra="forbid")
    message: MessageText
    conversation_id: str | None = Field(
        default=None, max_length=40, description="Omit to start one."
    )


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


class ChatMessagePage(BaseModel):
    data: list[ChatMessageOut]
    pagination: Pagination


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


class ConversationSummary(ConversationData):
    """A conversation as the characters API shows it: always with a character and a
    message (others are not listed, and are 404 when asked for)."""

    character: CharacterBrief
    last_message: LastMessage


class ConversationPage(BaseModel):
    data: list[ConversationSummary]
    pagination: Pagination


class ConversationTitle(BaseModel):
    """`PATCH /v1/chat/conversations/{id}`."""

    model_config = ConfigDict(extra="forbid")
    title: Title


class ConversationDeleted(BaseModel):
    success: Literal[True] = True
    message: str = "Conversation deleted"
    conversation_id: str


class MessageDeleted(BaseModel):
    success: Literal[True] = True
    message: str = "Message deleted"
    message_id: str


# webhooks
WebhookEventName = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    events: list[WebhookEventName] = Field(
        min_length=1, max_length=20, description=f"Any of: {', '.join(EVENT_TYPES)}."
    )
    description: Annotated[str, StringConstraints(max_length=500)] = ""

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        return known_events(events)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[
        str | None,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
        NotNull,
    ] = None
    events: Annotated[list[WebhookEventName] | None, NotNull] = Field(
        default=None, min_length=1, max_length=20
    )
    description: Annotated[str | None, StringConstraints(max_length=500), NotNull] = None
    status: Annotated[Literal["active", "disabled"] | None, NotNull] = None

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str] | None) -> list[str] | None:
        return known_events(events) if events is not None else None


def known_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event {unknown[0]!r} (known: {', '.join(EVENT_TYPES)})")
    return list(dict.fromkeys(events))


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    status: Literal["active", "disabled"]
    disabled_reason: str | None = Field(description="Why it is disabled, when it is.")
    failing_since: Timestamp | None = Field(description="Deliveries failing since, if they are.")
    created_at: Timestamp
    updated_at: Timestamp


class WebhookWithSecret(WebhookOut):
    secret: str = Field(description="Shown only when created or rotated: keep it.")


class WebhookPage(BaseModel):
    data: list[WebhookOut]
    pagination: Pagination


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    event: str
    status: Literal["pending", "delivering", "succeeded", "failed"]
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="When it is tried again, if it will be.")
    last_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    created_at: Timestamp


class DeliveryPage(BaseModel):
    data: list[DeliveryOut]
    pagination: Pagination


class WebhookDeleted(BaseModel):
    success: Literal[True] = True
    message: str = "Webhook deleted"
    webhook_id: str
